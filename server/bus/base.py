"""The bus protocol: topics with partitions, keys, consumer groups, explicit acknowledgement.

* ``publish(topic, value, key=..., partition=...)`` appends a message to one partition of
  a topic (chosen from the key with :func:`partition_of` unless given). Messages of one
  partition are delivered in the order they were published.
* A consumer joins a **group** for some topics; the group's partitions are spread over
  its members, each partition owned by one member at a time. Adding a member moves
  partitions to it; a member that leaves or dies gives its partitions back.
* ``ack(deliveries)`` commits, per partition, the offset after the highest delivery
  given. A consumer acknowledges a delivery only after its effects are stored; whatever
  was delivered but not acknowledged is delivered again to the partition's next owner
  (at-least-once, so every effect must be idempotent).
* ``lag(group, topic)`` reports, per partition, the committed offset and the end offset:
  the progress from which ``pending`` is computed.

Two implementations pass one conformance suite (``tests/bus/``): :mod:`server.bus.memory`
(embedded default, one process) and :mod:`server.bus.kafka` (any Kafka-compatible broker).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


class BusError(Exception):
    """A bus backend failed (translated from the driver's own error)."""


class TopicPartition(NamedTuple):
    """A partition of a topic (a named tuple: hashed and compared in C, as every poll and
    ack of the in-process bus looks partitions up)."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    #: the message as its publisher made it, handed over as is by the in-process bus (no
    #: decode); None from a broker or a log read back: decode ``value``
    event: Any = None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int = 1


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def partition_of(key: bytes | str, partitions: int) -> int:
    """The partition a key lands on: stable across processes, machines and restarts."""
    if partitions <= 1:
        return 0
    raw = key.encode() if isinstance(key, str) else key
    return zlib.crc32(raw) % partitions


class RebalanceListener(Protocol):
    """Called inside ``poll`` when the consumer's partitions change."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Before partitions are taken away: checkpoint, acknowledge what is stored."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """After partitions were given: restore state, maybe ``seek`` to a checkpoint."""


class Consumer(Protocol):
    member_id: str

    async def poll(self, *, max_records: int = 500, timeout: float = 1.0) -> list[Delivery]:
        """Next deliveries from the owned partitions (waits up to ``timeout`` s when none)."""

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Commit, per partition, the offset after the highest of ``deliveries``."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Deliver ``tp`` again from ``offset`` (an owned partition; e.g. a checkpoint's)."""

    async def close(self) -> None:
        """Leave the group; unacknowledged deliveries go to the partitions' next owners."""


class Bus(Protocol):
    #: True when messages outlive this process (a broker), so checkpoint offsets stay valid.
    durable: bool

    async def start(self, topics: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet (idempotent)."""

    def partitions(self, topic: str) -> int: ...

    async def publish(self, topic: str, value: bytes, *, key: bytes, partition: int | None = None,
                      event: Any = None) -> None:
        """Append once the bus has it (a broker has acknowledged the write). ``event`` is the
        decoded message: a bus in this process may hand it to its consumers as is (their
        ``Delivery.event``) instead of their decoding ``value``; a broker ignores it."""

    async def consumer(self, *, group: str, topics: Sequence[str],
                       listener: RebalanceListener | None = None, member_id: str | None = None) -> Consumer: ...

    async def lag(self, *, group: str, topic: str) -> list[PartitionLag]: ...

    async def close(self) -> None: ...
