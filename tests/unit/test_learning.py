"""Learning from labels: leave-one-incident-out history, the learnt ranker, persistence."""

from __future__ import annotations

import numpy as np

from server.model import Change
from server.rca.features import FEATURES, FIDX, CandidateRow
from server.rca.learning import (
    HistoryStats,
    LearntModel,
    TrainingRecord,
    change_keys,
    evaluate_heldout,
    rank_metrics,
    records_for_incident,
    train,
)
from server.rca.ranking import blend, blend_weight, prior_logits, probabilities

T0 = 1_800_000_000.0


def row(cid: str, kind: str, svc: str, **vals: float) -> CandidateRow:
    v = np.zeros(len(FEATURES))
    for k, x in vals.items():
        v[FIDX[k]] = x
    v[FIDX[f"kind_{kind}"]] = 1.0
    fields = {"flag": "f", "new_state": "on"} if kind == "flag_change" else {"version": "v1"}
    return CandidateRow(change=Change(cid, kind, [svc], T0, author="alice", fields=fields), values=v)  # type: ignore[arg-type]


def biased_incident(i: int, rng: np.random.Generator) -> list[CandidateRow]:
    """The prior prefers the deployment (closer, aligned); the cause is the flag."""
    common = {"blast_radius": 1.0, "metric_correlation": 0.9, "error_logs": float(rng.uniform(0.5, 1.0))}
    return [
        row(f"dep-{i}", "deployment", "pricing", time_proximity=1.0, change_point_alignment=1.0, change_risk=0.5,
            rollout=1.0, **common),
        row(f"flag-{i}", "flag_change", "pricing", time_proximity=float(rng.uniform(0.8, 1.0)),
            change_point_alignment=float(rng.uniform(0.3, 0.6)), rollout=0.6, change_risk=0.5, **common),
        row(f"cfg-{i}", "config_change", "search", time_proximity=float(rng.uniform(0.2, 1.0)), blast_radius=0.0,
            change_risk=0.5, rollout=1.0),
    ]


def training_set(n: int, seed: int = 0) -> list[TrainingRecord]:
    rng = np.random.default_rng(seed)
    recs: list[TrainingRecord] = []
    for i in range(n):
        recs += records_for_incident(f"s/inc-{i}", biased_incident(i, rng), [(f"flag-{i}", "cause")])
    return recs


def test_records_from_labels() -> None:
    rows = biased_incident(0, np.random.default_rng(0))
    recs = records_for_incident("s/inc-0", rows, [("flag-0", "cause")])
    assert [(r.change_id, r.label) for r in recs] == [("dep-0", 0), ("flag-0", 1), ("cfg-0", 0)]
    # only not_cause labels: only those changes become negatives
    recs = records_for_incident("s/inc-0", rows, [("dep-0", "not_cause")])
    assert [(r.change_id, r.label) for r in recs] == [("dep-0", 0)]
    # the latest verdict for a change wins
    recs = records_for_incident("s/inc-0", rows, [("dep-0", "cause"), ("dep-0", "not_cause"), ("flag-0", "cause")])
    assert {r.change_id: r.label for r in recs}["dep-0"] == 0


def test_history_is_leave_one_incident_out() -> None:
    recs = training_set(1)
    hist = HistoryStats.from_records(recs)
    flag = biased_incident(0, np.random.default_rng(0))[1].change
    own, _ = hist.features(change_keys(flag), exclude="s/inc-0")
    assert own == {"history": 0.0, "hist_service_kind": 0.0, "hist_author": 0.0, "hist_path": 0.0}
    other, sentence = hist.features(change_keys(flag), exclude="s/other")
    assert other["hist_service_kind"] > 0.2
    assert "pricing/flag_change" in sentence


def test_history_rates_learn_the_pattern() -> None:
    hist = HistoryStats.from_records(training_set(20))
    rng = np.random.default_rng(5)
    fresh = biased_incident(99, rng)
    hist.apply(fresh, incident_id="s/new")
    by_id = {r.change.id: r.values[FIDX["history"]] for r in fresh}
    assert by_id["flag-99"] > 0.5 > by_id["dep-99"]
    assert "history" in fresh[1].shown


def _ac1(model: LearntModel | None, n: int = 30) -> float:
    rng = np.random.default_rng(1234)
    hits = 0
    for i in range(n):
        rows = biased_incident(1000 + i, rng)
        if model is not None:
            model.history.apply(rows, incident_id=f"fresh/{i}")
        x = np.vstack([r.values for r in rows])
        z = prior_logits(x) if model is None else blend(prior_logits(x), model.logits(x), model.weight)
        hits += int(np.argmax(probabilities(z)) == 1)
    return hits / n


def test_learnt_model_beats_the_prior_on_a_biased_organisation() -> None:
    before = _ac1(None)
    model = train(training_set(50), version=1, labels_used=50, trained_at=T0)
    after = _ac1(model)
    assert before < 0.3
    assert after >= before + 0.5
    assert model.labelled_incidents == 50 and 0.7 < model.weight < 0.9
    assert model.heldout is not None and model.heldout["ac1"] > 0.8


def test_model_round_trips_through_its_blob() -> None:
    recs = training_set(8)
    model = train(recs, version=3, labels_used=8, trained_at=T0)
    parsed = LearntModel.from_blob(3, model.to_blob(recs))
    assert parsed is not None
    again, again_recs = parsed
    assert again.version == 3 and len(again_recs) == len(recs)
    x = np.random.default_rng(0).random((5, len(FEATURES)))
    assert np.allclose(again.logits(x), model.logits(x))
    assert again.weight == model.weight


def test_blend_weight_grows_with_labels() -> None:
    assert blend_weight(0) == 0.0
    assert blend_weight(5) < blend_weight(10) < blend_weight(50) < 0.9


def test_heldout_needs_enough_incidents_and_metrics() -> None:
    assert evaluate_heldout(training_set(2)) is None
    assert rank_metrics([1, 2, None, 4]) == {"incidents": 4, "ac1": 0.25, "ac3": 0.5, "mrr": 0.4375}
