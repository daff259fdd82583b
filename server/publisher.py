"""What the API publishes after it stored raw data: typed events on the bus topics.

Metric batches are split by partition (a series always lands on the partition its key
``service\\x1fmetric`` hashes to, see :func:`server.bus.base.partition_of`) so each detector
worker sees whole series.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from server.bus.base import Bus, partition_of
from server.events import (
    ChangesAdded,
    LabelAdded,
    LogsAdded,
    MetricBatch,
    RerunRequested,
    TopologyChanged,
    encode,
)
from server.model import Change, Edge, Label
from server.topics import Topics

SEP = "\x1f"


def split_by_partition(table: pa.Table, partitions: int) -> list[tuple[int, pa.Table]]:
    """Rows grouped by the partition of their series (row order kept within a partition)."""
    if partitions <= 1:
        return [(0, table)]
    keys = pc.binary_join_element_wise(table.column("service"), table.column("metric"), SEP)
    enc = pc.dictionary_encode(keys).combine_chunks()
    per_key = np.array([partition_of(k, partitions) for k in enc.dictionary.to_pylist()], dtype=np.int64)
    part = per_key[enc.indices.to_numpy(zero_copy_only=False)]
    out = []
    for p in np.unique(part):
        idx = np.flatnonzero(part == p)
        out.append((int(p), table.take(pa.array(idx))))
    return out


class Publisher:
    def __init__(self, bus: Bus, topics: Topics) -> None:
        self.bus = bus
        self.topics = topics

    async def metrics(self, table: pa.Table) -> None:
        n = self.bus.partitions(self.topics.metrics)
        for p, part in split_by_partition(table, n):
            await self.bus.publish(self.topics.metrics, encode(MetricBatch.from_table(part)),
                                   key=b"p%d" % p, partition=p)

    async def logs(self, table: pa.Table) -> None:
        ts = table.column("ts").to_numpy()
        services = tuple(sorted(set(table.column("service").to_pylist())))
        await self.bus.publish(self.topics.analysis, encode(LogsAdded(
            min_ts=float(ts.min()), max_ts=float(ts.max()), count=table.num_rows, services=services)), key=b"logs")

    async def changes(self, changes: list[Change]) -> None:
        await self.bus.publish(self.topics.analysis, encode(ChangesAdded(
            ids=tuple(c.id for c in changes), ts=tuple(float(c.ts) for c in changes))), key=b"changes")

    async def topology(self, edges: list[Edge]) -> None:
        await self.bus.publish(self.topics.grouping, encode(TopologyChanged(
            edges=tuple((e.source, e.target) for e in edges))), key=b"topology")

    async def label(self, label: Label) -> None:
        await self.bus.publish(self.topics.labels, encode(LabelAdded(label_id=label.id, incident_id=label.incident_id)),
                               key=label.incident_id.encode())

    async def rerun(self, incident_id: str) -> None:
        await self.bus.publish(self.topics.analysis, encode(RerunRequested(incident_id=incident_id)),
                               key=incident_id.encode())
