"""A flood against a real ``rca serve`` process: many concurrent clients send metric
batches back to back, far above what the server can process. It must refuse the excess
(503 or 429, with Retry-After) instead of queueing it in memory or failing, keep its
memory bounded, stay healthy, and afterwards have stored and processed every point it
accepted and none that it refused.

The figures of such a flood (requests/s and points/s held, p99 latency, peak memory)
come from ``bench/flood.py``; this test only asserts the behaviour.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from server.embedded import free_port
from server.timeutil import iso
from tests.api.helpers import T0

CLIENTS = 24
SECONDS = 12.0
SERIES = 200
STEPS = 10  # points per series in one batch: 2,000 points a batch
BATCHES = 400  # distinct batches (event time advances batch after batch)
REFUSED = (429, 503)
# Resident memory the flood may add to the warmed-up server: queued batches are bounded
# by RCA_API__MAX_PENDING_MESSAGES, so what grows is the store's cache, not a queue.
MAX_GROWTH_MB = 300


def _body(b: int) -> bytes:
    pts = [{"service": f"svc-{i % 20:02d}", "metric": f"m{i // 20}", "ts": T0 + 10.0 * (b * STEPS + k),
            "value": 100.0 + (i % 7) + (k % 3)} for k in range(STEPS) for i in range(SERIES)]
    return orjson.dumps({"points": pts})


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "RCA_API__MAX_PENDING_MESSAGES": "16"}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / "data"), "--log-level", "warning"], env=env,
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "rca serve did not start"
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _flood(url: str, bodies: list[bytes]) -> tuple[dict[int, int], list[int], list[str]]:
    """Every client sends batch after batch without waiting between them, and does not
    honour Retry-After (an abusive client), until SECONDS have passed."""
    codes: dict[int, int] = {}
    accepted: list[int] = []
    problems: list[str] = []
    nxt = 0
    stop = time.monotonic() + SECONDS

    async def client() -> None:
        nonlocal nxt
        async with httpx.AsyncClient(base_url=url, timeout=60,
                                     headers={"content-type": "application/json"}) as c:
            while time.monotonic() < stop and nxt < len(bodies):
                i, nxt = nxt, nxt + 1
                b = i + 1  # batch 0 warmed the server up
                try:
                    r = await c.post("/ingest/metrics", content=bodies[i])
                except httpx.HTTPError as exc:
                    problems.append(f"batch {b}: {type(exc).__name__} {exc}")
                    continue
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 202:
                    accepted.append(b)
                elif r.status_code in REFUSED:
                    if not r.headers.get("retry-after", "").isdigit():  # a refused batch is not resent
                        problems.append(f"batch {b}: {r.status_code} without Retry-After")
                else:
                    problems.append(f"batch {b}: {r.status_code} {r.text[:200]}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return codes, accepted, problems


def test_a_flood_is_refused_with_retry_after_in_bounded_memory(served: tuple[str, int]) -> None:
    url, pid = served
    bodies = [_body(b) for b in range(1, BATCHES + 1)]
    with httpx.Client(base_url=url, timeout=60) as c:
        # warm up (first batch: imports, store tables, detector state), then the baseline
        assert c.post("/ingest/metrics", content=_body(0), headers={"content-type": "application/json"}
                      ).status_code == 202
        c.get("/health")
        baseline = _rss_mb(pid)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(_rss_mb(pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            codes, accepted, problems = asyncio.run(_flood(url, bodies))
        finally:
            done.set()
            sampler.join()
        assert problems == [], problems[:10]
        assert set(codes) <= {202, *REFUSED}, codes
        assert codes.get(202, 0) > 0 and sum(codes.get(s, 0) for s in REFUSED) > 0, codes
        assert max(peak) - baseline < MAX_GROWTH_MB, (baseline, max(peak))
        # healthy, and everything accepted is stored and processed (the detector's watermark
        # reaches the newest accepted point; status is reported about once a second)
        newest = iso(T0 + 10.0 * (max(accepted) * STEPS + STEPS - 1))
        deadline = time.monotonic() + 90
        while ((h := c.get("/health").json())["pending"] or h["watermark"] != newest) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert h["pending"] == 0 and h["status"] == "ok" and h["watermark"] == newest, h
        # every accepted point stored, nothing of a refused batch
        stored = sum(s["points"] for s in c.get("/services/metrics").json())
        assert stored == (len(accepted) + 1) * SERIES * STEPS
        r = c.post("/ingest/metrics", content=_body(BATCHES + 1), headers={"content-type": "application/json"})
        assert r.status_code == 202
