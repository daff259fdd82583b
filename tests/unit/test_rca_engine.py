"""The pure RCA engine on hand-made incidents: ranking, evidence, explanations, abstention."""

from __future__ import annotations

import numpy as np

from server.model import Anomaly, Change, Edge, Incident, LogWindow
from server.rca.engine import RcaContext, analyse, candidate_window
from server.rca.features import FEATURES

T0 = 1_800_000_000.0
ONSET = T0 + 3600.0
EDGES = [Edge("frontend", "checkout"), Edge("checkout", "payments"), Edge("frontend", "search"),
         Edge("checkout", "inventory")]


def series(shift_at: float | None, *, base: float = 50.0, factor: float = 3.0, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + 10.0 * np.arange(720)
    v = base * (1 + 0.05 * rng.standard_normal(len(ts)))
    if shift_at is not None:
        v[ts >= shift_at] *= factor
    return ts, v


def make_incident(services: list[str]) -> Incident:
    return Incident(id="inc-1", status="OPEN", title="t", started_at=ONSET, detected_at=ONSET + 60,
                    services=services, severity=0.8, anomaly_count=len(services))


def anomalies(services: list[str]) -> list[Anomaly]:
    return [Anomaly(id=f"an-{s}", service=s, metric="p95_latency_ms", started_at=ONSET + 10 * i,
                    detected_at=ONSET + 60, direction="up", score=6.0, baseline=50.0, observed=150.0,
                    incident_id="inc-1") for i, s in enumerate(services)]


def culprit_deploy() -> Change:
    return Change("dep-bad", "deployment", ["payments"], ONSET - 40, author="alice",
                  fields={"version": "v2.14.0", "previous_version": "v2.13.2",
                          "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120, "removed": 35}]}})


def decoys() -> list[Change]:
    return [
        Change("dep-caller", "deployment", ["checkout"], ONSET - 200, author="bob",
               fields={"version": "v1.2.0", "previous_version": "v1.1.9",
                       "diff": {"files": [{"path": "src/checkout/cart.py", "added": 30, "removed": 2}]}}),
        Change("cfg-unrelated", "config_change", ["search"], ONSET - 60,
               fields={"key": "cache.ttl_s", "old_value": "60", "new_value": "30"}),
        Change("dep-old", "deployment", ["payments"], ONSET - 5000, fields={"version": "v2.13.2"}),
    ]


def logs_with_new_error() -> LogWindow:
    lines = [("checkout", T0 + 15.0 * i, "WARN", f"GC pause of {i} ms") for i in range(200)]  # background
    lines += [("payments", ONSET + 5.0 * i, "ERROR", f"Unhandled exception in tokenizer.py line {100 + i}: TypeError")
              for i in range(40)]
    lines.sort(key=lambda x: x[1])
    return LogWindow(service=[x[0] for x in lines], ts=[x[1] for x in lines], level=[x[2] for x in lines],
                     message=[x[3] for x in lines])


def context(changes: list[Change], *, shifted: list[str], logs: LogWindow | None = None) -> RcaContext:
    ser = {}
    for i, s in enumerate(["frontend", "checkout", "payments", "search", "inventory"]):
        ser[(s, "p95_latency_ms")] = series(ONSET if s in shifted else None, seed=i)
    return RcaContext(incident=make_incident(shifted), anomalies=anomalies(shifted), changes=changes, edges=EDGES,
                      series=ser, logs=logs or LogWindow.empty(), watermark=ONSET + 1800)


def test_culprit_ranks_first_with_evidence_and_explanation() -> None:
    ctx = context([culprit_deploy(), *decoys()], shifted=["payments", "checkout", "frontend"],
                  logs=logs_with_new_error())
    res = analyse(ctx)
    assert [s.change.id for s in res.suspects][0] == "dep-bad"
    top = res.suspects[0]
    assert top.rank == 1 and not res.no_convincing_change
    assert top.score > 0.5
    assert all(0.0 <= v <= 1.0 for v in top.evidence.values())
    for key in ("time_proximity", "change_point_alignment", "blast_radius", "error_logs", "code_diff"):
        assert key in top.evidence
    assert top.evidence["blast_radius"] == 1.0
    assert top.evidence["log_mentions"] > 0.5
    assert top.explanation.startswith("payments deployed v2.14.0 40s before onset")  # the shift in the data
    assert "tokenizer" in top.explanation
    # probabilities of "one cause or none" never sum above 1
    assert sum(s.score for s in res.suspects) <= 1.0 + 1e-9
    ranks = [s.rank for s in res.suspects]
    assert ranks == list(range(1, len(ranks) + 1))


def test_caller_decoy_loses_on_blast_radius_even_without_logs() -> None:
    res = analyse(context([culprit_deploy(), *decoys()], shifted=["payments", "checkout", "frontend"]))
    ids = [s.change.id for s in res.suspects]
    assert ids[0] == "dep-bad"
    assert ids.index("dep-caller") < ids.index("dep-old") or ids.index("dep-old") > 0


def test_no_convincing_change_when_only_old_unrelated_changes() -> None:
    old = [Change("cfg-old", "config_change", ["search"], ONSET - 6000,
                  fields={"key": "log.level", "old_value": "INFO", "new_value": "WARN"})]
    res = analyse(context(old, shifted=["payments"]))
    assert res.no_convincing_change
    assert res.top is None
    assert all(s.score < 0.35 for s in res.suspects)


def test_no_candidates_is_no_convincing_change() -> None:
    res = analyse(context([], shifted=["payments"]))
    assert res.suspects == [] and res.no_convincing_change


def test_changes_after_onset_are_penalised() -> None:
    late = Change("dep-late", "deployment", ["payments"], ONSET + 900, fields={"version": "v3"})
    res = analyse(context([culprit_deploy(), late], shifted=["payments"]))
    assert [s.change.id for s in res.suspects][0] == "dep-bad"


def test_rollback_that_ends_the_incident_is_strong_evidence() -> None:
    bad = culprit_deploy()
    rollback = Change("dep-rb", "deployment", ["payments"], ONSET + 600,
                      fields={"version": "v2.13.2", "previous_version": "v2.14.0"})
    ctx = context([bad, rollback, *decoys()], shifted=["payments"])
    for a in ctx.anomalies:
        a.ended_at = ONSET + 700
    res = analyse(ctx)
    top = res.suspects[0]
    assert top.change.id == "dep-bad"
    assert top.evidence["rollback_recovery"] == 1.0
    assert "rolled back" in top.explanation
    # the rollback itself (10 minutes after onset) is a candidate but a weak one
    rb = next(s for s in res.suspects if s.change.id == "dep-rb")
    assert rb.rank > 1 and rb.score < 0.05


def test_labelled_changes_are_always_candidates_and_analysis_is_deterministic() -> None:
    far = Change("dep-far", "deployment", ["unknown-svc"], ONSET - 50_000, fields={"version": "v1"})
    ctx = context([culprit_deploy(), far, *decoys()], shifted=["payments", "checkout"])
    ctx.include_change_ids = frozenset({"dep-far"})
    a, b = analyse(ctx), analyse(ctx)
    assert "dep-far" in [s.change.id for s in a.suspects]
    assert [(s.change.id, s.score) for s in a.suspects] == [(s.change.id, s.score) for s in b.suspects]
    assert all(len(r.values) == len(FEATURES) for r in a.rows)


def test_candidate_window_covers_lookback_and_rollbacks() -> None:
    since, until = candidate_window(ONSET)
    assert since <= ONSET - 3600 and until >= ONSET + 1800


def _infra_context(changes: list[Change], *, edges: list[Edge] | None = None) -> RcaContext:
    """A CPU hog on payments at ONSET: its CPU and latency rise, its callers wait on it
    (latency up by the same absolute amount, so less in relative terms); no anomaly."""
    rng = np.random.default_rng(11)
    ts = T0 + 10.0 * np.arange(720)
    after = ts >= ONSET
    ser: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    base = {"payments": 80.0, "checkout": 120.0, "frontend": 200.0, "search": 90.0, "inventory": 60.0}
    pay = base["payments"] * (1 + 0.05 * rng.standard_normal(len(ts)))
    pay[after] *= 2.0
    ser[("payments", "p95_latency_ms")] = (ts, pay)
    extra = np.where(after, base["payments"], 0.0)  # what the callers wait longer
    for s in ("checkout", "frontend"):
        ser[(s, "p95_latency_ms")] = (ts, base[s] * (1 + 0.05 * rng.standard_normal(len(ts))) + 0.6 * extra)
    for s in ("search", "inventory"):
        ser[(s, "p95_latency_ms")] = (ts, base[s] * (1 + 0.05 * rng.standard_normal(len(ts))))
    for s in base:
        cpu = 0.4 * (1 + 0.05 * rng.standard_normal(len(ts)))
        if s == "payments":
            cpu[after] += 1.5
        ser[(s, "container_cpu_usage_cores")] = (ts, cpu)
    inc = Incident(id="inc-1", status="OPEN", title="alert", started_at=ONSET + 120, detected_at=ONSET + 120,
                   services=["frontend"], severity=0.5, anomaly_count=0)
    return RcaContext(incident=inc, anomalies=[], changes=changes, edges=EDGES if edges is None else edges,
                      series=ser, logs=LogWindow.empty(), watermark=ONSET + 1800)


def test_an_infrastructure_fault_names_its_root_service_not_a_stale_change() -> None:
    stale = Change("dep-stale", "deployment", ["payments"], ONSET - 1800, author="bob",
                   fields={"version": "v2.1.0", "previous_version": "v2.0.9"})
    res = analyse(_infra_context([stale]))
    assert res.onset is not None and abs(res.onset - ONSET) <= 30.0  # found in the data, not the alert
    assert res.services[0].service == "payments"
    assert res.no_convincing_change and res.top_kind() == "service"
    dep = res.suspects[0]
    assert dep.row.values[FEATURES.index("long_before_onset")] > 0.5
    assert dep.score < 0.5


def test_the_root_of_a_latency_cascade_is_found_without_a_call_graph() -> None:
    res = analyse(_infra_context([], edges=[]))
    top = res.services[0]
    assert top.service == "payments"
    assert top.evidence["cascade_origin"] == 1.0
    caller = next(s for s in res.services if s.service == "checkout")
    assert caller.evidence.get("cascade_origin", 0.0) < 0.8 and caller.score < top.score
    # with no call graph, changes on any clearly deviating service are candidates
    fresh = Change("cfg-pay", "config_change", ["payments"], ONSET - 20,
                   fields={"key": "pool.size", "old_value": "32", "new_value": "4"})
    res2 = analyse(_infra_context([fresh], edges=[]))
    assert [s.change.id for s in res2.suspects] == ["cfg-pay"]


def test_a_metrics_only_culprit_minutes_before_the_onset_is_convincing() -> None:
    """The plainest real case: one service's latency triples, a deployment on it came
    30 s to 5 min before, no logs and no rollout labels. Whatever the lead, that
    deployment is the convincing top suspect (a prior fitted to a simulator whose culprits
    show within a minute or two once scored it 0.43 at 3 min 20 s)."""
    for lead in (30.0, 120.0, 200.0, 300.0):
        dep = Change("dep-bad", "deployment", ["payments"], ONSET - lead, fields={"version": "v2"})
        res = analyse(context([dep], shifted=["payments"]))
        top = res.suspects[0]
        assert top.change.id == "dep-bad" and not res.no_convincing_change, (lead, top.score)
        assert top.score > 0.8, (lead, top.score)
