"""The loop every stage worker shares: poll, handle, store effects, acknowledge.

A stage implements ``handle(deliveries)`` (effects stored, downstream events published)
and may hold deliveries back (``hold``) to acknowledge them later, e.g. RCA debouncing.
A transient backend error (store or bus down) re-delivers the batch after a pause; any
other error is counted, reported and the batch is acknowledged so one bad message cannot
stall the pipeline (the failure shows in ``/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from server import obs
from server.bus.base import Bus, BusError, Consumer, Delivery, TopicPartition
from server.status import StatusBoard
from server.store.base import StoreError

log = logging.getLogger("rca.workers")


class _Locked:
    """Rebalance callbacks never run while the worker is inside ``handle`` (a Kafka
    consumer calls them from its coordinator task)."""

    def __init__(self, worker: StageWorker) -> None:
        self.worker = worker

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        async with self.worker._work:
            await self.worker.on_revoked(partitions)

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        async with self.worker._work:
            await self.worker.on_assigned(partitions)


class StageWorker:
    stage: str = "stage"
    max_records: int = 500
    #: this process's Prometheus metrics (None: not measured)
    metrics: Any = None

    def __init__(self, *, bus: Bus, status: StatusBoard, group: str, topics: Sequence[str],
                 member_id: str | None = None) -> None:
        self.bus = bus
        self.status = status
        self.group = group
        self.topics = list(topics)
        self.member_id = member_id
        self.consumer: Consumer | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.processed = 0
        self._stop = asyncio.Event()
        self._work = asyncio.Lock()
        self._last_report = 0.0
        self._changed = False
        self.running = False

    # ---- hooks -----------------------------------------------------------------------------
    async def handle(self, deliveries: list[Delivery]) -> bool:
        """Process and store; return True to acknowledge now (False: held for later)."""
        raise NotImplementedError

    async def tick(self) -> None:
        """Called after every poll (time-based work such as debounced flushes)."""

    def poll_timeout(self) -> float:
        return 0.5

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        return None

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        return None

    async def on_stop(self) -> None:
        return None

    def report(self) -> dict[str, Any]:
        return {}

    # ---- loop ------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.consumer = await self.bus.consumer(group=self.group, topics=self.topics, listener=_Locked(self),
                                                member_id=self.member_id)
        self.running = True
        self._report(force=True)
        try:
            while not self._stop.is_set():
                try:
                    batch = await self.consumer.poll(max_records=self.max_records, timeout=self.poll_timeout())
                except BusError as exc:
                    self._fail(exc)
                    await asyncio.sleep(1.0)
                    continue
                if batch:
                    await self._process(batch)
                    self._changed = True
                await self.tick()
                self._report(force=not batch and self._changed)
            async with self._work:
                await self.on_stop()
        finally:
            self.running = False
            self._report(force=True)
            with contextlib.suppress(Exception):
                await self.consumer.close()

    async def _process(self, batch: list[Delivery]) -> None:
        assert self.consumer is not None
        t0 = time.perf_counter()
        try:
            async with self._work:
                ack = await self.handle(batch)
            obs.observe_batch(self.metrics, self.stage, time.perf_counter() - t0, len(batch))
        except (StoreError, BusError) as exc:  # transient: redeliver the batch after a pause
            self._fail(exc)
            firsts: dict[TopicPartition, int] = {}
            for d in batch:
                tp = TopicPartition(d.topic, d.partition)
                firsts[tp] = min(firsts.get(tp, d.offset), d.offset)
            for tp, off in firsts.items():
                if tp in self.consumer.assignment():
                    self.consumer.seek(tp, off)
            await asyncio.sleep(1.0)
            return
        except Exception as exc:
            self._fail(exc)
            ack = True
        self.processed += len(batch)
        if ack:
            await self.consumer.ack(batch)

    def _fail(self, exc: BaseException) -> None:
        obs.count_error(self.metrics, self.stage, exc)
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("%s worker error", self.stage)

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < 1.0:
            return
        self._last_report = now
        self._changed = False
        member = self.consumer.member_id if self.consumer is not None else (self.member_id or "?")
        try:
            self.status.report(self.stage, member, {"running": self.running, "errors": self.errors,
                                                    "last_error": self.last_error, "processed": self.processed,
                                                    **self.report()})
        except Exception:  # status is best effort; the work itself must go on
            log.debug("status report failed", exc_info=True)
