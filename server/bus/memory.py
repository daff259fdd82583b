"""In-process bus with the semantics of the protocol (partitions, groups, acks, rebalance).

One process only (the embedded default). Each partition is a list of messages; a message
is dropped from memory once every group that reads its topic has acknowledged it. Topics
named in ``bounded`` apply back-pressure: ``publish`` waits while more than ``maxsize``
messages of the partition are unacknowledged, so ingestion slows down instead of growing
memory without limit.

**Durable** when given a ``log_dir`` (what ``rca serve`` does): nothing acknowledged is
lost when the process is killed (``kill -9``), as with a broker.

* Committed offsets are appended to ``offsets.log`` on every acknowledgement.
* A topic with a *source* (:class:`SourceLog`) keeps its messages elsewhere: the API
  stores each batch with its sequence number in the store first (the metrics table, the
  ingest journal) and the sequence number is the message's offset. After a restart the
  partition ends where the source ends, and whatever a consumer asks for below what is in
  memory (its committed offset, or an older checkpoint it seeks to) is read back from the
  source: stored and acknowledged work is never lost, even between the store's commit
  and the publish.
* Every other topic (the stages' own messages) is appended to segment files under
  ``log_dir/<topic>/<partition>/`` before ``publish`` returns, and read back on start
  from the lowest committed offset. Segments every group is past are deleted.

Writes go to the operating system (they survive the process being killed), not to the
disk platters: power loss may lose the last writes, as with DuckDB's own defaults.

Ownership is handed over safely: a partition moves to a new member only after its old
owner gave it up (inside its next ``poll``, after its ``on_revoked``) or left the group,
so no two members of a group ever process one partition at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from server.bus.base import (
    BusError,
    Delivery,
    PartitionLag,
    RebalanceListener,
    TopicPartition,
    TopicSpec,
    partition_of,
)

log = logging.getLogger("rca.bus")

_ids = itertools.count(1)
_REC = struct.Struct(">II")  # key length, value length
SEGMENT_BYTES = 16 * 1024 * 1024
OFFSETS_BYTES = 4 * 1024 * 1024


class SourceLog(Protocol):
    """A topic whose messages are kept durably elsewhere, numbered by offset (the store's
    sequence numbers, consecutive from 0)."""

    def end(self, partition: int) -> int:
        """The next offset (what the source holds ends just before it)."""

    def read(self, partition: int, start: int, stop: int) -> list[tuple[int, bytes, bytes]]:
        """(offset, key, value) of the messages with ``start <= offset < stop``, in order."""

    def trim(self, partition: int, before: int) -> None:
        """Every group is past ``before``: the source may forget what lies below."""


def _trim_source(source: SourceLog, partition: int, before: int) -> None:
    try:
        source.trim(partition, before)
    except Exception:  # best effort: the next trim catches up
        log.debug("could not trim a source log", exc_info=True)


class _Segments:
    """Append-only segment files of one partition: ``<base offset>.log`` with records of
    ``>II`` (key and value length), key, value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.bases: list[int] = sorted(int(p.stem) for p in path.glob("*.log"))
        self._fd: int | None = None
        self._size = 0

    def load(self, start: int) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(offset of the first record returned, the records from ``start`` on); when
        every record is below ``start``, (the offset after the last one, []). A torn last
        record (the process died in the middle of a write) is cut off."""
        items: list[tuple[bytes, bytes]] = []
        first: int | None = None
        end = start
        for i, base in enumerate(self.bases):
            if i + 1 < len(self.bases) and self.bases[i + 1] <= start:
                continue  # wholly below what anyone still needs
            file = self.path / f"{base:020d}.log"
            data = file.read_bytes()
            pos, off = 0, base
            while pos + _REC.size <= len(data):
                kl, vl = _REC.unpack_from(data, pos)
                stop = pos + _REC.size + kl + vl
                if stop > len(data):
                    break
                if off >= start:
                    if first is None:
                        first = off
                    items.append((data[pos + _REC.size:pos + _REC.size + kl], data[pos + _REC.size + kl:stop]))
                pos, off = stop, off + 1
            if pos < len(data):
                with open(file, "r+b") as f:
                    f.truncate(pos)
            end = off
        return (first if first is not None else max(end, start)), items

    def append(self, offset: int, key: bytes, value: bytes) -> None:
        if self._fd is None or self._size >= SEGMENT_BYTES:
            self._roll(offset)
        assert self._fd is not None
        rec = _REC.pack(len(key), len(value)) + key + value
        os.write(self._fd, rec)
        self._size += len(rec)

    def _roll(self, offset: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self.bases and self._fd is None:  # reopen the last segment after a restart
            last = self.path / f"{self.bases[-1]:020d}.log"
            size = last.stat().st_size if last.exists() else 0
            if size < SEGMENT_BYTES:
                self._fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._size = size
                return
        self.bases.append(offset)
        self._fd = os.open(self.path / f"{offset:020d}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = 0

    def trim(self, below: int) -> None:
        """Delete segments whose every record is below ``below`` (never the active one)."""
        while len(self.bases) > 1 and self.bases[1] <= below:
            with contextlib.suppress(OSError):
                (self.path / f"{self.bases[0]:020d}.log").unlink()
            self.bases.pop(0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _Log:
    base: int = 0  # offset of items[0]
    #: (key, value, the decoded event or None) per message
    items: list[tuple[bytes, bytes, Any]] = field(default_factory=list)
    source: SourceLog | None = None
    segments: _Segments | None = None

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
    def __init__(self, maxsize: int = 256, *, bounded: Sequence[str] = (), log_dir: Path | str | None = None,
                 sources: Mapping[str, SourceLog] | None = None) -> None:
        self.maxsize = maxsize
        self.bounded = set(bounded)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.sources = dict(sources or {})
        #: True when messages and offsets outlive the process, so checkpoint offsets stay valid
        self.durable = self.log_dir is not None
        self._logs: dict[str, list[_Log]] = {}
        self._groups: dict[str, _Group] = {}
        self._reader_cache: dict[str, list[_Group]] = {}  # topic -> the groups that read it (see _readers)
        self._cond = asyncio.Condition()
        self._closed = False
        self._offsets_fd: int | None = None
        self._offsets_written = 0
        self._trimmed: dict[TopicPartition, float] = {}

    # ---- topics -------------------------------------------------------------------------
    async def start(self, topics: Sequence[TopicSpec]) -> None:
        if self.log_dir is not None and self._offsets_fd is None:
            await asyncio.to_thread(self._load_offsets)
        for t in topics:
            if t.name in self._logs:
                continue
            logs = []
            for p in range(max(1, t.partitions)):
                src = self.sources.get(t.name)
                if src is not None:
                    end = await asyncio.to_thread(src.end, p)
                    logs.append(_Log(base=end, source=src))
                elif self.log_dir is not None:
                    seg = _Segments(self.log_dir / t.name / str(p))
                    low = min((g.committed.get(TopicPartition(t.name, p), 0) for g in self._groups.values()
                               if TopicPartition(t.name, p) in g.committed), default=0)
                    base, items = await asyncio.to_thread(seg.load, low)
                    logs.append(_Log(base=base, items=[(k, v, None) for k, v in items], segments=seg))
                else:
                    logs.append(_Log())
            self._logs[t.name] = logs

    def _load_offsets(self) -> None:
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / "offsets.log"
        latest: dict[tuple[str, str, int], int] = {}
        if path.exists():
            for line in path.read_bytes().split(b"\n"):
                parts = line.split(b"\t")
                if len(parts) != 4 or not parts[3].isdigit():
                    continue  # a torn last line
                key = (parts[0].decode(), parts[1].decode(), int(parts[2]))
                latest[key] = max(latest.get(key, 0), int(parts[3]))
        for (group, topic, p), off in latest.items():
            self._groups.setdefault(group, _Group(group)).committed[TopicPartition(topic, p)] = off
        self._reader_cache.clear()
        self._compact_offsets()

    def _compact_offsets(self) -> None:
        """Rewrite ``offsets.log`` with one line per group and partition (at start, and
        whenever the appended lines pass ``OFFSETS_BYTES``)."""
        assert self.log_dir is not None
        path = self.log_dir / "offsets.log"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(b"%s\t%s\t%d\t%d\n" % (g.name.encode(), tp.topic.encode(), tp.partition, off)
                                 for g in self._groups.values() for tp, off in sorted(
                                     g.committed.items(), key=lambda x: (x[0].topic, x[0].partition))))
        tmp.replace(path)
        if self._offsets_fd is not None:
            os.close(self._offsets_fd)
        self._offsets_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._offsets_written = 0

    def partitions(self, topic: str) -> int:
        return len(self._topic(topic))

    def _topic(self, topic: str) -> list[_Log]:
        try:
            return self._logs[topic]
        except KeyError:
            raise BusError(f"unknown topic {topic!r}") from None

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message published to the partition gets."""
        return self._topic(topic)[partition].end

    def resync(self, topic: str) -> None:
        """A source topic's partitions end where their source ends again (their in-memory
        tail is dropped and read back from the source when asked for)."""
        for p, lg in enumerate(self._topic(topic)):
            if lg.source is not None:
                lg.items.clear()
                lg.base = lg.source.end(p)

    async def publish(self, topic: str, value: bytes, *, key: bytes, partition: int | None = None,
                      event: Any = None) -> None:
        """``event`` (the decoded ``value``) is handed to the consumers as is. On a topic
        whose log is a source, ``value`` may be empty when ``event`` is given: the message
        is not written anywhere, and one read back from the source is encoded there."""
        logs = self._topic(topic)
        p = partition_of(key, len(logs)) if partition is None else partition
        if not 0 <= p < len(logs):
            raise BusError(f"topic {topic!r} has no partition {p}")
        async with self._cond:
            if topic in self.bounded:
                await self._cond.wait_for(lambda: self._closed or self._backlog(topic, p) < self.maxsize)
            if self._closed:
                raise BusError("bus closed")
            lg = logs[p]
            if lg.segments is not None:
                if event is not None and not value:
                    raise BusError(f"{topic} is written to disk: its messages need their encoded value")
                try:
                    lg.segments.append(lg.end, key, value)
                except OSError as exc:
                    raise BusError(f"cannot write the log of {topic}/{p}: {exc}") from exc
            lg.items.append((key, value, event))
        self._wake(topic)

    def _wake(self, topic: str | None = None) -> None:
        """Wake the consumers that read ``topic`` (every consumer: None). A consumer waits
        on its own event, so a publish wakes only those who may have something new."""
        for g in self._groups.values():
            for m in g.members.values():
                if topic is None or topic in m.topics:
                    m._event.set()

    def _readers(self, topic: str) -> list[_Group]:
        """The groups that read ``topic`` (a member reads it, or the group keeps offsets in
        it); remembered until a member joins or leaves or a group claims a new partition."""
        got = self._reader_cache.get(topic)
        if got is None:
            got = self._reader_cache[topic] = [
                g for g in self._groups.values() if any(topic in m.topics for m in g.members.values())
                or any(tp.topic == topic for tp in g.committed)]
        return got

    def _backlog(self, topic: str, p: int) -> int:
        tp = TopicPartition(topic, p)
        log = self._logs[topic][p]
        committed = [g.committed.get(tp, 0) for g in self._readers(topic)]
        return log.end - min(committed, default=log.end)

    def _trim(self, tp: TopicPartition) -> None:
        log = self._logs[tp.topic][tp.partition]
        low = min((g.committed.get(tp, 0) for g in self._readers(tp.topic)), default=log.base)
        if low > log.base:
            low = min(low, log.end)
            del log.items[: low - log.base]
            log.base = low
        if log.segments is not None:
            log.segments.trim(low)
        if log.source is not None:  # at most once a minute: the store forgets what everyone read
            now = time.monotonic()
            if now - self._trimmed.get(tp, 0.0) > 60.0:
                self._trimmed[tp] = now
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().run_in_executor(None, _trim_source, log.source, tp.partition, low)

    def _save_offset(self, group: str, tp: TopicPartition, offset: int) -> None:
        if self._offsets_fd is None:
            return
        line = b"%s\t%s\t%d\t%d\n" % (group.encode(), tp.topic.encode(), tp.partition, offset)
        try:
            os.write(self._offsets_fd, line)
            self._offsets_written += len(line)
            if self._offsets_written > OFFSETS_BYTES:
                self._compact_offsets()
        except OSError as exc:
            raise BusError(f"cannot write committed offsets: {exc}") from exc

    # ---- groups -------------------------------------------------------------------------
    async def consumer(self, *, group: str, topics: Sequence[str],
                       listener: RebalanceListener | None = None, member_id: str | None = None) -> MemoryConsumer:
        for t in topics:
            self._topic(t)
        g = self._groups.setdefault(group, _Group(group))
        c = MemoryConsumer(self, g, list(topics), listener, member_id or f"{group}-{next(_ids)}")
        async with self._cond:
            g.members[c.member_id] = c
            self._reader_cache.clear()
            self._reassign(g)
            self._cond.notify_all()
        self._wake()
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
            self._reader_cache.clear()
            for tp in [tp for tp, o in g.owner.items() if o == c.member_id]:
                del g.owner[tp]
            self._reassign(g)
            self._cond.notify_all()
        self._wake()

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
        self._wake()
        for logs in self._logs.values():
            for lg in logs:
                if lg.segments is not None:
                    lg.segments.close()
        if self._offsets_fd is not None:
            os.close(self._offsets_fd)
            self._offsets_fd = None


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
        self._event = asyncio.Event()  # set when something this consumer may want happened

    def assignment(self) -> set[TopicPartition]:
        return set(self._owned)

    def _floor(self, tp: TopicPartition) -> int:
        log = self.bus._logs[tp.topic][tp.partition]
        return 0 if log.source is not None else log.base  # a source still has what is not in memory

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._owned:
            raise BusError(f"{self.member_id} does not own {tp}")
        log = self.bus._logs[tp.topic][tp.partition]
        self._pos[tp] = min(max(offset, self._floor(tp)), log.end)

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
            self.bus._wake()  # the partitions given up may be claimed by the others now
        claimable = {tp for tp in target - self._owned if tp not in g.owner}
        if claimable:
            for tp in claimable:
                g.owner[tp] = self.member_id
                if tp not in g.committed:  # the group reads this partition from now on: keep it for the group
                    g.committed[tp] = 0
                    self.bus._reader_cache.clear()
                    self.bus._save_offset(g.name, tp, 0)
                self._pos[tp] = max(g.committed[tp], self._floor(tp))
            self._owned |= claimable
            if self.listener is not None:
                await self.listener.on_assigned(set(claimable))

    async def _fetch(self, max_records: int) -> list[Delivery]:
        out: list[Delivery] = []
        for tp in sorted(self._owned):  # by topic, then partition (named tuples sort so)
            log = self.bus._logs[tp.topic][tp.partition]
            pos = self._pos[tp]
            if log.source is not None and pos < log.base:  # older than what is in memory: read it back
                stop = min(log.base, pos + max_records - len(out))
                try:
                    got = await asyncio.to_thread(log.source.read, tp.partition, pos, stop)
                except Exception as exc:
                    raise BusError(f"cannot read {tp.topic}/{tp.partition} back from its source: {exc}") from exc
                if tp not in self._owned or self._pos.get(tp) != pos:
                    continue  # revoked or sought meanwhile
                out.extend(Delivery(tp.topic, tp.partition, off, key, value) for off, key, value in got)
                self._pos[tp] = pos = stop
                if len(out) >= max_records:
                    break
                if pos < log.base:
                    continue
            pos = max(pos, log.base)
            while pos < log.end and len(out) < max_records:
                key, value, event = log.items[pos - log.base]
                out.append(Delivery(tp.topic, tp.partition, pos, key, value, event))
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
        logs, pos = self.bus._logs, self._pos
        for tp in self._owned:
            log = logs[tp.topic][tp.partition]
            if pos[tp] < log.base + len(log.items):
                return True
        return False

    async def poll(self, *, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        if self._closed:
            raise BusError("consumer closed")
        await self._rebalance()
        out = await self._fetch(max_records)
        if out:
            return out
        self._event.clear()
        if not self._ready():  # (checked after the clear: a publish since sets it again)
            try:  # asyncio.timeout, not wait_for: no task per poll
                async with asyncio.timeout(timeout):
                    while not self._ready():
                        await self._event.wait()
                        self._event.clear()
            except TimeoutError:
                return []
        if self._closed or self.bus._closed:
            return []
        await self._rebalance()
        return await self._fetch(max_records)

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
                    self.bus._save_offset(g.name, tp, off)
                    self.bus._trim(tp)
            self.bus._cond.notify_all()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._event.set()
        await self.bus._leave(self)
