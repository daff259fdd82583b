"""Rate limits and cache in Redis: one budget per client and one cache for every API and
worker process pointed at the same Redis (``RCA_REDIS__URL``).

Limits: moving windows kept by the `limits` library in Redis (atomic Lua scripts), so two
API processes spend one budget. Cache: generation counters (``INCR`` on a write) and
answers stored with a TTL (``SET ... PX``) under the generations they were computed at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis
from limits.aio.storage import RedisStorage

from server.shared.base import SharedStateError
from server.shared.limiting import WindowLimiter


def _async_uri(url: str) -> str:
    """``redis://h:p/db`` as the `limits` async storage URI (``async+redis://...``)."""
    return url if url.startswith("async+") else f"async+{url}"


class RedisRateLimiter(WindowLimiter):
    shared = True

    def __init__(self, url: str, limits: dict[str, str], *, prefix: str = "rca", timeout: float = 0.5) -> None:
        storage = RedisStorage(_async_uri(url), implementation="redispy", key_prefix=f"{prefix}:limits",
                               socket_timeout=timeout, socket_connect_timeout=timeout)
        super().__init__(storage, limits, prefix=prefix)


class RedisCache:
    shared = True

    def __init__(self, url: str, *, prefix: str = "rca", ttl_seconds: float = 5.0, timeout: float = 0.5) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = f"{prefix}:cache"
        self.ttl_ms = max(1, int(ttl_seconds * 1000))

    def _gen(self, ns: str) -> str:
        return f"{self.prefix}:gen:{ns}"

    def _entry(self, token: str, key: str) -> str:
        if len(key) > 200:
            key = "h:" + hashlib.blake2b(key.encode(), digest_size=20).hexdigest()
        return f"{self.prefix}:v:{token}:{key}"

    def lookup(self, namespaces: Sequence[str], key: str) -> tuple[str, bytes | None]:
        try:
            gens = self.client.mget([self._gen(ns) for ns in namespaces]) if namespaces else []
            token = ".".join(g.decode() if isinstance(g, bytes) else str(g or 0) for g in gens)
            value = self.client.get(self._entry(token, key))
        except redis.RedisError as exc:
            raise SharedStateError(f"cache backend failed: {type(exc).__name__}: {exc}") from exc
        return token, value  # type: ignore[return-value]

    def store(self, token: str, key: str, value: bytes) -> None:
        try:
            self.client.set(self._entry(token, key), value, px=self.ttl_ms)
        except redis.RedisError as exc:
            raise SharedStateError(f"cache backend failed: {type(exc).__name__}: {exc}") from exc

    def bump(self, namespaces: Sequence[str]) -> None:
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for ns in namespaces:
                    pipe.incr(self._gen(ns))
                pipe.execute()
        except redis.RedisError as exc:
            raise SharedStateError(f"cache backend failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.client.close()
