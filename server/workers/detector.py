"""Detector worker: metric batches (partitioned by series) -> anomaly events.

Each owned partition has its own :class:`DetectorStage` (the series of a partition are
only ever seen by its owner). Its state is checkpointed in the state store together with
the offset it covers: every ``checkpoint_seconds``, when a partition is taken away
(rebalance) and on stop. A new owner restores the checkpoint and, on a durable bus,
re-reads from the checkpoint's offset, so the state is exactly what the deliveries
before that offset built. The re-read re-emits anomaly events already published; they
are identical (the detector is deterministic) and grouping drops them by event time.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from server.bus.base import Bus, Delivery, TopicPartition
from server.detector.core import DetectorConfig, warm_up
from server.detector.worker import DetectorStage, SeriesEvent
from server.events import AnomalyEvent, AnomalyEvents, MetricBatch, MetricPoints, delivered, encode
from server.model.labels import canonical_labels
from server.settings import Settings
from server.status import Checkpoints, StatusBoard
from server.store.base import Store
from server.topics import Topics
from server.workers.base import StageWorker

log = logging.getLogger("rca.workers.detector")


def detector_config(settings: Settings) -> DetectorConfig:
    return DetectorConfig(**settings.detector.model_dump())


def dump_stage(stage: DetectorStage) -> bytes:
    """Serialise through the stage's own save() (whatever it persists, this keeps)."""
    with tempfile.TemporaryDirectory(prefix="rca-ckpt-") as d:
        path = Path(d) / "state.npz"
        stage.save(path)
        return path.read_bytes()


def load_stage(stage: DetectorStage, blob: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="rca-ckpt-") as d:
        path = Path(d) / "state.npz"
        path.write_bytes(blob)
        stage.load(path)


class DetectorWorker(StageWorker):
    stage = "detector"
    max_records = 64

    def __init__(self, *, bus: Bus, store: Store, settings: Settings, status: StatusBoard,
                 metrics: Any = None, member_id: str | None = None) -> None:
        self.topics_ = Topics.of(settings)
        super().__init__(bus=bus, status=status, group=self.topics_.group("detector"),
                         topics=[self.topics_.metrics], member_id=member_id)
        self.store = store
        self.settings = settings
        self.config = detector_config(settings)
        self.metrics = metrics
        self.checkpoints = Checkpoints(store, "detector", durable=bus.durable)
        self.stages: dict[int, DetectorStage] = {}
        self.next_offset: dict[int, int] = {}
        self._last_ckpt = time.monotonic()
        self.legacy_state = Path(settings.data_dir) / "detector_state.npz"
        warm_up()  # compile the kernel before the first batch, not while it waits

    # ---- partitions ------------------------------------------------------------------------
    def _restore(self, partition: int) -> tuple[DetectorStage, int | None]:
        stage = DetectorStage(self.config)
        try:
            ck = self.checkpoints.load(partition)
            if ck is not None:
                load_stage(stage, ck.state)
                return stage, ck.offset
            if self.bus.partitions(self.topics_.metrics) == 1 and self.legacy_state.exists():
                stage.load(self.legacy_state)  # state saved by an older version of the server
        except Exception:  # a corrupt checkpoint must not stop the worker: start fresh
            log.exception("could not restore detector state of partition %d; starting fresh", partition)
            stage = DetectorStage(self.config)
        return stage, None

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in sorted(partitions, key=lambda t: t.partition):
            stage, offset = await asyncio.to_thread(self._restore, tp.partition)
            self.stages[tp.partition] = stage
            if self.bus.durable and self.consumer is not None:
                # state and offset go together: re-read what the checkpoint does not cover
                # (everything, when there is no checkpoint yet)
                self.consumer.seek(tp, offset or 0)
                if offset is not None:
                    self.next_offset[tp.partition] = offset
            log.info("detector %s owns partition %d (checkpoint offset %s)",
                     self.consumer.member_id if self.consumer else "?", tp.partition, offset)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            await asyncio.to_thread(self._checkpoint, tp.partition)
            self.stages.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)

    def _checkpoint(self, partition: int) -> None:
        stage = self.stages.get(partition)
        if stage is None or partition not in self.next_offset:
            return
        self.checkpoints.save(partition, offset=self.next_offset[partition], blob=dump_stage(stage))

    def checkpoint_all(self) -> None:
        for p in list(self.stages):
            self._checkpoint(p)

    # ---- work ------------------------------------------------------------------------------
    def _detect(self, d: Delivery) -> AnomalyEvents:
        ev = delivered(d)
        stage = self.stages.get(d.partition)
        if stage is None:  # not ours any more (revoked between poll and handle)
            raise RuntimeError(f"partition {d.partition} not owned")
        if not isinstance(ev, MetricBatch | MetricPoints):
            return AnomalyEvents(partition=d.partition, source_offset=d.offset)
        t0 = time.perf_counter()
        found: list[SeriesEvent] = (stage.process_points(ev.points()) if isinstance(ev, MetricPoints)
                                    else stage.process(ev.table()))
        if self.metrics is not None:
            self.metrics.detect_seconds.observe(time.perf_counter() - t0)
        self.next_offset[d.partition] = d.offset + 1
        wm = None if stage.watermark == float("-inf") else float(stage.watermark)
        return AnomalyEvents(
            events=tuple(AnomalyEvent(service=s.service, metric=s.metric, kind=s.event.kind, ts=float(s.event.ts),
                                      onset=float(s.event.onset), direction=s.event.direction,
                                      score=float(s.event.score), baseline=float(s.event.baseline),
                                      observed=float(s.event.observed),
                                      labels=canonical_labels(s.labels), channel=s.event.channel or None,
                                      reason=s.reason) for s in found),
            watermark=wm, partition=d.partition, source_offset=d.offset)

    async def handle(self, deliveries: list[Delivery]) -> bool:
        for d in deliveries:
            if d.partition not in self.stages:
                continue  # revoked since the poll: its new owner reads it
            out = await asyncio.to_thread(self._detect, d)
            await self.bus.publish(self.topics_.grouping, encode(out), key=b"p%d" % d.partition, event=out)
        if self.metrics is not None:
            self.metrics.late_points.set(self.late_points)
        return True

    async def tick(self) -> None:
        if time.monotonic() - self._last_ckpt > self.settings.pipeline.checkpoint_seconds:
            self._last_ckpt = time.monotonic()
            await asyncio.to_thread(self.checkpoint_all)

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.checkpoint_all)

    @property
    def late_points(self) -> int:
        return sum(s.late_points for s in self.stages.values())

    @property
    def watermark(self) -> float | None:
        w = max((s.watermark for s in self.stages.values()), default=float("-inf"))
        return None if w == float("-inf") else float(w)

    def report(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "late_points": self.late_points,
                "partitions": sorted(self.stages), "points": sum(s.points for s in self.stages.values())}
