"""Sustained ingest throughput: JSON batches of 10k points over HTTP into the store,
with detection running, until the pipeline has processed everything (pending == 0).

The server runs as a separate `rca serve` process pinned to one core (taskset, when
available); this client is pinned to the other core and sends pre-encoded bodies.

    python bench/ingest.py [--batches 100] [--series 1000] [--batch-size 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.embedded import free_port  # noqa: E402

T0 = 1_764_460_800.0


def make_bodies(batches: int, n_series: int, batch_size: int, iso: bool) -> list[bytes]:
    rng = np.random.default_rng(0)
    per_series = batch_size // n_series
    services = [f"svc-{i // 3:04d}" for i in range(n_series)]
    metrics = [("p95_latency_ms", "error_rate", "qps")[i % 3] for i in range(n_series)]
    base = rng.uniform(10, 500, n_series)
    bodies = []
    for b in range(batches):
        pts = []
        for k in range(per_series):
            step = b * per_series + k
            ts = T0 + 10.0 * step
            vals = base * (1 + 0.05 * rng.standard_normal(n_series))
            tsv: str | float = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if iso else ts
            pts.extend({"service": services[i], "metric": metrics[i], "ts": tsv, "value": float(vals[i])}
                       for i in range(n_series))
        bodies.append(orjson.dumps({"points": pts}))
    return bodies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--iso", action="store_true", help="ISO 8601 timestamps instead of epoch numbers")
    args = ap.parse_args()

    print(f"encoding {args.batches} batches of {args.batch_size} points ({args.series} series)...", flush=True)
    bodies = make_bodies(args.batches, args.series, args.batch_size, args.iso)
    data = Path(tempfile.mkdtemp(prefix="rca-bench-"))
    port = free_port()
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    rca = str(Path(sys.executable).with_name("rca"))
    proc = subprocess.Popen([*taskset, rca, "serve", "--port", str(port), "--data-dir", str(data),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL)
    if taskset:
        os.sched_setaffinity(0, {1})
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=120) as c:
            for _ in range(300):
                try:
                    c.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            # warm-up batch (imports, first series registration) is not timed
            c.post("/ingest/metrics", content=bodies[0], headers={"content-type": "application/json"})
            while c.get("/health").json()["pending"]:
                time.sleep(0.01)
            t0 = time.perf_counter()
            for body in bodies[1:]:
                r = c.post("/ingest/metrics", content=body, headers={"content-type": "application/json"})
                r.raise_for_status()
            t_http = time.perf_counter() - t0
            while c.get("/health").json()["pending"]:
                time.sleep(0.01)
            t_all = time.perf_counter() - t0
            n = args.batch_size * (len(bodies) - 1)
            stored = sum(s["points"] for s in c.get("/services/metrics").json())
        print(f"points sent:            {n:,} in {len(bodies) - 1} batches of {args.batch_size:,}"
              f" ({'ISO' if args.iso else 'epoch'} timestamps)")
        print(f"points stored:          {stored:,}")
        print(f"HTTP accept rate:       {n / t_http:,.0f} points/s")
        print(f"sustained (detected):   {n / t_all:,.0f} points/s  (server pinned to one core: {bool(taskset)})")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
