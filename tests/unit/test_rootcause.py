"""Root-service ranking, robust deviations and rollout comparison (pure, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from server.model import Change
from server.rca.deviation import deviation, estimate_onset, metric_class, nsigma, resource_kind
from server.rca.signals.rollout import compare_rollout


def test_metric_names_are_classified_by_pattern() -> None:
    assert metric_class("cartservice_cpu") == "resource"
    assert metric_class("container_memory_working_set_bytes") == "resource"
    assert metric_class("p95_latency_ms") == "latency"
    assert metric_class("latency-90") == "latency"
    assert metric_class("error_rate") == "error"
    assert metric_class("http_requests_total") == "traffic"
    assert metric_class("queue_depth") == "other"
    assert resource_kind("disk_usage_pct") == "disk" and resource_kind("net_rx_kbps") == "network"


def test_deviation_from_ten_coarse_points_ignores_a_blip_and_duplicate_label_sets() -> None:
    rng = np.random.default_rng(1)
    ts = 60.0 * np.arange(25)
    base = 100.0 + rng.normal(0.0, 2.0, 25)
    onset = ts[10]
    shifted = base.copy()
    shifted[10:] += 30.0
    d = deviation(ts, shifted, onset)
    assert d is not None and d.z > 8 and d.direction == 1 and d.first_ts == onset
    blip = base.copy()
    blip[15] += 300.0  # one point: not a sustained shift
    b = deviation(ts, blip, onset)
    assert b is not None and b.z < 4
    # two label sets reporting at the same timestamps are averaged, not mistaken for noise
    both = deviation(np.concatenate([ts, ts]), np.concatenate([shifted, shifted + 1.0]), onset)
    assert both is not None and both.z > 8
    assert deviation(ts[:5], shifted[:5], ts[4]) is None  # too little baseline


def test_nsigma_is_fooled_by_a_blip_the_robust_score_is_not() -> None:
    rng = np.random.default_rng(2)
    ts = 10.0 * np.arange(200)
    x = 50.0 + rng.normal(0.0, 1.0, 200)
    x[150] = 90.0
    assert (nsigma(ts, x, ts[100]) or 0.0) > 20
    d = deviation(ts, x, ts[100])
    assert d is not None and d.z < 5


def test_onset_is_estimated_from_the_series_when_an_alert_opened_the_incident() -> None:
    rng = np.random.default_rng(3)
    ts = 10.0 * np.arange(240)
    x = 10.0 + rng.normal(0.0, 0.3, 240)
    x[120:] += 5.0
    est = estimate_onset([(ts, x)], around=ts[150])
    assert est is not None and abs(est - ts[120]) <= 30.0


def _pods(faulty: bool) -> dict[tuple[str, str], list[tuple[dict[str, str], np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(4)
    ts = 10.0 * np.arange(300)
    t_change = ts[150]
    sets = []
    for i in range(3):
        sw = t_change + 60.0 * (i + 1)
        old = ts < sw
        sets.append(({"pod": f"p{i}", "version": "v1"}, ts[old], 100.0 + rng.normal(0.0, 3.0, int(old.sum()))))
        new_vals = 100.0 + rng.normal(0.0, 3.0, int((~old).sum())) + (60.0 if faulty else 0.0)
        sets.append(({"pod": f"q{i}", "version": "v2"}, ts[~old], new_vals))
    return {("pay", "p95_latency_ms"): sets}


@pytest.mark.parametrize("faulty", [True, False])
def test_rollout_compares_new_pods_with_old_pods(faulty: bool) -> None:
    change = Change(id="dep-1", kind="deployment", services=["pay"], ts=1500.0,
                    fields={"version": "v2", "previous_version": "v1"})
    res = compare_rollout(change, _pods(faulty))
    assert res is not None
    z, metric = res
    assert metric == "p95_latency_ms"
    assert (z > 8) if faulty else (z < 2)


def test_alert_opened_incident_finds_the_root_service_without_anomalies() -> None:
    from server.eval.rootcause import alert_only_rank
    from server.sim.scenario import generate_scenario

    # tuning seeds (1000-1999) only; evaluation uses others
    for seed, kind in ((1010, "cpu"), (1012, "disk"), (1013, "delay")):
        sc = generate_scenario(seed, kind=kind)
        assert sc.truth.culprit_id is None and sc.truth.fault_service
        assert alert_only_rank(sc) == 1, (seed, kind)


def test_short_coarse_recordings_and_releases_are_generated() -> None:
    from server.sim.scenario import generate_scenario

    sc = generate_scenario(1003, kind="mem", history_minutes=10.5, resolution_s=60.0)
    ts = sorted({p["ts"] for p in sc.metrics})
    assert np.all(np.diff(ts) == 60.0)
    assert sum(1 for t in ts if t < (sc.truth.onset or 0.0)) >= 10
    assert {"cpu_usage", "memory_mb", "disk_usage_pct", "net_rx_kbps"} <= {p["metric"] for p in sc.metrics}
    rel = generate_scenario(1004, kind="releases")
    assert 3 <= len(rel.truth.releases) <= 6 and rel.truth.culprit_id in rel.truth.releases
    deploy_ts = [c["ts"] for c in rel.changes if c["id"] in rel.truth.releases]
    assert max(deploy_ts) - min(deploy_ts) <= 600.0
    assert any(p.get("labels", {}).get("version") for p in rel.metrics)
