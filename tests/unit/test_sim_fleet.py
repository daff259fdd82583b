"""The fleet model: topology, traffic flow, seasonality, latency composition, faults."""

from __future__ import annotations

import numpy as np
import pytest

from server.sim.fleet import Blip, Fault, generate_metrics, make_fleet

DAY0 = 1793577600.0  # midnight UTC


def test_topology_is_a_connected_dag_with_callers_first() -> None:
    for n in (4, 8, 10, 12):
        fleet = make_fleet(np.random.default_rng(n), n)
        assert len(fleet.names) == n
        order = fleet.topo_order()
        assert sorted(order) == sorted(fleet.names)
        pos = {s: i for i, s in enumerate(order)}
        assert all(pos[e.source] < pos[e.target] for e in fleet.edges)
        # every service but the entry is called by someone
        assert [s for s in fleet.names if not fleet.callers(s)] == ["frontend"]
    fleet = make_fleet(np.random.default_rng(0), 10)
    assert "frontend" in fleet.upstream("db-proxy") and "checkout" in fleet.upstream("payments")
    assert "db-proxy" in fleet.downstream("checkout")


def test_traffic_flows_down_the_call_graph_and_follows_the_day() -> None:
    rng = np.random.default_rng(1)
    fleet = make_fleet(rng, 10)
    ts = DAY0 + 60.0 * np.arange(24 * 60)  # one day, one point a minute
    s = generate_metrics(fleet, ts, rng)
    front = s.values[("frontend", "qps")]
    peak_hour = float(np.argmax(np.convolve(front, np.ones(60) / 60, mode="same")) / 60.0)
    assert abs(peak_hour - fleet.season_peak_hour) < 1.5
    assert front.max() > 1.4 * front.min()
    for svc in ("payments", "db-proxy"):
        expect = sum(np.median(s.values[(e.source, "qps")]) * e.fanout for e in fleet.edges if e.target == svc)
        assert np.median(s.values[(svc, "qps")]) == pytest.approx(expect, rel=0.05)


def test_callers_include_part_of_their_callees_latency() -> None:
    rng = np.random.default_rng(2)
    fleet = make_fleet(rng, 10)
    ts = DAY0 + 10.0 * np.arange(360)
    s = generate_metrics(fleet, ts, rng)
    for svc in fleet.names:
        own = fleet.spec(svc).base_latency_ms
        callees = sum(e.latency_weight * float(np.median(s.latent_latency[e.target]))
                      for e in fleet.edges if e.source == svc)
        assert np.median(s.values[(svc, "p95_latency_ms")]) == pytest.approx(own + callees, rel=0.2)


def test_a_ramped_fault_grows_then_ends_and_a_blip_is_one_point() -> None:
    rng = np.random.default_rng(3)
    fleet = make_fleet(rng, 8)
    ts = DAY0 + 10.0 * np.arange(360)
    f = Fault("payments", start=ts[100], end=ts[250], latency_factor=3.0, ramp_s=300.0)
    inten = f.intensity(ts)
    assert inten[99] == 0 and 0 < inten[101] < inten[110] < 1 and inten[140] == 1 and inten[250] == 0
    s = generate_metrics(fleet, ts, rng, [f], [Blip("search", "p95_latency_ms", float(ts[50]), 4.0)])
    lat = s.values[("payments", "p95_latency_ms")]
    assert np.median(lat[140:250]) > 2.5 * np.median(lat[:100])
    assert np.median(lat[260:]) < 1.2 * np.median(lat[:100])
    search = s.values[("search", "p95_latency_ms")]
    assert search[50] > 2.5 * np.median(search) and search[49] < 1.6 * np.median(search)
    # error rates stay fractions
    assert all(v.min() >= 0 and v.max() <= 1 for k, v in s.values.items() if k[1] == "error_rate")


def test_drift_is_slow_autocorrelated_wander_continued_across_calls() -> None:
    fleet = make_fleet(np.random.default_rng(4), 6)
    fleet.season_amplitude = 0.0  # no daily cycle: only noise is left
    ts = DAY0 + 10.0 * np.arange(2000)
    flat = generate_metrics(fleet, ts, np.random.default_rng(5))
    state: dict[str, float] = {}
    wavy = generate_metrics(fleet, ts, np.random.default_rng(5), drift=0.1, drift_state=state)

    def lag1(x: np.ndarray) -> float:
        m = np.convolve(np.log(x), np.ones(30) / 30, mode="valid")  # 5-min means
        return float(np.corrcoef(m[:-30], m[30:])[0, 1])

    lat = ("payments", "p95_latency_ms")
    assert lag1(wavy.values[lat]) > 0.4 > lag1(flat.values[lat])
    assert set(state) == set(fleet.names)
    nxt = generate_metrics(fleet, ts[-1:] + 10.0, np.random.default_rng(6), drift=0.1, drift_state=state)
    assert nxt.values[lat].shape == (1,)
