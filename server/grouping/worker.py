"""Incident bookkeeping: detector events -> anomalies -> incidents (store at the edge)."""

from __future__ import annotations

from server.detector.worker import SeriesEvent
from server.grouping.core import Group, decide, hop_distances, ratio, severity, title
from server.model import Anomaly, Edge, Incident
from server.settings import GroupingSettings, PipelineSettings
from server.store.base import Store


def bad_direction(metric: str, settings: PipelineSettings) -> set[str]:
    """Which direction of change is a regression for this metric name."""
    m = metric.lower()
    down = any(h in m for h in settings.down_is_bad)
    up = any(h in m for h in settings.up_is_bad)
    if down and not up:
        return {"down"}
    if up and not down:
        return {"up"}
    return {"up", "down"}


class IncidentManager:
    def __init__(self, store: Store, grouping: GroupingSettings, pipeline: PipelineSettings) -> None:
        self.store = store
        self.gap = grouping.gap_seconds
        self.max_hops = grouping.max_hops
        self.pipeline = pipeline
        self.groups: dict[str, Group] = {}
        self.open_by_series: dict[tuple[str, str], Anomaly] = {}
        self._load()

    def _load(self) -> None:
        for inc in self.store.list_incidents(status="OPEN", limit=100_000):
            self.groups[inc.id] = self._group_of(inc)
        for inc in self.store.list_incidents(status="RESOLVED", limit=200):
            self.groups[inc.id] = self._group_of(inc)
        for a in self.store.list_anomalies(open_only=True):
            self.open_by_series[(a.service, a.metric)] = a

    def _group_of(self, inc: Incident) -> Group:
        anomalies = self.store.list_anomalies(incident_id=inc.id)
        last = max((a.started_at for a in anomalies), default=inc.started_at)
        return Group(id=inc.id, started_at=inc.started_at, last_onset=last,
                     services={a.service for a in anomalies} or set(inc.services), resolved_at=inc.resolved_at)

    def incident_ids(self) -> list[str]:
        return list(self.groups)

    def prune(self, keep_resolved: int = 500) -> None:
        """Bound memory: keep every open incident and the most recent resolved ones (not
        judged against a global watermark, so series replayed one after another still
        join the incidents of series sent earlier)."""
        resolved = sorted((g for g in self.groups.values() if g.resolved_at is not None),
                          key=lambda g: (g.started_at, g.id))
        for g in resolved[:-keep_resolved] if len(resolved) > keep_resolved else []:
            del self.groups[g.id]

    def handle(self, events: list[SeriesEvent]) -> set[str]:
        """Apply detector events; returns the ids of incidents whose anomalies changed."""
        dirty: set[str] = set()
        if not events:
            return dirty
        topology = self.store.get_topology()
        for se in events:
            ev = se.event
            key = (se.service, se.metric)
            if ev.kind == "open":
                if key in self.open_by_series or ev.direction not in bad_direction(se.metric, self.pipeline):
                    continue
                a = Anomaly(id=self.store.next_id(prefix="an"), service=se.service, metric=se.metric,
                            started_at=ev.onset, detected_at=ev.ts, direction=ev.direction,
                            score=round(float(ev.score), 4), baseline=float(ev.baseline),
                            observed=float(ev.observed))
                dirty.add(self._join(a, topology))
                self.open_by_series[key] = a
            else:
                open_a = self.open_by_series.pop(key, None)
                if open_a is None:
                    continue
                open_a.ended_at = ev.onset
                self.store.save_anomalies(anomalies=[open_a])
                if open_a.incident_id:
                    self._refresh(open_a.incident_id)
                    dirty.add(open_a.incident_id)
        return dirty

    def _join(self, a: Anomaly, topology: list[Edge]) -> str:
        decision = decide(a, list(self.groups.values()), topology, gap=self.gap, max_hops=self.max_hops)
        a.join_reason = decision.reason
        if not decision.incident_ids:
            inc_id = self.store.next_id(prefix="inc")
            self.groups[inc_id] = Group(id=inc_id, started_at=a.started_at, last_onset=a.started_at,
                                        services={a.service})
            a.incident_id = inc_id
            self.store.save_anomalies(anomalies=[a])
            self._refresh(inc_id)
            return inc_id
        # join the incident that started first; merge the others into it
        target = min(decision.incident_ids, key=lambda i: (self.groups[i].started_at, i))
        a.incident_id = target
        self.store.save_anomalies(anomalies=[a])
        self._merge(target, [i for i in decision.incident_ids if i != target])
        return target

    def _merge(self, target: str, others: list[str]) -> None:
        """Move the anomalies of ``others`` into ``target`` and drop the emptied incidents."""
        for other in others:
            moved = self.store.list_anomalies(incident_id=other)
            for m in moved:
                m.incident_id = target
                m.join_reason = f"merged from {other}: {m.join_reason or ''}".strip()
            with self.store.unit_of_work() as tx:  # one transaction: a merge is never half done
                tx.save_anomalies(anomalies=moved)
                tx.reassign_labels(incident_id=other, to=target)  # its labels train as the survivor's
                tx.delete_incident(incident_id=other)
                tx.record_merge(merged=other, into=target)  # its id keeps answering
            for v in self.open_by_series.values():
                if v.incident_id == other:
                    v.incident_id = target
            del self.groups[other]
        self._refresh(target)

    def regroup(self, topology: list[Edge]) -> set[str]:
        """After the topology changed: merge incidents that are now connected and overlap
        in time (so sending the topology after the metrics gives the same incidents)."""
        changed: set[str] = set()
        merged = True
        while merged:
            merged = False
            groups = sorted(self.groups.values(), key=lambda g: (g.started_at, g.id))
            for i, g in enumerate(groups):
                dist: dict[str, int] = {}
                for svc in g.services:
                    for k, d in hop_distances(topology, svc, self.max_hops).items():
                        dist[k] = min(d, dist.get(k, d))
                end = g.last_onset if g.resolved_at is None else max(g.last_onset, g.resolved_at)
                for h in groups[i + 1:]:
                    if h.started_at > end + self.gap or not (h.services & set(dist)):
                        continue
                    self._merge(g.id, [h.id])
                    changed.add(g.id)
                    merged = True
                    break
                if merged:
                    break
        return changed

    def _refresh(self, inc_id: str) -> None:
        anomalies = self.store.list_anomalies(incident_id=inc_id)
        if not anomalies:
            return
        existing = self.store.get_incident(incident_id=inc_id)
        services: list[str] = []
        for a in sorted(anomalies, key=lambda a: (a.started_at, -a.score)):
            if a.service not in services:
                services.append(a.service)
        all_ended = all(a.ended_at is not None for a in anomalies)
        resolved_at = max(a.ended_at for a in anomalies if a.ended_at is not None) if all_ended else None
        started = min(a.started_at for a in anomalies)
        detected = min(a.detected_at for a in anomalies)
        inc = Incident(
            id=inc_id, status="RESOLVED" if all_ended else "OPEN", title=title(anomalies),
            started_at=started, detected_at=detected, resolved_at=resolved_at, services=services,
            severity=severity([a.score for a in anomalies], len(services), [ratio(a) for a in anomalies]),
            anomaly_count=len(anomalies),
            top_suspect=existing.top_suspect if existing else None,
            no_convincing_change=existing.no_convincing_change if existing else False,
            rca_version=existing.rca_version if existing else 0,
        )
        self.store.save_incidents(incidents=[inc])
        g = self.groups.get(inc_id)
        if g is not None:
            g.started_at = started
            g.last_onset = max(a.started_at for a in anomalies)
            g.services = set(services)
            g.resolved_at = resolved_at
