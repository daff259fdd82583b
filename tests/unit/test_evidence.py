"""Evidence signals: each returns a value in [0, 1] and a sentence a human can read."""

from __future__ import annotations

from server.model import Anomaly, Change, Edge
from server.rca import evidence as ev
from server.rca.topology import Topology

T0 = 1_800_000_000.0


def dep(cid: str, svc: str, ts: float, **fields: object) -> Change:
    return Change(id=cid, kind="deployment", services=[svc], ts=ts, fields=dict(fields))


def anomaly(svc: str, onset: float, ended: float | None = None) -> Anomaly:
    return Anomaly(id=f"an-{svc}", service=svc, metric="p95_latency_ms", started_at=onset, detected_at=onset + 30,
                   direction="up", score=5.0, baseline=50.0, observed=150.0, ended_at=ended)


def test_time_proximity_prefers_recent_changes_and_penalises_changes_after_onset() -> None:
    just_before = ev.time_proximity(change_ts=T0 - 60, onset=T0, kind="deployment")
    hour_before = ev.time_proximity(change_ts=T0 - 3600, onset=T0, kind="deployment")
    after = ev.time_proximity(change_ts=T0 + 600, onset=T0, kind="deployment")
    assert just_before.value == 1.0
    assert 0.0 < hour_before.value < 0.2
    assert after.value < 0.1
    assert "before onset" in just_before.sentence and "after onset" in after.sentence
    # a rolling deploy may ramp for a few minutes without penalty, a config reload not
    assert ev.time_proximity(change_ts=T0 - 280, onset=T0, kind="deployment").value == 1.0
    assert ev.time_proximity(change_ts=T0 - 280, onset=T0, kind="config_change").value < 1.0
    # onset estimates can be early by a little
    assert ev.time_proximity(change_ts=T0 + 30, onset=T0, kind="flag_change").value >= 0.8


def test_onset_alignment_scores_onsets_right_after_the_change() -> None:
    assert ev.onset_alignment(change_ts=T0, kind="config_change", onsets=[T0 + 20]) == 1.0
    late = ev.onset_alignment(change_ts=T0, kind="config_change", onsets=[T0 + 1800])
    assert late < 0.01
    assert ev.onset_alignment(change_ts=T0, kind="deployment", onsets=[]) == 0.0
    assert ev.shift_strength(0.5) == 0.0 and ev.shift_strength(10.0) > 0.9


def test_blast_radius_changed_service_and_callers_explain_everything() -> None:
    topo = Topology([Edge("frontend", "checkout"), Edge("checkout", "payments"), Edge("frontend", "search")])
    culprit = ev.blast_radius(changed=["payments"], anomalous=["payments", "checkout", "frontend"], topo=topo)
    caller = ev.blast_radius(changed=["checkout"], anomalous=["payments", "checkout", "frontend"], topo=topo)
    unrelated = ev.blast_radius(changed=["search"], anomalous=["payments", "checkout"], topo=topo)
    assert culprit.value == 1.0
    assert "all 3 anomalous services" in culprit.sentence
    assert 0.0 < caller.value < culprit.value
    assert unrelated.value == 0.0
    # a callee without anomaly whose callers are anomalous keeps partial credit
    silent = ev.blast_radius(changed=["payments"], anomalous=["checkout"], topo=topo)
    assert 0.0 < silent.value < 0.6


def test_code_diff_size_and_risky_paths() -> None:
    from server.model import DiffFile

    small = ev.code_diff([DiffFile("src/app/util.py", 3, 1)])
    big = ev.code_diff([DiffFile("src/app/core.py", 800, 300)])
    risky = ev.code_diff([DiffFile("migrations/0042_add_index.py", 10, 0)])
    assert small.value < big.value
    assert risky.value > small.value
    assert "0042_add_index.py" in risky.sentence
    assert ev.is_risky_path("requirements.txt") and ev.is_risky_path("config/app.yaml")
    assert not ev.is_risky_path("src/payments/tokenizer.py")


def test_config_magnitude_and_rollout_share() -> None:
    assert ev.config_magnitude(old="2000", new="200").value > ev.config_magnitude(old="2000", new="1800").value
    assert "10.0x" in ev.config_magnitude(old="2000", new="200").sentence
    full = Change("f1", "flag_change", ["pricing"], T0, fields={"flag": "x", "new_state": "on", "rollout_percent": 100})
    tiny = Change("f2", "flag_change", ["pricing"], T0, fields={"flag": "x", "new_state": "on", "rollout_percent": 1})
    assert ev.rollout_share(full).value == 1.0
    assert ev.rollout_share(tiny).value < 0.35
    assert "1%" in ev.rollout_share(tiny).sentence


def test_rollback_detection_for_each_change_kind() -> None:
    d1 = dep("d1", "payments", T0, version="v2", previous_version="v1")
    d2 = dep("d2", "payments", T0 + 600, version="v1", previous_version="v2")
    d3 = dep("d3", "payments", T0 + 900, version="v3", previous_version="v1")
    assert ev.reverts(d2, d1) and not ev.reverts(d3, d1) and not ev.reverts(d1, d2)
    c1 = Change("c1", "config_change", ["api"], T0, fields={"key": "k", "old_value": "1", "new_value": "2"})
    c2 = Change("c2", "config_change", ["api"], T0 + 60, fields={"key": "k", "old_value": "2", "new_value": "1"})
    assert ev.reverts(c2, c1)
    f1 = Change("f1", "flag_change", ["p"], T0, fields={"flag": "x", "old_state": "off", "new_state": "on"})
    f2 = Change("f2", "flag_change", ["p"], T0 + 60, fields={"flag": "x", "old_state": "on", "new_state": "off"})
    assert ev.reverts(f2, f1) and ev.is_rollback(f2, [f1]) and not ev.is_rollback(f1, [])
    described = Change("d9", "deployment", ["p"], T0 + 60, description="Revert 'speed up tokenizer'",
                       fields={"version": "v9"})
    assert ev.is_rollback(described, [])


def test_rollback_recovery_is_strong_evidence_only_when_the_incident_ends() -> None:
    recovered = ev.rollback_recovery(revert_ts=T0, recovered_at=T0 + 120, service="payments")
    not_recovered = ev.rollback_recovery(revert_ts=T0, recovered_at=None, service="payments")
    never = ev.rollback_recovery(revert_ts=None, recovered_at=None, service="payments")
    assert recovered.value == 1.0 and "recovered 2m after" in recovered.sentence
    assert not_recovered.value < 0.2 and never.value == 0.0
    assert ev.recovery_time([anomaly("a", T0, ended=T0 + 500)], after=T0 + 300) == T0 + 500
    assert ev.recovery_time([anomaly("a", T0, ended=None)], after=T0 + 300) is None


def test_log_signals_and_mentions() -> None:
    d = dep("d1", "payments", T0, version="v2.14.0",
            diff={"files": [{"path": "src/payments/tokenizer.py", "added": 5, "removed": 1}]})
    terms = ev.change_terms(d)
    assert "tokenizer.py" in terms and "v2.14.0" in terms
    mentioned = ev.find_mentions(terms, ["Unhandled exception in tokenizer.py line <*>"])
    assert mentioned == ["tokenizer.py", "tokenizer"]
    specific, files = ev.change_terms_split(d)
    assert specific == ["v2.14.0"] and "tokenizer.py" in files
    files_only = ev.log_mentions(mentioned=mentioned, specific=specific)
    assert 0.5 <= files_only.value < 0.8
    # naming this very version is stronger than naming a file other changes also touch
    named = ev.find_mentions(terms, ["payments v2.14.0: handler exceeded latency budget"])
    assert ev.log_mentions(mentioned=named, specific=specific).value == 1.0
    assert ev.find_mentions(["v2.14.0"], ["running v2.14.01", "spool v2.14.0x"]) == []
    assert ev.log_mentions(mentioned=[]).value == 0.0
    none = ev.error_logs(new_own=0, new_related=0, error_level=False, service="payments")
    some = ev.error_logs(new_own=2, new_related=1, error_level=True, service="payments")
    assert none.value == 0.0 and 0.8 < some.value <= 1.0
    assert "2 new ERROR patterns on payments" in some.sentence


def test_every_signal_stays_in_unit_interval() -> None:
    values = [
        ev.time_proximity(change_ts=T0 + d, onset=T0, kind=k).value
        for d in (-1e6, -100, 0, 100, 1e6) for k in ("deployment", "config_change", "flag_change", "other")
    ] + [ev.config_magnitude(old=a, new=b).value for a, b in (("0", "5"), ("x", "y"), (None, "1"), ("5", "5"))]
    assert all(0.0 <= v <= 1.0 for v in values)
