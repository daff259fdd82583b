"""``create_app(settings)``: the lifespan builds store, bus and pipeline once from settings."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

import server
from server.api import export, health, ingest, query, schemas
from server.api.deps import AppState, Metrics
from server.bus.base import Bus
from server.bus.memory import MemoryBus
from server.pipeline import Pipeline
from server.settings import Settings
from server.store.base import Store, StoreError

log = logging.getLogger("rca")


def build_store(settings: Settings) -> Store:
    if settings.store.backend == "duckdb":
        from server.store.duckdb import DuckDBStore

        return DuckDBStore(Path(settings.data_dir) / "rca.duckdb", memory_limit=settings.store.memory_limit)
    raise ValueError(f"unknown store backend {settings.store.backend!r}")


def build_bus(settings: Settings) -> Bus:
    if settings.bus.backend == "memory":
        return MemoryBus(maxsize=settings.bus.max_queued_messages)
    raise ValueError(f"unknown bus backend {settings.bus.backend!r}")


def _openapi_schemas() -> dict[str, Any]:
    models: list[Any] = [schemas.MetricPointIn, schemas.LogIn, schemas.DeploymentIn, schemas.ConfigChangeIn,
              schemas.FlagChangeIn, schemas.EdgeIn, schemas.Accepted]
    out: dict[str, Any] = {}
    for m in models:
        sch = m.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(sch.pop("$defs", {}))
        out[m.__name__] = sch
    return out


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        store = build_store(settings)
        bus = build_bus(settings)
        metrics = Metrics()
        pipeline = Pipeline(store=store, bus=bus, settings=settings, metrics=metrics)
        app.state.rca = AppState(settings=settings, store=store, pipeline=pipeline, metrics=metrics)
        pipeline.start()
        log.info("rca server ready: data dir %s", Path(settings.data_dir).resolve())
        try:
            yield
        finally:
            await pipeline.stop()
            await bus.close()
            store.close()

    app = FastAPI(
        title="RCA workbench",
        version=server.__version__,
        description="Detects regressions in metric streams, groups them into incidents and ranks the "
                    "deployments, config changes and feature flags that probably caused them.",
        lifespan=lifespan,
    )
    app.include_router(ingest.router)
    app.include_router(query.router)
    app.include_router(health.router)
    app.include_router(export.router)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": f"storage error: {exc}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                for e in exc.errors()]
        return JSONResponse({"detail": errs}, status_code=422)

    @app.middleware("http")
    async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        state = getattr(request.app.state, "rca", None)
        route = request.scope.get("route")
        if state is not None and route is not None:
            state.metrics.requests.labels(getattr(route, "path", "?"), request.method).observe(
                time.perf_counter() - t0)
        return response

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("components", {}).setdefault("schemas", {}).update(_openapi_schemas())
        app.openapi_schema = doc
        return doc

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
