"""The bus contract, on every backend: order per key, acknowledged progress and lag,
redelivery of what a consumer that died had not acknowledged, and a group's partitions
spread over its members when one joins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from server.bus.base import Bus, Consumer, Delivery, TopicPartition, TopicSpec, partition_of
from server.events import IncidentsNeedRca, delivered, encode
from tests.bus.conftest import BusFactory


async def _drain(consumers: Sequence[Consumer], want: int, *, ack: bool = True, timeout: float = 60.0,
                 ) -> dict[str, list[Delivery]]:
    """Poll every consumer until ``want`` deliveries arrived in total."""
    got: dict[str, list[Delivery]] = {c.member_id: [] for c in consumers}
    deadline = time.monotonic() + timeout
    while sum(map(len, got.values())) < want and time.monotonic() < deadline:
        for c in consumers:
            batch = await c.poll(max_records=100, timeout=0.2)
            got[c.member_id].extend(batch)
            if ack and batch:
                await c.ack(batch)
    return got


async def _publish(bus: Bus, topic: str, n: int, keys: int) -> None:
    for i in range(n):
        k = f"key-{i % keys}"
        await bus.publish(topic, f"{k}:{i}".encode(), key=k.encode())


async def test_order_per_key_and_partition_of_key(make_bus: BusFactory, topic: str) -> None:
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 4)])
    assert bus.partitions(topic) == 4
    await _publish(bus, topic, 200, keys=7)
    c = await bus.consumer(group=f"{topic}-g", topics=[topic])
    got = (await _drain([c], 200))[c.member_id]
    assert len(got) == 200
    by_key: dict[str, list[int]] = {}
    for d in got:
        k, i = d.value.decode().split(":")
        assert d.key == k.encode() and d.partition == partition_of(d.key, 4)
        by_key.setdefault(k, []).append(int(i))
    assert len(by_key) == 7
    for seq in by_key.values():
        assert seq == sorted(seq)  # every key's messages in publish order
    await c.close()


async def test_the_consumer_gets_the_event_that_was_published(make_bus: BusFactory, topic: str) -> None:
    """``delivered`` gives back the event published with the message: handed over as is by
    a bus in this process, decoded from the bytes from a broker."""
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 1)])
    sent = [IncidentsNeedRca(incident_ids=(f"inc-{i}",), watermark=float(i)) for i in range(3)]
    for ev in sent:
        await bus.publish(topic, encode(ev), key=b"k", event=ev)
    c = await bus.consumer(group=f"{topic}-ev", topics=[topic])
    got = (await _drain([c], 3))[c.member_id]
    assert [delivered(d) for d in got] == sent
    await c.close()


async def test_lag_follows_acknowledgements(make_bus: BusFactory, topic: str) -> None:
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 2)])
    group = f"{topic}-g"
    await _publish(bus, topic, 10, keys=3)
    assert sum(p.lag for p in await bus.lag(group=group, topic=topic)) == 10
    c = await bus.consumer(group=group, topics=[topic])
    got = (await _drain([c], 10, ack=False))[c.member_id]
    assert sum(p.lag for p in await bus.lag(group=group, topic=topic)) == 10  # delivered is not done
    await c.ack(got)
    assert sum(p.lag for p in await bus.lag(group=group, topic=topic)) == 0
    await c.close()


async def test_unacknowledged_messages_are_redelivered_after_the_consumer_dies(
        make_bus: BusFactory, topic: str) -> None:
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 1)])
    group = f"{topic}-g"
    await _publish(bus, topic, 20, keys=1)
    first = await bus.consumer(group=group, topics=[topic])
    got = (await _drain([first], 20, ack=False))[first.member_id]
    assert [int(d.value.split(b":")[1]) for d in got] == list(range(20))
    await first.ack(got[:8])  # effects of the first 8 stored; then the worker dies
    await first.close()
    other = await make_bus()
    await other.start([TopicSpec(topic, 1)])
    second = await other.consumer(group=group, topics=[topic])
    again = (await _drain([second], 12))[second.member_id]
    assert [int(d.value.split(b":")[1]) for d in again] == list(range(8, 20))  # nothing acked comes back
    assert sum(p.lag for p in await other.lag(group=group, topic=topic)) == 0
    await second.close()


async def test_seek_rereads_from_an_offset(make_bus: BusFactory, topic: str) -> None:
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 1)])
    await _publish(bus, topic, 6, keys=1)
    c = await bus.consumer(group=f"{topic}-g", topics=[topic])
    got = (await _drain([c], 6, ack=False))[c.member_id]
    assert len(got) == 6
    c.seek(TopicPartition(topic, 0), 2)
    again = (await _drain([c], 4, ack=False))[c.member_id]
    assert [d.offset for d in again] == [2, 3, 4, 5]
    await c.close()


async def test_rebalance_spreads_partitions_over_two_members(make_bus: BusFactory, topic: str) -> None:
    bus = await make_bus()
    await bus.start([TopicSpec(topic, 4)])
    group = f"{topic}-g"
    a = await bus.consumer(group=group, topics=[topic])
    await _publish(bus, topic, 40, keys=8)
    first = await _drain([a], 40)
    assert len(first[a.member_id]) == 40 and a.assignment() == {TopicPartition(topic, p) for p in range(4)}
    bus_b = await make_bus()
    await bus_b.start([TopicSpec(topic, 4)])
    b = await bus_b.consumer(group=group, topics=[topic])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both keep polling while the group rebalances
        await asyncio.gather(a.poll(timeout=0.2), b.poll(timeout=0.2))
        if a.assignment() and b.assignment() and not (a.assignment() & b.assignment()) \
                and len(a.assignment() | b.assignment()) == 4:
            break
    assert a.assignment() and b.assignment(), "the second member got no partition"
    assert not (a.assignment() & b.assignment())
    assert a.assignment() | b.assignment() == {TopicPartition(topic, p) for p in range(4)}
    await _publish(bus, topic, 40, keys=8)
    second = await _drain([a, b], 40)
    assert sum(map(len, second.values())) == 40
    for member, c in ((a.member_id, a), (b.member_id, b)):
        assert {TopicPartition(d.topic, d.partition) for d in second[member]} <= c.assignment()
    values = [d.value for ds in second.values() for d in ds]
    assert len(set(values)) == 40  # each message to exactly one member
    await a.close()
    await b.close()


async def test_a_durable_bus_keeps_messages_and_committed_offsets_across_a_restart(
        restart_bus: BusFactory, topic: str) -> None:
    """What was published and acknowledged outlives the process that held the bus: after a
    restart the group goes on after its last acknowledgement, and lag says so at once."""
    bus = await restart_bus()
    assert bus.durable
    await bus.start([TopicSpec(topic, 2)])
    group = f"{topic}-g"
    await _publish(bus, topic, 30, keys=5)
    c = await bus.consumer(group=group, topics=[topic])
    got = (await _drain([c], 30, ack=False))[c.member_id]
    done = [d for d in got if int(d.value.split(b":")[1]) < 10]
    await c.ack(done)  # only the first 10 (of each partition's prefix) are stored
    left = sum(p.lag for p in await bus.lag(group=group, topic=topic))
    bus = await restart_bus()  # the process is gone; a new one opens the same bus
    await bus.start([TopicSpec(topic, 2)])
    assert sum(p.lag for p in await bus.lag(group=group, topic=topic)) == left == 20
    await _publish(bus, topic, 5, keys=5)  # and new messages go on after the old ones
    c = await bus.consumer(group=group, topics=[topic])
    again = (await _drain([c], 25))[c.member_id]
    assert sorted(int(d.value.split(b":")[1]) for d in again) == sorted([*range(10, 30), *range(5)])
    assert sum(p.lag for p in await bus.lag(group=group, topic=topic)) == 0
    await c.close()
