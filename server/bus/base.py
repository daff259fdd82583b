"""The event bus protocol (in-process queues embedded; Kafka in stack mode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class BusMessage:
    """One unit of work for the pipeline.

    ``kind``: ``metrics`` (payload: Arrow table), ``logs`` (payload: dict with services
    and ts range), ``changes`` (list of Change), ``topology``, ``rerun`` (incident id),
    ``label`` (Label), ``alerts`` (list of alert ids, new or changed). ``count`` is how many
    ingested events it carries, for ``pending``.
    """

    kind: str
    payload: Any
    count: int = 0
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Bus(Protocol):
    async def publish(self, message: BusMessage) -> None: ...

    async def get(self) -> BusMessage:
        """Next message for this consumer (waits)."""

    def empty(self) -> bool: ...

    def qsize(self) -> int: ...

    async def close(self) -> None: ...
