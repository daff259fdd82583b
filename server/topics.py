"""Topic names, consumer groups and partition counts (from settings).

Two *source* topics carry what the API stored: ``metrics`` (metric batches, partitioned
by series) and ``events`` (changes, logs, topology, alerts, labels and reruns, in the
order they were stored). The stages' own topics carry what a stage produced:
``grouping`` (anomaly events, for the grouping stage) and ``analysis`` (incidents that
need RCA, model retrained). On the in-process bus the source topics' durable log is the
store itself (see :mod:`server.journal`); on Kafka every topic lives on the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.bus.base import TopicSpec
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Topics:
    metrics: str
    events: str
    grouping: str
    analysis: str
    metric_partitions: int

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        p = settings.bus.topic_prefix
        return cls(metrics=f"{p}.metrics", events=f"{p}.events", grouping=f"{p}.grouping",
                   analysis=f"{p}.analysis", metric_partitions=settings.bus.partitions)

    def specs(self) -> list[TopicSpec]:
        return [TopicSpec(self.metrics, self.metric_partitions), TopicSpec(self.events, 1),
                TopicSpec(self.grouping, 1), TopicSpec(self.analysis, 1)]

    def group(self, stage: str) -> str:
        return f"{self.metrics.rsplit('.', 1)[0]}.{stage}"

    def consumed(self, stage: str) -> list[str]:
        """The topics a stage's group reads."""
        return [t for s, t in self.stages() if s == stage]

    def stages(self) -> list[tuple[str, str]]:
        """(stage, topic it consumes), in pipeline order (a stage may read two topics)."""
        return [("detector", self.metrics), ("grouping", self.grouping), ("grouping", self.events),
                ("rca", self.analysis), ("rca", self.events), ("retrain", self.events)]
