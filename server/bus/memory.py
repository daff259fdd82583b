"""In-process bus: a bounded asyncio queue (back-pressure instead of unbounded memory)."""

from __future__ import annotations

import asyncio

from server.bus.base import BusMessage


class MemoryBus:
    def __init__(self, maxsize: int = 256) -> None:
        self._q: asyncio.Queue[BusMessage] = asyncio.Queue(maxsize=maxsize)

    async def publish(self, message: BusMessage) -> None:
        await self._q.put(message)

    async def get(self) -> BusMessage:
        return await self._q.get()

    def empty(self) -> bool:
        return self._q.empty()

    def qsize(self) -> int:
        return self._q.qsize()

    async def close(self) -> None:
        return None
