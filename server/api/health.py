"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api import schemas
from server.api.deps import State
from server.timeutil import iso

router = APIRouter(tags=["health"])


@router.get("/health", response_model=schemas.HealthPublic, summary="Liveness, pending work, components")
def health(state: State) -> Any:
    components: dict[str, str] = {}
    try:
        state.store.ping()
        components["store"] = "ok"
    except Exception as exc:  # the store is down: say so, do not crash
        components["store"] = f"error: {exc}"
    p = state.pipeline
    components["bus"] = "ok"
    running = p._task is not None and not p._task.done()
    components["pipeline"] = "ok" if running else "stopped"
    if p.last_error:
        components["pipeline_last_error"] = p.last_error
    status = "ok" if components["store"] == "ok" and running else "degraded"
    return {"status": status, "pending": p.pending.value, "components": components,
            "watermark": iso(p.watermark), "late_points": p.detector.late_points}


@router.get("/metrics", summary="Prometheus text exposition of the server's own metrics",
            response_class=PlainTextResponse)
def metrics(state: State) -> Response:
    state.metrics.pending.set(state.pipeline.pending.value)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
