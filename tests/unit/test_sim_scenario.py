"""Seeded scenarios: determinism, contract format, ground truth, no leaks, kinds, orgs."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import orjson
import pytest

from server.sim.scenario import Scenario, generate_scenario, pick_kind, scenario_suite
from server.timeutil import parse_ts


def _series(sc: Scenario, service: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [p for p in sc.metrics if p["service"] == service and p["metric"] == metric]
    return np.array([p["ts"] for p in pts]), np.array([p["value"] for p in pts])


def _shift(sc: Scenario, service: str, metric: str, onset: float, until: float | None = None) -> tuple[float, float]:
    ts, v = _series(sc, service, metric)
    before = v[(ts < onset) & (ts > onset - 1800)]
    hi = until if until is not None else ts[-1] + 1
    after = v[(ts > onset + 300) & (ts < hi)]
    return float(np.median(before)), float(np.median(after))


def test_same_seed_same_scenario_and_different_seeds_differ() -> None:
    a = generate_scenario(11, kind="deployment")
    b = generate_scenario(11, kind="deployment")
    c = generate_scenario(12, kind="deployment")
    assert orjson.dumps(a.to_dict()) == orjson.dumps(b.to_dict())
    assert a.truth.culprit_id != c.truth.culprit_id
    assert a.metrics[0]["value"] != c.metrics[0]["value"]


def test_contract_format_and_ordering() -> None:
    sc = generate_scenario(3, history_hours=1.0)
    assert sc.end - sc.start == pytest.approx(3600.0)
    services = {e["source"] for e in sc.edges} | {e["target"] for e in sc.edges}
    assert {p["service"] for p in sc.metrics} == services
    assert {p["metric"] for p in sc.metrics} == {"p95_latency_ms", "error_rate", "qps"}
    # 10-s steps: 360 ticks x services x 3 metrics
    assert len(sc.metrics) == 360 * len(services) * 3
    for items in (sc.metrics, sc.logs, sc.changes):
        ts = [x["ts"] for x in items]
        assert ts == sorted(ts)
        assert all(sc.start <= t < sc.end for t in ts)
        assert all(parse_ts(t) == t for t in ts[:50])
    assert {lg["level"] for lg in sc.logs} <= {"INFO", "WARN", "ERROR"}
    assert all(0.0 <= p["value"] <= 1.0 for p in sc.metrics if p["metric"] == "error_rate")
    for c in sc.changes:
        if c["kind"] == "deployment":
            assert c["service"] and c["version"] and c["diff"]["files"]
        elif c["kind"] == "config_change":
            assert c["service"] and c["key"]
        else:
            assert c["flag"] and c["services"]
    # round-trips through JSON
    back = Scenario.from_dict(orjson.loads(orjson.dumps(sc.to_dict())))
    assert back.truth == sc.truth and back.changes == sc.changes


@pytest.mark.parametrize("kind", ["deployment", "config_change", "flag_change"])
def test_culprit_precedes_onset_and_the_fault_shows_on_its_service(kind: str) -> None:
    for seed in (1, 2, 3):
        sc = generate_scenario(seed, kind=kind, rollback=False)
        tr = sc.truth
        assert tr.kind == kind and tr.culprit_kind == kind
        culprit = next(c for c in sc.changes if c["id"] == tr.culprit_id)
        assert tr.onset is not None and culprit["ts"] <= tr.onset <= culprit["ts"] + 900
        assert tr.fault_service in tr.affected_services
        metric = "p95_latency_ms" if tr.fault_kind in ("latency", "both") else "error_rate"
        before, after = _shift(sc, str(tr.fault_service), metric, tr.onset)
        if metric == "p95_latency_ms":
            assert after > before * 1.3
        else:
            assert after > before + 0.01


def test_faults_propagate_to_callers_attenuated() -> None:
    hits = 0
    for seed in range(1, 15):
        sc = generate_scenario(seed, kind="deployment", rollback=False)
        tr = sc.truth
        if tr.fault_kind != "latency":
            continue
        callers = [e["source"] for e in sc.edges if e["target"] == tr.fault_service]
        if not callers:
            continue
        b0, a0 = _shift(sc, str(tr.fault_service), "p95_latency_ms", float(tr.onset))
        b1, a1 = _shift(sc, callers[0], "p95_latency_ms", float(tr.onset))
        assert a1 - b1 > 0.1 * (a0 - b0)  # the caller slows down ...
        assert a1 - b1 < a0 - b0  # ... but by less than the faulty service
        hits += 1
    assert hits >= 2


def test_rollback_ends_the_fault() -> None:
    sc = generate_scenario(21, kind="deployment", rollback=True)
    tr = sc.truth
    assert tr.rolled_back and tr.rollback_id and tr.rollback_ts and tr.fault_end
    assert tr.onset is not None and tr.onset < tr.rollback_ts < tr.fault_end < sc.end
    rb = next(c for c in sc.changes if c["id"] == tr.rollback_id)
    culprit = next(c for c in sc.changes if c["id"] == tr.culprit_id)
    assert rb["kind"] == "deployment" and rb["service"] == culprit["service"]
    assert rb["version"] == culprit["previous_version"]
    metric = "p95_latency_ms" if tr.fault_kind in ("latency", "both") else "error_rate"
    ts, v = _series(sc, str(tr.fault_service), metric)
    before = np.median(v[(ts < tr.onset) & (ts > tr.onset - 1800)])
    during = np.median(v[(ts > tr.onset + 60) & (ts < tr.rollback_ts)])
    after = np.median(v[ts > tr.fault_end + 60])
    assert during > before * 1.2 or during > before + 0.01
    assert abs(after - before) < abs(during - before) * 0.3


def test_rollback_of_config_and_flag_restores_the_value() -> None:
    cfg = generate_scenario(4, kind="config_change", rollback=True)
    bad = next(c for c in cfg.changes if c["id"] == cfg.truth.culprit_id)
    rb = next(c for c in cfg.changes if c["id"] == cfg.truth.rollback_id)
    assert (rb["key"], rb["new_value"], rb["old_value"]) == (bad["key"], bad["old_value"], bad["new_value"])
    flag = generate_scenario(4, kind="flag_change", rollback=True)
    bad = next(c for c in flag.changes if c["id"] == flag.truth.culprit_id)
    off = next(c for c in flag.changes if c["id"] == flag.truth.rollback_id)
    assert off["flag"] == bad["flag"] and off["new_state"] == "off"


def test_control_has_benign_changes_and_blips_but_no_fault() -> None:
    sc = generate_scenario(5, kind="control", history_hours=2.0, blips_per_hour=3.0)
    tr = sc.truth
    assert tr.culprit_id is None and tr.onset is None and tr.affected_services == []
    assert len(sc.changes) >= 3
    assert tr.blips
    # a blip is one point: its neighbours are ordinary
    b = tr.blips[0]
    ts, v = _series(sc, b["service"], b["metric"])
    i = int(np.argmin(np.abs(ts - b["ts"])))
    med = np.median(v)
    assert abs(v[i] - med) > abs(v[i - 1] - med) and abs(v[i] - med) > abs(v[i + 1] - med)


def test_decoys_sit_near_the_onset_on_other_services() -> None:
    near = 0
    for seed in range(1, 11):
        sc = generate_scenario(seed, kind="deployment")
        tr = sc.truth
        assert tr.decoy_ids and tr.culprit_id not in tr.decoy_ids
        by_id = {c["id"]: c for c in sc.changes}
        for d in tr.decoy_ids:
            c = by_id.get(d)
            if c and abs(c["ts"] - float(tr.onset)) < 900:
                near += 1
    assert near >= 10  # on average at least one decoy within 15 min of the onset


def test_nothing_in_the_data_leaks_the_truth() -> None:
    for seed in range(1, 4):
        sc = generate_scenario(seed, history_hours=1.0)
        blob = orjson.dumps({"m": sc.metrics, "l": sc.logs, "c": sc.changes, "e": sc.edges}).decode().lower()
        leaked = [w for w in ("culprit", "decoy", "truth", "bad", "benign", "fault", "inject", "rollback")
                  if re.search(rf"\b{w}\b", blob)]
        assert leaked == []
        ids = [c["id"] for c in sc.changes]
        assert all(re.fullmatch(r"(dep|cfg|flag)-[0-9a-f]{8}", i) for i in ids)
        assert len(set(ids)) == len(ids)
        culprit = next(c for c in sc.changes if c["id"] == sc.truth.culprit_id)
        benign = [c for c in sc.changes if c["kind"] == culprit["kind"] and c["id"] != culprit["id"]]
        for c in benign:
            assert set(c) == set(culprit)


def test_mention_probability_controls_whether_error_logs_name_the_change() -> None:
    mention = generate_scenario(7, kind="flag_change", mention_prob=1.0, rollback=False)
    flag = next(c for c in mention.changes if c["id"] == mention.truth.culprit_id)["flag"]
    after = [lg for lg in mention.logs if lg["level"] != "INFO" and lg["ts"] > float(mention.truth.onset)]
    assert mention.truth.logs_mention_culprit
    assert any(flag in lg["message"] for lg in after)
    silent = generate_scenario(7, kind="flag_change", mention_prob=0.0, rollback=False)
    assert not silent.truth.logs_mention_culprit
    assert not any(flag in lg["message"] for lg in silent.logs)


def test_faults_bring_new_error_templates_on_the_faulty_service() -> None:
    sc = generate_scenario(8, kind="deployment", rollback=False, mention_prob=0.0)
    tr = sc.truth
    onset = float(tr.onset)

    def shape(msg: str) -> str:
        return re.sub(r"[0-9a-f]{6,}|\d+", "#", msg)

    before = {shape(lg["message"]) for lg in sc.logs
              if lg["service"] == tr.fault_service and lg["level"] != "INFO" and lg["ts"] < onset}
    after = Counter(shape(lg["message"]) for lg in sc.logs
                    if lg["service"] == tr.fault_service and lg["level"] != "INFO" and lg["ts"] > onset)
    assert sum(n for s, n in after.items() if s not in before) >= 20


def test_biased_org_culprits_follow_its_pattern_with_a_closer_decoy() -> None:
    suite = [generate_scenario(s, org="biased", history_hours=1.0, access_per_tick=0) for s in range(1, 21)]
    pattern = [sc for sc in suite if sc.truth.org_pattern]
    assert len(pattern) >= 12
    for sc in pattern:
        tr = sc.truth
        assert tr.culprit_kind == "flag_change" and tr.fault_service == "pricing"
        culprit = next(c for c in sc.changes if c["id"] == tr.culprit_id)
        closer = [c for c in sc.changes if c["kind"] == "deployment" and c["service"] == "pricing"
                  and culprit["ts"] < c["ts"] <= float(tr.onset)]
        assert closer, "a deployment of the same service lands between the flag change and the onset"
    default = [generate_scenario(s, history_hours=1.0, access_per_tick=0) for s in range(1, 21)]
    kinds = Counter(sc.truth.culprit_kind for sc in default)
    assert kinds["deployment"] > kinds["flag_change"]
    assert not any(sc.truth.org_pattern for sc in default)


def test_suite_mixes_kinds_deterministically() -> None:
    seeds = list(range(100, 140))
    kinds = [pick_kind(s) for s in seeds]
    assert kinds == [pick_kind(s) for s in seeds]
    assert set(kinds) == {"deployment", "config_change", "flag_change", "control"}
    suite = scenario_suite(range(1, 5), mix={"control": 1.0}, history_hours=1.0)
    assert all(sc.kind == "control" and sc.truth.culprit_id is None for sc in suite)
    with pytest.raises(ValueError):
        generate_scenario(1, kind="nope")
    with pytest.raises(ValueError):
        generate_scenario(1, org="nope")


def test_complications_delay_the_effect_and_crowd_the_faulty_service() -> None:
    seen = set()
    for seed in range(1, 30):
        sc = generate_scenario(seed, kind="deployment", history_hours=1.0, access_per_tick=0,
                               complication_prob=0.5)
        tr = sc.truth
        culprit = next(c for c in sc.changes if c["id"] == tr.culprit_id)
        gap = float(tr.onset) - culprit["ts"]
        if tr.complication is None:
            assert gap <= 60.0
            continue
        seen.add(tr.complication)
        assert 180.0 <= gap <= 900.0
        if tr.complication == "crowded":
            between = [c for c in sc.changes if c["id"] in tr.decoy_ids and culprit["ts"] < c["ts"] < float(tr.onset)
                       and (c.get("service") or c.get("services", [None])[0]) == tr.fault_service]
            assert between
    assert seen == {"delayed", "crowded"}
    plain = generate_scenario(1, kind="deployment", complication_prob=0.0)
    assert plain.truth.complication is None


def test_magnitude_scales_the_fault() -> None:
    full = generate_scenario(5, kind="deployment", history_hours=1.0, access_per_tick=0).truth
    small = generate_scenario(5, kind="deployment", history_hours=1.0, access_per_tick=0, magnitude=0.3).truth
    assert small.culprit_kind == full.culprit_kind and small.fault_service == full.fault_service
    assert small.error_add == pytest.approx(0.3 * full.error_add)
    assert small.latency_factor - 1.0 == pytest.approx(0.3 * (full.latency_factor - 1.0))
    assert small.affected_services[0] == small.fault_service


@pytest.mark.parametrize("hours,services,org", [(0.25, 3, "default"), (0.5, 4, "biased"), (0.25, 12, "biased")])
def test_short_histories_and_small_fleets_keep_the_culprit_inside_the_data(hours: float, services: int,
                                                                           org: str) -> None:
    for seed in range(1, 6):
        sc = generate_scenario(seed, kind="flag_change", history_hours=hours, n_services=services, org=org,
                               access_per_tick=0, complication_prob=1.0)
        culprit = [c for c in sc.changes if c["id"] == sc.truth.culprit_id]
        assert culprit and sc.start <= culprit[0]["ts"] <= float(sc.truth.onset) < sc.end


def test_config_biased_org_follows_its_own_pattern() -> None:
    suite = [generate_scenario(s, org="biased_config", history_hours=1.0, access_per_tick=0) for s in range(1, 13)]
    pattern = [sc for sc in suite if sc.truth.org_pattern]
    assert len(pattern) >= 7
    for sc in pattern:
        tr = sc.truth
        assert tr.culprit_kind == "config_change" and tr.fault_service == "db-proxy"
        culprit = next(c for c in sc.changes if c["id"] == tr.culprit_id)
        assert any(c["kind"] == "deployment" and c["service"] == "db-proxy"
                   and culprit["ts"] < c["ts"] <= float(tr.onset) for c in sc.changes)
