"""Build the rate limiter and the cache from settings (the only place that picks a backend)."""

from __future__ import annotations

import logging

from server.settings import Settings
from server.shared.base import Cache, RateLimiter

log = logging.getLogger("rca.shared")


def build_limiter(settings: Settings) -> RateLimiter:
    limits = {"ingest": settings.limits.ingest, "query": settings.limits.query}
    if settings.limits.backend == "redis":
        from server.shared.redis import RedisRateLimiter

        return RedisRateLimiter(settings.redis.url, limits, prefix=settings.redis.key_prefix,
                                timeout=settings.redis.timeout_seconds)
    from server.shared.memory import MemoryRateLimiter

    return MemoryRateLimiter(limits)


def build_cache(settings: Settings) -> Cache:
    """Redis when asked; in-process memory only where every writer is in this process
    (role ``all``): an API process whose workers run elsewhere would never see their writes."""
    c = settings.cache
    if c.backend == "redis":
        from server.shared.redis import RedisCache

        return RedisCache(settings.redis.url, prefix=settings.redis.key_prefix, ttl_seconds=c.ttl_seconds,
                          timeout=settings.redis.timeout_seconds)
    from server.shared.memory import MemoryCache, NullCache

    if c.backend == "memory" and settings.role == "all":
        return MemoryCache(ttl_seconds=c.ttl_seconds, max_entries=c.max_entries, max_bytes=c.max_bytes)
    if c.backend == "memory" and settings.role == "api":
        log.info("query cache off: the in-process cache cannot see the workers' writes (set RCA_CACHE__BACKEND=redis)")
    return NullCache()
