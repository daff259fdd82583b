"""The simulator against the real embedded RCA server (uvicorn thread, DuckDB file).

* a seeded scenario replayed over HTTP produces one incident for its fault whose
  top-3 suspects contain the culprit, and a control run produces none;
* the live simulator (driven tick by tick with an event-time clock, so the test does
  not wait for wall-clock ticks) backfills history, a bad deploy through its control
  API becomes an incident with that deployment among the top-3 suspects;
* ``rca sim scenario`` / ``rca sim replay`` work from the command line.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server.cli import main as rca_main
from server.embedded import EmbeddedServer
from server.sim.live import LiveSim, create_app
from server.sim.replay import culprit_rank, get_suspects, list_incidents, matching_incidents, replay
from server.sim.scenario import generate_scenario


@pytest.mark.parametrize("seed,kind", [(2, "deployment"), (4, "flag_change")])
def test_replayed_scenario_gives_one_incident_with_the_culprit_in_the_top_3(
    server: EmbeddedServer, http: httpx.Client, seed: int, kind: str,
) -> None:
    sc = generate_scenario(seed, kind=kind, history_hours=2.0)
    stats = replay(sc, http)
    assert stats.metrics == len(sc.metrics) and stats.changes == len(sc.changes)
    assert http.get("/health").json()["pending"] == 0
    incidents = list_incidents(http)
    matched = matching_incidents(incidents, sc.truth)
    assert len(matched) == 1
    rank = culprit_rank(get_suspects(http, matched[0]["id"]), sc.truth.culprit_id)
    assert rank is not None and rank <= 3


def test_control_run_opens_no_incident(server: EmbeddedServer, http: httpx.Client) -> None:
    sc = generate_scenario(6, kind="control", history_hours=1.5)
    replay(sc, http)
    assert list_incidents(http) == []


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_live_bad_deploy_becomes_an_incident_naming_it(server: EmbeddedServer, http: httpx.Client) -> None:
    clock = Clock(1793577600.0 + 10 * 3600)
    sim = LiveSim(server.url, seed=3, n_services=8, interval=10.0, clock=clock, benign_per_hour=2.0)
    target = max(sim.fleet.names, key=lambda s: (len(sim.fleet.callers(s)), s))
    with TestClient(create_app(sim, run_loop=False)) as ctl:
        assert ctl.post("/backfill", params={"hours": 1}).status_code == 200
        for _ in range(6):
            clock.t += 10.0
            assert ctl.post("/tick").json()["errors"] == 0
        server.wait_idle(60)
        assert list_incidents(http) == []
        dep = ctl.post("/deploy", params={"service": target, "bad": "true", "fault": "latency"}).json()
        for _ in range(30):
            clock.t += 10.0
            ctl.post("/tick")
        assert ctl.get("/health").json()["status"] == "ok"
        server.wait_idle(60)
        incidents = list_incidents(http)
        assert incidents and target in incidents[0]["services"]
        top3 = [s["change_id"] for s in get_suspects(http, incidents[0]["id"])[:3]]
        assert dep["deployment"]["id"] in top3
        # rolling back posts the reverting deployment and ends the fault
        rb = ctl.post("/rollback", params={"service": target}).json()
        assert rb["change"]["version"] == dep["deployment"]["previous_version"]
        for _ in range(6):
            clock.t += 10.0
            ctl.post("/tick")
        assert ctl.get("/health").json()["faults"] == []
    server.wait_idle(60)
    changes = {c["id"] for c in http.get("/changes", params={"limit": 1000}).json()}
    assert {dep["deployment"]["id"], rb["change"]["id"]} <= changes


def test_cli_writes_and_replays_a_scenario(server: EmbeddedServer, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sc.json"
    assert rca_main(["sim", "scenario", "--seed", "2", "--kind", "deployment", "--hours", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert rca_main(["sim", "replay", "--server", server.url, str(out)]) == 0
    text = capsys.readouterr().out
    assert "[fault]" in text and "culprit_rank=" in text


def test_replay_splits_batches_the_server_refuses_as_too_large(tmp_path: Path) -> None:
    sc = generate_scenario(9, kind="control", history_hours=0.5, n_services=4)
    with EmbeddedServer(data_dir=tmp_path / "small", api={"max_batch_items": 700}) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        stats = replay(sc, c, batch=5000)
        assert stats.metrics == len(sc.metrics)
        stored = sum(s["points"] for s in c.get("/services/metrics").json())
        assert stored == len(sc.metrics)
