"""Kafka bus on aiokafka: works with any Kafka-compatible broker (Apache Kafka, Redpanda...).

* Topics are created at start-up when missing (``RCA_BUS__PARTITIONS`` partitions for
  metrics, one for the others). The producer is idempotent with ``acks=all``, and
  ``publish`` returns once the broker has the message.
* Consumers join the group with auto-commit off: ``ack`` commits offsets explicitly
  after the effects are stored (at-least-once). A member that dies without committing
  loses its partitions after ``RCA_BUS__SESSION_TIMEOUT_MS`` and the next owner reads
  from the last committed offset.
* ``lag`` compares the group's committed offsets with the partitions' end offsets.

Driver errors are translated into :class:`server.bus.base.BusError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KTP

from server.bus.base import (
    BusError,
    Delivery,
    PartitionLag,
    RebalanceListener,
    TopicPartition,
    TopicSpec,
    partition_of,
)
from server.settings import BusSettings

log = logging.getLogger("rca.bus.kafka")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_ids = itertools.count(1)


class KafkaBus:
    durable = True

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.bootstrap = settings.bootstrap_servers
        self._partitions: dict[str, int] = {}
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._consumers: list[KafkaConsumer] = []

    async def start(self, topics: Sequence[TopicSpec]) -> None:
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="rca-admin")
                await self._admin.start()
            existing = set(await self._admin.list_topics())
            new = [NewTopic(t.name, num_partitions=max(1, t.partitions), replication_factor=1,
                            topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
                   for t in topics if t.name not in existing]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                    await self._admin.create_topics(new)
            for _ in range(50):  # metadata of a new topic may take a moment
                described = await self._admin.describe_topics([t.name for t in topics])
                counts = {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
                if all(t.name in counts for t in topics):
                    break
                await asyncio.sleep(0.1)
            else:
                raise BusError(f"topics not available: {[t.name for t in topics if t.name not in counts]}")
            self._partitions.update(counts)
            if self._producer is None:
                self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                                  enable_idempotence=True, max_request_size=MAX_MESSAGE_BYTES,
                                                  client_id="rca-producer")
                await self._producer.start()
            if self._offsets is None:
                self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                                 client_id="rca-offsets")
                await self._offsets.start()
        except KafkaError as exc:
            raise BusError(f"kafka at {self.bootstrap}: {exc}") from exc

    def partitions(self, topic: str) -> int:
        try:
            return self._partitions[topic]
        except KeyError:
            raise BusError(f"unknown topic {topic!r}") from None

    async def publish(self, topic: str, value: bytes, *, key: bytes, partition: int | None = None,
                      event: Any = None) -> None:
        if self._producer is None:
            raise BusError("bus not started")
        p = partition_of(key, self.partitions(topic)) if partition is None else partition
        try:
            await self._producer.send_and_wait(topic, value, key=key, partition=p)
        except KafkaError as exc:
            raise BusError(f"publish to {topic}[{p}]: {exc}") from exc

    async def consumer(self, *, group: str, topics: Sequence[str],
                       listener: RebalanceListener | None = None, member_id: str | None = None) -> KafkaConsumer:
        c = KafkaConsumer(self, group, list(topics), listener, member_id or f"{group}-{next(_ids)}")
        await c.start()
        self._consumers.append(c)
        return c

    async def lag(self, *, group: str, topic: str) -> list[PartitionLag]:
        if self._offsets is None or self._admin is None:
            raise BusError("bus not started")
        tps = [KTP(topic, p) for p in range(self.partitions(topic))]
        try:
            ends = await self._offsets.end_offsets(tps)
            committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        except KafkaError as exc:
            raise BusError(f"lag of {group} on {topic}: {exc}") from exc
        out = []
        for tp in tps:
            om = committed.get(tp)
            c = om.offset if om is not None and om.offset >= 0 else 0
            out.append(PartitionLag(tp.partition, c, int(ends.get(tp, 0))))
        return out

    async def close(self) -> None:
        for c in list(self._consumers):
            await c.close()
        for client in (self._producer, self._offsets):
            if client is not None:
                try:
                    await client.stop()
                except KafkaError:
                    log.debug("error stopping kafka client", exc_info=True)
        if self._admin is not None:
            await self._admin.close()
        self._producer = self._offsets = self._admin = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, listener: RebalanceListener | None) -> None:
        self.listener = listener

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.listener is not None and revoked:
            await self.listener.on_revoked({TopicPartition(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.listener is not None and assigned:
            await self.listener.on_assigned({TopicPartition(tp.topic, tp.partition) for tp in assigned})


class KafkaConsumer:
    def __init__(self, bus: KafkaBus, group: str, topics: list[str], listener: RebalanceListener | None,
                 member_id: str) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.member_id = member_id
        s = bus.settings
        self._c = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap, group_id=group, client_id=member_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(100, s.session_timeout_ms // 4), max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES, fetch_max_wait_ms=50, rebalance_timeout_ms=max(s.session_timeout_ms, 30_000))
        self._listener = _Listener(listener)
        self._closed = False

    async def start(self) -> None:
        try:
            await self._c.start()
            self._c.subscribe(self.topics, listener=self._listener)
        except KafkaError as exc:
            raise BusError(f"kafka consumer {self.member_id}: {exc}") from exc

    async def poll(self, *, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        if self._closed:
            raise BusError("consumer closed")
        try:
            data = await self._c.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"poll: {exc}") from exc
        out: list[Delivery] = []
        for tp in sorted(data, key=lambda t: (t.topic, t.partition)):
            out.extend(Delivery(tp.topic, tp.partition, r.offset, r.key or b"", r.value or b"") for r in data[tp])
        return out

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        owned = self._c.assignment()
        offsets: dict[KTP, int] = {}
        for d in deliveries:
            tp = KTP(d.topic, d.partition)
            if tp in owned:
                offsets[tp] = max(offsets.get(tp, -1), d.offset + 1)
        if not offsets:
            return
        try:
            await self._c.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # the group rebalanced meanwhile: the partition's new owner redoes the work
            log.info("commit skipped after a rebalance (%s): will be redelivered", exc)
        except KafkaError as exc:
            raise BusError(f"commit: {exc}") from exc

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._c.assignment()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._c.seek(KTP(tp.topic, tp.partition), offset)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._c.stop()
        except KafkaError:
            log.debug("error stopping consumer", exc_info=True)
        if self in self.bus._consumers:
            self.bus._consumers.remove(self)
