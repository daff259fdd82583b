"""Moving-window rate limits on any `limits` storage (in-process memory or Redis): the
library keeps the windows (atomically in Redis, through its Lua scripts); this class maps
scopes to their limits and turns a refusal into a :class:`Decision` with Retry-After."""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from server.shared.base import Decision, SharedStateError


class WindowLimiter:
    shared = False

    def __init__(self, storage: Storage, limits: dict[str, str], *, prefix: str = "rca") -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.prefix = prefix
        self.limits: dict[str, list[RateLimitItem]] = {
            scope: parse_many(spec) for scope, spec in limits.items() if spec and spec.strip()}

    def limited(self, scope: str) -> bool:
        return bool(self.limits.get(scope))

    async def hit(self, scope: str, client: str) -> Decision:
        items = self.limits.get(scope)
        if not items:
            return Decision(True)
        try:
            for item in items:
                if not await self.strategy.hit(item, self.prefix, scope, client):
                    stats = await self.strategy.get_window_stats(item, self.prefix, scope, client)
                    wait = max(0.0, float(stats.reset_time) - time.time())
                    return Decision(False, retry_after=wait, limit=str(item))
        except Exception as exc:  # the driver's own error, whatever it is
            raise SharedStateError(f"rate-limit backend failed: {type(exc).__name__}: {exc}") from exc
        return Decision(True)

    async def close(self) -> None:
        return None
