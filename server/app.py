"""``create_app(settings)``: the lifespan builds store, bus and (role ``all``) the stage
workers once from settings. Role ``api`` serves ingest and queries only: the stages run
as ``rca worker STAGE`` processes on a durable bus."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

import server
from server.api import auth, evidence, export, health, ingest, openapi, query, receivers, schemas
from server.api.auth import KeyRing, require, role_check
from server.api.deps import AppState
from server.api.guard import GuardMiddleware, allowed_hosts
from server.api.hot import HotRoutes, hot_routes
from server.api.shared import rate_check, rate_limit
from server.bus.base import Bus
from server.ingest import json_points, prom_scan
from server.obs import Metrics, count_error
from server.pipeline import STAGES, StageRunner, build_workers
from server.progress import Progress
from server.publisher import Publisher
from server.settings import Settings
from server.shared.base import Cache
from server.shared.factory import build_cache, build_limiter
from server.shared.invalidate import invalidating
from server.status import MemoryStatusBoard, StatusBoard, StoreStatusBoard
from server.store import factory as store_factory
from server.store.base import CardinalityError, PointLog, Store, StoreError
from server.topics import Topics

log = logging.getLogger("rca")


def build_store(settings: Settings, cache: Cache | None = None, metrics: Metrics | None = None) -> Store:
    """The store of ``RCA_STORE__BACKEND`` / ``RCA_STORE__TELEMETRY_BACKEND`` (see server.store.factory),
    whose writes invalidate the query cache (``cache``, else the one of ``RCA_CACHE__*``)."""
    store = store_factory.build_store(settings)
    cache = build_cache(settings) if cache is None else cache
    return invalidating(store, cache, on_error=None if metrics is None else
                        lambda: metrics.shared_errors.labels("cache").inc())


def build_bus(settings: Settings, store: Store | None = None) -> Bus:
    """The bus of ``RCA_BUS__BACKEND``. The in-process bus is durable: the stages' messages
    and committed offsets under ``<data dir>/bus``, and (given the store) the metrics and
    events topics read back from the store itself (:mod:`server.journal`)."""
    if settings.bus.backend == "memory":
        from server.bus.memory import MemoryBus, SourceLog
        from server.journal import JournalSource, PointsSource

        topics = Topics.of(settings)
        sources: dict[str, SourceLog] = {}
        if store is not None:
            sources[topics.events] = JournalSource(store, topics.events)
            if isinstance(store, PointLog):
                sources[topics.metrics] = PointsSource(store, settings.bus.partitions)
        return MemoryBus(maxsize=settings.bus.max_queued_messages, bounded=[topics.metrics],
                         log_dir=Path(settings.data_dir) / "bus" if store is not None else None, sources=sources)
    if settings.bus.backend == "kafka":
        from server.bus.kafka import KafkaBus

        return KafkaBus(settings.bus)
    raise ValueError(f"unknown bus backend {settings.bus.backend!r}")


def build_status(settings: Settings, store: Store) -> StatusBoard:
    """Workers in this process report in memory; workers elsewhere through the store."""
    return MemoryStatusBoard() if settings.role == "all" else StoreStatusBoard(store)


def _openapi_schemas() -> dict[str, Any]:
    models: list[Any] = [schemas.MetricPointIn, schemas.LogIn, schemas.DeploymentIn, schemas.ConfigChangeIn,
              schemas.FlagChangeIn, schemas.EdgeIn, schemas.Accepted, schemas.ErrorPublic, schemas.AlertIn]
    out: dict[str, Any] = {}
    for m in models:
        sch = m.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(sch.pop("$defs", {}))
        out[m.__name__] = sch
    return out


class TimingMiddleware:
    """Request latency per route into ``rca_http_request_seconds``. Pure ASGI: a
    ``BaseHTTPMiddleware`` would run each request in a task of its own and wrap every body
    chunk it receives in another (measured: a third of the event loop's time on 10k-point
    ingest batches)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            state = getattr(scope["app"].state, "rca", None) if "app" in scope else None
            route = scope.get("route")
            if state is not None and route is not None:
                state.metrics.requests.labels(getattr(route, "path", "?"), scope["method"]).observe(
                    time.perf_counter() - t0)


def _warm_decoders() -> None:
    json_points.warm_up()
    prom_scan.warm_up()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        if settings.role == "api" and settings.bus.backend == "memory":
            raise ValueError("role 'api' needs a bus shared with the workers (RCA_BUS__BACKEND=kafka); "
                             "the in-process bus only works with every stage in this process (role 'all')")
        metrics = Metrics(role=settings.role)
        cache = build_cache(settings)
        store = build_store(settings, cache, metrics)
        limiter = build_limiter(settings)
        # the compiled JSON and remote-write scans, loaded from Numba's cache beside the
        # start-up (a batch that arrives first waits for them)
        warm = asyncio.get_running_loop().run_in_executor(None, _warm_decoders)
        bus = build_bus(settings, store)
        topics = Topics.of(settings)
        await bus.start(topics.specs())
        status = build_status(settings, store)
        progress = Progress(bus, topics, status)
        runner: StageRunner | None = None
        if settings.role == "all":
            workers, rca = build_workers(STAGES, store=store, bus=bus, settings=settings, status=status,
                                         metrics=metrics)
            runner = StageRunner(workers, progress, rca)
        in_process = settings.bus.backend == "memory"
        publisher = Publisher(bus, topics, store, journal=in_process,
                              points_log=in_process and isinstance(store, PointLog))
        app.state.rca = AppState(settings=settings, store=store, publisher=publisher,
                                 progress=progress, metrics=metrics,
                                 keys=KeyRing(store, settings.auth), limiter=limiter, cache=cache)
        app.state.workers = runner  # not part of AppState: request handlers never see a worker
        if runner is not None:
            runner.start()
        # what exists now lives as long as the server: keep it out of every garbage collection
        # (a gen-2 pass over it cost ingest ~3x on JSON batches of 10k points)
        gc.freeze()
        log.info("rca server ready (role %s): data dir %s", settings.role, Path(settings.data_dir).resolve())
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await bus.close()
            with contextlib.suppress(Exception):
                await warm
            store.close()
            await limiter.close()
            cache.close()

    app = FastAPI(
        title="RCA workbench",
        version=server.__version__,
        description="Detects regressions in metric streams, groups them into incidents and ranks the "
                    "deployments, config changes and feature flags that probably caused them.",
        lifespan=lifespan,
    )
    # Roles per router (label and admin routes also check their own, stricter role), then the
    # per-client rate limits (RCA_LIMITS__INGEST / __QUERY) per scope. The answers every route
    # can give (401, 403, 408, 413, 415, 421, 422, 429, 500, 503) are declared from one table
    # in server/api/openapi.py.
    # The ingest routes are also served without the router, by HotRoutes (added below, the
    # innermost middleware), with these same checks: server/api/hot.py.
    ingest_checks = (role_check("ingest"), rate_check("ingest"))
    app.include_router(ingest.router, dependencies=[Depends(c) for c in ingest_checks])
    app.include_router(receivers.router, dependencies=[Depends(c) for c in ingest_checks])
    # Signed change webhooks check their own signature or token (RCA_WEBHOOKS__*), not an API key.
    app.include_router(receivers.webhooks_router)
    app.include_router(query.router, dependencies=[require("read"), rate_limit("query")])
    app.include_router(health.router)
    app.include_router(evidence.router, dependencies=[require("read"), rate_limit("query")])
    app.include_router(export.router, dependencies=[require("read"), rate_limit("query")])
    app.include_router(auth.router)
    app.add_middleware(HotRoutes, routes=hot_routes([ingest.router, receivers.router]), checks=ingest_checks)
    if settings.api.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Retry-After"])
    app.add_middleware(GuardMiddleware, hosts=allowed_hosts(settings.host, settings.api.allowed_hosts),
                       origins=settings.api.cors_origins, max_body_bytes=settings.api.max_body_bytes,
                       body_timeout=settings.api.body_timeout_seconds)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug: answer JSON as declared and close the connection cleanly (Starlette re-raises
        # the exception afterwards, so the server logs it with its traceback).
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the server log"},
                            status_code=500, headers={"Connection": "close"})

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s: %s", request.url.path, exc)
        state = getattr(request.app.state, "rca", None)
        if state is not None:
            count_error(state.metrics, "api", exc)
        return JSONResponse({"detail": f"storage error: {exc}"}, status_code=503)

    @app.exception_handler(CardinalityError)
    async def cardinality_error(request: Request, exc: CardinalityError) -> JSONResponse:
        # any ingest path (JSON, NDJSON, remote-write, OTLP ...) that passes the limits
        return ingest.cardinality_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                for e in exc.errors()]
        return JSONResponse({"detail": errs}, status_code=422)

    app.add_middleware(TimingMiddleware)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("components", {}).setdefault("schemas", {}).update(_openapi_schemas())
        openapi.finish(doc, app.routes)
        app.openapi_schema = doc
        return doc

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
