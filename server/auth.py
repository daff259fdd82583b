"""API keys and roles (pure: no I/O).

A key is ``rca_<id>_<secret>``: the id part is public (listings, audit trail), the whole
key is a bearer secret of which only the SHA-256 is stored. Roles: ``ingest`` (send
telemetry and changes), ``read`` (query), ``label`` (label and rerun RCA; implies read),
``admin`` (everything, including keys and the audit trail).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from server.model import ROLES, ApiKey

IMPLIES: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "label": frozenset({"label", "read"}),
    "admin": frozenset(ROLES),
}


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key(*, name: str, roles: Iterable[str], now: float) -> tuple[str, ApiKey]:
    """A fresh key: (the secret to show once, the record to store)."""
    roles = sorted(set(roles))
    bad = [r for r in roles if r not in IMPLIES]
    if bad or not roles:
        raise ValueError(f"unknown role(s) {bad or roles}; choose from {', '.join(ROLES)}")
    key_id = "rca_" + secrets.token_hex(4)
    secret = f"{key_id}_{secrets.token_urlsafe(32)}"
    return secret, ApiKey(id=key_id, name=name, roles=roles, key_hash=hash_key(secret), created_at=now)


def key_id_of(secret: str) -> str | None:
    """The public id part of a presented key (None when it is not shaped like ours)."""
    parts = secret.split("_")
    if len(parts) < 3 or parts[0] != "rca" or len(parts[1]) != 8:
        return None
    return f"rca_{parts[1]}"


def matches(key: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(key.key_hash, hash_key(secret))


def granted(roles: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for r in roles:
        out |= IMPLIES.get(r, frozenset())
    return frozenset(out)


def permits(roles: Iterable[str], needed: str) -> bool:
    return needed in granted(roles)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Host names accepted on a loopback bind: the loopback names, and the name Starlette's in-process
# TestClient sends (not a resolvable public name, so it cannot be used for DNS rebinding).
LOOPBACK_HOST_HEADERS = LOOPBACK_HOSTS | {"testserver"}


def is_loopback(host: str) -> bool:
    h = host.strip().lower()
    return h in LOOPBACK_HOSTS or h.startswith("127.")
