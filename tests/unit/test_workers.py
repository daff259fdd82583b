"""Stage workers on the in-process bus with a real DuckDB store: redelivered events
duplicate nothing, detector state survives a restart through its checkpoint, and a
topology change re-examines only the incidents near the new edges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pytest

from server.bus.memory import MemoryBus
from server.events import AnomalyEvent, AnomalyEvents, IncidentsNeedRca, TopologyChanged, decode, encode
from server.model import Edge
from server.publisher import Publisher, split_by_partition
from server.settings import Settings
from server.status import MemoryStatusBoard
from server.store.duckdb import DuckDBStore
from server.topics import Topics
from server.workers.base import StageWorker
from server.workers.detector import DetectorWorker
from server.workers.grouping import GroupingWorker


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Settings, DuckDBStore, MemoryBus, Topics]]:
    settings = Settings(data_dir=tmp_path)
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = MemoryBus()
    topics = Topics.of(settings)
    await bus.start(topics.specs())
    yield settings, store, bus, topics
    await bus.close()
    store.close()


async def _idle(bus: MemoryBus, topics: Topics, stage: str, timeout: float = 30.0) -> None:
    """Until ``stage`` has acknowledged everything on its topics (no downstream worker runs)."""
    deadline = time.monotonic() + timeout
    while True:
        lag = 0
        for t in topics.consumed(stage):
            lag += sum(p.lag for p in await bus.lag(group=topics.group(stage), topic=t))
        if not lag:
            return
        assert time.monotonic() < deadline, "work never finished"
        await asyncio.sleep(0.02)


async def _stop(worker: StageWorker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, 30)


def _open(service: str, ts: float) -> AnomalyEvents:
    return AnomalyEvents(events=(AnomalyEvent(service, "p95_latency_ms", "open", ts=ts, onset=ts - 30.0,
                                              direction="up", score=0.9, baseline=100.0, observed=300.0),),
                         watermark=ts)


async def test_redelivered_anomaly_events_duplicate_nothing(env: tuple[Settings, DuckDBStore, MemoryBus, Topics]
                                                            ) -> None:
    settings, store, bus, topics = env
    g = GroupingWorker(bus=bus, store=store, settings=settings, status=MemoryStatusBoard())
    task = asyncio.create_task(g.run())
    ev = _open("checkout", 10_000.0)
    for _ in range(3):  # a redelivery, and a detector re-reading from an older checkpoint
        await bus.publish(topics.grouping, encode(ev), key=b"p0")
    await _idle(bus, topics, "grouping")
    await _stop(g, task)
    assert len(store.list_anomalies()) == 1 and len(store.list_incidents()) == 1
    # a restarted grouping worker (same store, its checkpoint) still drops it
    g2 = GroupingWorker(bus=bus, store=store, settings=settings, status=MemoryStatusBoard())
    task = asyncio.create_task(g2.run())
    await bus.publish(topics.grouping, encode(ev), key=b"p0")
    await _idle(bus, topics, "grouping")
    await _stop(g2, task)
    assert len(store.list_anomalies()) == 1 and len(store.list_incidents()) == 1


async def test_topology_change_reexamines_only_incidents_near_it(
        env: tuple[Settings, DuckDBStore, MemoryBus, Topics]) -> None:
    settings, store, bus, topics = env
    probe = await bus.consumer(group="probe", topics=[topics.analysis])
    g = GroupingWorker(bus=bus, store=store, settings=settings, status=MemoryStatusBoard())
    task = asyncio.create_task(g.run())
    await bus.publish(topics.grouping, encode(_open("checkout", 10_000.0)), key=b"p0")
    await bus.publish(topics.grouping, encode(_open("billing", 10_000.0)), key=b"p0")
    await _idle(bus, topics, "grouping")
    by_service = {i.services[0]: i.id for i in store.list_incidents()}
    assert set(by_service) == {"checkout", "billing"}
    await probe.ack(await probe.poll(timeout=0.1))
    store.add_edges(edges=[Edge("frontend", "checkout")])
    await bus.publish(topics.grouping, encode(TopologyChanged(edges=(("frontend", "checkout"),))), key=b"t")
    await _idle(bus, topics, "grouping")
    await _stop(g, task)
    named = set()
    for d in await probe.poll(timeout=0.1):
        ev = decode(d.value)
        if isinstance(ev, IncidentsNeedRca):
            named |= set(ev.incident_ids)
    assert named == {by_service["checkout"]}  # billing is nowhere near the new edge


async def test_detector_state_survives_a_restart(env: tuple[Settings, DuckDBStore, MemoryBus, Topics]) -> None:
    settings, store, bus, topics = env
    n = 200
    table = pa.table({"service": ["checkout"] * n, "metric": ["p95_latency_ms"] * n,
                      "ts": [1000.0 + 10 * i for i in range(n)], "value": [100.0 + (i % 5) for i in range(n)],
                      "labels": pa.nulls(n, pa.string())})
    d = DetectorWorker(bus=bus, store=store, settings=settings, status=MemoryStatusBoard())
    task = asyncio.create_task(d.run())
    await Publisher(bus, topics).metrics(table)
    await _idle(bus, topics, "detector")
    await _stop(d, task)  # checkpoints on stop
    before = d.report()
    d2 = DetectorWorker(bus=bus, store=store, settings=settings, status=MemoryStatusBoard())
    task = asyncio.create_task(d2.run())
    await _idle(bus, topics, "detector")
    for _ in range(100):
        if d2.stages:
            break
        await asyncio.sleep(0.02)
    assert d2.report()["watermark"] == before["watermark"] == 1000.0 + 10 * (n - 1)
    await Publisher(bus, topics).metrics(table)  # the same points again: the restored state knows them
    await _idle(bus, topics, "detector")
    after = d2.report()
    await _stop(d2, task)
    assert before["late_points"] == 0 and after["late_points"] == n


def test_a_series_always_lands_on_one_partition() -> None:
    services = [f"s{i % 13}" for i in range(500)]
    t = pa.table({"service": services, "metric": ["m"] * 500, "ts": [float(i) for i in range(500)],
                  "value": [1.0] * 500})
    parts = split_by_partition(t, 4)
    seen: dict[str, int] = {}
    for p, sub in parts:
        for svc in sub.column("service").to_pylist():
            assert seen.setdefault(svc, p) == p
        assert sub.column("ts").to_pylist() == sorted(sub.column("ts").to_pylist())  # order kept
    assert sum(sub.num_rows for _, sub in parts) == 500 and len(parts) > 1
