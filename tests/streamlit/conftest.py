"""Fixtures for the Streamlit page tests: real embedded servers (DuckDB file, in-process
bus, the whole pipeline) and AppTest runs of ``workbench/streamlit_app.py`` against them.

- ``replayed_server``: two seeded simulator regressions replayed over HTTP (the real
  detector, grouping and RCA made the incidents and suspects);
- ``many_server``: 5,000 hand-made incidents written into the store (pagination), one of
  them with a service suspect;
- ``empty_server``: no data at all.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from server.embedded import EmbeddedServer, free_port
from server.model import Suspect
from server.sim.replay import replay
from server.sim.scenario import generate_scenario
from tests.tui.tui_seed import ONSET, seed_many, store_of, suspects
from workbench.client import Incident, RcaClient

APP = Path(__file__).resolve().parents[2] / "workbench" / "streamlit_app.py"
RUN_TIMEOUT = 120.0  # seconds per AppTest run (a loaded CI machine; a run takes 1-10 s)


@pytest.fixture(scope="session")
def replayed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("ui-replayed")) as srv:
        for seed in (3, 4):
            replay(generate_scenario(seed, kind="deployment", history_hours=1.0, n_services=6), srv.url)
        yield srv


@pytest.fixture(scope="session")
def many_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("ui-many")) as srv:
        store = store_of(srv)
        seed_many(store, n_incidents=5000, n_suspects=4)
        sus = suspects("inc-1", 4)
        sus.insert(1, Suspect(id="sus-inc-1-svc", incident_id="inc-1", rank=2, kind="service", change_id=None,
                              service="payments", ts=ONSET, score=0.55,
                              evidence={"anomaly_first": 0.9, "blast_radius": 1.0, "error_logs": 0.4},
                              explanation="payments is the root-cause service: its anomalies came first and "
                                          "every other anomalous service calls it"))
        ranked = [Suspect(id=s.id, incident_id=s.incident_id, rank=n, kind=s.kind, change_id=s.change_id,
                          service=s.service, ts=s.ts, score=s.score, evidence=s.evidence,
                          explanation=s.explanation) for n, s in enumerate(sus, start=1)]
        store.replace_suspects(incident_id="inc-1", suspects=ranked)
        yield srv


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        yield srv


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung RCA server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in conns:
        c.close()
    sock.close()


@pytest.fixture
def down_url() -> str:
    """An address where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """``app(url, page_path=None, timeout=None, **query)``: an AppTest of the entry point on one page."""
    st.cache_data.clear()

    def make(url: str, page_path: str | None = None, /, *, timeout: float | None = None, **query: str) -> AppTest:
        monkeypatch.setenv("RCA_UI_SERVER_URL", url)
        if timeout is not None:
            monkeypatch.setenv("RCA_UI_TIMEOUT", str(timeout))
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        if page_path is not None:  # AppTest resolves st.navigation pages only after a first run
            at.run()
            at.switch_page(page_path)
        for k, v in query.items():
            at.query_params[k] = v
        return at.run()

    return make


def incident_with_change_suspect(url: str) -> Incident:
    with RcaClient(url) as c:
        for inc in c.incidents(limit=100):
            if inc.top_suspect is not None and inc.top_suspect.change_id and inc.anomaly_count > 0:
                return inc
    raise AssertionError("the replayed scenarios produced no incident with a change suspect")
