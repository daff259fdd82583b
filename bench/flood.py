"""Flood: what the server holds when clients send twice what it can sustain.

1. Sustainable rate: one client sends 10k-point JSON batches back to back, each after the
   previous one's 202, and the run ends when `pending` is 0 (points/s end to end).
2. Flood: several concurrent clients offer twice that rate for --seconds. Backpressure
   (`RCA_API__MAX_PENDING_MESSAGES`) answers 503 + Retry-After when processing falls behind;
   the clients count answers and do not retry, so the offered load stays at 2x.

Prints requests/s and points/s accepted, the share refused, p50/p99 latency of every
answer, and the server's peak resident memory (VmHWM) in each phase. The server is a
separate `rca serve` process on loopback (pinned to one core when taskset exists).

    python bench/flood.py [--seconds 20] [--series 1000] [--max-pending 200000]
"""

from __future__ import annotations

import argparse
import asyncio
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
BATCH = 10_000


def bodies(n: int, n_series: int, start_step: int) -> list[bytes]:
    rng = np.random.default_rng(start_step)
    per = BATCH // n_series
    base = rng.uniform(10, 500, n_series)
    out = []
    for b in range(n):
        pts = []
        for k in range(per):
            ts = T0 + 10.0 * (start_step + b * per + k)
            vals = base * (1 + 0.05 * rng.standard_normal(n_series))
            pts.extend({"service": f"svc-{i // 3:04d}", "metric": ("p95_latency_ms", "error_rate", "qps")[i % 3],
                        "ts": ts, "value": float(vals[i])} for i in range(n_series))
        out.append(orjson.dumps({"points": pts}))
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_idle(c: httpx.Client, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.get("/health").json()["pending"] == 0:
            return
        time.sleep(0.02)
    raise TimeoutError("pending never reached 0")


def sustainable(url: str, payloads: list[bytes]) -> float:
    with httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json"}) as c:
        t0 = time.perf_counter()
        for body in payloads:
            r = c.post("/ingest/metrics", content=body)
            while r.status_code == 503:  # honour backpressure in the calibration run
                time.sleep(float(r.headers.get("retry-after", "1")))
                r = c.post("/ingest/metrics", content=body)
            r.raise_for_status()
        wait_idle(c)
        return len(payloads) * BATCH / (time.perf_counter() - t0)


async def flood(url: str, payloads: list[bytes], rate: float, seconds: float, clients: int) -> dict[str, float]:
    """Offer ``rate`` points/s for ``seconds`` from ``clients`` connections (open loop)."""
    interval = BATCH / rate * clients  # each client sends one batch per interval
    lat: list[float] = []
    codes: dict[int, int] = {}
    nxt = 0
    stop = time.perf_counter() + seconds

    async def one(k: int) -> None:
        nonlocal nxt
        async with httpx.AsyncClient(base_url=url, timeout=120, headers={"content-type": "application/json"}) as c:
            due = time.perf_counter() + k * interval / clients
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                if due > now:
                    await asyncio.sleep(due - now)
                due += interval
                body = payloads[nxt % len(payloads)]
                nxt += 1
                t = time.perf_counter()
                try:
                    r = await c.post("/ingest/metrics", content=body)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                except httpx.HTTPError:
                    codes[-1] = codes.get(-1, 0) + 1
                lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    arr = np.array(lat) * 1000
    total = sum(codes.values())
    return {"wall": wall, "requests": total, "accepted": codes.get(202, 0), "refused": codes.get(503, 0),
            "errors": total - codes.get(202, 0) - codes.get(503, 0),
            "p50": float(np.percentile(arr, 50)) if len(arr) else 0.0,
            "p99": float(np.percentile(arr, 99)) if len(arr) else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="flood duration (default 20)")
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--calibration-batches", type=int, default=40)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-pending", type=int, default=64, help="RCA_API__MAX_PENDING_MESSAGES for the run")
    args = ap.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="rca-flood-"))
    env = {**os.environ, "RCA_API__MAX_PENDING_MESSAGES": str(args.max_pending)}
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--data-dir", str(data),
           "--log-level", "warning"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    print(f"encoding batches ({args.series} series, {BATCH} points each)...", flush=True)
    calib = bodies(args.calibration_batches, args.series, 0)
    flood_bodies = bodies(60, args.series, args.calibration_batches * (BATCH // args.series))
    srv = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or srv.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        rate = sustainable(url, calib)
        calib_peak = peak_rss_mb(srv.pid)
        print(f"sustainable: {rate:,.0f} points/s end to end (one client, to pending == 0); "
              f"server peak RSS {calib_peak:.0f} MB", flush=True)
        offered = 2 * rate
        print(f"flood: offering {offered:,.0f} points/s from {args.clients} clients for {args.seconds:g} s "
              f"(max pending {args.max_pending:,})...", flush=True)
        res = asyncio.run(flood(url, flood_bodies, offered, args.seconds, args.clients))
        with httpx.Client(base_url=url, timeout=60) as c:
            wait_idle(c)
        peak = peak_rss_mb(srv.pid)
        acc_pts = res["accepted"] * BATCH / res["wall"]
        print(f"held: {res['requests'] / res['wall']:.1f} requests/s answered, {acc_pts:,.0f} points/s accepted "
              f"({res['accepted']:.0f} accepted, {res['refused']:.0f} refused with 503, {res['errors']:.0f} errors)")
        print(f"latency of every answer: p50 {res['p50']:.0f} ms, p99 {res['p99']:.0f} ms")
        print(f"server memory: peak RSS {peak:.0f} MB during the flood (calibration {calib_peak:.0f} MB), "
              f"now {rss_mb(srv.pid):.0f} MB")
    finally:
        srv.terminate()
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
