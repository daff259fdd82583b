"""The pipeline's stage workers run together in one process (the embedded default).

``rca serve`` (no role) starts every stage as an asyncio task beside the API, on the same
bus and stores: detector -> grouping -> rca, and retrain beside rca. Nothing here is
reachable from the API's request handlers: they hold a publisher and the stores only.
In the stack each stage runs in its own process instead (``rca worker STAGE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from server.bus.base import Bus
from server.progress import Progress
from server.rca.service import RcaService
from server.settings import Settings
from server.status import StatusBoard
from server.store.base import Store
from server.workers.base import StageWorker
from server.workers.detector import DetectorWorker
from server.workers.grouping import GroupingWorker
from server.workers.rca import RcaWorker, RetrainWorker, _spans

__all__ = ["STAGES", "StageRunner", "_spans", "build_workers"]

log = logging.getLogger("rca.pipeline")

#: stage names accepted by ``rca worker`` ("rca" includes retraining)
STAGES = ("detector", "grouping", "rca")


def build_workers(stages: Sequence[str], *, store: Store, bus: Bus, settings: Settings, status: StatusBoard,
                  metrics: Any = None, member_id: str | None = None) -> tuple[list[StageWorker], RcaService | None]:
    workers: list[StageWorker] = []
    rca: RcaService | None = None
    for stage in stages:
        if stage == "detector":
            workers.append(DetectorWorker(bus=bus, store=store, settings=settings, status=status, metrics=metrics,
                                          member_id=member_id))
        elif stage == "grouping":
            workers.append(GroupingWorker(bus=bus, store=store, settings=settings, status=status,
                                          member_id=member_id))
        elif stage == "rca":
            rca = RcaService(store)
            workers.append(RcaWorker(bus=bus, store=store, settings=settings, status=status, rca=rca,
                                     metrics=metrics, member_id=member_id))
            workers.append(RetrainWorker(bus=bus, store=store, settings=settings, status=status, rca=rca,
                                         member_id=member_id))
        else:
            raise ValueError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})")
    for w in workers:
        w.metrics = metrics
    return workers, rca


class StageRunner:
    """Runs stage workers as tasks; stops them after the accepted work is done."""

    def __init__(self, workers: list[StageWorker], progress: Progress | None = None,
                 rca: RcaService | None = None) -> None:
        self.workers = workers
        self.progress = progress
        self.rca = rca  # for tools that inspect the ranker (server.rca.tune), never the API
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(w.run(), name=f"rca-{w.stage}") for w in self.workers]

    async def wait(self) -> None:
        await asyncio.gather(*self.tasks)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Finish the work already accepted (up to ``drain_timeout`` s), then stop: points
        that were acknowledged with 202 are detected before the process exits."""
        if self.progress is not None:
            deadline = time.monotonic() + drain_timeout
            pending = await self.progress.pending()
            while pending and time.monotonic() < deadline and all(not t.done() for t in self.tasks):
                await asyncio.sleep(0.05)
                pending = await self.progress.pending()
            if pending:
                log.warning("stopping with %d messages not fully processed", pending)
        for w in self.workers:
            w.stop()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 30.0)

