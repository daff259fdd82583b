"""Shared application state and FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from server.progress import Progress
from server.publisher import Publisher
from server.settings import Settings
from server.store.base import Store
from server.timeutil import parse_ts

if TYPE_CHECKING:
    from server.api.auth import KeyRing


class Metrics:
    """The server's own Prometheus metrics (one registry per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter("rca_ingested_events", "events accepted by ingest endpoints", ["kind"], registry=r)
        self.rejected = Counter("rca_rejected_batches", "ingest batches rejected (4xx)", ["kind"], registry=r)
        self.pending = Gauge("rca_pending_events", "ingested events not fully processed", registry=r)
        self.late_points = Gauge("rca_late_points", "points older than their series' newest point (stored, not detected)", registry=r)
        self.detect_seconds = Histogram("rca_detect_batch_seconds", "detector time per metric batch", registry=r)
        self.rca_seconds = Histogram("rca_analysis_seconds", "RCA time per incident", registry=r)
        self.refused = Counter("rca_refused_requests", "requests refused before processing (auth, backpressure, "
                               "content type, timeouts)", ["reason"], registry=r)
        self.requests = Histogram("rca_http_request_seconds", "HTTP request latency", ["route", "method"], registry=r)


@dataclass
class AppState:
    settings: Settings
    store: Store
    publisher: Publisher
    progress: Progress
    metrics: Metrics
    keys: KeyRing = field(default=None)  # type: ignore[assignment]
    extra: dict[str, Any] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rca
    return state


State = Annotated[AppState, Depends(get_state)]


def ts_param(value: str | None, name: str) -> float | None:
    """A time bound from a query parameter (``?since=`` with nothing after it means no bound)."""
    if value is None or not value.strip():
        return None
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", name], "msg": str(exc), "type": "value_error"}]) from exc
