"""Standard-protocol receivers: Prometheus remote-write, OTLP/HTTP metrics and logs,
alerts (Alertmanager webhook and a generic form) and change webhooks (GitHub, Argo CD,
LaunchDarkly). Decoding lives in :mod:`server.ingest`; this module is the HTTP edge:
read the body, decode and validate it as a whole, store it, publish it.

Status codes: 400 undecodable body (snappy, gzip, protobuf, JSON), 401 bad webhook
signature or token, 413 body too large, 415 unsupported content type or encoding, 422
invalid items (named by index and field). Nothing of a rejected request is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from server.api import schemas
from server.api.deps import AppState, State
from server.api.ingest import (
    _json_body,
    decode_store_points,
    idempotent,
    read_batch,
    store_changes,
    store_logs,
    take_idempotency,
)
from server.api.validation import check_points_bounds, check_table_bounds
from server.events import AlertsChanged
from server.ingest import alerts as alert_parser
from server.ingest import otlp, remote_write, webhooks
from server.ingest.errors import BatchError, DecodeError, Unauthorized, UnsupportedMediaType
from server.model import Change
from server.model.points import Points

router = APIRouter()  # included with the ``ingest`` role (server/app.py)
# Signed change webhooks: they check their own signature or token (RCA_WEBHOOKS__*), no API key.
webhooks_router = APIRouter()
T = TypeVar("T")

_RW_TYPES = ("application/x-protobuf", "application/protobuf")
_OTLP_TYPES = (otlp.PROTOBUF, "application/protobuf", otlp.JSON)
_JSON_TYPES = ("application/json", "text/json")
_ERR = {"content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {}}}}}}
_E400 = {"description": "body cannot be decoded (snappy, gzip, protobuf or JSON); nothing stored", **_ERR}
_E401 = {"description": "missing or wrong signature / token (a secret is configured); nothing stored", **_ERR}
_E413 = {"description": "body too large", **_ERR}
_E415 = {"description": "unsupported Content-Type or Content-Encoding", **_ERR}
_E422 = {"description": "invalid items (loc names the item and field); nothing stored", **_ERR}


async def _run(state: AppState, kind: str, work: Callable[[], T]) -> T:
    """Run the blocking decode+store in a thread; protocol errors become 4xx responses."""
    return await _answered(state, kind, asyncio.to_thread(work))


async def _answered(state: AppState, kind: str, work: Awaitable[T]) -> T:
    """Await ``work``; protocol errors become 4xx responses."""
    try:
        return await work
    except DecodeError as exc:
        state.metrics.rejected.labels(kind).inc()
        raise HTTPException(400, detail=str(exc)) from exc
    except UnsupportedMediaType as exc:
        state.metrics.rejected.labels(kind).inc()
        raise HTTPException(415, detail=str(exc)) from exc
    except Unauthorized as exc:
        state.metrics.rejected.labels(kind).inc()
        raise HTTPException(401, detail=str(exc)) from exc
    except BatchError as exc:
        state.metrics.rejected.labels(kind).inc()
        raise HTTPException(422, detail=exc.errors) from exc


def _check_items(state: AppState, n: int) -> None:
    if n > state.settings.api.max_batch_items:
        raise HTTPException(413, detail=f"batch of {n} items exceeds the limit of {state.settings.api.max_batch_items}")


def _json(body: bytes) -> Any:
    if not body.strip():
        raise DecodeError("request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc


def _json_only(request: Request) -> None:
    ct = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ct not in ("application/json", "text/json", "") and not ct.endswith("+json"):
        raise UnsupportedMediaType(f"this endpoint takes Content-Type application/json, not {ct!r}")


# ---- Prometheus remote-write ------------------------------------------------------------------


def _series_cache(state: AppState) -> remote_write.SeriesCache:
    cache = getattr(state, "_rw_cache", None)
    if cache is None:
        cache = remote_write.SeriesCache(state.settings.receivers.service_labels)
        state._rw_cache = cache  # type: ignore[attr-defined]
    return cache


@router.post(
    "/api/v1/write", status_code=204, tags=["receivers"], summary="Prometheus remote-write (1.0 and 2.0)",
    response_class=Response,
    responses={204: {"description": "stored (2.0: X-Prometheus-Remote-Write-Samples-Written says how many)"},
               400: _E400, 413: _E413, 415: _E415, 422: _E422},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description":
                                   "snappy-compressed prometheus.WriteRequest (1.0), or "
                                   "io.prometheus.write.v2.Request with ;proto=io.prometheus.write.v2.Request"}}}}},
)
async def remote_write_endpoint(request: Request, state: State) -> Response:
    body = await read_batch(request, state, accepted=_RW_TYPES)

    decoded: list[remote_write.WriteResult] = []

    def work() -> Points:
        proto = remote_write.protocol_of(request.headers.get("content-type"))
        raw = remote_write.decompress(body, state.settings.api.max_body_bytes, request.headers.get("content-encoding"))
        res = remote_write.decode(raw, proto=proto, cache=_series_cache(state))
        _check_items(state, res.points.n)
        check_points_bounds(res.points, "samples")
        decoded.append(res)
        return res.points

    got = await _answered(state, "remote_write", decode_store_points(state, work, "remote_write"))
    if not isinstance(got, Points):
        return got  # over a cardinality limit: 422, nothing stored
    res = decoded[0]
    n = got.n
    headers = {}
    if res.proto == remote_write.V2:
        headers = {"X-Prometheus-Remote-Write-Samples-Written": str(n),
                   "X-Prometheus-Remote-Write-Histograms-Written": "0",
                   "X-Prometheus-Remote-Write-Exemplars-Written": "0"}
    return Response(status_code=204, headers=headers)


# ---- OTLP/HTTP ----------------------------------------------------------------------------------


def _otlp_doc(message: str) -> dict[str, Any]:
    return {
        "responses": {"200": {"description": f"Export{message}ServiceResponse in the request's encoding "
                                             "(partialSuccess when data points were dropped)",
                              "content": {otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                                          otlp.JSON: {"schema": {"type": "object"}}}},
                      "400": _E400, "413": _E413, "415": _E415, "422": _E422},
        "requestBody": {"required": True, "content": {
            otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary",
                                       "description": f"opentelemetry.proto.collector Export{message}ServiceRequest"}},
            otlp.JSON: {"schema": {"type": "object", "description": f"Export{message}ServiceRequest, OTLP/JSON"}}}},
    }


async def _otlp(request: Request, state: AppState, signal: str) -> Response:
    body = await read_batch(request, state, accepted=_OTLP_TYPES)

    def work() -> tuple[str, otlp.OtlpResult]:
        mtype = otlp.media_type(request.headers.get("content-type"))
        raw = otlp.decompress(body, request.headers.get("content-encoding"), state.settings.api.max_body_bytes)
        if signal == "metrics":
            res = otlp.decode_metrics(raw, mtype, resource_labels=state.settings.receivers.otlp_resource_labels)
        else:
            res = otlp.decode_logs(raw, mtype)
        _check_items(state, res.table.num_rows)
        check_table_bounds(res.table, "dataPoints" if signal == "metrics" else "logRecords")
        return mtype, res

    mtype, res = await _run(state, f"otlp_{signal}", work)
    n = res.table.num_rows
    if n and signal == "metrics":
        table = res.table
        got = await decode_store_points(state, lambda: Points.from_table(table), "otlp_metrics")
        if not isinstance(got, Points):
            return got  # over a cardinality limit: 422, nothing stored
    elif n:
        await store_logs(state, res.table)
    return Response(otlp.response_body(signal, mtype, res.rejected, res.message), status_code=200, media_type=mtype)


@router.post("/v1/metrics", tags=["receivers"], summary="OTLP/HTTP metrics (protobuf or JSON)",
             response_class=Response, openapi_extra=_otlp_doc("Metrics"))
async def otlp_metrics(request: Request, state: State) -> Response:
    return await _otlp(request, state, "metrics")


@router.post("/v1/logs", tags=["receivers"], summary="OTLP/HTTP logs (protobuf or JSON)",
             response_class=Response, openapi_extra=_otlp_doc("Logs"))
async def otlp_logs(request: Request, state: State) -> Response:
    return await _otlp(request, state, "logs")


# ---- alerts ---------------------------------------------------------------------------------------


@router.post(
    "/ingest/alerts", status_code=202, tags=["ingest"], summary="Alerts: Alertmanager webhook or the generic form",
    response_model=schemas.Accepted,
    responses={202: {"description": "accepted; firing alerts open or join incidents"}, 400: _E400, 413: _E413,
               415: _E415, 422: _E422},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        {"type": "object", "required": ["alerts"], "description": "Alertmanager webhook payload (version 4)",
         "properties": {"version": {"type": "string"}, "status": {"type": "string"},
                        "alerts": {"type": "array", "items": {"type": "object"}}}},
        {"type": "object", "required": ["alerts"], "properties": {"alerts": {
            "type": "array", "items": {"$ref": "#/components/schemas/AlertIn"}}}},
        {"type": "array", "items": {"$ref": "#/components/schemas/AlertIn"}},
        {"$ref": "#/components/schemas/AlertIn"}]}}}}},
)
async def ingest_alerts(request: Request, state: State) -> JSONResponse:
    return await idempotent(request, state, lambda: _alerts(request, state))


async def _alerts(request: Request, state: AppState) -> JSONResponse:
    body = await read_batch(request, state, accepted=_JSON_TYPES)

    def parse() -> list[Any]:
        _json_only(request)
        alerts = alert_parser.parse_alerts(_json(body), service_labels=state.settings.receivers.service_labels)
        _check_items(state, len(alerts))
        return alerts

    alerts = await _run(state, "alerts", parse)

    def work() -> tuple[list[str], list[str]]:
        missing = [a for a in alerts if not a.id]
        for a, new_id in zip(missing, state.store.next_ids(prefix="al", n=len(missing)) if missing else [],
                             strict=True):
            a.id = new_id
        changed = state.store.upsert_alerts(alerts=alerts)
        return [a.id for a in alerts], changed

    idem = take_idempotency(lambda r: _json_body({"accepted": len(r[0]), "ids": r[0]}))
    ids, changed = await state.publisher.store_event(
        work, lambda r: AlertsChanged(ids=tuple(r[1])) if r[1] else None, idempotency=idem)
    state.metrics.ingested.labels("alerts").inc(len(changed))
    return JSONResponse({"accepted": len(ids), "ids": ids}, status_code=202)


# ---- change webhooks --------------------------------------------------------------------------------


def _secret(v: Any) -> str | None:
    return v.get_secret_value() if v is not None else None


async def _store_changes(state: AppState, changes: list[Change], ignored: str | None) -> JSONResponse:
    if changes:
        await store_changes(state, changes, lambda r: _json_body(
            {"accepted": len(changes), "ids": [c.id for c in r[0]], "ignored": ignored}))
    return JSONResponse({"accepted": len(changes), "ids": [c.id for c in changes], "ignored": ignored},
                        status_code=202)


def _webhook_doc(summary: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "tags": ["webhooks"], "summary": summary, "status_code": 202, "response_model": schemas.WebhookAccepted,
        "responses": {202: {"description": "accepted (ignored says why nothing was stored)"}, 400: _E400,
                      401: _E401, 413: _E413, 415: _E415, 422: _E422},
        "openapi_extra": {
            "parameters": [{"in": "header", "name": h, "required": False, "schema": {"type": "string"},
                            "description": d} for h, d in headers],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
    }


@webhooks_router.post("/ingest/webhooks/github", **_webhook_doc(
    "GitHub deployment / deployment_status webhook",
    [("X-GitHub-Event", "deployment, deployment_status or ping"),
     ("X-Hub-Signature-256", "sha256=<hex HMAC-SHA256 of the body>; required when RCA_WEBHOOKS__GITHUB_SECRET is set")]))
async def github_webhook(request: Request, state: State) -> JSONResponse:
    body = await read_batch(request, state, accepted=_JSON_TYPES)

    def work() -> tuple[list[Change], str | None]:
        webhooks.verify_hmac(body, _secret(state.settings.webhooks.github_secret),
                             request.headers.get("x-hub-signature-256"), prefix="sha256=",
                             header="X-Hub-Signature-256")
        _json_only(request)
        return webhooks.github(request.headers.get("x-github-event"), _json(body))

    changes, ignored = await _run(state, "webhook_github", work)
    return await _store_changes(state, changes, ignored)


@webhooks_router.post("/ingest/webhooks/argocd", **_webhook_doc(
    "Argo CD notifications webhook (sync succeeded)",
    [("Authorization", "Bearer <token>; required when RCA_WEBHOOKS__ARGOCD_TOKEN is set"),
     ("X-RCA-Token", "the token, as an alternative to Authorization")]))
async def argocd_webhook(request: Request, state: State) -> JSONResponse:
    body = await read_batch(request, state, accepted=_JSON_TYPES)

    def work() -> tuple[list[Change], str | None]:
        webhooks.verify_token(_secret(state.settings.webhooks.argocd_token), request.headers.get("authorization"),
                              request.headers.get("x-rca-token"))
        _json_only(request)
        return webhooks.argocd(_json(body))

    changes, ignored = await _run(state, "webhook_argocd", work)
    return await _store_changes(state, changes, ignored)


@webhooks_router.post("/ingest/webhooks/launchdarkly", **_webhook_doc(
    "LaunchDarkly flag-change webhook",
    [("X-LD-Signature", "<hex HMAC-SHA256 of the body>; required when RCA_WEBHOOKS__LAUNCHDARKLY_SECRET is set")]))
async def launchdarkly_webhook(request: Request, state: State) -> JSONResponse:
    body = await read_batch(request, state, accepted=_JSON_TYPES)
    services = request.query_params.getlist("service")

    def work() -> tuple[list[Change], str | None]:
        webhooks.verify_hmac(body, _secret(state.settings.webhooks.launchdarkly_secret),
                             request.headers.get("x-ld-signature"), header="X-LD-Signature")
        _json_only(request)
        return webhooks.launchdarkly(_json(body), services=services)

    changes, ignored = await _run(state, "webhook_launchdarkly", work)
    return await _store_changes(state, changes, ignored)
