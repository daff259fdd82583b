"""Incident bookkeeping: detector events -> anomalies -> incidents (store at the edge)."""

from __future__ import annotations

from server.detector.worker import SeriesEvent
from server.grouping.core import (
    Group,
    alert_severity,
    alert_title,
    decide,
    hop_distances,
    ratio,
    severity,
    title,
)
from server.model import Alert, Anomaly, Edge, Incident
from server.model.labels import canonical_labels
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
        # a series is (service, metric, canonical label text): one open anomaly per series
        self.open_by_series: dict[tuple[str, str, str | None], Anomaly] = {}
        self._load()

    def _load(self) -> None:
        for inc in self.store.list_incidents(status="OPEN", limit=100_000):
            self.groups[inc.id] = self._group_of(inc)
        for inc in self.store.list_incidents(status="RESOLVED", limit=200):
            self.groups[inc.id] = self._group_of(inc)
        for a in self.store.list_anomalies(open_only=True):
            self.open_by_series[(a.service, a.metric, canonical_labels(a.labels))] = a

    def _group_of(self, inc: Incident) -> Group:
        anomalies = self.store.list_anomalies(incident_id=inc.id)
        last = max((a.started_at for a in anomalies), default=inc.started_at)
        alerts = self.store.list_alerts(incident_ids=[inc.id])
        last = max([last, *(a.starts_at for a in alerts)])
        return Group(id=inc.id, started_at=inc.started_at, last_onset=last,
                     services={a.service for a in anomalies} | set(inc.services), resolved_at=inc.resolved_at)

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
            key = (se.service, se.metric, canonical_labels(se.labels))
            if ev.kind == "open":
                if key in self.open_by_series or ev.direction not in bad_direction(se.metric, self.pipeline):
                    continue
                a = Anomaly(id=self.store.next_id(prefix="an"), service=se.service, metric=se.metric,
                            started_at=ev.onset, detected_at=ev.ts, direction=ev.direction,
                            score=round(float(ev.score), 4), baseline=float(ev.baseline),
                            observed=float(ev.observed), labels=se.labels, channel=ev.channel or None,
                            reason=se.reason)
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

    def handle_alerts(self, alert_ids: list[str]) -> set[str]:
        """Open or join incidents for new or changed alerts (read back from the store, which
        holds their latest state); returns the ids of the incidents that changed."""
        dirty: set[str] = set()
        alerts = self.store.list_alerts(alert_ids=alert_ids)
        if not alerts:
            return dirty
        topology = self.store.get_topology()
        for al in alerts:
            inc_id = self._live_incident(al.incident_id) if al.incident_id else None
            if inc_id is None:
                inc_id = self._join_alert(al, topology)
            elif inc_id != al.incident_id:
                al.incident_id = inc_id
                self.store.save_alerts(alerts=[al])
            self._refresh(inc_id)
            dirty.add(inc_id)
        return dirty

    def _live_incident(self, inc_id: str) -> str | None:
        """The incident an id names now (following merges), or None when it is gone."""
        seen: set[str] = set()
        while inc_id not in self.groups and self.store.get_incident(incident_id=inc_id) is None:
            nxt = self.store.merged_into(incident_id=inc_id)
            if nxt is None or nxt in seen:
                return None
            seen.add(inc_id)
            inc_id = nxt
        return inc_id

    def _join_alert(self, al: Alert, topology: list[Edge]) -> str:
        """An alert joins the incidents around its start on its services (same rules as an
        anomaly, for each of its services), or opens one at its start time."""
        ids: list[str] = []
        reason = ""
        for svc in al.services:
            probe = Anomaly(id=al.id, service=svc, metric=al.name, started_at=al.starts_at,
                            detected_at=al.starts_at, direction="up", score=0.0, baseline=0.0, observed=0.0)
            d = decide(probe, list(self.groups.values()), topology, gap=self.gap, max_hops=self.max_hops)
            for i in d.incident_ids:
                if i not in ids:
                    ids.append(i)
                    reason = reason or d.reason
        if not ids:
            inc_id = self.store.next_id(prefix="inc")
            self.groups[inc_id] = Group(id=inc_id, started_at=al.starts_at, last_onset=al.starts_at,
                                        services=set(al.services))
            al.incident_id, al.join_reason = inc_id, f"opened by alert {al.name}"
            self.store.save_alerts(alerts=[al])
            return inc_id
        target = min(ids, key=lambda i: (self.groups[i].started_at, i))
        al.incident_id, al.join_reason = target, f"alert joined: {reason}"
        self.store.save_alerts(alerts=[al])
        g = self.groups[target]
        g.services |= set(al.services)
        self._merge(target, [i for i in ids if i != target])
        return target

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
            moved_alerts = self.store.list_alerts(incident_ids=[other])
            for al in moved_alerts:
                al.incident_id = target
                al.join_reason = f"merged from {other}: {al.join_reason or ''}".strip()
            with self.store.unit_of_work() as tx:  # one transaction: a merge is never half done
                tx.save_anomalies(anomalies=moved)
                tx.save_alerts(alerts=moved_alerts)  # its alerts follow to the survivor
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
        alerts = self.store.list_alerts(incident_ids=[inc_id])
        if not anomalies and not alerts:
            return
        existing = self.store.get_incident(incident_id=inc_id)
        services: list[str] = []
        for a in sorted(anomalies, key=lambda a: (a.started_at, -a.score)):
            if a.service not in services:
                services.append(a.service)
        for al in alerts:
            services.extend(s for s in al.services if s not in services)
        ends = [a.ended_at for a in anomalies] + [al.ends_at if al.status == "resolved" else None for al in alerts]
        all_ended = all(e is not None for e in ends)
        resolved_at = max(e for e in ends if e is not None) if all_ended else None
        starts = [a.started_at for a in anomalies] + [al.starts_at for al in alerts]
        started = min(starts)
        detected = min([a.detected_at for a in anomalies] + [al.starts_at for al in alerts])
        sev = severity([a.score for a in anomalies], len(services), [ratio(a) for a in anomalies]) if anomalies else 0.0
        inc = Incident(
            id=inc_id, status="RESOLVED" if all_ended else "OPEN",
            title=title(anomalies) if anomalies else alert_title(alerts),
            started_at=started, detected_at=detected, resolved_at=resolved_at, services=services,
            severity=max(sev, alert_severity(alerts)),
            anomaly_count=len(anomalies),
            top_suspect=existing.top_suspect if existing else None,
            no_convincing_change=existing.no_convincing_change if existing else False,
            rca_version=existing.rca_version if existing else 0,
        )
        self.store.save_incidents(incidents=[inc])
        g = self.groups.get(inc_id)
        if g is not None:
            g.started_at = started
            g.last_onset = max(starts)
            g.services = set(services)
            g.resolved_at = resolved_at
