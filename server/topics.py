"""Topic names, consumer groups and partition counts (from settings)."""

from __future__ import annotations

from dataclasses import dataclass

from server.bus.base import TopicSpec
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Topics:
    metrics: str
    grouping: str
    analysis: str
    labels: str
    metric_partitions: int

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        p = settings.bus.topic_prefix
        return cls(metrics=f"{p}.metrics", grouping=f"{p}.grouping", analysis=f"{p}.analysis",
                   labels=f"{p}.labels", metric_partitions=settings.bus.partitions)

    def specs(self) -> list[TopicSpec]:
        return [TopicSpec(self.metrics, self.metric_partitions), TopicSpec(self.grouping, 1),
                TopicSpec(self.analysis, 1), TopicSpec(self.labels, 1)]

    def group(self, stage: str) -> str:
        return f"{self.metrics.rsplit('.', 1)[0]}.{stage}"

    def stages(self) -> list[tuple[str, str]]:
        """(stage, topic it consumes), in pipeline order."""
        return [("detector", self.metrics), ("grouping", self.grouping), ("rca", self.analysis),
                ("retrain", self.labels)]
