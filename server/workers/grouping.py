"""Grouping worker (one writer): anomaly events and topology changes -> incidents.

Detector events are applied in event time per series; an event not newer than the last
one applied for its series is a redelivery (or a re-read after a detector restored an
older checkpoint) and is dropped, so no anomaly or incident is duplicated. The per-series
times are checkpointed in the state store in the same unit of work as the incidents and
anomalies a batch changed, before the batch is acknowledged; a batch that changed
nothing (no detector event, the common case) writes nothing, and the watermark alone is
checkpointed every ``checkpoint_seconds``. Each batch publishes one "incidents need RCA"
event with the incidents it changed: a topology change re-examines only incidents near
the new edges.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import orjson

from server.bus.base import Bus, Delivery, TopicPartition
from server.detector.core import DetectorEvent
from server.detector.worker import SeriesEvent
from server.events import (
    AlertsChanged,
    AnomalyEvents,
    Event,
    IncidentsNeedRca,
    TopologyChanged,
    delivered,
    encode,
)
from server.grouping.worker import IncidentManager
from server.model import Edge
from server.model.labels import parse_labels
from server.settings import Settings
from server.status import StatusBoard
from server.store.base import Store
from server.topics import Topics
from server.workers.base import StageWorker

_SEP = "\x1f"


def near(edges: list[Edge], seeds: set[str], hops: int) -> set[str]:
    """Services within ``hops`` call edges (either direction) of ``seeds``."""
    adj: dict[str, set[str]] = {}
    for e in edges:
        adj.setdefault(e.source, set()).add(e.target)
        adj.setdefault(e.target, set()).add(e.source)
    seen = set(seeds)
    frontier = deque((s, 0) for s in seeds)
    while frontier:
        svc, d = frontier.popleft()
        if d == hops:
            continue
        for n in adj.get(svc, ()):
            if n not in seen:
                seen.add(n)
                frontier.append((n, d + 1))
    return seen


class GroupingWorker(StageWorker):
    stage = "grouping"
    max_records = 256
    #: hops from a new edge within which an incident's RCA may change (the RCA looks at
    #: two hops of dependencies and direct callers; one more for the blast radius)
    TOPOLOGY_HOPS = 3

    def __init__(self, *, bus: Bus, store: Store, settings: Settings, status: StatusBoard,
                 member_id: str | None = None) -> None:
        self.topics_ = Topics.of(settings)
        super().__init__(bus=bus, status=status, group=self.topics_.group("grouping"),
                         topics=self.topics_.consumed("grouping"), member_id=member_id)
        self.store = store
        self.settings = settings
        self._incidents: IncidentManager | None = None
        self.last_ts: dict[str, float] = {}
        self.watermark: float | None = None
        self._sent_watermark: float | None = None
        self._ckpt_offset = 0  # checkpoints are numbered (this stage reads two topics)
        self._saved_watermark: float | None = None
        self._last_ckpt = time.monotonic()

    @property
    def incidents(self) -> IncidentManager:
        if self._incidents is None:
            self._restore()
        assert self._incidents is not None
        return self._incidents

    def _restore(self) -> None:
        """Incidents and per-series event times as the store holds them now."""
        self._incidents = IncidentManager(self.store, self.settings.grouping, self.settings.pipeline)
        self.last_ts, self.watermark = {}, None
        ck = self.store.load_checkpoint(stage="grouping", partition=0)
        self._ckpt_offset = ck.offset if ck is not None else 0
        if ck is not None:
            d = orjson.loads(ck.state)
            self.last_ts = {str(k): float(v) for k, v in d.get("last_ts", {}).items()}
            self.watermark = d.get("watermark")
        self._saved_watermark = self.watermark

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Owner of the (only) partition, maybe taking over from another grouping worker:
        start from what the store holds now."""
        await asyncio.to_thread(self._restore)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self._incidents = None  # another worker writes incidents now

    @staticmethod
    def _stores(events: list[Event]) -> bool:
        return any((isinstance(ev, AnomalyEvents) and ev.events) or isinstance(ev, TopologyChanged | AlertsChanged)
                   for ev in events)

    def _advance(self, events: list[Event]) -> None:
        """Nothing to store (no detector event, the common case): only the watermark moves."""
        for ev in events:
            if isinstance(ev, AnomalyEvents) and ev.watermark is not None:
                self.watermark = ev.watermark if self.watermark is None else max(self.watermark, ev.watermark)

    def _apply(self, events: list[Event]) -> set[str]:
        if not self._stores(events):
            self._advance(events)
            return set()
        incidents = self.incidents  # restored (outside the transaction) if needed
        with self.store.unit_of_work():  # incidents, anomalies and the per-series times together
            dirty: set[str] = set()
            for ev in events:
                if isinstance(ev, AnomalyEvents):
                    dirty |= self._apply_anomalies(ev)
                elif isinstance(ev, TopologyChanged):
                    topology = self.store.get_topology()
                    dirty |= incidents.regroup(topology)
                    dirty |= self._affected(topology, {s for e in ev.edges for s in e})
                elif isinstance(ev, AlertsChanged):  # stored by the API; read back in their latest state
                    dirty |= incidents.handle_alerts(list(ev.ids))
            incidents.prune()
            self._checkpoint()
        return dirty

    def _apply_anomalies(self, ev: AnomalyEvents) -> set[str]:
        if ev.watermark is not None:
            self.watermark = ev.watermark if self.watermark is None else max(self.watermark, ev.watermark)
        fresh: list[SeriesEvent] = []
        for a in ev.events:
            key = f"{a.service}{_SEP}{a.metric}{_SEP}{a.labels or ''}" if a.labels else f"{a.service}{_SEP}{a.metric}"
            if a.ts <= self.last_ts.get(key, float("-inf")):
                continue  # already applied (redelivery or detector re-read)
            self.last_ts[key] = a.ts
            fresh.append(SeriesEvent(a.service, a.metric, 0, DetectorEvent(
                series=0, kind=a.kind, ts=a.ts, onset=a.onset, direction=a.direction,  # type: ignore[arg-type]
                score=a.score, baseline=a.baseline, observed=a.observed, channel=a.channel or ""),
                parse_labels(a.labels) or None, a.reason))
        return self.incidents.handle(fresh)

    def _checkpoint(self) -> None:
        self._ckpt_offset += 1
        self.store.save_checkpoint(stage="grouping", partition=0, offset=self._ckpt_offset, state=orjson.dumps(
            {"last_ts": self.last_ts, "watermark": self.watermark}))
        self._saved_watermark = self.watermark
        self._last_ckpt = time.monotonic()

    def _affected(self, topology: list[Edge], endpoints: set[str]) -> set[str]:
        """Incidents (open, or resolved recently) with a service near the new edges."""
        around = near(topology, endpoints, self.TOPOLOGY_HOPS)
        horizon = self.settings.pipeline.rca_resolved_horizon_seconds
        wm = self.watermark if self.watermark is not None else float("inf")
        out = set()
        for g in self.incidents.groups.values():
            if g.resolved_at is not None and g.resolved_at < wm - horizon:
                continue  # resolved long ago: left alone
            if g.services & around:
                out.add(g.id)
        return out

    async def handle(self, deliveries: list[Delivery]) -> bool:
        events = [delivered(d) for d in deliveries]
        if self._stores(events):
            dirty = await asyncio.to_thread(self._apply, events)
        else:  # in memory only: no worker thread needed
            self._advance(events)
            dirty = set()
        if dirty or self.watermark != self._sent_watermark:
            need = IncidentsNeedRca(incident_ids=tuple(sorted(dirty)), watermark=self.watermark)
            await self.bus.publish(self.topics_.analysis, encode(need), key=b"grouping", event=need)
            self._sent_watermark = self.watermark
        return True

    async def tick(self) -> None:
        if (self.watermark != self._saved_watermark and self._incidents is not None
                and time.monotonic() - self._last_ckpt > self.settings.pipeline.checkpoint_seconds):
            async with self._work:
                await asyncio.to_thread(self._checkpoint)

    async def on_stop(self) -> None:
        if self.watermark != self._saved_watermark and self._incidents is not None:
            await asyncio.to_thread(self._checkpoint)

    def report(self) -> dict[str, Any]:
        return {"watermark": self.watermark,
                "incidents_in_memory": len(self._incidents.groups) if self._incidents is not None else 0}
