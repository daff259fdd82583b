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
from server.rca.evidence import change_subject
from server.rca.features import FEATURES, CandidateRow, Series, build_rows, evidence_values
from server.rca.ranking import CONVINCING, blend, explain, order, prior_logits, probabilities
from server.rca.roots import (
    ServiceRow,
    build_service_data,
    build_service_rows,
    explain_service,
    order_services,
    refresh_change_support,
    service_evidence,
    service_onset,
    service_prior_logits,
)
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

    def service_logits(self, x: np.ndarray) -> np.ndarray | None: ...

    @property
    def service_weight(self) -> float: ...


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
    #: version/pod-labelled series of deployed services, (service, metric) -> [(labels, ts, values)]
    labelled: dict[tuple[str, str], list[tuple[dict[str, str], np.ndarray, np.ndarray]]] = field(
        default_factory=dict)


@dataclass(slots=True)
class RankedSuspect:
    change: Change
    rank: int
    score: float
    evidence: dict[str, float]
    explanation: str
    row: CandidateRow


@dataclass(slots=True)
class RankedService:
    service: str
    rank: int  # among service suspects
    score: float
    evidence: dict[str, float]
    explanation: str
    row: ServiceRow


@dataclass(slots=True)
class RcaResult:
    suspects: list[RankedSuspect]
    no_convincing_change: bool
    rows: list[CandidateRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    services: list[RankedService] = field(default_factory=list)
    service_rows: list[ServiceRow] = field(default_factory=list)
    #: the incident's onset estimated from the data (time evidence is measured against it)
    onset: float | None = None

    @property
    def top_service(self) -> RankedService | None:
        return self.services[0] if self.services and self.services[0].score >= CONVINCING else None

    def top_kind(self) -> str | None:
        """What the incident presents as its likely cause: ``"change"`` (the convincing best
        change, unless a more convincing root service disagrees with it: the change is not
        on that service), ``"service"`` (the convincing root service) or None."""
        top_s = self.top_service
        if self.top is not None:
            if top_s is not None and top_s.service not in self.top.change.services and top_s.score > self.top.score:
                return "service"
            return "change"
        return "service" if top_s is not None else None

    @property
    def top(self) -> RankedSuspect | None:
        return self.suspects[0] if self.suspects and not self.no_convincing_change else None

    def top_item(self) -> RankedSuspect | RankedService | None:
        """The suspect the incident presents as its likely cause (see :meth:`top_kind`)."""
        kind = self.top_kind()
        return self.top if kind == "change" else self.top_service if kind == "service" else None

    def combined(self) -> list[RankedSuspect | RankedService]:
        """Change and root-service suspects in one list, best first, by score (a change
        before a service when they tie). A service whose convincing change is a suspect
        follows that change: the change is what to act on, the service where it acts."""
        support: dict[str, float] = {}
        for s in self.suspects:
            for svc in s.change.services:
                support[svc] = max(support.get(svc, 0.0), s.score)
        items: list[tuple[float, int, int, RankedSuspect | RankedService]] = [
            (s.score, 0, i, s) for i, s in enumerate(self.suspects)]
        items += [(min(s.score, support[s.service]) if support.get(s.service, 0.0) >= CONVINCING else s.score, 1, i, s)
                  for i, s in enumerate(self.services)]
        items.sort(key=lambda t: (-t[0], t[1], t[2]))
        return [t[3] for t in items]


def relevant_services(incident: Incident, anomalies: Sequence[Anomaly], topo: Topology) -> set[str]:
    """The incident's services, their dependencies (two hops) and direct callers."""
    base = set(incident.services) | {a.service for a in anomalies}
    return topo.neighbourhood(sorted(base))


def select_candidates(
    changes: Sequence[Change], *, onset: float, services: set[str], include: frozenset[str] = frozenset(),
    until: float | None = None,
) -> list[Change]:
    lo, hi = onset - LOOKBACK_S, (onset + CANDIDATE_AFTER_S) if until is None else until
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
    topo = Topology(ctx.edges)
    services = relevant_services(inc, ctx.anomalies, topo)
    timings: dict[str, float] = {}
    # incidents opened by an external alert have no anomaly: the onset comes from the data
    onset_svc = service_onset(anomalies=ctx.anomalies, started_at=onset, series=ctx.series,
                              incident_services=inc.services)
    if not ctx.anomalies:
        onset = onset_svc
    # time evidence is measured against the onset found in the data (the time most series
    # departed together): anomaly starts include bursts grouped into the incident earlier
    onset_est = onset_svc
    t1 = time.perf_counter()
    index = ctx.log_index
    if index is None:
        index = build_index(ctx.logs, since=min(onset, onset_est) - LOGS_BEFORE_S,
                            until=min(ctx.watermark, max(onset, onset_est) + LOGS_AFTER_S))
    t2 = time.perf_counter()
    timings["logs"] = t2 - t1
    # ---- root services first, without the changes (the changes read their verdict) ----
    svc_cands = services | {s for (s, _) in ctx.series}
    sdata = build_service_data(services=sorted(svc_cands), onset=onset_svc, anomalies=ctx.anomalies, topo=topo,
                               series=ctx.series, logs=index, incident_services=inc.services,
                               until=max([onset_svc, inc.started_at, *[a.started_at for a in ctx.anomalies]]) + 900.0)
    srows = build_service_rows(sdata)
    root_scores: dict[str, float] = {}
    if srows:
        p0 = probabilities(service_prior_logits(np.vstack([r.values for r in srows])))
        top0 = float(p0.max()) if p0.size else 0.0
        root_scores = {r.service: (float(p0[i]) / top0 if top0 > 0 else 0.0) for i, r in enumerate(srows)}
    # ---- changes: candidates on the incident's services and their neighbours; without a
    # call graph covering them (real recordings often come without one), also on every
    # service whose own metrics clearly deviate ----
    if not any(s in topo.callees or s in topo.callers for s in services):
        services = services | sdata.deviating
    # the window spans both the incident's first anomaly and the onset found in the data
    # (a burst grouped into the incident long before the fault must not cut the culprit off)
    cands = select_candidates(ctx.changes, onset=min(onset, onset_est), services=services,
                              include=ctx.include_change_ids, until=max(onset, onset_est) + CANDIDATE_AFTER_S)
    t3 = time.perf_counter()
    timings["services"] = t3 - t2
    rows = build_rows(
        candidates=cands, all_changes=ctx.changes, onset=onset_est, anomalies=ctx.anomalies, topo=topo,
        series=ctx.series, logs=index, watermark=ctx.watermark,
        extra={"labelled": ctx.labelled, "root_scores": root_scores},
    ) if cands else []
    if ctx.history is not None and rows:
        ctx.history.apply(rows, incident_id=ctx.history_key or inc.id)
    t4 = time.perf_counter()
    timings["features"] = t4 - t3
    x = np.vstack([r.values for r in rows]) if rows else np.zeros((0, len(FEATURES)))
    z = prior_logits(x)
    coef = None
    if ctx.scorer is not None and ctx.scorer.weight > 0.0 and rows:
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
    # ---- the services again, with the changes' verdict as support ----
    for sus in suspects:
        for s in sus.change.services:
            if sus.score > sdata.change_support.get(s, (0.0, ""))[0]:
                sdata.change_support[s] = (sus.score, change_subject(sus.change))
    refresh_change_support(srows, sdata)
    ranked_services = rank_services(srows, ctx.scorer)
    timings["rank"] = time.perf_counter() - t4
    timings["total"] = time.perf_counter() - t0
    convincing = bool(suspects) and suspects[0].score >= CONVINCING
    return RcaResult(suspects=suspects, no_convincing_change=not convincing, rows=rows, timings=timings,
                     services=ranked_services, service_rows=srows, onset=onset_est)


def rank_services(rows: Sequence[ServiceRow], scorer: ScorerLike | None = None) -> list[RankedService]:
    """Score and order root-service candidates (prior, blended with the learnt model)."""
    if not rows:
        return []
    x = np.vstack([r.values for r in rows])
    z = service_prior_logits(x)
    learnt = scorer.service_logits(x) if scorer is not None else None
    if scorer is not None and learnt is not None and scorer.service_weight > 0.0:
        z = blend(z, learnt, scorer.service_weight)
    p = probabilities(z)
    return [RankedService(service=rows[i].service, rank=r + 1, score=round(float(p[i]), 6),
                          evidence=service_evidence(rows[i]), explanation=explain_service(rows[i]), row=rows[i])
            for r, i in enumerate(order_services(p, rows))]
