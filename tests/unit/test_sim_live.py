"""The live simulator's generation and HTTP controls (no RCA server attached: the
simulator then only generates; delivery is covered in tests/e2e/test_sim_live.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.sim.live import LiveSim, create_app

T0 = 1793577600.0 + 14 * 3600


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sim(clock: Clock) -> LiveSim:
    return LiveSim(None, seed=4, n_services=8, interval=10.0, clock=clock)


@pytest.fixture
def ctl(sim: LiveSim) -> Iterator[TestClient]:
    with TestClient(create_app(sim, run_loop=False)) as c:
        yield c


def _ticks(sim: LiveSim, clock: Clock, n: int) -> dict[tuple[str, str], np.ndarray]:
    vals: dict[tuple[str, str], list[float]] = {}
    for _ in range(n):
        clock.t += 10.0
        for p in sim.make_tick(clock.t).metrics:
            vals.setdefault((p["service"], p["metric"]), []).append(p["value"])
    return {k: np.array(v) for k, v in vals.items()}


def test_a_tick_reports_three_metrics_per_service_and_logs(sim: LiveSim, clock: Clock) -> None:
    tick = sim.make_tick(clock.t)
    assert len(tick.metrics) == 3 * len(sim.fleet.names)
    assert {p["ts"] for p in tick.metrics} == {clock.t}
    assert sum(1 for lg in tick.logs if lg["level"] == "INFO") == 2 * len(sim.fleet.names)


def test_history_is_vectorised_and_ends_now(sim: LiveSim, clock: Clock) -> None:
    hist = sim.history(1.0, clock.t)
    ts = sorted({p["ts"] for p in hist.metrics})
    assert len(ts) == 360 and ts[-1] < clock.t and ts[-1] >= clock.t - 10.0
    assert np.allclose(np.diff(ts), 10.0)


def test_injected_latency_adds_about_the_requested_ms_and_expires(sim: LiveSim, clock: Clock) -> None:
    svc = sim.fleet.names[2]
    base = np.median(_ticks(sim, clock, 30)[(svc, "p95_latency_ms")])
    sim.inject_latency(svc, 400.0, duration=300.0)
    during = np.median(_ticks(sim, clock, 20)[(svc, "p95_latency_ms")])
    assert 250.0 < during - base < 600.0
    _ticks(sim, clock, 15)  # past the 300 s duration
    assert sim.faults == []
    after = np.median(_ticks(sim, clock, 20)[(svc, "p95_latency_ms")])
    assert abs(after - base) < 0.25 * base


def test_injected_errors_raise_the_error_rate_and_callers_see_part_of_it(sim: LiveSim, clock: Clock) -> None:
    svc = next(s for s in sim.fleet.names if sim.fleet.callers(s))
    caller = sim.fleet.callers(svc)[0]
    before = _ticks(sim, clock, 20)
    sim.inject_errors(svc, 0.2, duration=600.0)
    during = _ticks(sim, clock, 20)
    assert np.median(during[(svc, "error_rate")]) > np.median(before[(svc, "error_rate")]) + 0.15
    rise = np.median(during[(caller, "error_rate")]) - np.median(before[(caller, "error_rate")])
    assert 0.02 < rise < 0.15


def test_controls(ctl: TestClient, sim: LiveSim, clock: Clock) -> None:
    h = ctl.get("/health").json()
    assert h["services"] == sim.fleet.names and h["faults"] == [] and h["edges"]
    svc = sim.fleet.names[1]
    r = ctl.post("/inject-latency", params={"service": svc, "ms": 300, "duration": 120})
    assert r.status_code == 200 and r.json()["fault"]["service"] == svc
    assert r.json()["fault"]["end"] == pytest.approx(clock.t + 120)
    r = ctl.post("/inject-errors", params={"service": svc, "rate": 0.1})
    assert r.status_code == 200 and r.json()["fault"]["error_add"] == pytest.approx(0.1)
    assert len(ctl.get("/health").json()["faults"]) == 2
    assert ctl.post("/reset").json() == {"cleared": 2}
    assert ctl.get("/health").json()["faults"] == []
    # a benign deploy has no fault; a bad one starts one on that service
    ok = ctl.post("/deploy", params={"service": svc}).json()
    assert ok["fault"] is None and ok["deployment"]["service"] == svc and ok["deployment"]["diff"]["files"]
    bad = ctl.post("/deploy", params={"service": svc, "bad": "true"}).json()
    assert bad["fault"]["service"] == svc and bad["fault"]["change_id"] == bad["deployment"]["id"]
    assert bad["deployment"]["previous_version"] == ok["deployment"]["version"]
    # the new error logs name a file of the diff
    files = {f["path"].rsplit("/", 1)[-1] for f in bad["deployment"]["diff"]["files"]}
    msgs = []
    for _ in range(12):
        clock.t += 10.0
        msgs += [lg["message"] for lg in sim.make_tick(clock.t).logs if lg["service"] == svc and lg["level"] != "INFO"]
    assert any(f in m for m in msgs for f in files)
    assert ctl.post("/tick").json()["metrics"] == 3 * len(sim.fleet.names)


def test_controls_reject_bad_input(ctl: TestClient) -> None:
    assert ctl.post("/inject-latency", params={"service": "nope", "ms": 100}).status_code == 404
    assert ctl.post("/inject-errors", params={"service": "frontend", "rate": 1.5}).status_code == 422
    assert ctl.post("/inject-latency", params={"service": "frontend", "ms": -5}).status_code == 422
    assert ctl.post("/deploy", params={"service": "nope", "bad": "true"}).status_code == 404
    assert ctl.post("/deploy", params={"service": "frontend", "fault": "meltdown"}).status_code == 422


def test_config_and_flag_controls_and_rollback(ctl: TestClient, sim: LiveSim, clock: Clock) -> None:
    svc = sim.fleet.names[3]
    cfg = ctl.post("/config-change", params={"service": svc, "bad": "true"}).json()
    assert cfg["config_change"]["service"] == svc and cfg["config_change"]["key"]
    assert cfg["fault"]["kind"] in ("latency", "errors") and cfg["fault"]["change_id"] == cfg["config_change"]["id"]
    flag = ctl.post("/flag-change", params={"service": svc, "bad": "true", "rollout": 25}).json()
    assert flag["flag_change"]["services"] == [svc] and flag["flag_change"]["rollout_percent"] == 25
    assert ctl.post("/flag-change", params={"service": svc, "rollout": 0}).status_code == 422
    # the latest faulty change is reverted first
    rb = ctl.post("/rollback", params={"service": svc}).json()
    assert rb["kind"] == "flag_change" and rb["change"]["flag"] == flag["flag_change"]["flag"]
    assert rb["change"]["new_state"] == "off" and rb["fault"]["end"] == pytest.approx(clock.t + 5.0)
    rb2 = ctl.post("/rollback", params={"service": svc}).json()
    assert rb2["kind"] == "config_change"
    assert rb2["change"]["new_value"] == cfg["config_change"]["old_value"]
    clock.t += 10.0
    sim.make_tick(clock.t)
    assert sim.faults == []
    assert ctl.post("/rollback", params={"service": svc}).status_code == 404
