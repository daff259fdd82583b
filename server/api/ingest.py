"""Ingest endpoints: validate the whole batch, store it, publish it (202)."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from server.api import schemas
from server.api.deps import AppState, State
from server.api.validation import (
    BatchError,
    check_points_bounds,
    check_table_bounds,
    parse_items,
    validate_changes,
    validate_edges,
    validate_logs,
    validate_metrics,
)
from server.events import TopologyChanged
from server.ingest import arrow_ipc, json_points
from server.ingest.errors import DecodeError
from server.model import Edge
from server.model.points import Points
from server.publisher import AlreadyStored, Idempotency, changes_added, logs_added
from server.store.base import CardinalityError, SeriesLimits

router = APIRouter(tags=["ingest"])

_ID_PREFIX = {"deployment": "dep", "config_change": "cfg", "flag_change": "flag"}


# Content types a JSON ingest endpoint takes. No content type at all is read as JSON (command-line
# clients); the types a browser may send cross-site without a preflight are refused, so a web page
# cannot post to a server on the user's machine.
_JSON_TYPES = ("application/json", "application/x-ndjson", "application/ndjson")
_REFUSED_TYPES = ("text/plain", "multipart/form-data", "text/html")


def check_content_type(request: Request, accepted: tuple[str, ...] = _JSON_TYPES) -> str:
    """The request's media type, or 415 when this endpoint does not take it."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not media or media in accepted or (media.endswith("+json") and "application/json" in accepted):
        return media
    if media == "application/x-www-form-urlencoded" and "origin" not in request.headers:
        return media  # `curl -d` without -H: not a browser, read the body as JSON
    raise HTTPException(415, detail=f"unsupported content type {media!r}; send one of: {', '.join(accepted)}")


async def check_backpressure(state: AppState) -> None:
    """503 with Retry-After while processing is further behind than the configured bound
    (bus messages not yet processed by every stage). The reading is reused for 0.2 s, or
    until what this process published since could bring it to the bound (a broker's lag
    costs round trips; the in-process bus's nothing)."""
    now = time.monotonic()
    limit = state.settings.api.max_pending_messages
    published = state.publisher.published
    seen = state.extra.get("pending")
    if seen is None or now - seen[0] > 0.2 or seen[1] + (published - seen[2]) >= limit:
        seen = (now, await state.progress.pending(), published)
        state.extra["pending"] = seen
    pending = seen[1]
    if pending >= limit:
        state.metrics.refused.labels("backpressure").inc()
        raise HTTPException(503, headers={"Retry-After": "1"},
                            detail=f"processing is behind: {pending} ingested messages wait (limit {limit}); "
                                   "nothing of this batch was stored, retry after 1 s")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, at most ``max_bytes`` (else 413). Its time is bounded by the app's
    GuardMiddleware (408), as every body's is."""
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > max_bytes:
        raise HTTPException(413, detail=f"request body of {cl} bytes exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []  # joined once at the end (a body arrives in a few chunks: one copy, not two)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, detail=f"request body exceeds the limit of {max_bytes} bytes")
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_batch(request: Request, state: AppState, accepted: tuple[str, ...] = _JSON_TYPES) -> bytes:
    """Content type, backpressure and body limits shared by every ingest endpoint."""
    check_content_type(request, accepted)
    await check_backpressure(state)
    return await read_body(request, state.settings.api.max_body_bytes)


def _reject(state: AppState, kind: str, exc: BatchError) -> JSONResponse:
    state.metrics.rejected.labels(kind).inc()
    return JSONResponse({"detail": exc.errors}, status_code=422)


def cardinality_response(exc: CardinalityError) -> JSONResponse:
    """422 for a batch that would pass a cardinality limit (nothing of it was stored)."""
    return JSONResponse({"detail": [{
        "loc": ["body"], "type": "cardinality_limit", "msg": f"{exc} (setting RCA_API__{exc.limit.upper()})",
        "limit": exc.limit, "scope": exc.scope,
        "existing_series": exc.existing, "new_series": exc.new, "max_series": exc.maximum}]}, status_code=422)


def _too_many(state: AppState, n: int) -> None:
    if n > state.settings.api.max_batch_items:
        raise HTTPException(413, detail=f"batch of {n} items exceeds the limit of {state.settings.api.max_batch_items}")


IDEMPOTENCY_HEADER = "idempotency-key"
_IDEMPOTENCY: contextvars.ContextVar[Idempotency | None] = contextvars.ContextVar("idempotency", default=None)


async def idempotent(request: Request, state: AppState, handle: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """With an ``Idempotency-Key`` header, a batch already accepted under that key is answered
    with its first response and stored nothing the second time (client retries after a lost
    202). The key is saved in the same transaction as the batch (see :func:`take_idempotency`),
    so a crash cannot keep one without the other."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key:
        return await handle()
    if len(key) > 200:
        raise HTTPException(422, detail=[{"loc": ["header", "Idempotency-Key"], "type": "string_too_long",
                                          "msg": "Idempotency-Key is longer than 200 characters"}])
    endpoint = request.url.path
    seen = await asyncio.to_thread(state.store.get_idempotent, key=key, endpoint=endpoint)
    if seen is not None:
        return _replayed(*seen)
    idem = Idempotency(key=key, endpoint=endpoint, now=time.time())
    token = _IDEMPOTENCY.set(idem)
    try:
        response = await handle()
    except AlreadyStored as exc:  # a concurrent request with this key was stored first
        return _replayed(exc.status, exc.body)
    finally:
        _IDEMPOTENCY.reset(token)
    if response.status_code == 202 and not idem.saved:
        await asyncio.to_thread(state.store.save_idempotent, key=key, endpoint=endpoint,
                                status=response.status_code, body=bytes(response.body).decode(), now=time.time())
    return response


def _replayed(status: int, body: str) -> JSONResponse:
    return JSONResponse(orjson.loads(body), status_code=status, headers={"Idempotent-Replayed": "true"})


def take_idempotency(body: str | Callable[[Any], str], status: int = 202) -> Idempotency | None:
    """The request's idempotency key (None without one), with the answer to keep under it:
    the caller stores it with its batch, in one transaction."""
    idem = _IDEMPOTENCY.get()
    if idem is not None:
        idem.status, idem.body = status, body
    return idem


def _json_body(content: dict[str, Any]) -> str:
    return orjson.dumps(content).decode()


def _accepted(n: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"accepted": n, **extra}, status_code=202)


def _body_doc(model: type, key: str, single: type | None = None) -> dict[str, Any]:
    item_ref = {"$ref": f"#/components/schemas/{single.__name__ if single else model.__name__}"}
    variants: list[dict[str, Any]] = [
        {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": item_ref}}},
        {"type": "array", "items": item_ref},
    ]
    if single is not None:
        variants.append(item_ref)
    content: dict[str, Any] = {"application/json": {"schema": {"oneOf": variants}}}
    if key == "points":
        content["application/x-ndjson"] = {"schema": {"type": "string", "description": "one point object per line"}}
        content[arrow_ipc.MEDIA_TYPE] = {"schema": {"type": "string", "format": "binary", "description":
                                         "Arrow IPC stream: service, metric (string), ts (epoch s or timestamp), "
                                         "value (number), labels (optional JSON text or map<string,string>)"}}
    return {"requestBody": {"required": True, "content": content},
            "responses": {"202": {"description": "accepted", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Accepted"}}}},
                "408": {"description": "body not received in time"},
                "413": {"description": "body too large", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorPublic"}}}},
                "415": {"description": "unsupported content type"},
                "422": {"description": "invalid batch; nothing stored", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorPublic"}}}},
                "503": {"description": "processing is behind (Retry-After); nothing stored"},
                **({"400": {"description": "Arrow body that is not an IPC stream"}} if key == "points" else {})}}


async def _decode_table(request: Request, state: State, kind: str, key: str,
                        validate: Callable[[list[Any]], pa.Table]) -> pa.Table | JSONResponse:
    """Read and validate as a whole one log batch (JSON, bare array or NDJSON): the table,
    or the 4xx response naming what is wrong (nothing stored)."""
    body = await read_batch(request, state)
    ndjson = request.headers.get("content-type", "").startswith(("application/x-ndjson", "application/ndjson"))

    def work() -> pa.Table:
        items = parse_items(body, key, ndjson=ndjson)
        _too_many(state, len(items))
        table = validate(items)
        check_table_bounds(table, key)
        return table

    try:
        return await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, kind, exc)


def _metrics_decoder(request: Request, state: State, body: bytes) -> Callable[[], Points]:
    """The decode and whole-batch validation of a metric body (JSON, bare array, NDJSON or
    Arrow IPC), run in a worker thread; it raises what is wrong with the batch."""
    ctype = request.headers.get("content-type", "")
    ndjson = ctype.startswith(("application/x-ndjson", "application/ndjson"))

    def work() -> Points:
        if ctype.startswith(arrow_ipc.MEDIA_TYPE):
            points = arrow_ipc.decode_points(body)
        else:
            fast = json_points.decode(body, ndjson=ndjson)
            if fast is None:  # not the common shape, or something is wrong: the reference path says what
                items = parse_items(body, "points", ndjson=ndjson)
                _too_many(state, len(items))
                fast = Points.from_table(validate_metrics(items))
            points = fast
        _too_many(state, points.n)
        check_points_bounds(points, "points")
        return points

    return work


async def decode_store_points(state: AppState, decode: Callable[[], Points], kind: str) -> Points | JSONResponse:
    """Decode one metric batch (its errors are raised: nothing stored), then store and
    publish it under the cardinality limits (all or nothing), in as few thread hand-offs
    as the publisher can (see ``Publisher.decode_and_store``): the batch, or the 422 of a
    batch over a limit."""
    idem = take_idempotency(lambda p: _json_body({"accepted": p.n}))
    try:
        points, _ = await state.publisher.decode_and_store(decode, limits=series_limits(state), idempotency=idem)
    except CardinalityError as exc:
        state.metrics.rejected.labels(kind).inc()
        return cardinality_response(exc)
    state.metrics.ingested.labels(kind).inc(points.n)
    return points


def series_limits(state: AppState) -> SeriesLimits:
    """The cardinality limits every metric ingest path passes to ``Store.insert_metrics``
    (a batch over them raises CardinalityError, answered 422 by the app)."""
    api = state.settings.api
    return SeriesLimits(per_service=api.max_series_per_service, per_metric=api.max_series_per_metric,
                        total=api.max_series)


@router.post("/ingest/metrics", status_code=202, openapi_extra=_body_doc(schemas.MetricPointIn, "points", None),
             summary="Ingest metric points (JSON, NDJSON or Arrow IPC stream)")
async def ingest_metrics(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _metrics(request, state))


async def _metrics(request: Request, state: State) -> JSONResponse:
    """Read, validate as a whole, store and publish one metric batch: 202, or the 4xx
    response naming what is wrong (nothing stored)."""
    body = await read_batch(request, state, accepted=_JSON_TYPES + (arrow_ipc.MEDIA_TYPE,))
    try:
        got = await decode_store_points(state, _metrics_decoder(request, state, body), "metrics")
    except BatchError as exc:
        return _reject(state, "metrics", exc)
    except DecodeError as exc:
        state.metrics.rejected.labels("metrics").inc()
        return JSONResponse({"detail": str(exc)}, status_code=400)
    if isinstance(got, JSONResponse):
        return got
    return _accepted(got.n)


@router.post("/ingest/logs", status_code=202, openapi_extra=_body_doc(schemas.LogIn, "logs"),
             summary="Ingest log records")
async def ingest_logs(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _logs(request, state))


async def store_logs(state: AppState, table: pa.Table) -> None:
    """Store and publish one validated log batch."""
    idem = take_idempotency(_json_body({"accepted": table.num_rows}))
    await state.publisher.store_event(lambda: state.store.insert_logs(table=table),
                                      lambda n: logs_added(table) if n else None, idempotency=idem)
    state.metrics.ingested.labels("logs").inc(table.num_rows)


async def _logs(request: Request, state: State) -> JSONResponse:
    got = await _decode_table(request, state, "logs", "logs", validate_logs)
    if isinstance(got, JSONResponse):
        return got
    if got.num_rows:
        await store_logs(state, got)
    return _accepted(got.num_rows)


async def store_changes(state: AppState, changes: list[Any], body: Callable[[Any], str]) -> list[Any]:
    """Store changes (ids assigned to those without one) and publish the new ones; returns them all."""
    idem = take_idempotency(body)

    def work() -> tuple[list[Any], list[Any]]:
        missing = [c for c in changes if not c.id]
        if missing:
            prefix = _ID_PREFIX.get(missing[0].kind, "chg")
            for c, new_id in zip(missing, state.store.next_ids(prefix=prefix, n=len(missing)), strict=True):
                c.id = new_id
        new_ids = set(state.store.upsert_changes(changes=changes)) if changes else set()
        return changes, [c for c in changes if c.id in new_ids]

    _, new = await state.publisher.store_event(work, lambda r: changes_added(r[1]) if r[1] else None,
                                               idempotency=idem)
    for c in new:
        state.metrics.ingested.labels(c.kind).inc()
    return new


def _check_id_kinds(state: AppState, items: list[Any], pairs: list[tuple[Any, bool]], kind: str, key: str) -> None:
    """A given id that a change of another kind already has is refused (422 naming the
    item): re-sending an id is idempotent, but only for the same kind of change."""
    if not any(was_given for _, was_given in pairs):
        return
    given: dict[str, int] = {}
    for i, item in enumerate(items):  # index of the first item with each id (items are valid objects here)
        cid = item.get("id") if isinstance(item, dict) else None
        if isinstance(cid, str) and cid:
            given.setdefault(cid, i)
    clash = [c for c in state.store.get_changes(change_ids=list(given)) if c.kind != kind]
    if clash:
        raise BatchError([{"loc": ["body", key, given[c.id], "id"], "type": "value_error",
                           "msg": f"id {c.id!r} is already used by a {c.kind}; choose another id"} for c in clash])


async def _ingest_changes(request: Request, state: State, kind: str, key: str) -> JSONResponse:
    body = await read_batch(request, state)

    def work() -> tuple[int, list[Any]]:
        items = parse_items(body, key, allow_single=True)
        _too_many(state, len(items))
        pairs = validate_changes(items, kind, key)
        _check_id_kinds(state, items, pairs, kind, key)
        return len(items), [c for c, _ in pairs]

    try:
        n, changes = await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, kind, exc)
    await store_changes(state, changes, lambda r: _json_body({"accepted": n, "ids": [c.id for c in r[0]]}))
    return _accepted(n, ids=[c.id for c in changes])


@router.post("/ingest/deployments", status_code=202, summary="Ingest deployments",
             openapi_extra=_body_doc(schemas.DeploymentIn, "deployments", schemas.DeploymentIn))
async def ingest_deployments(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _ingest_changes(request, state, "deployment", "deployments"))


@router.post("/ingest/config_changes", status_code=202, summary="Ingest config changes",
             openapi_extra=_body_doc(schemas.ConfigChangeIn, "config_changes", schemas.ConfigChangeIn))
async def ingest_config_changes(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _ingest_changes(request, state, "config_change", "config_changes"))


@router.post("/ingest/flag_changes", status_code=202, summary="Ingest feature-flag changes",
             openapi_extra=_body_doc(schemas.FlagChangeIn, "flag_changes", schemas.FlagChangeIn))
async def ingest_flag_changes(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _ingest_changes(request, state, "flag_change", "flag_changes"))


@router.post("/ingest/topology", status_code=202, summary="Add service call edges (source calls target)",
             openapi_extra=_body_doc(schemas.EdgeIn, "edges"))
async def ingest_topology(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _topology(request, state))


async def _topology(request: Request, state: State) -> JSONResponse:
    body = await read_batch(request, state)

    def work() -> list[Edge]:
        items = parse_items(body, "edges")
        _too_many(state, len(items))
        return validate_edges(items)

    try:
        edges = await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, "topology", exc)
    idem = take_idempotency(_json_body({"accepted": len(edges)}))
    await state.publisher.store_event(
        lambda: state.store.add_edges(edges=edges),
        lambda new: TopologyChanged(edges=tuple((e.source, e.target) for e in edges)) if new else None,
        idempotency=idem)
    return _accepted(len(edges))
