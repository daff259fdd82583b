"""Shared application state and FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from server.obs import Metrics
from server.progress import Progress
from server.publisher import Publisher
from server.settings import Settings
from server.store.base import Store
from server.timeutil import parse_ts

if TYPE_CHECKING:
    from server.api.auth import KeyRing
    from server.shared.base import Cache, RateLimiter

__all__ = ["AppState", "Metrics", "State", "get_state", "ts_param"]


@dataclass
class AppState:
    settings: Settings
    store: Store
    publisher: Publisher
    progress: Progress
    metrics: Metrics
    keys: KeyRing = field(default=None)  # type: ignore[assignment]
    extra: dict[str, Any] = field(default_factory=dict)
    # per-client rate limits and the query cache (server.shared; None: neither)
    limiter: RateLimiter | None = None
    cache: Cache | None = None


async def get_state(request: Request) -> AppState:
    """The app's state (async: FastAPI runs a sync dependency in a worker thread, a
    thread hand-off per request for an attribute read)."""
    state: AppState = request.app.state.rca
    return state


State = Annotated[AppState, Depends(get_state)]


def ts_param(value: str | None, name: str) -> float | None:
    """A time bound from a query parameter (``?since=`` with nothing after it means no bound)."""
    if value is None or not value.strip():
        return None
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", name], "msg": str(exc), "type": "value_error"}]) from exc
