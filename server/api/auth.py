"""Authentication and roles for every endpoint, and the admin endpoints for keys and the
audit trail.

Keys come in ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). Which role each
endpoint needs is declared where the router is included (see ``server/app.py``) or on
the route itself: ``ingest`` for ``/ingest/*`` and the telemetry receivers, ``read`` for
queries, ``label`` for labels and reruns, ``admin`` for keys and the audit trail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from server import auth
from server.api import schemas
from server.api.deps import State
from server.model import ROLES, ApiKey, AuditEntry
from server.settings import AuthSettings
from server.store.base import Store
from server.timeutil import iso


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    key_id: str | None
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.key_id})" if self.key_id else self.name


ANONYMOUS = Principal(name="anonymous", key_id=None, roles=frozenset(ROLES))


class KeyRing:
    """The active keys, cached for ``cache_seconds`` so a request costs no store read."""

    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._loaded = -float("inf")

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = -float("inf")

    def stale(self) -> bool:
        """The cached keys are older than ``cache_seconds``: the next use reads the store."""
        return time.monotonic() - self._loaded > self.settings.cache_seconds

    def _active(self, reload: bool = True) -> dict[str, ApiKey]:
        """The active keys (read from the store first when stale, unless ``reload`` is False)."""
        with self._lock:
            if reload and self.stale():
                self._keys = {k.id: k for k in self.store.list_api_keys() if k.active}
                self._loaded = time.monotonic()
            return self._keys

    def refresh(self) -> None:
        self._active()

    def required(self, *, reload: bool = True) -> bool:
        if self.settings.mode == "off":
            return False
        if self.settings.mode == "required":
            return True
        return bool(self._active(reload))

    def authenticate(self, secret: str, *, reload: bool = True) -> ApiKey | None:
        key_id = auth.key_id_of(secret)
        if key_id is None:
            return None
        key = self._active(reload).get(key_id)
        return key if key is not None and auth.matches(key, secret) else None


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def _unauthorized(msg: str) -> HTTPException:
    return HTTPException(401, detail=msg, headers={"WWW-Authenticate": 'Bearer realm="rca"'})


_PRINCIPAL = "rca.principal"  # where a request's caller is kept once known (its ASGI scope)


async def principal(request: Request) -> Principal:
    """Who is calling (anonymous with every role while the server runs open), found once
    per request. Async, so a request costs no thread hand-off: the store is read (in a
    worker thread) only when the cached keys are stale. The role and rate-limit checks
    call it themselves (one dependency each, with no dependencies of their own: FastAPI
    solves a tree of them per request, at a cost comparable to the handler's own work)."""
    who: Principal | None = request.scope.get(_PRINCIPAL)
    if who is not None:
        return who
    ring: KeyRing = request.app.state.rca.keys
    if ring.stale():
        await asyncio.to_thread(ring.refresh)
    who = request.scope[_PRINCIPAL] = identify(request, ring)
    return who


def identify(request: Request, ring: KeyRing) -> Principal:
    """Who is calling, from the keys ``ring`` holds now (no store read: see :func:`principal`)."""
    secret = presented_key(request)
    key = ring.authenticate(secret, reload=False) if secret else None
    if key is not None:
        return Principal(name=key.name, key_id=key.id, roles=auth.granted(key.roles))
    if not ring.required(reload=False):
        return ANONYMOUS
    if secret:
        raise _unauthorized("invalid or revoked API key")
    raise _unauthorized("an API key is required: send 'Authorization: Bearer <key>' (create one with 'rca keys create')")


def role_check(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """The check of :func:`require`, a function of the request alone (also called directly
    by ``server.api.hot``)."""

    async def check(request: Request) -> Principal:
        who = await principal(request)
        if role not in who.roles:
            raise HTTPException(403, detail=f"this API key ({who.key_id}) lacks the '{role}' role; "
                                            f"it has: {', '.join(sorted(who.roles)) or 'none'}")
        return who

    check.__name__ = f"require_{role}"
    return check


def require(role: str) -> Any:
    """A dependency that admits callers holding ``role`` (401 without a key, 403 without the role)."""
    return Depends(role_check(role))


# 401 and 403 are declared on every operation that checks a role by server/api/openapi.py
# (ANSWERS); this dict stays for callers that declare them by hand.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or revoked API key (only once keys exist or auth is required)"},
    403: {"description": "the API key lacks the role this endpoint needs"},
}


def audit(state: State, who: Principal, action: str, target: str | None, **detail: Any) -> None:
    state.store.add_audit(entry=AuditEntry(id=state.store.next_id(prefix="aud"), ts=time.time(), actor=who.actor,
                                           action=action, target=target, detail=detail))


# ---- admin endpoints ----------------------------------------------------------------------

router = APIRouter(tags=["admin"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, description=f"any of {', '.join(ROLES)}")


class KeyPublic(BaseModel):
    id: str
    name: str
    roles: list[str]
    created_at: str | None
    revoked_at: str | None = None


class KeyCreated(KeyPublic):
    key: str = Field(description="the secret: shown once, store it now")


class AuditPublic(BaseModel):
    id: str
    ts: str | None
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


def key_public(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "roles": k.roles, "created_at": iso(k.created_at),
            "revoked_at": iso(k.revoked_at)}


@router.get("/admin/keys", response_model=list[KeyPublic], summary="API keys (never their secrets)")
def list_keys(state: State, who: Annotated[Principal, require("admin")]) -> Any:
    return [key_public(k) for k in state.store.list_api_keys()]


@router.post("/admin/keys", response_model=KeyCreated, status_code=201, summary="Create an API key",
             responses={422: {"description": "unknown role or bad name"}})
def create_key(body: KeyCreate, state: State, who: Annotated[Principal, require("admin")]) -> Any:
    try:
        secret, key = auth.new_key(name=body.name, roles=body.roles, now=time.time())
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["body", "roles"], "msg": str(exc), "type": "value_error"}]) from exc
    state.store.save_api_key(key=key)
    state.keys.invalidate()
    audit(state, who, "key_create", key.id, name=key.name, roles=key.roles)
    return {**key_public(key), "key": secret}


@router.delete("/admin/keys/{key_id}", response_model=KeyPublic, summary="Revoke an API key",
               responses={404: {"model": schemas.ErrorPublic, "description": "no such active key"}})
def revoke_key(key_id: str, state: State, who: Annotated[Principal, require("admin")]) -> Any:
    if not state.store.revoke_api_key(key_id=key_id, at=time.time()):
        raise HTTPException(404, detail=f"no active API key {key_id!r}")
    state.keys.invalidate()
    audit(state, who, "key_revoke", key_id)
    key = state.store.get_api_key(key_id=key_id)
    assert key is not None
    return key_public(key)


@router.get("/audit", response_model=list[AuditPublic], summary="Audit trail: labels, reruns, key changes")
def list_audit(
    state: State, who: Annotated[Principal, require("admin")],
    action: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    return [{"id": e.id, "ts": iso(e.ts), "actor": e.actor, "action": e.action, "target": e.target,
             "detail": e.detail} for e in state.store.list_audit(action=action, limit=limit)]
