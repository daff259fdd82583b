"""Ingest endpoints: validate the whole batch, store it, publish it (202)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from server.api import schemas
from server.api.deps import AppState, State
from server.api.validation import (
    BatchError,
    parse_items,
    validate_changes,
    validate_edges,
    validate_logs,
    validate_metrics,
)
from server.bus.base import BusMessage
from server.ingest import arrow_ipc
from server.ingest.errors import DecodeError

router = APIRouter(tags=["ingest"])

_ID_PREFIX = {"deployment": "dep", "config_change": "cfg", "flag_change": "flag"}


async def read_body(request: Request, max_bytes: int) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > max_bytes:
        raise HTTPException(413, detail=f"request body of {cl} bytes exceeds the limit of {max_bytes} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > max_bytes:
            raise HTTPException(413, detail=f"request body exceeds the limit of {max_bytes} bytes")
    return bytes(buf)


def _reject(state: AppState, kind: str, exc: BatchError) -> JSONResponse:
    state.metrics.rejected.labels(kind).inc()
    return JSONResponse({"detail": exc.errors}, status_code=422)


def _too_many(state: AppState, n: int) -> None:
    if n > state.settings.api.max_batch_items:
        raise HTTPException(413, detail=f"batch of {n} items exceeds the limit of {state.settings.api.max_batch_items}")


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
                "413": {"description": "body too large"}, "422": {"description": "invalid batch; nothing stored"},
                **({"400": {"description": "Arrow body that is not an IPC stream"}} if key == "points" else {})}}


async def _ingest_table(request: Request, state: State, kind: str, key: str,
                        validate: Callable[[list[Any]], pa.Table],
                        insert: Callable[[pa.Table], int]) -> tuple[JSONResponse, pa.Table | None]:
    """Read, validate as a whole and store one metric or log batch (JSON, bare array or NDJSON)."""
    body = await read_body(request, state.settings.api.max_body_bytes)
    ctype = request.headers.get("content-type", "")
    ndjson = ctype.startswith(("application/x-ndjson", "application/ndjson"))
    arrow = key == "points" and ctype.startswith(arrow_ipc.MEDIA_TYPE)

    def work() -> pa.Table:
        if arrow:
            table = arrow_ipc.decode(body)
            _too_many(state, table.num_rows)
        else:
            items = parse_items(body, key, ndjson=ndjson)
            _too_many(state, len(items))
            table = validate(items)
        insert(table)
        return table

    try:
        table = await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, kind, exc), None
    except DecodeError as exc:
        state.metrics.rejected.labels(kind).inc()
        return JSONResponse({"detail": str(exc)}, status_code=400), None
    state.metrics.ingested.labels(kind).inc(table.num_rows)
    return _accepted(table.num_rows), table


@router.post("/ingest/metrics", status_code=202, openapi_extra=_body_doc(schemas.MetricPointIn, "points", None),
             summary="Ingest metric points (JSON, NDJSON or Arrow IPC stream)")
async def ingest_metrics(request: Request, state: State) -> JSONResponse:
    response, table = await _ingest_table(request, state, "metrics", "points", validate_metrics,
                                          lambda t: state.store.insert_metrics(table=t))
    if table is not None and table.num_rows:
        await state.pipeline.submit(BusMessage("metrics", table, count=table.num_rows))
    return response


@router.post("/ingest/logs", status_code=202, openapi_extra=_body_doc(schemas.LogIn, "logs"),
             summary="Ingest log records")
async def ingest_logs(request: Request, state: State) -> JSONResponse:
    response, table = await _ingest_table(request, state, "logs", "logs", validate_logs,
                                          lambda t: state.store.insert_logs(table=t))
    if table is not None and table.num_rows:
        ts = table.column("ts").to_numpy()
        await state.pipeline.submit(BusMessage("logs", {"min_ts": float(ts.min()), "max_ts": float(ts.max())},
                                               count=table.num_rows))
    return response


async def _ingest_changes(request: Request, state: State, kind: str, key: str) -> JSONResponse:
    body = await read_body(request, state.settings.api.max_body_bytes)

    def work() -> tuple[int, list[str], list[Any]]:
        items = parse_items(body, key, allow_single=True)
        _too_many(state, len(items))
        pairs = validate_changes(items, kind, key)
        missing = [c for c, given in pairs if not given]
        if missing:
            for c, new_id in zip(missing, state.store.next_ids(prefix=_ID_PREFIX[kind], n=len(missing)), strict=True):
                c.id = new_id
        changes = [c for c, _ in pairs]
        new_ids = set(state.store.upsert_changes(changes=changes))
        ids = [c.id for c, _ in pairs]
        return len(items), ids, [c for c in changes if c.id in new_ids]

    try:
        n, ids, new = await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, kind, exc)
    if new:
        await state.pipeline.submit(BusMessage("changes", new, count=len(new)))
    state.metrics.ingested.labels(kind).inc(len(new))
    return _accepted(n, ids=ids)


@router.post("/ingest/deployments", status_code=202, summary="Ingest deployments",
             openapi_extra=_body_doc(schemas.DeploymentIn, "deployments", schemas.DeploymentIn))
async def ingest_deployments(request: Request, state: State) -> JSONResponse:
    return await _ingest_changes(request, state, "deployment", "deployments")


@router.post("/ingest/config_changes", status_code=202, summary="Ingest config changes",
             openapi_extra=_body_doc(schemas.ConfigChangeIn, "config_changes", schemas.ConfigChangeIn))
async def ingest_config_changes(request: Request, state: State) -> JSONResponse:
    return await _ingest_changes(request, state, "config_change", "config_changes")


@router.post("/ingest/flag_changes", status_code=202, summary="Ingest feature-flag changes",
             openapi_extra=_body_doc(schemas.FlagChangeIn, "flag_changes", schemas.FlagChangeIn))
async def ingest_flag_changes(request: Request, state: State) -> JSONResponse:
    return await _ingest_changes(request, state, "flag_change", "flag_changes")


@router.post("/ingest/topology", status_code=202, summary="Add service call edges (source calls target)",
             openapi_extra=_body_doc(schemas.EdgeIn, "edges"))
async def ingest_topology(request: Request, state: State) -> JSONResponse:
    body = await read_body(request, state.settings.api.max_body_bytes)

    def work() -> tuple[int, int]:
        items = parse_items(body, "edges")
        _too_many(state, len(items))
        edges = validate_edges(items)
        return len(edges), state.store.add_edges(edges=edges)

    try:
        n, new = await asyncio.to_thread(work)
    except BatchError as exc:
        return _reject(state, "topology", exc)
    if new:
        await state.pipeline.submit(BusMessage("topology", None, count=new))
    return _accepted(n)

