"""In-process bus with the semantics of the protocol (partitions, groups, acks, rebalance).

One process only (the embedded default). Each partition is a list of messages; a message
is dropped once every group that reads its topic has acknowledged it. Topics named in
``bounded`` apply back-pressure: ``publish`` waits while more than ``maxsize`` messages
of the partition are unacknowledged, so ingestion slows down instead of growing memory.

Ownership is handed over safely: a partition moves to a new member only after its old
owner gave it up (inside its next ``poll``, after its ``on_revoked``) or left the group,
so no two members of a group ever process one partition at the same time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.bus.base import (
    BusError,
    Delivery,
    PartitionLag,
    RebalanceListener,
    TopicPartition,
    TopicSpec,
    partition_of,
)

_ids = itertools.count(1)


@dataclass
class _Log:
    base: int = 0  # offset of items[0]
    items: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.items)


@dataclass
class _Group:
    name: str
    members: dict[str, MemoryConsumer] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    owner: dict[TopicPartition, str] = field(default_factory=dict)
    target: dict[str, set[TopicPartition]] = field(default_factory=dict)


class MemoryBus:
    durable = False

    def __init__(self, maxsize: int = 256, *, bounded: Sequence[str] = ()) -> None:
        self.maxsize = maxsize
        self.bounded = set(bounded)
        self._logs: dict[str, list[_Log]] = {}
        self._groups: dict[str, _Group] = {}
        self._cond = asyncio.Condition()
        self._closed = False

    # ---- topics -------------------------------------------------------------------------
    async def start(self, topics: Sequence[TopicSpec]) -> None:
        for t in topics:
            self._logs.setdefault(t.name, [_Log() for _ in range(max(1, t.partitions))])

    def partitions(self, topic: str) -> int:
        return len(self._topic(topic))

    def _topic(self, topic: str) -> list[_Log]:
        try:
            return self._logs[topic]
        except KeyError:
            raise BusError(f"unknown topic {topic!r}") from None

    async def publish(self, topic: str, value: bytes, *, key: bytes, partition: int | None = None) -> None:
        logs = self._topic(topic)
        p = partition_of(key, len(logs)) if partition is None else partition
        if not 0 <= p < len(logs):
            raise BusError(f"topic {topic!r} has no partition {p}")
        async with self._cond:
            if topic in self.bounded:
                await self._cond.wait_for(lambda: self._closed or self._backlog(topic, p) < self.maxsize)
            if self._closed:
                raise BusError("bus closed")
            logs[p].items.append((key, value))
            self._cond.notify_all()

    def _readers(self, topic: str) -> list[_Group]:
        return [g for g in self._groups.values() if any(topic in m.topics for m in g.members.values())
                or any(tp.topic == topic for tp in g.committed)]

    def _backlog(self, topic: str, p: int) -> int:
        tp = TopicPartition(topic, p)
        log = self._logs[topic][p]
        committed = [g.committed.get(tp, 0) for g in self._readers(topic)]
        return log.end - min(committed, default=log.end)

    def _trim(self, tp: TopicPartition) -> None:
        log = self._logs[tp.topic][tp.partition]
        low = min((g.committed.get(tp, 0) for g in self._readers(tp.topic)), default=log.base)
        if low > log.base:
            del log.items[: low - log.base]
            log.base = low

    # ---- groups -------------------------------------------------------------------------
    async def consumer(self, *, group: str, topics: Sequence[str],
                       listener: RebalanceListener | None = None, member_id: str | None = None) -> MemoryConsumer:
        for t in topics:
            self._topic(t)
        g = self._groups.setdefault(group, _Group(group))
        c = MemoryConsumer(self, g, list(topics), listener, member_id or f"{group}-{next(_ids)}")
        async with self._cond:
            g.members[c.member_id] = c
            self._reassign(g)
            self._cond.notify_all()
        return c

    def _reassign(self, g: _Group) -> None:
        """Target assignment: each topic's partitions dealt round-robin over its members."""
        g.target = {m: set() for m in g.members}
        topics = sorted({t for m in g.members.values() for t in m.topics})
        for t in topics:
            members = sorted(m for m, c in g.members.items() if t in c.topics)
            for p in range(len(self._logs[t])):
                g.target[members[p % len(members)]].add(TopicPartition(t, p))

    async def _leave(self, c: MemoryConsumer) -> None:
        async with self._cond:
            g = c.group
            g.members.pop(c.member_id, None)
            for tp in [tp for tp, o in g.owner.items() if o == c.member_id]:
                del g.owner[tp]
            self._reassign(g)
            self._cond.notify_all()

    async def lag(self, *, group: str, topic: str) -> list[PartitionLag]:
        g = self._groups.get(group)
        out = []
        for p, log in enumerate(self._topic(topic)):
            committed = g.committed.get(TopicPartition(topic, p), 0) if g is not None else 0
            out.append(PartitionLag(p, committed, log.end))
        return out

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            self._cond.notify_all()


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, group: _Group, topics: list[str], listener: RebalanceListener | None,
                 member_id: str) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.listener = listener
        self.member_id = member_id
        self._owned: set[TopicPartition] = set()
        self._pos: dict[TopicPartition, int] = {}
        self._closed = False

    def assignment(self) -> set[TopicPartition]:
        return set(self._owned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._owned:
            raise BusError(f"{self.member_id} does not own {tp}")
        log = self.bus._logs[tp.topic][tp.partition]
        self._pos[tp] = min(max(offset, log.base), log.end)

    async def _rebalance(self) -> None:
        g = self.group
        target = g.target.get(self.member_id, set())
        revoked = self._owned - target
        if revoked:
            if self.listener is not None:
                await self.listener.on_revoked(set(revoked))
            async with self.bus._cond:
                for tp in revoked:
                    if g.owner.get(tp) == self.member_id:
                        del g.owner[tp]
                    self._pos.pop(tp, None)
                self._owned -= revoked
                self.bus._cond.notify_all()
        claimable = {tp for tp in target - self._owned if tp not in g.owner}
        if claimable:
            for tp in claimable:
                g.owner[tp] = self.member_id
                self._pos[tp] = g.committed.get(tp, 0)
                log = self.bus._logs[tp.topic][tp.partition]
                self._pos[tp] = max(self._pos[tp], log.base)
            self._owned |= claimable
            if self.listener is not None:
                await self.listener.on_assigned(set(claimable))

    def _fetch(self, max_records: int) -> list[Delivery]:
        out: list[Delivery] = []
        for tp in sorted(self._owned, key=lambda x: (x.topic, x.partition)):
            log = self.bus._logs[tp.topic][tp.partition]
            pos = self._pos[tp]
            while pos < log.end and len(out) < max_records:
                key, value = log.items[pos - log.base]
                out.append(Delivery(tp.topic, tp.partition, pos, key, value))
                pos += 1
            self._pos[tp] = pos
            if len(out) >= max_records:
                break
        return out

    def _ready(self) -> bool:
        if self._closed or self.bus._closed:
            return True
        g = self.group
        target = g.target.get(self.member_id, set())
        if self._owned != target and (self._owned - target or any(tp not in g.owner for tp in target - self._owned)):
            return True
        return any(self._pos[tp] < self.bus._logs[tp.topic][tp.partition].end for tp in self._owned)

    async def poll(self, *, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        if self._closed:
            raise BusError("consumer closed")
        await self._rebalance()
        out = self._fetch(max_records)
        if out:
            return out
        async with self.bus._cond:
            try:
                await asyncio.wait_for(self.bus._cond.wait_for(self._ready), timeout)
            except TimeoutError:
                return []
        if self._closed or self.bus._closed:
            return []
        await self._rebalance()
        return self._fetch(max_records)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        top: dict[TopicPartition, int] = {}
        for d in deliveries:
            tp = TopicPartition(d.topic, d.partition)
            top[tp] = max(top.get(tp, -1), d.offset + 1)
        g = self.group
        async with self.bus._cond:
            for tp, off in top.items():
                if g.owner.get(tp) != self.member_id:
                    continue  # no longer ours: the new owner redoes it (at-least-once)
                if off > g.committed.get(tp, 0):
                    g.committed[tp] = off
                    self.bus._trim(tp)
            self.bus._cond.notify_all()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.bus._leave(self)
