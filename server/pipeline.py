"""The pipeline worker: bus messages -> detector -> grouping -> RCA, in event time.

One consumer task. Heavy work runs in a worker thread so the API stays responsive.
``pending`` counts ingested events whose processing (detection, grouping and the RCA
of every incident they touched) has not finished; it reaches 0 only when all is done.
RCA is debounced: it runs when the bus is idle, or at least every
``rca_max_delay_seconds`` during a continuous stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from server.bus.base import Bus, BusMessage
from server.detector.core import DetectorConfig, warm_up
from server.detector.worker import DetectorStage
from server.grouping.worker import IncidentManager
from server.rca.service import RcaService, candidate_window
from server.settings import Settings
from server.store.base import Store

log = logging.getLogger("rca.pipeline")


class Pending:
    """Thread-safe count of events not fully processed."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._n += n

    def done(self, n: int) -> None:
        with self._lock:
            self._n = max(0, self._n - n)

    @property
    def value(self) -> int:
        return self._n


class Pipeline:
    def __init__(self, *, store: Store, bus: Bus, settings: Settings, metrics: Any = None) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.pending = Pending()
        self.metrics = metrics
        warm_up()  # compile the detector kernel before the first batch, not while it waits
        self.detector_config = DetectorConfig(**settings.detector)
        self.detector = DetectorStage(self.detector_config)
        self.state_path = Path(settings.data_dir) / "detector_state.npz"
        try:
            self.detector.load(self.state_path)
        except Exception:  # a corrupt state file must not stop the server: start fresh
            log.exception("could not load detector state from %s; starting with fresh baselines", self.state_path)
            self.detector = DetectorStage(self.detector_config)
        self.incidents = IncidentManager(store, settings.grouping, settings.pipeline)
        self.rca = RcaService(store)
        self.dirty: set[str] = set()
        self._awaiting = 0
        self._last_rca = time.monotonic()
        self._last_save = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self.errors = 0
        self.last_error: str | None = None
        self.status = "ok"

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._retrain_lock = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="rca-pipeline")

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Finish the work already accepted (up to ``drain_timeout`` s), then stop: points
        that were acknowledged with 202 are detected before the process exits."""
        deadline = time.monotonic() + drain_timeout
        while (self.pending.value > 0 and self._task is not None and not self._task.done()
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        if self.pending.value > 0:
            log.warning("stopping with %d events not fully processed", self.pending.value)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for t in list(self._bg):
            t.cancel()
        self.save_state()

    def save_state(self) -> None:
        try:
            self.detector.save(self.state_path)
        except Exception:
            log.exception("could not save detector state")

    async def submit(self, message: BusMessage) -> None:
        """Publish with pending accounting (the API calls this after storing raw data)."""
        self.pending.add(message.count)
        try:
            await self.bus.publish(message)
        except BaseException:
            self.pending.done(message.count)
            raise

    @property
    def watermark(self) -> float | None:
        w = self.detector.watermark
        return None if w == float("-inf") else w

    # ---- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            msg = await self.bus.get()
            await self._handle_safely(msg)
            while not self.bus.empty() and time.monotonic() - self._last_rca < self.settings.pipeline.rca_max_delay_seconds:
                await self._handle_safely(await self.bus.get())
            if self.dirty:
                dirty, self.dirty = self.dirty, set()
                try:
                    await asyncio.to_thread(self._run_rca, dirty)
                except Exception as exc:
                    self._fail(exc)
            self._last_rca = time.monotonic()
            if self._last_rca - self._last_save > 30.0:  # bound what a crash can lose
                self._last_save = self._last_rca
                await asyncio.to_thread(self.save_state)
            self.pending.done(self._awaiting)
            self._awaiting = 0
            if self.metrics is not None:
                self.metrics.pending.set(self.pending.value)

    async def _handle_safely(self, msg: BusMessage) -> None:
        try:
            await asyncio.to_thread(self._handle, msg)
        except Exception as exc:
            self._fail(exc)
        self._awaiting += msg.count

    def _fail(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("pipeline error")

    def _handle(self, msg: BusMessage) -> None:
        if msg.kind == "metrics":
            t0 = time.perf_counter()
            events = self.detector.process(msg.payload)
            if self.metrics is not None:
                self.metrics.detect_seconds.observe(time.perf_counter() - t0)
                self.metrics.late_points.set(self.detector.late_points)
            self.dirty |= self.incidents.handle(events)
        elif msg.kind == "changes":
            for lo, hi in _spans(sorted(ch.ts for ch in msg.payload), self._window_span()):
                self.dirty |= self._incidents_near(lo, hi)
        elif msg.kind == "logs":
            lo, hi = msg.payload["min_ts"], msg.payload["max_ts"]
            self.dirty |= self._incidents_near(lo, hi)
        elif msg.kind == "topology":
            self.incidents.regroup(self.store.get_topology())
            self.dirty |= set(self.incidents.incident_ids())
        elif msg.kind == "rerun":
            self.dirty.add(msg.payload)
        elif msg.kind == "label":
            self.rca.on_label(msg.payload)
            self.dirty.add(msg.payload.incident_id)
            self._schedule_retrain()
        elif msg.kind == "reanalyse_open":
            self.dirty |= {i.id for i in self.store.list_incidents(status="OPEN", limit=100_000)}

    @staticmethod
    def _window_span() -> float:
        before, after = candidate_window(0.0)
        return after - before

    def _incidents_near(self, lo: float, hi: float) -> set[str]:
        """Incidents whose RCA window overlaps [lo, hi] (from the store, so data that
        arrives after an incident resolved still reaches its RCA)."""
        before, after = candidate_window(0.0)  # window relative to onset: [onset+before, onset+after]
        incs = self.store.list_incidents(since=lo - after, until=hi - before, limit=100_000)
        return {i.id for i in incs}

    def _run_rca(self, dirty: set[str]) -> None:
        wm = self.watermark or 0.0
        for inc_id in sorted(dirty):
            if self.store.get_incident(incident_id=inc_id) is None:
                continue  # merged away
            t0 = time.perf_counter()
            self.rca.analyse_incident(inc_id, watermark=wm)
            if self.metrics is not None:
                self.metrics.rca_seconds.observe(time.perf_counter() - t0)
        self.incidents.prune()

    def _schedule_retrain(self) -> None:
        """Retrain in the background; pending holds one unit until the re-ranking is done."""
        self.pending.add(1)
        loop = self._loop
        assert loop is not None

        async def retrain() -> None:
            try:
                async with self._retrain_lock:
                    trained = await asyncio.to_thread(self.rca.retrain_if_needed)
                if trained:
                    await self.submit(BusMessage("reanalyse_open", None, count=1))
            except Exception as exc:
                self._fail(exc)
            finally:
                self.pending.done(1)

        def spawn() -> None:
            task = asyncio.ensure_future(retrain())
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)

        loop.call_soon_threadsafe(spawn)


def _spans(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Sorted times grouped into [first, last] spans wherever consecutive times are at most
    ``gap`` apart: one store query per span instead of one per change, without
    re-analysing the incidents between far-apart changes."""
    out: list[tuple[float, float]] = []
    for t in times:
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out
