"""Per-client rate limits (429 with Retry-After) and the query cache, on whichever backend
settings chose (:mod:`server.shared`): handlers never know which one it is.

The client is the API key presented (its id), else the remote address. Limits apply per
router scope (``ingest``, ``query``, declared where the routers are included in
``server/app.py``); ``/health`` and ``/metrics`` are never limited. When the backend fails
(Redis down), requests go through and the failure is logged and counted: a broken limiter
must not take the API down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.encoders import jsonable_encoder

from server.api.auth import Principal, principal
from server.api.deps import AppState
from server.obs import count_shared_error
from server.shared.base import SharedStateError

log = logging.getLogger("rca.api")

_warned: dict[str, float] = {}


def _warn(component: str, state: AppState, msg: str, exc: Exception) -> None:
    """Counted every time, logged at most every 10 s per component (Redis down: no log flood)."""
    count_shared_error(state.metrics, component)
    now = time.monotonic()
    if now - _warned.get(component, -1e9) >= 10.0:
        _warned[component] = now
        log.warning("%s: %s", msg, exc)


def client_of(request: Request, who: Principal) -> str:
    if who.key_id:
        return f"key:{who.key_id}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def rate_check(scope: str) -> Callable[[Request], Awaitable[None]]:
    """The check of :func:`rate_limit`, a function of the request alone (also called
    directly by ``server.api.hot``)."""

    async def check(request: Request) -> None:
        state: AppState = request.app.state.rca
        limiter = state.limiter
        if limiter is None or not limiter.limited(scope):
            return
        who = await principal(request)
        try:
            decision = await limiter.hit(scope, client_of(request, who))
        except SharedStateError as exc:
            _warn("limits", state, "rate limiter unavailable, requests are let through", exc)
            return
        if not decision.allowed:
            state.metrics.refused.labels("rate_limit").inc()
            wait = max(1, math.ceil(decision.retry_after))
            raise HTTPException(429, headers={"Retry-After": str(wait)},
                                detail=f"too many {scope} requests from this client: over the limit of "
                                       f"{decision.limit} (setting RCA_LIMITS__{scope.upper()}); retry after {wait} s")

    check.__name__ = f"rate_limit_{scope}"
    return check


def rate_limit(scope: str) -> Any:
    """A dependency that spends one request of the caller's ``scope`` budget (429 past it)."""
    return Depends(rate_check(scope))


def cached(state: AppState, namespaces: Sequence[str], key: str, compute: Callable[[], Any]) -> Any:
    """The answer for ``key`` from the cache, or ``compute()`` (then cached for the TTL).

    The namespaces' generations are read before computing, so an answer computed while a
    write lands is filed under the older generation and never served after the write."""
    cache = state.cache
    if cache is None:
        return compute()
    try:
        token, hit = cache.lookup(namespaces, key)
    except SharedStateError as exc:
        _warn("cache", state, "query cache unavailable, answers are computed", exc)
        return compute()
    if hit is not None:
        state.metrics.cache.labels("hit").inc()
        return orjson.loads(hit)
    state.metrics.cache.labels("miss").inc()
    value = jsonable_encoder(compute())
    try:
        cache.store(token, key, orjson.dumps(value))
    except SharedStateError as exc:
        _warn("cache", state, "query cache unavailable, answers are computed", exc)
    return value
