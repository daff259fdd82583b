"""Small data builders for API tests (synthetic series with a known level shift)."""

from __future__ import annotations

import math
import random
from typing import Any

T0 = 1_764_460_800.0  # 2025-11-30T00:00:00Z


def series(service: str, metric: str, *, n: int, base: float, shift_at: int | None = None, factor: float = 3.0,
           noise: float = 0.05, t0: float = T0, step: float = 10.0, seed: int = 0) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    pts = []
    for i in range(n):
        level = base * (factor if shift_at is not None and i >= shift_at else 1.0)
        season = 1.0 + 0.05 * math.sin(2 * math.pi * i / 360)
        pts.append({"service": service, "metric": metric, "ts": t0 + i * step,
                    "value": level * season * (1.0 + rnd.gauss(0, noise))})
    return pts


def wait_idle(http: Any, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get("/health").json()["pending"] == 0:
            return
        time.sleep(0.05)
    raise TimeoutError("pending never reached 0")
