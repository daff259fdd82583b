"""The protocols of the shared state: a rate limiter and a generational answer cache.

**Rate limits.** ``hit(scope, client)`` spends one request of ``client``'s budget in
``scope`` (``ingest`` or ``query``) and says whether it was allowed; when not, how many
seconds until it would be (``Retry-After``). A scope has one or more limits in the
`limits` notation (``"20/second;600/minute"``), each a moving window: a request is allowed
only while every window has room.

**Cache.** Answers are stored under a key and the current *generations* of the
namespaces they depend on (``state``: changes, topology, anomalies, incidents, suspects,
labels, models, alerts; ``telemetry``: metrics and logs). A write bumps its namespace's
generation, so every answer read before it is never served again (and expires after the
TTL). ``lookup`` returns a token (the generations it saw) with the answer or ``None``; the
caller computes on a miss and ``store``s under that token, so an answer computed from
data older than a concurrent write is filed under the old generation and never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: cache namespaces
STATE = "state"
TELEMETRY = "telemetry"
NAMESPACES = (STATE, TELEMETRY)


class SharedStateError(Exception):
    """The shared-state backend failed (e.g. Redis unreachable)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: seconds until a request of this client in this scope would be allowed (0 when allowed)
    retry_after: float = 0.0
    #: the limit that refused the request ("20 per 1 second"), "" when allowed
    limit: str = ""


class RateLimiter(Protocol):
    #: True when every process using this backend shares one budget
    shared: bool

    def limited(self, scope: str) -> bool:
        """Whether ``scope`` has any limit (False: ``hit`` always allows)."""

    async def hit(self, scope: str, client: str) -> Decision:
        """Spend one request of ``client`` in ``scope``; raises SharedStateError when the backend fails."""

    async def close(self) -> None: ...


class Cache(Protocol):
    #: True when every process using this backend sees one cache (and its invalidations)
    shared: bool

    def lookup(self, namespaces: Sequence[str], key: str) -> tuple[str, bytes | None]:
        """(token, answer or None) for ``key`` under the namespaces' current generations."""

    def store(self, token: str, key: str, value: bytes) -> None:
        """File ``value`` under the token ``lookup`` returned (kept for the TTL)."""

    def bump(self, namespaces: Sequence[str]) -> None:
        """A write changed these namespaces: answers filed before it are never served again."""

    def close(self) -> None: ...
