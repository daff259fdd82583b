"""Root-service candidates: rows of service signals, scores and explanations (pure).

Candidates are the incident's services, their dependencies and direct callers (and any
service with series in the window). Each gets one row of service-signal values
(:data:`server.rca.signals.SERVICE_SIGNALS`); the prior turns rows into logits and
:func:`server.rca.ranking.probabilities` into "this service is the root (or none)"
probabilities, the same model as for changes, so both kinds rank in one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.model import Anomaly
from server.rca.deviation import MIN_BASELINE_POINTS, consensus_onset, estimate_onset, metric_class
from server.rca.drain import LogIndex
from server.rca.series import Series
from server.rca.signals import SERVICE_SIGNALS
from server.rca.signals.service_base import ServiceCandidate, ServiceData
from server.rca.topology import Topology

SERVICE_FEATURES: tuple[str, ...] = tuple(s.name for s in SERVICE_SIGNALS)
SIDX: dict[str, int] = {n: i for i, n in enumerate(SERVICE_FEATURES)}
SERVICE_PRIOR_WEIGHTS: dict[str, float] = {s.name: s.weight for s in SERVICE_SIGNALS if s.weight != 0.0}
SERVICE_PRIOR_BIAS = -7.0
_SVEC = np.array([SERVICE_PRIOR_WEIGHTS.get(n, 0.0) for n in SERVICE_FEATURES], dtype=np.float64)
_EXPLAINED = sorted((s for s in SERVICE_SIGNALS if s.explain_rank is not None), key=lambda s: int(s.explain_rank or 0))


@dataclass(slots=True)
class ServiceRow:
    service: str
    values: np.ndarray  # len(SERVICE_FEATURES)
    sentences: dict[str, str] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)
    first_ts: float | None = None


def service_onset(*, anomalies: Sequence[Anomaly], started_at: float, series: Series,
                  incident_services: Sequence[str], before_s: float = 900.0) -> float:
    """The incident's onset estimated from the data: the time most series shifted together
    (:func:`server.rca.deviation.consensus_onset`) between 10 minutes before the first
    anomaly and 10 minutes after the median one, or in the 30 minutes before an external
    alert's start (an incident opened by an alert has no anomaly). An unrelated burst
    grouped into the incident earlier does not move it. Falls back to the incident
    services' own change points around the median anomaly onset (or the alert's start)."""
    starts = [a.started_at for a in anomalies]
    around = float(np.median(starts)) if starts else started_at
    if starts:
        lo, hi, cap = min(starts) - 300.0, around + 600.0, max(starts) + 60.0
    else:
        lo, hi, cap = started_at - 1800.0, started_at + 300.0, started_at
    seen: dict[tuple[str, str], float] = {}
    for a in anomalies:
        seen[(a.service, a.metric)] = min(seen.get((a.service, a.metric), a.started_at), a.started_at)
    est: float | None = None
    # traffic follows the daily load and the incident's consequences: it does not vote
    voters = {k: v for k, v in series.items() if metric_class(k[1], k[0]) != "traffic"}
    found = consensus_onset(voters, lo=lo, hi=hi)
    if found is not None and found[1] >= 0.75:
        est = found[0]
    svcs = set(incident_services) | {a.service for a in anomalies}
    own = [v for (s, _), v in series.items() if s in svcs] or list(series.values())
    if est is None:
        est = estimate_onset(own, around=around, before_s=before_s)
    if est is None:
        return around
    # leave the minimum baseline before the onset (a shift found at the recording's start is noise)
    every = list(series.values())
    firsts = [float(np.min(ts)) for ts, _ in every if len(ts)]
    steps = [float(np.median(np.diff(np.unique(ts)))) for ts, _ in every[:50] if len(np.unique(ts)) > 2]
    if firsts and steps:
        est = max(est, float(np.median(firsts)) + MIN_BASELINE_POINTS * float(np.median(steps)))
    return min(est, cap)


def build_service_data(*, services: Sequence[str], onset: float, anomalies: Sequence[Anomaly], topo: Topology,
                       series: Series, logs: LogIndex, incident_services: Sequence[str],
                       until: float | None = None) -> ServiceData:
    return ServiceData(services=sorted(set(services)), onset=onset, anomalies=anomalies, topo=topo, series=series,
                       logs=logs, incident_services=incident_services, until=until)


def build_service_rows(data: ServiceData) -> list[ServiceRow]:
    rows: list[ServiceRow] = []
    for j, s in enumerate(data.services):
        cand = ServiceCandidate(j, s)
        vals = np.zeros(len(SERVICE_FEATURES), dtype=np.float64)
        sent: dict[str, str] = {}
        shown: list[str] = []
        for i, sig in enumerate(SERVICE_SIGNALS):
            e = sig.compute(data, cand)
            vals[i] = e.value
            if e.sentence is not None:
                sent[sig.name] = e.sentence
            if e.shown_as is not None:
                shown.append(e.shown_as)
        rows.append(ServiceRow(service=s, values=vals, sentences=sent, shown=shown,
                               first_ts=data.first_times.get(s)))
    return rows


def refresh_change_support(rows: Sequence[ServiceRow], data: ServiceData) -> None:
    """Recompute the change-support column after the changes were ranked."""
    sig = SERVICE_SIGNALS[SIDX["change_support"]]
    for j, row in enumerate(rows):
        e = sig.compute(data, ServiceCandidate(j, row.service))
        row.values[SIDX["change_support"]] = e.value
        if e.sentence is not None:
            row.sentences["change_support"] = e.sentence
        if e.shown_as is not None and e.shown_as not in row.shown:
            row.shown.append(e.shown_as)


def service_prior_logits(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return np.zeros(0)
    return np.asarray(x @ _SVEC + SERVICE_PRIOR_BIAS, dtype=np.float64)


def service_evidence(row: ServiceRow) -> dict[str, float]:
    return {n: round(float(row.values[SIDX[n]]), 4) for n in row.shown}


def explain_service(row: ServiceRow, *, coef: np.ndarray | None = None) -> str:
    """One sentence: the service, then its strongest supporting evidence."""
    weights = _SVEC if coef is None else coef
    scored: list[tuple[float, int, str]] = []
    for sig in _EXPLAINED:
        i = SIDX[sig.name]
        contrib = float(row.values[i]) * float(weights[i])
        if contrib > 0.25 and sig.name in row.sentences:
            scored.append((contrib, int(sig.explain_rank or 0), sig.name))
    scored.sort(key=lambda t: (-t[0], t[1]))
    parts = [row.sentences[n] for _, _, n in scored[:3]]
    if not parts:
        parts = [row.sentences.get("deviation", "no clear deviation")]
    return "; ".join([f"{row.service} as the root service", *parts])


def order_services(scores: np.ndarray, rows: Sequence[ServiceRow]) -> list[int]:
    return sorted(range(len(rows)), key=lambda i: (-round(float(scores[i]), 12),
                                                   -float(rows[i].values[SIDX["deviation"]]), rows[i].service))
