"""One bus fixture parametrised over every backend: the in-process bus (in memory only, and
durable with its log directory, as ``rca serve`` runs it) and a real Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server.bus.base import Bus
from server.settings import BusSettings
from tests.kafka_broker import kafka_bootstrap

BusFactory = Callable[[], Awaitable[Bus]]


@pytest.fixture(scope="session")
def kafka_servers() -> str:
    return kafka_bootstrap()


@pytest.fixture(params=["memory", "memory-log", "kafka"])
async def make_bus(request: Any, tmp_path: Path) -> AsyncIterator[BusFactory]:
    """Factory of bus handles sharing one broker (Kafka) or one process bus (memory):
    every handle is like another process's connection."""
    buses: list[Bus] = []
    shared: list[Bus] = []

    async def make() -> Bus:
        if request.param.startswith("memory"):
            from server.bus.memory import MemoryBus

            if not shared:
                shared.append(MemoryBus(log_dir=tmp_path / "bus" if request.param == "memory-log" else None))
            return shared[0]
        from server.bus.kafka import KafkaBus

        bus = KafkaBus(BusSettings(backend="kafka", bootstrap_servers=request.getfixturevalue("kafka_servers"),
                                   session_timeout_ms=6000))
        buses.append(bus)
        return bus

    yield make
    for b in buses + shared:
        await b.close()


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["memory-log", "kafka"])
async def restart_bus(request: Any, tmp_path: Path) -> AsyncIterator[BusFactory]:
    """A durable bus: every call closes the previous handle (its process "died") and opens
    a new one on the same log directory or broker."""
    opened: list[Bus] = []

    async def make() -> Bus:
        for b in opened:
            await b.close()
        if request.param == "memory-log":
            from server.bus.memory import MemoryBus

            bus: Bus = MemoryBus(log_dir=tmp_path / "bus")
        else:
            from server.bus.kafka import KafkaBus

            bus = KafkaBus(BusSettings(backend="kafka", bootstrap_servers=request.getfixturevalue("kafka_servers"),
                                       session_timeout_ms=6000))
        opened.append(bus)
        return bus

    yield make
    for b in opened[-1:]:
        await b.close()
