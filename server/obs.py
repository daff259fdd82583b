"""Prometheus metrics of every process: the API (``GET /metrics``) and each stage worker
(``rca worker STAGE --metrics-port N``), one registry per app or worker process.

Names are the contract of the dashboards and rules in ``stack/prometheus`` and
``stack/grafana`` (a test scrapes live processes and checks every name they query).
Counters are exported with the ``_total`` suffix, histograms as ``_bucket``/``_sum``/``_count``.

Instrumentation elsewhere is one call into this module; every helper accepts ``None``
for "no metrics here" (unit tests that build a worker without a registry).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

import server

if TYPE_CHECKING:
    from server.bus.base import Bus
    from server.store.base import Store
    from server.topics import Topics

log = logging.getLogger("rca.obs")

#: ingest kinds (label ``kind`` of the ingest counters), initialised at 0 so rate() works at once
INGEST_KINDS = ("metrics", "logs", "deployment", "config_change", "flag_change", "topology", "alerts")
#: reasons a request is refused before processing (label ``reason``)
REFUSAL_REASONS = ("backpressure", "rate_limit")
STAGE_NAMES = ("detector", "grouping", "rca", "retrain")
#: held-out measures of the ranking model, and of the prior beside it (label ``measure``)
HELDOUT_MEASURES = ("ac1", "ac3", "mrr", "prior_ac1", "prior_ac3", "prior_mrr")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The server's own Prometheus metrics (one registry per app or worker process)."""

    def __init__(self, role: str = "all") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.info = Gauge("rca_build_info", "always 1; the version and role of this process", ["version", "role"],
                          registry=r)
        self.info.labels(server.__version__, role).set(1)
        # ---- ingest (API) -------------------------------------------------------------------
        self.ingested = Counter("rca_ingested_events", "events accepted by ingest endpoints", ["kind"], registry=r)
        self.rejected = Counter("rca_rejected_batches", "ingest batches rejected (4xx)", ["kind"], registry=r)
        self.refused = Counter("rca_refused_requests", "requests refused before processing (auth, backpressure, "
                               "rate limit, content type, timeouts)", ["reason"], registry=r)
        self.requests = Histogram("rca_http_request_seconds", "HTTP request latency", ["route", "method"], registry=r)
        self.cache = Counter("rca_cache_requests", "query cache lookups by result (hit, miss)", ["result"], registry=r)
        # ---- progress -----------------------------------------------------------------------
        self.pending = Gauge("rca_pending_events", "ingested events not fully processed", registry=r)
        self.bus_lag = Gauge("rca_bus_lag_messages", "messages published to a stage's topic partition and not yet "
                             "acknowledged by the stage's consumer group", ["stage", "partition"], registry=r)
        self.late_points = Gauge("rca_late_points", "points older than their series' newest point (stored, not detected)", registry=r)
        # ---- stages -------------------------------------------------------------------------
        self.detect_seconds = Histogram("rca_detect_batch_seconds", "detector time per metric batch",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.rca_seconds = Histogram("rca_analysis_seconds", "RCA time per incident", buckets=_LATENCY_BUCKETS,
                                     registry=r)
        self.stage_seconds = Histogram("rca_stage_batch_seconds", "time a stage worker spends on one polled batch "
                                       "(effects stored, downstream events published)", ["stage"],
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.stage_messages = Counter("rca_stage_messages", "bus messages handled by a stage", ["stage"], registry=r)
        #: per stage, its children of the two above (see observe_batch)
        self.stage_children: dict[str, tuple[Any, Any]] = {}
        self.stage_errors = Counter("rca_stage_errors", "failed batches of a stage (redelivered when transient)",
                                    ["stage"], registry=r)
        self.store_errors = Counter("rca_store_errors", "store operations that failed (StoreError), by component "
                                    "(api, or the stage)", ["component"], registry=r)
        self.shared_errors = Counter("rca_shared_state_errors", "rate-limit or cache backend calls that failed "
                                     "(the request went on without them)", ["component"], registry=r)
        # ---- incidents and the model (sampled from the state store) -----------------------------
        self.incidents = Gauge("rca_incidents", "incidents in the state store by status", ["status"], registry=r)
        self.labels_stored = Gauge("rca_labels", "labels in the state store", registry=r)
        self.model_version = Gauge("rca_model_version", "version of the newest ranking model (0: heuristic prior "
                                   "only)", registry=r)
        self.model_labels = Gauge("rca_model_labels_used", "labels the newest ranking model was trained on",
                                  registry=r)
        self.model_blend = Gauge("rca_model_blend_weight", "weight of the learnt model against the prior",
                                 registry=r)
        self.model_heldout = Gauge("rca_model_heldout", "held-out accuracy of the newest model (ac1, ac3, mrr) "
                                   "and of the heuristic prior on the same folds (prior_ac1 ...)", ["measure"],
                                   registry=r)
        if role in ("all", "api"):  # series a worker process never changes stay out of its scrape
            for kind in INGEST_KINDS:
                self.ingested.labels(kind)
                self.rejected.labels(kind)
            for reason in REFUSAL_REASONS:
                self.refused.labels(reason)
            for result in ("hit", "miss"):
                self.cache.labels(result)
        for stage in STAGE_NAMES:
            self.stage_seconds.labels(stage)
            self.stage_messages.labels(stage)
            self.stage_errors.labels(stage)
        for component in ("api", *STAGE_NAMES):
            self.store_errors.labels(component)
        for component in ("limits", "cache"):
            self.shared_errors.labels(component)
        for status in ("OPEN", "RESOLVED"):
            self.incidents.labels(status)
        for measure in HELDOUT_MEASURES:
            self.model_heldout.labels(measure)


# ---- one-line hooks ------------------------------------------------------------------------

def observe_batch(metrics: Metrics | None, stage: str, seconds: float, messages: int) -> None:
    if metrics is not None:
        children = metrics.stage_children.get(stage)
        if children is None:  # looked up once per stage (a labels() lookup is a dozen Python calls)
            children = metrics.stage_children[stage] = (metrics.stage_seconds.labels(stage),
                                                        metrics.stage_messages.labels(stage))
        children[0].observe(seconds)
        children[1].inc(messages)


def count_error(metrics: Metrics | None, component: str, exc: BaseException) -> None:
    """A failed batch or request: counted per stage, and as a store error when it is one."""
    if metrics is None:
        return
    from server.store.base import StoreError

    if component in STAGE_NAMES:
        metrics.stage_errors.labels(component).inc()
    if isinstance(exc, StoreError):
        metrics.store_errors.labels(component).inc()


def count_shared_error(metrics: Metrics | None, component: str) -> None:
    if metrics is not None:
        metrics.shared_errors.labels(component).inc()


# ---- sampled values ------------------------------------------------------------------------

async def sample_lag(metrics: Metrics, bus: Bus, topics: Topics, stages: Iterable[str] | None = None) -> int:
    """Per-partition lag of each stage's consumer group (all stages, or ``stages``); returns the total."""
    want = None if stages is None else set(stages)
    total = 0
    for stage, topic in topics.stages():
        if want is not None and stage not in want:
            continue
        for p in await bus.lag(group=topics.group(stage), topic=topic):
            metrics.bus_lag.labels(stage, str(p.partition)).set(p.lag)
            total += p.lag
    return total


def sample_store(metrics: Metrics, store: Store) -> None:
    """Incidents, labels and the newest model, read from the state store (run in a thread)."""
    for status in ("OPEN", "RESOLVED"):
        metrics.incidents.labels(status).set(len(store.list_incidents(status=status, limit=1_000_000)))
    metrics.labels_stored.set(len(store.list_labels()))
    infos = store.list_model_infos()
    version, info = infos[-1] if infos else (0, {})
    metrics.model_version.set(version)
    metrics.model_labels.set(float(info.get("labels_used") or 0))
    metrics.model_blend.set(float(info.get("blend_weight") or 0.0))
    heldout = info.get("heldout") or {}
    for measure in HELDOUT_MEASURES:
        value = heldout.get(measure)
        if isinstance(value, int | float):
            metrics.model_heldout.labels(measure).set(float(value))


# ---- worker processes ----------------------------------------------------------------------

def serve(metrics: Metrics, port: int, host: str = "0.0.0.0") -> tuple[Any, threading.Thread]:
    """Expose ``metrics`` on http://host:port/metrics from a daemon thread (stage workers)."""
    return start_http_server(port, addr=host, registry=metrics.registry)


async def sample_forever(metrics: Metrics, bus: Bus, topics: Topics, stages: Iterable[str],
                         every: float = 5.0) -> None:
    """A worker's own stages' lag, refreshed every ``every`` s until cancelled."""
    stages = list(stages)
    while True:
        t0 = time.monotonic()
        try:
            await sample_lag(metrics, bus, topics, stages)
        except Exception:  # the bus is down: keep the last values, the worker reports the error
            log.debug("lag sample failed", exc_info=True)
        await asyncio.sleep(max(0.5, every - (time.monotonic() - t0)))
