"""Fixtures for the TUI tests: a real embedded server (DuckDB file, in-process bus, real
pipeline) seeded with incidents, and helpers to wait for the app to catch up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.embedded import EmbeddedServer
from server.sim.replay import replay
from server.sim.scenario import Scenario, generate_scenario
from tests.tui.tui_seed import seed_small, store_of


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """Six hand-made incidents written into the store (deterministic screens)."""
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        seed_small(store_of(srv))
        yield srv


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    """Two seeded regressions on different days (so labels on one can inform the other)."""
    scs = [generate_scenario(seed, kind="deployment", history_hours=1.0, n_services=6) for seed in (3, 4)]
    return sorted(scs, key=lambda s: s.start)


@pytest.fixture
def scenario_server(tmp_path: Path, scenarios: list[Scenario]) -> Iterator[EmbeddedServer]:
    """Seeded simulator scenarios replayed over HTTP through the whole pipeline."""
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        for sc in scenarios:
            replay(sc, srv.url)
        yield srv

