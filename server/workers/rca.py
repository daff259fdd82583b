"""RCA worker: incidents whose data changed -> ranked suspects; retraining after labels.

RCA is debounced on time: deliveries are held (not acknowledged) and the incidents they
name analysed together once no new message came for ``rca_quiet_seconds`` or the oldest
held one waited ``rca_max_delay_seconds``. Analysing an incident replaces its suspects,
so doing it twice (a redelivery after a crash) changes nothing: idempotent per incident.
A change or log event re-examines only incidents whose RCA window it falls in.

The retrain worker consumes label events, retrains the ranking model (versioned in the
state store) and publishes "model retrained", after which open incidents are re-ranked.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from server.bus.base import Bus, Delivery
from server.events import (
    ChangesAdded,
    Event,
    IncidentsNeedRca,
    LabelAdded,
    LogsAdded,
    ModelRetrained,
    RerunRequested,
    delivered,
    encode,
)
from server.rca.service import RcaService, candidate_window
from server.settings import Settings
from server.status import StatusBoard
from server.store.base import Store
from server.topics import Topics
from server.workers.base import StageWorker


def _spans(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Sorted times grouped into [first, last] spans wherever consecutive times are at most
    ``gap`` apart: one store query per span instead of one per change, without
    re-analysing the incidents between far-apart changes."""
    out: list[tuple[float, float]] = []
    for t in times:
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _window_span() -> float:
    before, after = candidate_window(0.0)
    return after - before


class RcaWorker(StageWorker):
    stage = "rca"
    max_records = 1000

    def __init__(self, *, bus: Bus, store: Store, settings: Settings, status: StatusBoard, rca: RcaService,
                 metrics: Any = None, member_id: str | None = None) -> None:
        self.topics_ = Topics.of(settings)
        super().__init__(bus=bus, status=status, group=self.topics_.group("rca"),
                         topics=self.topics_.consumed("rca"), member_id=member_id)
        self.store = store
        self.settings = settings
        self.rca = rca
        self.metrics = metrics
        self.dirty: set[str] = set()
        self.held: list[Delivery] = []
        self._first_held = 0.0
        self._last_msg = 0.0
        self.watermark = 0.0
        self.analyses = 0
        ck = store.load_checkpoint(stage="grouping", partition=0)  # the event time grouping had reached
        if ck is not None:
            self.watermark = float(orjson.loads(ck.state).get("watermark") or 0.0)

    def _incidents_near(self, lo: float, hi: float) -> set[str]:
        """Incidents whose RCA window overlaps [lo, hi] (from the store, so data that
        arrives after an incident resolved still reaches its RCA)."""
        before, after = candidate_window(0.0)
        incs = self.store.list_incidents(since=lo - after, until=hi - before, limit=100_000)
        return {i.id for i in incs}

    def _open(self) -> set[str]:
        return {i.id for i in self.store.list_incidents(status="OPEN", limit=100_000)}

    @staticmethod
    def _reads_store(events: list[Event]) -> bool:
        return any(isinstance(ev, ChangesAdded | LogsAdded | ModelRetrained)
                   or (isinstance(ev, IncidentsNeedRca) and ev.all_open) for ev in events)

    def _collect(self, events: list[Event]) -> set[str]:
        dirty: set[str] = set()
        for ev in events:
            if isinstance(ev, IncidentsNeedRca):
                dirty.update(ev.incident_ids)
                if ev.watermark is not None:
                    self.watermark = max(self.watermark, ev.watermark)
                if ev.all_open:
                    dirty |= self._open()
            elif isinstance(ev, ChangesAdded):
                for lo, hi in _spans(sorted(ev.ts), _window_span()):
                    dirty |= self._incidents_near(lo, hi)
            elif isinstance(ev, LogsAdded):
                dirty |= self._incidents_near(ev.min_ts, ev.max_ts)
            elif isinstance(ev, RerunRequested):
                dirty.add(ev.incident_id)
            elif isinstance(ev, ModelRetrained):
                self.rca.reload_model()
                dirty |= self._open()
        return dirty

    async def handle(self, deliveries: list[Delivery]) -> bool:
        events = [delivered(d) for d in deliveries]
        if self._reads_store(events):
            self.dirty |= await asyncio.to_thread(self._collect, events)
        else:  # incident ids and watermarks only: no worker thread needed
            self.dirty |= self._collect(events)
        now = time.monotonic()
        if not self.held:
            self._first_held = now
        self._last_msg = now
        self.held.extend(deliveries)
        return False  # acknowledged after the analyses are stored (tick)

    def _due(self) -> bool:
        now = time.monotonic()
        p = self.settings.pipeline
        return bool(self.held) and (now - self._last_msg >= p.rca_quiet_seconds
                                    or now - self._first_held >= p.rca_max_delay_seconds)

    def poll_timeout(self) -> float:
        if not self.held:
            return 0.5
        p = self.settings.pipeline
        now = time.monotonic()
        return max(0.0, min(self._last_msg + p.rca_quiet_seconds, self._first_held + p.rca_max_delay_seconds) - now)

    def _analyse(self, dirty: set[str]) -> None:
        for inc_id in sorted(dirty):
            if self.store.get_incident(incident_id=inc_id) is None:
                continue  # merged away
            t0 = time.perf_counter()
            self.rca.analyse_incident(inc_id, watermark=self.watermark)
            self.analyses += 1
            if self.metrics is not None:
                self.metrics.rca_seconds.observe(time.perf_counter() - t0)

    async def tick(self) -> None:
        if not self._due():
            return
        dirty, self.dirty = self.dirty, set()
        held, self.held = self.held, []
        if dirty:
            try:
                await asyncio.to_thread(self._analyse, dirty)
            except Exception as exc:
                self._fail(exc)
        assert self.consumer is not None
        await self.consumer.ack(held)

    async def on_stop(self) -> None:
        if self.held:
            self._last_msg = 0.0
            self._first_held = 0.0
            await self.tick()

    def report(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "analyses": self.analyses, "held": len(self.held)}


class RetrainWorker(StageWorker):
    stage = "retrain"
    max_records = 1000

    def __init__(self, *, bus: Bus, store: Store, settings: Settings, status: StatusBoard, rca: RcaService,
                 member_id: str | None = None) -> None:
        self.topics_ = Topics.of(settings)
        super().__init__(bus=bus, status=status, group=self.topics_.group("retrain"),
                         topics=self.topics_.consumed("retrain"), member_id=member_id)
        self.store = store
        self.rca = rca

    async def handle(self, deliveries: list[Delivery]) -> bool:
        incidents: set[str] = set()
        labels = 0
        for d in deliveries:
            ev = delivered(d)
            if isinstance(ev, LabelAdded):
                labels += 1
                label = next((lbl for lbl in self.store.list_labels(incident_id=ev.incident_id)
                              if lbl.id == ev.label_id), None)
                if label is None:  # moved with a merge since
                    label = next((lbl for lbl in self.store.list_labels() if lbl.id == ev.label_id), None)
                if label is not None:
                    self.rca.on_label(label)
                incidents.add(ev.incident_id)
        if not labels:
            return True  # other events on the topic are for other stages
        # the labelled incidents are re-ranked at once; retraining follows
        await self.bus.publish(self.topics_.analysis, encode(IncidentsNeedRca(incident_ids=tuple(sorted(incidents)))),
                               key=b"labels")
        trained = await asyncio.to_thread(self.rca.retrain_if_needed)
        if trained:
            await self.bus.publish(self.topics_.analysis, encode(ModelRetrained(version=self.rca._version)),
                                   key=b"model")
        return True
