"""The finishing touches of the OpenAPI document, each driven by one table:

- :data:`ANSWERS`: every error answer the server can give, and to which operations it
  applies (from what the route is: its role, whether it reads a body, its parameters).
  A new status (say ``429`` from a rate limiter) is one line here.
- :data:`LINKS`: OpenAPI links between operations (the id an answer returns -> the
  operation that takes it), used by clients and by stateful API tests (schemathesis).
- the API-key security schemes, and ``x-rca-role`` on every operation that needs a role.

Everything is added, nothing is removed: a response an endpoint declares itself keeps its
description and body schema; only what is missing is filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing

ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


@dataclass(frozen=True, slots=True)
class Op:
    """What an operation is, as far as the answers it can give are concerned."""

    method: str
    path: str
    role: str | None  # the role it needs (None: no API key is checked, e.g. /health and signed webhooks)
    body: bool  # takes a request body
    raw_body: bool  # reads its body itself (ingest, receivers, webhooks): content type, size and time checked
    params: bool  # has path, query or header parameters
    ingest: bool  # stores telemetry or changes (backpressure applies)
    limited: bool = False  # spends a per-client rate-limit budget (RCA_LIMITS__*)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    description: str
    applies: Callable[[Op], bool]
    headers: dict[str, Any] = field(default_factory=dict)


def _any(op: Op) -> bool:
    return True


#: Every error answer, and the operations that can give it.
ANSWERS: list[Answer] = [
    Answer(400, "the body cannot be decoded (not UTF-8 JSON); nothing stored", lambda op: op.body and not op.raw_body),
    Answer(401, "missing, invalid or revoked API key (once a key exists, or RCA_AUTH__MODE=required); "
                "WWW-Authenticate: Bearer", lambda op: op.role is not None),
    Answer(403, "the API key lacks the role this operation needs (x-rca-role), or a browser's cross-origin write "
                "was refused", lambda op: op.role is not None or op.method in ("post", "put", "patch", "delete")),
    Answer(408, "the request body did not arrive within RCA_API__BODY_TIMEOUT_SECONDS; the connection is closed",
           lambda op: op.body),
    Answer(413, "request body over RCA_API__MAX_BODY_BYTES, or more items than RCA_API__MAX_BATCH_ITEMS; "
                "nothing stored", lambda op: op.body),
    Answer(415, "unsupported Content-Type (or Content-Encoding); nothing stored", lambda op: op.raw_body),
    Answer(421, "the Host header is not served here (DNS rebinding guard; RCA_API__ALLOWED_HOSTS)", _any),
    Answer(422, "invalid parameters or body: detail names each bad item and field; nothing stored",
           lambda op: op.params or op.body),
    Answer(429, "over this client's rate limit (RCA_LIMITS__INGEST / __QUERY): retry after Retry-After seconds; "
                "nothing stored", lambda op: op.limited, RETRY_AFTER),
    Answer(500, "unexpected server error (a bug: please report it); the connection is closed", _any),
    Answer(503, "storage unavailable, or (ingest) processing is behind: retry after Retry-After seconds; "
                "nothing stored", lambda op: op.path != "/health", RETRY_AFTER),
]


@dataclass(frozen=True, slots=True)
class Link:
    source: tuple[str, str, str]  # method, path, status of the answer the value comes from
    name: str
    target: tuple[str, str]  # method, path of the operation it feeds
    parameters: dict[str, str]


def _incident_links(source: tuple[str, str, str], expr: str) -> list[Link]:
    return [Link(source, name, (m, p), {"incident_id": expr}) for name, m, p in (
        ("GetIncident", "get", "/incidents/{incident_id}"),
        ("GetAnomalies", "get", "/incidents/{incident_id}/anomalies"),
        ("GetSuspects", "get", "/incidents/{incident_id}/suspects"),
        ("GetLabels", "get", "/incidents/{incident_id}/labels"),
        ("GetLogPatterns", "get", "/incidents/{incident_id}/log_patterns"),
        ("LabelIncident", "post", "/incidents/{incident_id}/label"),
        ("RerunRca", "post", "/incidents/{incident_id}/rerun_rca"),
    )]


def _change_links(source: tuple[str, str, str], expr: str) -> list[Link]:
    return [Link(source, "GetChange", ("get", "/changes/{change_id}"), {"change_id": expr}),
            Link(source, "GetChangeIncidents", ("get", "/changes/{change_id}/incidents"), {"change_id": expr})]


#: Links between operations: the id one answer returns -> the operations that take it.
LINKS: list[Link] = [
    *_change_links(("post", "/ingest/deployments", "202"), "$response.body#/ids/0"),
    *_change_links(("post", "/ingest/config_changes", "202"), "$response.body#/ids/0"),
    *_change_links(("post", "/ingest/flag_changes", "202"), "$response.body#/ids/0"),
    *_change_links(("get", "/changes", "200"), "$response.body#/0/id"),
    *_incident_links(("get", "/incidents", "200"), "$response.body#/0/id"),
    *_incident_links(("post", "/incidents/{incident_id}/rerun_rca", "202"), "$response.body#/incident_id"),
    Link(("get", "/incidents/{incident_id}/suspects", "200"), "GetSuspectChange", ("get", "/changes/{change_id}"),
         {"change_id": "$response.body#/0/change_id"}),
    Link(("get", "/services/metrics", "200"), "GetSeries", ("get", "/services/{service}/metrics/{metric}/series"),
         {"service": "$response.body#/0/service", "metric": "$response.body#/0/metric"}),
    Link(("post", "/admin/keys", "201"), "RevokeKey", ("delete", "/admin/keys/{key_id}"),
         {"key_id": "$response.body#/id"}),
    Link(("get", "/admin/keys", "200"), "RevokeKey", ("delete", "/admin/keys/{key_id}"),
         {"key_id": "$response.body#/0/id"}),
]

SECURITY_SCHEMES = {
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "an API key (rca keys create)"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "an API key"},
}


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _api_routes(routes: list[Any]) -> Iterator[Any]:
    """The API routes as served, with the dependencies of the routers that include them
    (FastAPI >= 0.16x keeps included routers as contexts, older versions copy the routes)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in contexts(routes) if contexts is not None else routes:
        if getattr(route, "dependant", None) is not None and getattr(route, "include_in_schema", False):
            yield route


def operations(routes: list[Any], doc: dict[str, Any]) -> Iterator[tuple[Op, dict[str, Any]]]:
    """Each documented operation with what it is (read from its route and its document entry)."""
    for route in _api_routes(routes):
        calls = list(_calls(route.dependant))
        roles = [c.__name__.removeprefix("require_") for c in calls if getattr(c, "__name__", "").startswith("require_")]
        for method in sorted(route.methods or ()):
            entry = doc.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if entry is None:
                continue
            body = "requestBody" in entry
            yield Op(method=method.lower(), path=route.path_format,
                     role=max(roles, key=_ROLE_ORDER.index) if roles else None,
                     body=body, raw_body=body and route.body_field is None,
                     params=bool(entry.get("parameters")), ingest=route.path_format.startswith("/ingest/"),
                     limited=any(getattr(c, "__name__", "").startswith("rate_limit_") for c in calls)), entry


_ROLE_ORDER = ["read", "ingest", "label", "admin"]


def finish(doc: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Declare every answer, the links and the security schemes in ``doc`` (in place)."""
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for op, entry in operations(routes, doc):
        responses: dict[str, Any] = entry.setdefault("responses", {})
        for ans in ANSWERS:
            if not ans.applies(op):
                continue
            resp = responses.setdefault(str(ans.status), {"description": ans.description})
            resp.setdefault("content", {"application/json": {"schema": ERROR_REF}})
            if ans.headers:
                resp.setdefault("headers", {}).update(ans.headers)
        entry["responses"] = dict(sorted(responses.items()))
        if op.role is not None:
            entry["x-rca-role"] = op.role
            entry["security"] = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}, {}]
    ids = {(m, p): e.get("operationId") for p, ops in doc.get("paths", {}).items() for m, e in ops.items()}
    for link in LINKS:
        method, path, status = link.source
        source = doc.get("paths", {}).get(path, {}).get(method)
        target = ids.get(link.target)
        if source is None or target is None or status not in source.get("responses", {}):
            continue  # an endpoint that this build does not serve
        source["responses"][status].setdefault("links", {})[link.name] = {
            "operationId": target, "parameters": dict(link.parameters)}
    return doc
