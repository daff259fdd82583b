"""The ingest routes served without FastAPI's router (server/api/hot.py) answer exactly
as the router does: the same checks (keys, roles, rate limits), the same errors, the same
stored data and request metrics. Each case is sent to two apps on their own data dirs, one
with the short way and one without it, through Starlette's TestClient (the whole ASGI app
with its lifespan: DuckDB file, stage workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from server.api.deps import State
from server.api.hot import HotRoutes, hot_routes
from server.app import create_app
from server.auth import key_id_of
from server.settings import Settings
from tests.api.helpers import series
from tests.api.test_security import bearer, create_key

HEADERS = ("content-type", "www-authenticate", "retry-after")


def _app(data: Path, hot: bool) -> FastAPI:
    settings = Settings(data_dir=data, auth={"mode": "required"}, limits={"ingest": "10/minute"},
                        api={"allowed_hosts": ["*"]})
    app = create_app(settings)
    if not hot:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
    return app


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    keys: dict[str, str] = {}
    clients = []
    for name in ("hot", "router"):
        data = tmp_path_factory.mktemp(name) / "data"
        # the same keys in both data dirs would differ: each gets its own, used by role
        keys[f"{name}-ingest"] = create_key(data, "ingester", "ingest")
        keys[f"{name}-read"] = create_key(data, "reader", "read")
        clients.append(TestClient(_app(data, name == "hot")))
    with clients[0] as hot, clients[1] as router:
        yield hot, router, keys


def _answer(c: TestClient, method: str, path: str, key: str | None = None,
            **kw: Any) -> tuple[int, str, dict[str, str]]:
    """Status, body (the key's id, which differs between the two data dirs, replaced) and
    the headers a client acts on."""
    if key is not None:
        kw["headers"] = {**kw.get("headers", {}), **bearer(key)}
    r = c.request(method, path, **kw)
    body = r.text if key is None else r.text.replace(str(key_id_of(key)), "<key>")
    return r.status_code, body, {h: r.headers[h] for h in HEADERS if h in r.headers}


def test_the_short_way_serves_every_ingest_route() -> None:
    from server.api import ingest, receivers

    paths = set(hot_routes([ingest.router, receivers.router]))
    assert paths == {"/ingest/metrics", "/ingest/logs", "/ingest/deployments", "/ingest/config_changes",
                     "/ingest/flag_changes", "/ingest/topology", "/ingest/alerts", "/api/v1/write",
                     "/v1/metrics", "/v1/logs"}


def test_a_route_with_more_than_request_and_state_stays_with_the_router() -> None:
    router = APIRouter()

    async def extra_dep(request: Request) -> None:
        return None

    @router.post("/plain")
    async def plain(request: Request, state: State) -> JSONResponse:
        return JSONResponse({})

    @router.post("/query")
    async def with_query(request: Request, state: State, q: int = 0) -> JSONResponse:
        return JSONResponse({})

    @router.post("/dep", dependencies=[Depends(extra_dep)])
    async def with_dependency(request: Request, state: State) -> JSONResponse:
        return JSONResponse({})

    @router.post("/model")
    async def returns_a_dict(request: Request, state: State) -> dict[str, int]:
        return {}

    @router.get("/get")
    async def read(request: Request, state: State) -> JSONResponse:
        return JSONResponse({})

    assert set(hot_routes([router])) == {"/plain"}


def test_answers_equal_the_routers(apps: tuple[TestClient, TestClient, dict[str, str]]) -> None:
    hot, router, keys = apps
    assert [m.cls for m in hot.app.user_middleware].count(HotRoutes) == 1  # type: ignore[attr-defined]
    assert HotRoutes not in [m.cls for m in router.app.user_middleware]  # type: ignore[attr-defined]
    pts = {"points": series("checkout", "p95_latency_ms", n=20, base=100.0)}
    garbage_rw = {"content": b"\xff\xff\xff", "headers": {"content-type": "application/x-protobuf",
                                                            "content-encoding": "snappy"}}
    cases: list[tuple[str, str, str | None, dict[str, Any]]] = [
        ("POST", "/ingest/metrics", "ingest", {"json": pts}),
        ("POST", "/ingest/metrics", None, {"json": pts}),  # no key: 401 with WWW-Authenticate
        ("POST", "/ingest/metrics", "read", {"json": pts}),  # a key without the role: 403
        ("POST", "/ingest/metrics", "ingest", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
        ("POST", "/ingest/metrics", "ingest", {"content": b"{nope", "headers": {"content-type": "application/json"}}),
        ("POST", "/ingest/metrics", "ingest", {"json": {"points": [{"service": "a", "metric": "m"}]}}),
        ("POST", "/api/v1/write", "ingest", garbage_rw),
        ("POST", "/api/v1/write", "ingest",
         {"content": bytes(cramjam.snappy.compress_raw(b"\x0a\x00")),
          "headers": {"content-type": "application/x-protobuf", "content-encoding": "gzip"}}),
        ("POST", "/ingest/deployments", "ingest",
         {"json": {"deployments": [{"id": "d1", "service": "checkout", "ts": 1.7e9, "version": "v2"}]}}),
        ("GET", "/ingest/metrics", "ingest", {}),  # another method: the router's 405 in both
        ("POST", "/ingest/metrics/", "ingest", {"json": pts}),  # another path: the router's answer in both
    ]
    for method, path, role, kw in cases:
        answers = []
        for name, c in (("hot", hot), ("router", router)):
            answers.append(_answer(c, method, path, keys[f"{name}-{role}"] if role else None, **kw))
        assert answers[0] == answers[1], (method, path, role)
        assert answers[0][0] != 500, (method, path, answers[0])
    # the same points stored by both, and the request metrics labelled by route in both
    for name, c in (("hot", hot), ("router", router)):
        got = c.get("/services/checkout/metrics/p95_latency_ms/series", headers=bearer(keys[f"{name}-read"]))
        assert len(got.json()["points"]) == 40, name  # the batch, and again through the trailing-slash redirect
        text = c.get("/metrics", headers=bearer(keys[f"{name}-read"])).text
        assert 'rca_http_request_seconds_count{method="POST",route="/ingest/metrics"}' in text, name
    # the rate limit (10 a minute) is spent by the same requests on both: then 429 on both
    statuses = []
    for _ in range(6):
        answers = [_answer(c, "POST", "/ingest/metrics", keys[f"{name}-ingest"], json=pts)
                   for name, c in (("hot", hot), ("router", router))]
        assert answers[0] == answers[1]
        statuses.append(answers[0][0])
    assert 429 in statuses and "retry-after" in answers[0][2]
