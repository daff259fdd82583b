"""The store as the durable log of the in-process bus's source topics.

The API stores every batch before it answers 202, and numbers it as it stores it: metric
batches by the store's ingest sequence (:class:`server.store.base.PointLog`), and every
other event (changes, logs, topology, alerts, labels, reruns) by a record in the ingest
journal written in the same transaction as its data. Those numbers are the offsets of the
messages on the metrics and events topics, so after ``kill -9`` the bus ends each topic
where the store ends it and reads back whatever a stage had not finished: nothing
acknowledged is lost, not even between the store's commit and the publish.
"""

from __future__ import annotations

from server.events import MetricPoints, encode
from server.model.points import Points
from server.store.base import PointLog, StateStore


class PointsSource:
    """The metrics topic: stored metric batches, one message per batch and partition."""

    def __init__(self, store: PointLog, partitions: int) -> None:
        self.store = store
        self.partitions = max(1, partitions)
        self._cache: dict[tuple[str, str], int] = {}

    def end(self, partition: int) -> int:
        return self.store.points_log_end()

    def read(self, partition: int, start: int, stop: int) -> list[tuple[int, bytes, bytes]]:
        stored = dict(self.store.read_points(since_seq=start, until_seq=stop))
        out = []
        key = b"p%d" % partition
        for seq in range(start, min(stop, self.store.points_log_end())):
            pts = stored.get(seq, Points.empty())
            if self.partitions > 1:
                pts = pts.split(pts.partitions(self.partitions, self._cache), self.partitions)[partition]
            out.append((seq, key, encode(MetricPoints.from_points(pts, seq))))
        return out

    def trim(self, partition: int, before: int) -> None:
        return None  # the points are the data itself: kept


class JournalSource:
    """The events topic: the ingest journal (one partition)."""

    def __init__(self, store: StateStore, log: str) -> None:
        self.store = store
        self.log = log

    def end(self, partition: int) -> int:
        return self.store.journal_end(log=self.log)

    def read(self, partition: int, start: int, stop: int) -> list[tuple[int, bytes, bytes]]:
        return [(e.seq, e.key, e.value) for e in self.store.read_journal(log=self.log, since=start, until=stop)]

    def trim(self, partition: int, before: int) -> None:
        self.store.trim_journal(log=self.log, before=before)
