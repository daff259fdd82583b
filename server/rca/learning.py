"""Learning from labels: history statistics, the learnt ranker, held-out accuracy (pure).

Training data are the candidate rows of labelled incidents: the change labelled
``cause`` is a positive; changes labelled ``not_cause``, and every other candidate of an
incident that has a ``cause`` label, are negatives.

* :class:`HistoryStats` turns past labels into historical risk features (cause rate of
  the service+kind, author and paths of a change), smoothed towards the base rate, and
  always computed *without* the incident being scored (leave-one-incident-out).
* :class:`LearntModel` is a scikit-learn logistic regression on the evidence features
  (pointwise, so its logits are calibrated log-odds), blended with the prior by
  :func:`server.rca.ranking.blend_weight`.
* :func:`evaluate_heldout` measures AC@1, AC@3 and MRR with grouped cross-validation over
  labelled incidents (each incident's history excludes itself, training excludes its fold).

Everything here is pure: the service passes rows in and stores the serialised model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.model import Change
from server.rca.features import FEATURES, FIDX, HISTORY_FEATURES, CandidateRow
from server.rca.ranking import blend, blend_weight, prior_logits, probabilities
from server.rca.roots import SERVICE_FEATURES, ServiceRow

SMOOTHING = 2.0


def change_keys(change: Change) -> dict[str, list[str]]:
    """Attribute keys of a change used for historical risk, grouped by feature."""
    kind = change.kind
    paths = sorted({("/".join(f.path.split("/")[:-1]) or f.path) for f in change.diff_files})
    return {
        "hist_service_kind": [f"{s}/{kind}" for s in change.services],
        "hist_author": [f"author {change.author}"] if change.author else [],
        "hist_path": [f"path {p}" for p in paths[:20]],
    }


@dataclass(slots=True)
class TrainingRecord:
    incident_id: str
    change_id: str
    keys: dict[str, list[str]]
    label: int  # 1 cause, 0 not cause
    values: list[float]  # evidence features (history columns recomputed at training time)

    def to_json(self) -> dict[str, Any]:
        return {"i": self.incident_id, "c": self.change_id, "k": self.keys, "y": self.label,
                "x": [round(v, 6) for v in self.values]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> TrainingRecord:
        return TrainingRecord(str(d["i"]), str(d["c"]), {k: list(v) for k, v in d["k"].items()}, int(d["y"]),
                              [float(v) for v in d["x"]])


@dataclass(slots=True)
class ServiceRecord:
    """One root-service candidate of a labelled incident (1 = the root service)."""

    incident_id: str
    service: str
    label: int
    values: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"i": self.incident_id, "s": self.service, "y": self.label, "x": [round(v, 6) for v in self.values]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> ServiceRecord:
        return ServiceRecord(str(d["i"]), str(d["s"]), int(d["y"]), [float(v) for v in d["x"]])


def service_records_for_incident(incident_id: str, rows: Sequence[ServiceRow],
                                 labels: Iterable[tuple[str, str]]) -> list[ServiceRecord]:
    """Training records of one incident's service rows from ``(service, verdict)`` labels
    (a change labelled the cause names its service as the root). As for changes: with a
    cause, every other candidate is a negative; without one, only ``not_cause`` services."""
    verdicts: dict[str, str] = {}
    for svc, verdict in labels:
        verdicts[svc] = verdict
    causes = {s for s, v in verdicts.items() if v == "cause"}
    out: list[ServiceRecord] = []
    for row in rows:
        if row.service in causes:
            y = 1
        elif row.service in verdicts or causes:
            y = 0
        else:
            continue
        out.append(ServiceRecord(incident_id, row.service, y, [float(v) for v in row.values]))
    return out


@dataclass(slots=True)
class HistoryStats:
    """Cause counts per attribute key, with per-incident contributions so any one
    incident can be left out."""

    totals: dict[str, list[float]] = field(default_factory=dict)  # key -> [n, causes]
    per_incident: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    rows: float = 0.0
    causes: float = 0.0

    @staticmethod
    def from_records(records: Iterable[TrainingRecord]) -> HistoryStats:
        h = HistoryStats()
        for r in records:
            inc = h.per_incident.setdefault(r.incident_id, {"__rows__": [0.0, 0.0]})
            inc["__rows__"][0] += 1
            inc["__rows__"][1] += r.label
            h.rows += 1
            h.causes += r.label
            for keys in r.keys.values():
                for k in keys:
                    t = h.totals.setdefault(k, [0.0, 0.0])
                    t[0] += 1
                    t[1] += r.label
                    p = inc.setdefault(k, [0.0, 0.0])
                    p[0] += 1
                    p[1] += r.label
        return h

    @property
    def incidents(self) -> int:
        return len(self.per_incident)

    def _base(self, exclude: str | None) -> tuple[float, int]:
        rows, causes, n_inc = self.rows, self.causes, len(self.per_incident)
        if exclude in self.per_incident:
            r = self.per_incident[exclude]["__rows__"]
            rows, causes, n_inc = rows - r[0], causes - r[1], n_inc - 1
        return (causes + 0.5) / (rows + 5.0) if rows > 0 else 0.1, n_inc

    def rate(self, key: str, *, exclude: str | None, base: float) -> float:
        n, c = self.totals.get(key, (0.0, 0.0))
        if exclude is not None and exclude in self.per_incident:
            own = self.per_incident[exclude].get(key)
            if own:
                n, c = n - own[0], c - own[1]
        return (c + SMOOTHING * base) / (n + SMOOTHING)

    def features(self, keys: dict[str, list[str]], *, exclude: str | None) -> tuple[dict[str, float], str]:
        base, n_inc = self._base(exclude)
        out = {name: 0.0 for name in HISTORY_FEATURES}
        if n_inc == 0:
            return out, "no labelled history yet"
        best_key, best_rate = "", base
        for name, ks in keys.items():
            v = 0.0
            for k in ks:
                r = self.rate(k, exclude=exclude, base=base)
                v = max(v, (r - base) / max(1.0 - base, 1e-6) if r > base else 0.0)
                if r > best_rate:
                    best_key, best_rate = k, r
            out[name] = float(min(max(v, 0.0), 1.0))
        out["history"] = max(out["hist_service_kind"], out["hist_author"], out["hist_path"])
        if best_key:
            sent = f"{best_key} changes were the cause {best_rate / max(base, 1e-6):.1f}x more often than average"
        else:
            sent = "changes like this were not causes in past incidents"
        return out, sent

    def apply(self, rows: Sequence[CandidateRow], *, incident_id: str) -> None:
        if not self.per_incident:
            return
        for row in rows:
            vals, sent = self.features(change_keys(row.change), exclude=incident_id)
            for name, v in vals.items():
                row.values[FIDX[name]] = v
            row.sentences["history"] = sent
            if "history" not in row.shown:
                row.shown.append("history")


def _with_history(records: Sequence[TrainingRecord], hist: HistoryStats) -> np.ndarray:
    x = np.array([r.values for r in records], dtype=np.float64).reshape(len(records), len(FEATURES))
    for i, r in enumerate(records):
        vals, _ = hist.features(r.keys, exclude=r.incident_id)
        for name, v in vals.items():
            x[i, FIDX[name]] = v
    return x


@dataclass(slots=True)
class LearntModel:
    """Logistic regression on the evidence features, blended with the prior."""

    version: int
    coef: np.ndarray
    intercept: float
    labelled_incidents: int
    labels_used: int
    trained_at: float | None
    history: HistoryStats
    heldout: dict[str, float] | None = None
    weight: float = 0.0
    service_coef: np.ndarray | None = None
    service_intercept: float = 0.0
    service_incidents: int = 0
    service_records: list[ServiceRecord] = field(default_factory=list)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.coef + self.intercept, dtype=np.float64)

    def service_logits(self, x: np.ndarray) -> np.ndarray | None:
        if self.service_coef is None or x.shape[1] != len(self.service_coef):
            return None
        return np.asarray(x @ self.service_coef + self.service_intercept, dtype=np.float64)

    @property
    def service_weight(self) -> float:
        return blend_weight(self.service_incidents) if self.service_coef is not None else 0.0

    def explain_coef(self) -> np.ndarray | None:
        return np.asarray((1.0 - self.weight) * _prior_vec() + self.weight * self.coef)

    # ---- persistence (JSON, no pickle) ----------------------------------------------
    def to_blob(self, records: Sequence[TrainingRecord]) -> bytes:
        return json.dumps({
            "format": 1, "features": list(FEATURES), "coef": [float(v) for v in self.coef],
            "intercept": self.intercept, "labelled_incidents": self.labelled_incidents,
            "labels_used": self.labels_used, "trained_at": self.trained_at, "heldout": self.heldout,
            "records": [r.to_json() for r in records],
            "service_features": list(SERVICE_FEATURES),
            "service_coef": None if self.service_coef is None else [float(v) for v in self.service_coef],
            "service_intercept": self.service_intercept, "service_incidents": self.service_incidents,
            "service_records": [r.to_json() for r in self.service_records],
        }).encode()

    @staticmethod
    def from_blob(version: int, blob: bytes) -> tuple[LearntModel, list[TrainingRecord]] | None:
        d = json.loads(blob)
        if d.get("format") != 1 or list(d.get("features", [])) != list(FEATURES):
            return None  # feature set changed: retrain from labels instead
        records = [TrainingRecord.from_json(r) for r in d.get("records", [])]
        hist = HistoryStats.from_records(records)
        m = LearntModel(
            version=version, coef=np.array(d["coef"], dtype=np.float64), intercept=float(d["intercept"]),
            labelled_incidents=int(d["labelled_incidents"]), labels_used=int(d["labels_used"]),
            trained_at=d.get("trained_at"), history=hist, heldout=d.get("heldout"),
        )
        m.weight = adjusted_weight(m.labelled_incidents, m.heldout)
        if list(d.get("service_features") or []) == list(SERVICE_FEATURES):
            m.service_records = [ServiceRecord.from_json(r) for r in d.get("service_records", [])]
            if d.get("service_coef") is not None:
                m.service_coef = np.array(d["service_coef"], dtype=np.float64)
                m.service_intercept = float(d.get("service_intercept") or 0.0)
                m.service_incidents = int(d.get("service_incidents") or 0)
        return m, records


def _prior_vec() -> np.ndarray:
    # prior weights as a coefficient vector (used for explanations only)
    from server.rca.ranking import _PRIOR_VEC

    return _PRIOR_VEC


def fit_logistic(x: np.ndarray, y: np.ndarray, *, c: float = 1.0) -> tuple[np.ndarray, float]:
    """Weighted logistic regression (sklearn); returns (coef, intercept) on raw features."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        # one class only: keep the prior's direction, calibrated intercept
        rate = (float(y.sum()) + 0.5) / (len(y) + 1.0)
        return np.zeros(x.shape[1]), float(np.log(rate / (1 - rate)))
    # the prior as an offset is not supported by sklearn; fit on features, regularised.
    lr = LogisticRegression(C=c, max_iter=500, solver="newton-cg")
    lr.fit(x, y)
    return np.asarray(lr.coef_[0], dtype=np.float64), float(lr.intercept_[0])


def rank_metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    """AC@1, AC@3 and MRR from the rank of the true cause per incident (None = absent)."""
    n = len(ranks)
    if n == 0:
        return {"incidents": 0, "ac1": 0.0, "ac3": 0.0, "mrr": 0.0}
    ac1 = sum(1 for r in ranks if r is not None and r <= 1) / n
    ac3 = sum(1 for r in ranks if r is not None and r <= 3) / n
    mrr = sum(1.0 / r for r in ranks if r is not None) / n
    return {"incidents": n, "ac1": round(ac1, 4), "ac3": round(ac3, 4), "mrr": round(mrr, 4)}


def _rank_of_cause(scores: np.ndarray, labels: np.ndarray) -> int | None:
    if labels.sum() < 1:
        return None
    pos = int(np.flatnonzero(labels)[0])
    return int((scores > scores[pos]).sum()) + 1


def train(records: Sequence[TrainingRecord], *, version: int, labels_used: int, trained_at: float | None,
          folds: int = 5, service_records: Sequence[ServiceRecord] = ()) -> LearntModel:
    """Fit the learnt model on all records and measure grouped-CV accuracy of the blend."""
    hist = HistoryStats.from_records(records)
    x = _with_history(records, hist)
    y = np.array([r.label for r in records], dtype=np.int64)
    incidents = sorted({r.incident_id for r in records})
    coef, icpt = fit_logistic(x, y)
    model = LearntModel(version=version, coef=coef, intercept=icpt, labelled_incidents=len(incidents),
                        labels_used=labels_used, trained_at=trained_at, history=hist)
    model.heldout = evaluate_heldout(records, folds=folds) if records else None
    model.weight = adjusted_weight(len(incidents), model.heldout)
    model.service_records = list(service_records)
    if service_records:
        xs = np.array([r.values for r in service_records], dtype=np.float64)
        ys = np.array([r.label for r in service_records], dtype=np.int64)
        if xs.shape[1] == len(SERVICE_FEATURES) and len(set(ys.tolist())) == 2:
            model.service_coef, model.service_intercept = fit_logistic(xs, ys)
            model.service_incidents = len({r.incident_id for r in service_records if r.label})
    return model


def adjusted_weight(labelled_incidents: int, heldout: dict[str, float] | None) -> float:
    """Blend weight by amount learnt, halved when held-out incidents show the blend ranking
    worse than the prior alone (the labels do not carry a learnable pattern yet)."""
    w = blend_weight(labelled_incidents)
    if heldout and heldout.get("incidents", 0) >= 10 and heldout["mrr"] < heldout.get("prior_mrr", 0.0) - 0.02:
        w *= 0.5
    return w


def evaluate_heldout(records: Sequence[TrainingRecord], *, folds: int = 5) -> dict[str, float] | None:
    """Grouped K-fold: train on the other folds' incidents, rank each held-out incident's
    candidates with the blend, report AC@1/AC@3/MRR over incidents with a cause label."""
    incidents = sorted({r.incident_id for r in records})
    with_cause = [i for i in incidents if any(r.label for r in records if r.incident_id == i)]
    if len(with_cause) < 4:
        return None
    k = min(folds, len(with_cause))
    fold_of = {inc: j % k for j, inc in enumerate(with_cause)}
    ranks: list[int | None] = []
    prior_ranks: list[int | None] = []
    for f in range(k):
        train_recs = [r for r in records if fold_of.get(r.incident_id, -1) != f]
        test_incs = [i for i in with_cause if fold_of[i] == f]
        if not train_recs or not test_incs:
            continue
        hist = HistoryStats.from_records(train_recs)
        xt = _with_history(train_recs, hist)
        yt = np.array([r.label for r in train_recs], dtype=np.int64)
        coef, icpt = fit_logistic(xt, yt)
        w = blend_weight(len({r.incident_id for r in train_recs}))
        for inc in test_incs:
            recs = [r for r in records if r.incident_id == inc]
            xs = _with_history(recs, hist)
            y = np.array([r.label for r in recs])
            z = blend(prior_logits(xs), xs @ coef + icpt, w)
            ranks.append(_rank_of_cause(probabilities(z), y))
            prior_ranks.append(_rank_of_cause(probabilities(prior_logits(xs)), y))
    out = rank_metrics(ranks)
    pm = rank_metrics(prior_ranks)
    out.update({"prior_ac1": pm["ac1"], "prior_ac3": pm["ac3"], "prior_mrr": pm["mrr"]})
    return out


def records_for_incident(incident_id: str, rows: Sequence[CandidateRow], labels: Iterable[tuple[str, str]]
                         ) -> list[TrainingRecord]:
    """Training records of one incident from its candidate rows and ``(change_id, verdict)`` labels.

    The latest label per change wins. With a ``cause`` label, every other candidate is a
    negative; without one, only changes labelled ``not_cause`` are.
    """
    verdicts: dict[str, str] = {}
    for cid, verdict in labels:
        verdicts[cid] = verdict
    causes = {c for c, v in verdicts.items() if v == "cause"}
    out: list[TrainingRecord] = []
    for row in rows:
        cid = row.change.id
        if cid in causes:
            y = 1
        elif cid in verdicts or causes:
            y = 0
        else:
            continue
        vals = [float(v) for v in row.values]
        for name in HISTORY_FEATURES:
            vals[FIDX[name]] = 0.0
        out.append(TrainingRecord(incident_id, cid, change_keys(row.change), y, vals))
    return out


def label_counts(labels: Iterable[Any]) -> Counter[str]:
    return Counter(getattr(lbl, "incident_id", "") for lbl in labels)
