"""One real server seeded with labelled incident history per test session (replaying
simulated scenarios over HTTP takes about a minute), exported once with ``rca export``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.cli import main
from server.detector.core import warm_up
from server.embedded import EmbeddedServer
from server.timeutil import iso
from tests.export.seed import Seeded, seed_history


@dataclass
class History:
    server: EmbeddedServer
    seeded: Seeded
    export_dir: Path
    small_dir: Path  # one labelled scenario's day only (for backtests and notebooks)


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    root = tmp_path_factory.mktemp("export")
    warm_up()  # a fresh clone compiles the detector kernel first (not inside the server's start timeout)
    with EmbeddedServer(data_dir=root / "data") as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        seeded = seed_history(c)
        out = root / "full"
        assert main(["export", "--url", srv.url, "--out", str(out), "--quiet"]) == 0
        labelled = next(sc for sc in seeded.scenarios if sc.truth.culprit_id in seeded.labelled.values())
        small = root / "day"
        assert main(["export", "--url", srv.url, "--out", str(small), "--quiet",
                     "--since", iso(labelled.start), "--until", iso(labelled.end)]) == 0
        yield History(srv, seeded, out, small)
