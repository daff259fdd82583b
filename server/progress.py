"""Progress of every stage from the bus (committed offsets vs end offsets) and the status
reports of the workers: ``pending`` and per-stage lag for ``GET /health``.

``pending`` is the number of messages some stage has not finished (acknowledged) yet,
summed over the stages and the topics they read: every stage publishes downstream
*before* it acknowledges, so ``pending`` is 0 only when everything ingested so far is
fully processed, in every process. On a durable bus the offsets outlive a crash, so
right after a restart ``pending`` counts what was acknowledged to clients but not yet
processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.bus.base import Bus
from server.status import StatusBoard
from server.topics import Topics


@dataclass(slots=True)
class StageProgress:
    stage: str
    topic: str  # the topics it reads, comma-separated
    lag: int
    committed: int
    end: int
    partitions: int
    members: dict[str, dict[str, Any]] = field(default_factory=dict)


class Progress:
    def __init__(self, bus: Bus, topics: Topics, status: StatusBoard) -> None:
        self.bus = bus
        self.topics = topics
        self.status = status

    async def stages(self) -> list[StageProgress]:
        reports = self.status.read()
        out: dict[str, StageProgress] = {}
        for stage, topic in self.topics.stages():
            lags = await self.bus.lag(group=self.topics.group(stage), topic=topic)
            sp = out.get(stage)
            if sp is None:
                sp = out[stage] = StageProgress(stage=stage, topic=topic, lag=0, committed=0, end=0, partitions=0,
                                                members=reports.get(stage, {}))
            else:
                sp.topic += f",{topic}"
            sp.lag += sum(p.lag for p in lags)
            sp.committed += sum(p.committed for p in lags)
            sp.end += sum(p.end for p in lags)
            sp.partitions += len(lags)
        return list(out.values())

    async def pending(self) -> int:
        return sum(s.lag for s in await self.stages())
