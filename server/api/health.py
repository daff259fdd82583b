"""Health and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import obs
from server.api import schemas
from server.api.auth import require
from server.api.deps import State
from server.timeutil import iso

router = APIRouter(tags=["health"])


@router.get("/health", response_model=schemas.HealthPublic, summary="Liveness, pending work, stage lag")
async def health(state: State) -> Any:
    components: dict[str, str] = {}
    try:
        await asyncio.to_thread(state.store.ping)
        components["store"] = "ok"
    except Exception as exc:  # the store is down: say so, do not crash
        components["store"] = f"error: {exc}"
    stages: dict[str, dict[str, Any]] = {}
    pending = 0
    watermark: float | None = None
    late = 0
    running = True
    try:
        progress = await state.progress.stages()
        components["bus"] = "ok"
    except Exception as exc:
        components["bus"] = f"error: {exc}"
        progress = []
        pending = -1
        running = False
    last_error: str | None = None
    for sp in progress:
        live = [m for m in sp.members.values() if m.get("running")]
        running = running and bool(live)
        errors = sum(int(m.get("errors") or 0) for m in sp.members.values())
        for m in sp.members.values():
            last_error = m.get("last_error") or last_error
        if sp.stage == "detector":
            wms = [m["watermark"] for m in sp.members.values() if m.get("watermark") is not None]
            watermark = max(wms) if wms else None
            late = sum(int(m.get("late_points") or 0) for m in sp.members.values())
        assignments = {name: list(m["partitions"]) for name, m in sp.members.items()
                       if m.get("running") and isinstance(m.get("partitions"), list)}
        stages[sp.stage] = {"lag": sp.lag, "partitions": sp.partitions, "workers": len(live), "errors": errors,
                            "assignments": assignments}
        pending += sp.lag
    components["pipeline"] = "ok" if running else "stopped"
    if last_error:
        components["pipeline_last_error"] = last_error
    status = "ok" if components["store"] == "ok" and components["bus"] == "ok" and running else "degraded"
    return {"status": status, "pending": max(pending, 0) if pending >= 0 else 1, "components": components,
            "watermark": iso(watermark), "late_points": late, "stages": stages}


@router.get("/metrics", summary="Prometheus text exposition of the server's own metrics",
            dependencies=[require("read")], response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(state: State) -> Response:
    with contextlib.suppress(Exception):  # the bus is down: keep the last values
        state.metrics.pending.set(await obs.sample_lag(state.metrics, state.progress.bus, state.progress.topics))
    try:
        await asyncio.to_thread(obs.sample_store, state.metrics, state.store)
    except Exception as exc:  # the store is down: keep the last values, count it
        obs.count_error(state.metrics, "api", exc)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
