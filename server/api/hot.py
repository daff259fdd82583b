"""A short way in for the ingest routes, which carry telemetry at volume.

FastAPI answers a request through its router (the routers tried in turn), its dependency
solver and its per-route wrappers: over a thousand Python calls per request, as much
event-loop time as a 10k-point batch's own handling. The ingest routes take only the
request and the app state, and their routers' dependencies are checks of the request
alone (role, rate limit). So this innermost pure-ASGI middleware runs those same checks
and calls the endpoint itself, and answers their exceptions with the app's own exception
handlers, as the router would. Every other request (another path or method, or a
``root_path``) goes through the router. The routes stay registered there too, for the
OpenAPI document and FastAPI's own answers.

What is served here is decided once, from public objects: the routes of the given
routers whose endpoint is ``(request: Request, state: State) -> <a Response>`` with no
dependencies of its own, paired with the checks the app includes those routers with
(``server/app.py`` passes the same checks to both). A route that gains a parameter or a
dependency is left to the router.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.deps import State

Check = Callable[[Request], Awaitable[Any]]


def _plain(route: APIRoute) -> bool:
    """``(request: Request, state: State) -> Response`` and no dependencies of its own."""
    fn = route.endpoint
    code = getattr(fn, "__code__", None)
    if code is None or route.dependencies or code.co_varnames[: code.co_argcount] != ("request", "state"):
        return False
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation that does not resolve: leave the route to FastAPI
        return False
    ret = hints.get("return")
    return (hints.get("request") is Request and hints.get("state") == State
            and isinstance(ret, type) and issubclass(ret, Response))


def hot_routes(routers: Iterable[APIRouter]) -> dict[str, APIRoute]:
    """Path -> route, for the plain POST routes of ``routers``."""
    out: dict[str, APIRoute] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.methods == {"POST"} and _plain(route):
                out[route.path] = route
    return out


class HotRoutes:
    """Serve the routes of :func:`hot_routes` without the router (see the module's text),
    with ``checks``: exactly the dependencies their routers are included with."""

    def __init__(self, app: ASGIApp, *, routes: dict[str, APIRoute], checks: Sequence[Check]) -> None:
        self.app = app
        self.routes = routes
        self.checks = tuple(checks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST"
                 and not scope.get("root_path") else None)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as the router sets it (request metrics are labelled by it)
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            for check in self.checks:
                await check(request)
            response = await route.endpoint(request, scope["app"].state.rca)
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # as from the router: ServerErrorMiddleware answers 500 and logs it
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler(handlers: dict[Any, Any], exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The handler Starlette's ExceptionMiddleware would pick for ``exc`` (an HTTP error's
    status first, then the nearest class), leaving ``Exception`` to ServerErrorMiddleware."""
    if isinstance(exc, HTTPException) and exc.status_code != 500 and exc.status_code in handlers:
        return handlers[exc.status_code]  # type: ignore[no-any-return]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]  # type: ignore[no-any-return]
    return None
