"""RCA for one incident: candidates -> evidence -> ranking (pure).

:func:`analyse` takes everything it needs in an :class:`RcaContext` (built by the service
from the store, or by hand in tests, benchmarks and notebooks) and returns an
:class:`RcaResult`. It reads no store, no clock and no label of the incident.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from server.model import Anomaly, Change, Edge, Incident, LogWindow
from server.rca.drain import LogIndex, build_index
from server.rca.features import FEATURES, CandidateRow, Series, build_rows, evidence_values
from server.rca.ranking import CONVINCING, blend, explain, order, prior_logits, probabilities
from server.rca.topology import Topology

#: Candidate changes happen at most this long before the onset ...
LOOKBACK_S = 2 * 3600.0
#: ... and at most this long after it (onset estimates are early/late by a few minutes).
CANDIDATE_AFTER_S = 900.0
#: Changes up to this long after the onset still matter (rollbacks of a candidate).
RELEVANT_AFTER_S = 3 * 3600.0
#: Windows read from the store around the onset.
SERIES_BEFORE_S = 3600.0
LOGS_BEFORE_S = 3600.0
LOGS_AFTER_S = 1800.0


def candidate_window(onset: float) -> tuple[float, float]:
    """[since, until] of change times that can affect the RCA of an incident with this
    onset: candidates up to :data:`CANDIDATE_AFTER_S` after onset, later changes as
    rollback evidence."""
    return onset - LOOKBACK_S, onset + RELEVANT_AFTER_S


class HistoryLike(Protocol):
    def apply(self, rows: Sequence[CandidateRow], *, incident_id: str) -> None:
        """Fill the history columns of ``rows`` (never from ``incident_id``'s own labels)."""


class ScorerLike(Protocol):
    weight: float

    def logits(self, x: np.ndarray) -> np.ndarray: ...

    def explain_coef(self) -> np.ndarray | None: ...


@dataclass(slots=True)
class RcaContext:
    incident: Incident
    anomalies: list[Anomaly]
    changes: list[Change]  # changes near the incident (any service; the engine selects)
    edges: list[Edge]
    series: Series
    logs: LogWindow
    watermark: float
    history: HistoryLike | None = None
    scorer: ScorerLike | None = None
    include_change_ids: frozenset[str] = frozenset()  # always candidates (e.g. labelled ones)
    log_index: LogIndex | None = None
    history_key: str | None = None  # the incident's key in the history (default: its id)


@dataclass(slots=True)
class RankedSuspect:
    change: Change
    rank: int
    score: float
    evidence: dict[str, float]
    explanation: str
    row: CandidateRow


@dataclass(slots=True)
class RcaResult:
    suspects: list[RankedSuspect]
    no_convincing_change: bool
    rows: list[CandidateRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def top(self) -> RankedSuspect | None:
        return self.suspects[0] if self.suspects and not self.no_convincing_change else None


def robust_onset(anomalies: Sequence[Anomaly], *, fallback: float, early_s: float = 600.0) -> float:
    """The incident's onset for time evidence: the median onset of the anomalies that
    started within ``early_s`` of the first one (one early change-point estimate, or a
    late joiner, does not move it)."""
    if not anomalies:
        return fallback
    first = min(a.started_at for a in anomalies)
    early = sorted(a.started_at for a in anomalies if a.started_at <= first + early_s)
    return float(early[(len(early) - 1) // 2])


def relevant_services(incident: Incident, anomalies: Sequence[Anomaly], topo: Topology) -> set[str]:
    """The incident's services, their dependencies (two hops) and direct callers."""
    base = set(incident.services) | {a.service for a in anomalies}
    return topo.neighbourhood(sorted(base))


def select_candidates(
    changes: Sequence[Change], *, onset: float, services: set[str], include: frozenset[str] = frozenset()
) -> list[Change]:
    lo, hi = onset - LOOKBACK_S, onset + CANDIDATE_AFTER_S
    seen: set[str] = set()
    out: list[Change] = []
    for c in sorted(changes, key=lambda c: (c.ts, c.id)):
        if c.id in seen:
            continue
        if c.id in include or (lo <= c.ts <= hi and any(s in services for s in c.services)):
            seen.add(c.id)
            out.append(c)
    return out


def analyse(ctx: RcaContext) -> RcaResult:
    t0 = time.perf_counter()
    inc = ctx.incident
    onset = inc.started_at
    if ctx.anomalies:
        onset = min(onset, min(a.started_at for a in ctx.anomalies))
    onset_est = robust_onset(ctx.anomalies, fallback=onset)
    topo = Topology(ctx.edges)
    services = relevant_services(inc, ctx.anomalies, topo)
    cands = select_candidates(ctx.changes, onset=onset, services=services, include=ctx.include_change_ids)
    timings: dict[str, float] = {}
    if not cands:
        timings["total"] = time.perf_counter() - t0
        return RcaResult(suspects=[], no_convincing_change=True, timings=timings)
    t1 = time.perf_counter()
    index = ctx.log_index
    if index is None:
        index = build_index(ctx.logs, since=onset - LOGS_BEFORE_S, until=min(ctx.watermark, onset + LOGS_AFTER_S))
    t2 = time.perf_counter()
    timings["logs"] = t2 - t1
    rows = build_rows(
        candidates=cands, all_changes=ctx.changes, onset=onset_est, anomalies=ctx.anomalies, topo=topo,
        series=ctx.series, logs=index, watermark=ctx.watermark,
    )
    if ctx.history is not None:
        ctx.history.apply(rows, incident_id=ctx.history_key or inc.id)
    t3 = time.perf_counter()
    timings["features"] = t3 - t2
    x = np.vstack([r.values for r in rows]) if rows else np.zeros((0, len(FEATURES)))
    z = prior_logits(x)
    coef = None
    if ctx.scorer is not None and ctx.scorer.weight > 0.0:
        z = blend(z, ctx.scorer.logits(x), ctx.scorer.weight)
        coef = ctx.scorer.explain_coef()
    p = probabilities(z)
    idx = order(p, rows)
    suspects = [
        RankedSuspect(
            change=rows[i].change, rank=r + 1, score=round(float(p[i]), 6), evidence=evidence_values(rows[i]),
            explanation=explain(rows[i], learnt_coef=coef), row=rows[i],
        )
        for r, i in enumerate(idx)
    ]
    timings["rank"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    convincing = bool(suspects) and suspects[0].score >= CONVINCING
    return RcaResult(suspects=suspects, no_convincing_change=not convincing, rows=rows, timings=timings)
