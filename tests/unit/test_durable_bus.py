"""The in-process bus as ``rca serve`` runs it: durable, with the metrics and events topics
read back from a real DuckDB store. A "restart" is a new bus on the same directory and
store, as after ``kill -9`` (nothing is closed cleanly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from server.bus.base import BusError, Delivery, TopicPartition
from server.bus.memory import MemoryBus
from server.events import ChangesAdded, EventError, IncidentsNeedRca, MetricPoints, decode, delivered, encode
from server.journal import JournalSource, PointsSource
from server.model import Change
from server.model.points import Points
from server.publisher import Publisher
from server.settings import Settings
from server.store.duckdb import DuckDBStore
from server.topics import Topics


def _points(i: int) -> Points:
    n = 5
    return Points.from_table(pa.table({"service": ["web"] * n, "metric": ["lat"] * n,
                                       "ts": [1000.0 + 10 * (i * n + k) for k in range(n)],
                                       "value": [float(i)] * n, "labels": [None, '{"pod":"a"}'] * 2 + [None]}))


async def _bus(tmp_path: Path, store: DuckDBStore, topics: Topics) -> MemoryBus:
    bus = MemoryBus(log_dir=tmp_path / "bus", sources={topics.metrics: PointsSource(store, 1),
                                                       topics.events: JournalSource(store, topics.events)})
    await bus.start(topics.specs())
    return bus


async def _take(bus: MemoryBus, group: str, topic: str, n: int) -> list[Delivery]:
    c = await bus.consumer(group=group, topics=[topic])
    got: list[Delivery] = []
    for _ in range(50):
        got += await c.poll(timeout=0.05)
        if len(got) >= n:
            break
    await c.close()
    return got


async def test_stored_batches_are_the_metrics_log_across_a_restart(tmp_path: Path) -> None:
    topics = Topics.of(Settings(data_dir=tmp_path))
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = await _bus(tmp_path, store, topics)
    pub = Publisher(bus, topics, store, journal=True, points_log=True)
    for i in range(3):
        assert await pub.store_metrics(_points(i)) == i  # sequence number = offset on the topic
    c = await bus.consumer(group="det", topics=[topics.metrics])
    first = await c.poll(timeout=0.1)
    assert [d.offset for d in first] == [0, 1, 2]
    for d in first:  # in this process: the points themselves, no encoding (the store is the log)
        assert d.value == b"" and isinstance(d.event, MetricPoints) and d.event.mem is not None
        assert delivered(d).points().table().equals(_points(d.offset).table())  # type: ignore[union-attr]
    await c.ack(first[:2])  # batch 2 was delivered, not finished: then the process dies
    # a batch stored whose publish never happened (killed between commit and publish)
    pub._insert_points(_points(3), None, None)
    del bus, c, pub

    bus = await _bus(tmp_path, store, topics)
    assert sum(p.lag for p in await bus.lag(group="det", topic=topics.metrics)) == 2  # pending tells the truth
    again = await _take(bus, "det", topics.metrics, 2)
    assert [d.offset for d in again] == [2, 3]
    for d in again:  # read back from the store after the restart: encoded there
        assert d.event is None
        ev = delivered(d)
        assert isinstance(ev, MetricPoints) and ev.seq == d.offset
        assert ev.points().table().equals(_points(d.offset).table())
    # a detector restoring an older checkpoint seeks back: read from the store as well
    c = await bus.consumer(group="det2", topics=[topics.metrics])
    await c.poll(timeout=0.05)
    c.seek(TopicPartition(topics.metrics, 0), 0)
    assert [d.offset for d in await c.poll(timeout=0.1)] == [0, 1, 2, 3]
    # and new batches go on where the store ends
    pub = Publisher(bus, topics, store, journal=True, points_log=True)
    assert await pub.store_metrics(_points(4)) == 4
    store.close()


async def test_events_are_journaled_with_their_data(tmp_path: Path) -> None:
    topics = Topics.of(Settings(data_dir=tmp_path))
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = await _bus(tmp_path, store, topics)
    pub = Publisher(bus, topics, store, journal=True, points_log=True)
    change = Change(id="dep-1", kind="deployment", services=["web"], ts=1000.0)
    await pub.store_event(lambda: store.upsert_changes(changes=[change]),
                          lambda new: ChangesAdded(ids=tuple(new), ts=(1000.0,)))
    # stored, journaled, not yet published when the process died
    pub._store_event(lambda: store.upsert_changes(changes=[Change(id="dep-2", kind="deployment",
                                                                  services=["web"], ts=2000.0)]),
                     lambda new: ChangesAdded(ids=tuple(new), ts=(2000.0,)), None)
    bus = await _bus(tmp_path, store, topics)
    got = [decode(d.value) for d in await _take(bus, "rca", topics.events, 2)]
    assert [e.ids for e in got if isinstance(e, ChangesAdded)] == [("dep-1",), ("dep-2",)]
    store.close()


async def test_stage_topics_survive_in_segment_files_even_a_torn_write(tmp_path: Path) -> None:
    topics = Topics.of(Settings(data_dir=tmp_path))
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = await _bus(tmp_path, store, topics)
    for i in range(5):
        await bus.publish(topics.grouping, b"v%d" % i, key=b"k")
    c = await bus.consumer(group="g", topics=[topics.grouping])
    got = await c.poll(timeout=0.1)
    await c.ack(got[:3])
    seg = next((tmp_path / "bus" / topics.grouping / "0").glob("*.log"))
    with open(seg, "ab") as f:  # the process died in the middle of writing a record
        f.write(b"\x00\x00\x00\x01\x00\x00\x10")
    bus = await _bus(tmp_path, store, topics)
    assert [d.value for d in await _take(bus, "g", topics.grouping, 2)] == [b"v3", b"v4"]
    await bus.publish(topics.grouping, b"v5", key=b"k")  # appended after the cut-off record
    bus = await _bus(tmp_path, store, topics)
    assert [d.value for d in await _take(bus, "g", topics.grouping, 3)] == [b"v3", b"v4", b"v5"]
    assert np.all([d.offset for d in await _take(bus, "g", topics.grouping, 3)] == np.array([3, 4, 5]))
    store.close()


async def test_a_message_written_to_disk_needs_its_encoding(tmp_path: Path) -> None:
    """The decoded event rides along in this process; a stage topic's message is still
    written to its segment, so its encoded value is required, and an in-memory metric
    event cannot be encoded by mistake."""
    topics = Topics.of(Settings(data_dir=tmp_path))
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = await _bus(tmp_path, store, topics)
    need = IncidentsNeedRca(incident_ids=("inc-1",), watermark=5.0)
    with pytest.raises(BusError, match="encoded value"):
        await bus.publish(topics.analysis, b"", key=b"k", event=need)
    await bus.publish(topics.analysis, encode(need), key=b"k", event=need)
    (d,) = await _take(bus, "rca", topics.analysis, 1)
    assert d.event is need and delivered(d) == need
    bus = await _bus(tmp_path, store, topics)  # after a restart: read from the segment, decoded
    (d,) = await _take(bus, "rca", topics.analysis, 1)
    assert d.event is None and delivered(d) == need
    with pytest.raises(EventError):
        encode(MetricPoints.in_memory(_points(0)))
    store.close()


async def test_committed_offsets_file_stays_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import server.bus.memory as memory

    monkeypatch.setattr(memory, "OFFSETS_BYTES", 500)
    topics = Topics.of(Settings(data_dir=tmp_path))
    store = DuckDBStore(tmp_path / "rca.duckdb")
    bus = await _bus(tmp_path, store, topics)
    c = await bus.consumer(group="g", topics=[topics.grouping])
    for i in range(200):  # one acknowledgement per message: 200 appended lines, compacted as it goes
        await bus.publish(topics.grouping, b"v%d" % i, key=b"k")
        await c.ack(await c.poll(timeout=0.1))
    assert (tmp_path / "bus" / "offsets.log").stat().st_size < 1000
    bus = await _bus(tmp_path, store, topics)
    assert [p.committed for p in await bus.lag(group="g", topic=topics.grouping)] == [200]
    store.close()
