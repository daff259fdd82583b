"""What the API does with an accepted batch: store it, then publish it, as one step.

:meth:`Publisher.store_metrics` and :meth:`Publisher.store_event` store a batch (with the
client's idempotency key, when it sent one, in the same transaction) and publish what
the stages need: metric points on the ``metrics`` topic (split by partition: a series
always lands on the partition its ``service\\x1fmetric`` key hashes to, see
:func:`server.bus.base.partition_of`, so each detector worker sees whole series), every
other event on the ``events`` topic.

With ``journal`` (the in-process bus, whose source topics are the store: see
:mod:`server.journal`) each event is also written to the ingest journal inside that
transaction and a batch's sequence number is its offset on the bus; stores and publishes
are serialised per topic so that offsets and sequence numbers stay equal. On Kafka the
broker is the log and nothing is journaled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from server.bus.base import Bus
from server.events import (
    AlertsChanged,
    ChangesAdded,
    Event,
    LabelAdded,
    LogsAdded,
    MetricPoints,
    RerunRequested,
    TopologyChanged,
    encode,
)
from server.model import Change, Edge, Label
from server.model.points import Points
from server.store.base import PointLog, SeriesLimits, Store
from server.topics import Topics

SEP = "\x1f"
T = TypeVar("T")
#: a metrics-topic message: partition, encoded value (empty in process), event handed over as is
_Message = tuple[int, bytes, MetricPoints | None]


@dataclass(slots=True)
class Idempotency:
    """A client's ``Idempotency-Key`` and the answer to keep under it (saved in the same
    transaction as the batch). ``body`` may be a function of what the store returned."""

    key: str
    endpoint: str
    now: float
    status: int = 202
    body: str | Callable[[Any], str] = ""
    saved: bool = False


class AlreadyStored(Exception):
    """Another request with this idempotency key was stored meanwhile: answer as it was."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__("idempotency key already used")
        self.status, self.body = status, body


def split_by_partition(table: pa.Table, partitions: int) -> list[tuple[int, pa.Table]]:
    """Rows of a wide table grouped by the partition of their series (row order kept)."""
    if partitions <= 1:
        return [(0, table)]
    pts = Points.from_table(table)
    parts = pts.split(pts.partitions(partitions), partitions)
    return [(p, part.table()) for p, part in enumerate(parts) if part.n]


def _key(event: Event) -> bytes:
    return event.TYPE.encode()


class Publisher:
    def __init__(self, bus: Bus, topics: Topics, store: Store | None = None, *, journal: bool = False,
                 points_log: bool = False) -> None:
        self.bus = bus
        self.topics = topics
        self.store = store
        #: the store numbers the batches it stores (checked once: a protocol check walks its methods)
        self._numbers_batches = store is not None and isinstance(store, PointLog)
        #: the events topic's log is the store's journal (in-process bus): offsets = journal sequence numbers
        self.journal = journal
        #: the metrics topic's log is the stored batches (in-process bus): offsets = ingest sequence numbers
        self.points_log = points_log
        self._metrics_lock = asyncio.Lock()
        self._events_lock = asyncio.Lock()
        self._partition_cache: dict[tuple[str, str], int] = {}
        #: messages this process published (the API's backpressure estimate between readings)
        self.published = 0

    # ---- store, then publish ------------------------------------------------------------
    async def store_metrics(self, points: Points, *, limits: SeriesLimits | None = None,
                            idempotency: Idempotency | None = None) -> int:
        """Store a metric batch (all or nothing, under the cardinality limits) and publish it;
        returns its sequence number (-1 when the store does not number batches)."""
        async with self._metrics_lock:
            seq, messages = await asyncio.to_thread(self._store_points, points, limits, idempotency)
            await self._publish_messages(messages, seq)
        return seq

    async def decode_and_store(self, decode: Callable[[], Points], *, limits: SeriesLimits | None = None,
                               idempotency: Idempotency | None = None) -> tuple[Points, int]:
        """Decode a metric batch (``decode`` raises what is wrong with it: nothing stored) and
        store and publish it as :meth:`store_metrics` does; an empty batch is not stored
        (sequence number -1). While no other batch is being stored, decode and store run in
        one worker-thread hand-off instead of two (a hand-off costs context switches: on one
        core about as much CPU as a quarter of an Arrow batch's decode); while one is, the
        decode runs first, beside it."""
        if self._metrics_lock.locked():
            points = await asyncio.to_thread(decode)
            if not points.n:
                return points, -1
            return points, await self.store_metrics(points, limits=limits, idempotency=idempotency)
        async with self._metrics_lock:
            points, seq, messages = await asyncio.to_thread(self._decode_store, decode, limits, idempotency)
            if points.n:
                await self._publish_messages(messages, seq)
        return points, seq

    def _decode_store(self, decode: Callable[[], Points], limits: SeriesLimits | None,
                      idem: Idempotency | None) -> tuple[Points, int, list[_Message]]:
        points = decode()
        if not points.n:
            return points, -1, []
        seq, messages = self._store_points(points, limits, idem)
        return points, seq, messages

    def _store_points(self, points: Points, limits: SeriesLimits | None,
                      idem: Idempotency | None) -> tuple[int, list[_Message]]:
        seq = self._insert_points(points, limits, idem)
        return seq, self._messages(points, seq)  # encoded here, off the event loop

    def _insert_points(self, points: Points, limits: SeriesLimits | None, idem: Idempotency | None) -> int:
        store = self._store()

        def insert() -> int:
            if self._numbers_batches:
                return cast(PointLog, store).insert_points(points=points, limits=limits)
            store.insert_metrics(table=points.table(), limits=limits)
            return -1

        if idem is None:
            return insert()
        with store.unit_of_work():
            self._check_key(idem)
            seq = insert()
            self._save_key(idem, points)
        return seq

    async def store_event(self, work: Callable[[], T], event: Callable[[T], Event | None], *,
                          idempotency: Idempotency | None = None) -> T:
        """Run ``work`` (the store writes of one request) and publish the event it made
        (``event(result)``; None: nothing to tell the stages), journaled with the writes."""
        async with self._events_lock:
            result, ev, seq = await asyncio.to_thread(self._store_event, work, event, idempotency)
            if ev is not None:
                await self._publish_event(ev, seq)
        return result

    def _store_event(self, work: Callable[[], T], event: Callable[[T], Event | None],
                     idem: Idempotency | None) -> tuple[T, Event | None, int]:
        store = self._store()
        if not self.journal and idem is None:
            result = work()
            return result, event(result), -1
        with store.unit_of_work():
            if idem is not None:
                self._check_key(idem)
            result = work()
            ev = event(result)
            seq = store.append_journal(log=self.topics.events, key=_key(ev), value=encode(ev)) \
                if ev is not None and self.journal else -1
            if idem is not None:
                self._save_key(idem, result)
        return result, ev, seq

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("this publisher has no store")
        return self.store

    def _check_key(self, idem: Idempotency) -> None:
        seen = self._store().get_idempotent(key=idem.key, endpoint=idem.endpoint)
        if seen is not None:
            raise AlreadyStored(*seen)

    def _save_key(self, idem: Idempotency, result: Any) -> None:
        body = idem.body(result) if callable(idem.body) else idem.body
        self._store().save_idempotent(key=idem.key, endpoint=idem.endpoint, status=idem.status, body=body,
                                      now=idem.now)
        idem.saved = True

    def _messages(self, points: Points, seq: int) -> list[_Message]:
        """(partition, encoded message, event) of a batch: one per partition it touches, and
        on the store-backed metrics log one per partition (offsets follow sequence numbers).
        That log is the store (the in-process bus): the message is the points themselves,
        handed to the detector in this process without an encoding (it reads the store back
        after a restart)."""
        n = self.bus.partitions(self.topics.metrics)
        parts = points.split(points.partitions(n, self._partition_cache), n) if n > 1 else [points]
        if self.points_log:
            return [(p, b"", MetricPoints.in_memory(part, seq)) for p, part in enumerate(parts)]
        return [(p, encode(MetricPoints.from_points(part, seq)), None) for p, part in enumerate(parts) if part.n]

    async def _publish_messages(self, messages: list[_Message], seq: int) -> None:
        topic = self.topics.metrics
        for p, message, event in messages:
            self.published += 1
            if self.points_log and self._out_of_step(topic, p, seq):
                continue
            await self.bus.publish(topic, message, key=b"p%d" % p, partition=p, event=event)

    async def _publish_points(self, points: Points, seq: int) -> None:
        await self._publish_messages(self._messages(points, seq), seq)

    async def _publish_event(self, ev: Event, seq: int) -> None:
        self.published += 1
        if self.journal and self._out_of_step(self.topics.events, 0, seq):
            return
        await self.bus.publish(self.topics.events, encode(ev), key=_key(ev), partition=0, event=ev)

    def _out_of_step(self, topic: str, partition: int, seq: int) -> bool:
        """A source topic's next offset must be the batch's sequence number; if it is not
        (never expected), the bus catches up from the store instead of taking the message."""
        end_offset = getattr(self.bus, "end_offset", None)
        if end_offset is None or end_offset(topic, partition) == seq:
            return False
        self.bus.resync(topic)  # type: ignore[attr-defined]
        return True

    # ---- publish only (stored elsewhere already; tests and tools) --------------------------
    async def metrics(self, table: pa.Table) -> None:
        await self._publish_points(Points.from_table(table), -1)

    async def logs(self, table: pa.Table) -> None:
        await self._publish_event(logs_added(table), -1)

    async def changes(self, changes: list[Change]) -> None:
        await self._publish_event(changes_added(changes), -1)

    async def topology(self, edges: list[Edge]) -> None:
        await self._publish_event(TopologyChanged(edges=tuple((e.source, e.target) for e in edges)), -1)

    async def alerts(self, alert_ids: list[str]) -> None:
        """New or changed alerts (stored by the API): the grouping stage opens or joins incidents."""
        await self._publish_event(AlertsChanged(ids=tuple(alert_ids)), -1)

    async def label(self, label: Label) -> None:
        await self._publish_event(LabelAdded(label_id=label.id, incident_id=label.incident_id), -1)

    async def rerun(self, incident_id: str) -> None:
        await self._publish_event(RerunRequested(incident_id=incident_id), -1)


def logs_added(table: pa.Table) -> LogsAdded:
    ts = table.column("ts").to_numpy()
    services = tuple(sorted(pc.unique(table.column("service")).to_pylist()))
    return LogsAdded(min_ts=float(ts.min()), max_ts=float(ts.max()), count=table.num_rows, services=services)


def changes_added(changes: list[Change]) -> ChangesAdded:
    return ChangesAdded(ids=tuple(c.id for c in changes), ts=tuple(float(c.ts) for c in changes))
