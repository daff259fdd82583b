"""Grouping anomalies into incidents (pure).

An anomaly joins an incident when its onset is within ``gap`` seconds of the
incident's time span and its service is the same as, or within ``max_hops`` topology
hops (either direction) of, one of the incident's services. An anomaly that links two
incidents merges them (the older survives), so the result does not depend on the
order in which series arrive. Each anomaly records why it joined.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from server.model import Alert, Anomaly, Edge


@dataclass(slots=True)
class Group:
    """The grouping view of one incident."""

    id: str
    started_at: float
    last_onset: float
    services: set[str] = field(default_factory=set)
    resolved_at: float | None = None


def hop_distances(edges: list[Edge], start: str, max_hops: int) -> dict[str, int]:
    """Undirected hop distance from ``start`` to every service within ``max_hops``."""
    adj: dict[str, set[str]] = {}
    for e in edges:
        adj.setdefault(e.source, set()).add(e.target)
        adj.setdefault(e.target, set()).add(e.source)
    dist = {start: 0}
    q = deque([start])
    while q:
        u = q.popleft()
        if dist[u] >= max_hops:
            continue
        for v in adj.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist


@dataclass(slots=True)
class JoinDecision:
    incident_ids: list[str]  # incidents the anomaly connects to (empty: open a new one)
    reason: str


def decide(anomaly: Anomaly, groups: list[Group], edges: list[Edge], *, gap: float, max_hops: int) -> JoinDecision:
    """Which existing incidents (open, or resolved within ``gap`` of the onset) the
    anomaly belongs to, and why."""
    dist = hop_distances(edges, anomaly.service, max_hops)
    matches: list[tuple[float, str, str]] = []
    for g in groups:
        end = g.last_onset if g.resolved_at is None else max(g.last_onset, g.resolved_at)
        if anomaly.started_at < g.started_at - gap or anomaly.started_at > end + gap:
            continue
        time_gap = 0.0 if g.started_at <= anomaly.started_at <= end else min(
            abs(anomaly.started_at - g.started_at), abs(anomaly.started_at - end))
        if anomaly.service in g.services:
            matches.append((time_gap, g.id, f"same service {anomaly.service}; onset {time_gap:.0f}s from the incident"))
            continue
        near = [(dist[s], s) for s in g.services if s in dist]
        if near:
            hops, svc = min(near)
            matches.append((time_gap, g.id, f"topology: {hops} hop(s) from {svc}; onset {time_gap:.0f}s from the incident"))
    if not matches:
        return JoinDecision([], "first anomaly of a new incident")
    matches.sort()
    return JoinDecision([m[1] for m in matches], matches[0][2])


def severity(scores: list[float], n_services: int, ratios: list[float]) -> float:
    """Incident severity in [0, 1] from anomaly strength, relative change and spread."""
    if not scores:
        return 0.0
    strength = 1.0 - 1.0 / (1.0 + max(scores) / 10.0)
    change = 1.0 - 1.0 / (1.0 + max((abs(r - 1.0) for r in ratios), default=0.0))
    spread = 1.0 - 0.5 ** n_services
    return round(min(1.0, 0.45 * strength + 0.35 * change + 0.2 * spread), 4)


def ratio(a: Anomaly) -> float:
    if abs(a.baseline) > 1e-12:
        return a.observed / a.baseline
    return 1.0 + abs(a.observed - a.baseline)


def title(anomalies: list[Anomaly]) -> str:
    """``payments: p95_latency_ms up 3.1x`` for the strongest anomaly (+N more)."""
    if not anomalies:
        return "incident"
    top = max(anomalies, key=lambda a: (a.score, -a.started_at))
    r = ratio(top)
    if abs(top.baseline) > 1e-12 and r > 0:
        mag = f"{r:.1f}x" if top.direction == "up" else f"to {r:.2f}x"
    else:
        mag = f"by {abs(top.observed - top.baseline):.3g}"
    others = len({(a.service, a.metric) for a in anomalies}) - 1
    more = f" (+{others} more)" if others > 0 else ""
    return f"{top.service}: {top.metric} {top.direction} {mag}{more}"


_ALERT_SEVERITY = {"critical": 0.9, "page": 0.9, "high": 0.9, "fatal": 0.9, "emergency": 0.9, "error": 0.75,
                   "major": 0.75, "warning": 0.6, "warn": 0.6, "medium": 0.6, "info": 0.3, "low": 0.3,
                   "minor": 0.3, "none": 0.2}


def alert_severity(alerts: list[Alert]) -> float:
    """Incident severity from its alerts' ``severity`` labels (0.5 when unlabelled)."""
    return max((_ALERT_SEVERITY.get(a.labels.get("severity", "").strip().lower(), 0.5) for a in alerts),
               default=0.0)


def alert_title(alerts: list[Alert]) -> str:
    """``checkout: alert HighLatency (p95 > 500 ms)`` for the first alert (+N more)."""
    first = min(alerts, key=lambda a: (a.starts_at, a.id))
    summary = first.annotations.get("summary") or first.annotations.get("description") or ""
    names = {a.name for a in alerts}
    more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
    return f"{first.services[0]}: alert {first.name}{f' ({summary})' if summary else ''}{more}"
