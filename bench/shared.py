"""What the query cache and the rate limiter cost and save, per backend.

    python bench/shared.py [--seconds 5] [--redis-url redis://127.0.0.1:56379/0]

Seeds one embedded server's DuckDB file with a replayed scenario, then serves the same
data with the cache off, in memory and in Redis, and the query limit off, in memory and
in Redis, and prints requests per second and p50/p99 latency of one sequential client for
`GET /incidents?limit=500` (cached) and `GET /changes` (limited to 1000/second, never
reached here, and not cached: the cost of counting). Without
--redis-url a private redis-server is started (Debian's package, `stack/lib/redis.sh`).
Prints the machine load beside the figures: on a shared machine compare runs back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.embedded import EmbeddedServer  # noqa: E402
from server.settings import CacheSettings, LimitSettings, RedisSettings  # noqa: E402
from server.sim.replay import replay  # noqa: E402
from server.sim.scenario import generate_scenario  # noqa: E402


def load(client: httpx.Client, path: str, seconds: float) -> tuple[float, float, float]:
    lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        r = client.get(path)
        r.raise_for_status()
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return len(lat) / seconds, statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of load per configuration")
    p.add_argument("--redis-url", default=None, help="an existing Redis (default: start a private one)")
    args = p.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rca-bench-shared-")))
        url = args.redis_url
        if url is None:
            from tests.redis_server import RedisServer

            url = stack.enter_context(RedisServer(tmp / "redis")).url
        data = tmp / "data"
        print("seeding: replaying a scenario into the embedded server ...", flush=True)
        with EmbeddedServer(data_dir=data) as srv:
            for seed in (3, 4, 5):  # three faults, one after another
                sc = generate_scenario(seed, kind="mixed", history_hours=3.0, n_services=10)
                replay(sc, srv.url, timeout=600)
            n = len(httpx.get(srv.url + "/incidents", params={"limit": 500}, timeout=30).json())
            c = len(httpx.get(srv.url + "/changes", timeout=30).json())
        print(f"{n} incidents, {c} changes; load average {os.getloadavg()[0]:.1f}\n")
        redis = RedisSettings(url=url, key_prefix=f"bench{os.getpid()}")
        configs: list[tuple[str, str, dict[str, Any]]] = [
            ("GET /incidents?limit=500", "cache off", {"cache": CacheSettings(backend="off")}),
            ("GET /incidents?limit=500", "cache memory", {"cache": CacheSettings(backend="memory")}),
            ("GET /incidents?limit=500", "cache redis", {"cache": CacheSettings(backend="redis"), "redis": redis}),
            ("GET /changes", "limit off", {}),
            ("GET /changes", "limit memory", {"limits": LimitSettings(query="1000/second")}),
            ("GET /changes", "limit redis", {"limits": LimitSettings(backend="redis", query="1000/second"),
                                              "redis": redis}),
        ]
        print(f"{'request':28} {'config':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for what, name, overrides in configs:
            path = what.split(" ", 1)[1]
            with EmbeddedServer(data_dir=data, **overrides) as srv, httpx.Client(base_url=srv.url, timeout=30) as cl:
                load(cl, path, 1.0)  # warm up (and fill the cache)
                rps, p50, p99 = load(cl, path, args.seconds)
            print(f"{what:28} {name:14} {rps:8.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        print(f"\nload average {os.getloadavg()[0]:.1f} (2-core machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
