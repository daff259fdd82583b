"""Rate limits and the query cache as a client sees them.

- Embedded default (in-process backends): past the per-client limit a request gets 429
  with Retry-After and nothing of it is stored; /health and /metrics are never limited;
  a repeated query is answered from the cache and a write shows at once.
- Two API processes (real OS processes) on one real Redis spend one budget per client.
- A Redis that is down lets requests through (counted), it does not take the API down.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.embedded import EmbeddedServer, free_port
from server.settings import CacheSettings, LimitSettings, RedisSettings

RCA = str(Path(sys.executable).with_name("rca"))
DEPLOY = {"deployments": [{"service": "billing", "ts": "2026-11-30T04:00:00Z", "version": "v2"}]}


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"{name}{{{want}}} not exported"
    return float(m.group(1))


def test_embedded_query_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path, limits=LimitSettings(query="3/minute")) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        assert [c.get("/incidents").status_code for _ in range(3)] == [200, 200, 200]
        r = c.get("/services")
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "RCA_LIMITS__QUERY" in r.json()["detail"] and "3 per 1 minute" in r.json()["detail"]
        # monitoring is never limited; ingest has no limit set
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
        assert c.post("/ingest/deployments", json=DEPLOY).status_code == 202
        assert metric(c.get("/metrics").text, "rca_refused_requests_total", reason="rate_limit") == 1


def test_embedded_ingest_limit_stores_nothing_of_a_refused_batch(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path, limits=LimitSettings(ingest="1/minute")) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.post("/ingest/deployments", json=DEPLOY).status_code == 202
        second = {"deployments": [{"service": "ledger", "ts": "2026-11-30T04:01:00Z", "version": "v9"}]}
        r = c.post("/ingest/deployments", json=second)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert [ch["service"] for ch in c.get("/changes").json()] == ["billing"]


def test_embedded_cache_answers_repeats_and_shows_a_write_at_once(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path, cache=CacheSettings(ttl_seconds=300)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/services").json() == []
        assert c.get("/services").json() == []
        text = c.get("/metrics").text
        assert metric(text, "rca_cache_requests_total", result="hit") == 1
        assert metric(text, "rca_cache_requests_total", result="miss") == 1
        assert c.post("/ingest/deployments", json=DEPLOY).status_code == 202
        # the change's service shows at once, though the empty answer was cached for 300 s
        assert [s["name"] for s in c.get("/services").json()] == ["billing"]
        assert metric(c.get("/metrics").text, "rca_cache_requests_total", result="miss") == 2


def test_a_redis_that_is_down_lets_requests_through(tmp_path: Path) -> None:
    down = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    with EmbeddedServer(data_dir=tmp_path, redis=down, limits=LimitSettings(backend="redis", query="1/minute"),
                        cache=CacheSettings(backend="redis")) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        assert [c.get("/incidents").status_code for _ in range(3)] == [200, 200, 200]
        assert c.post("/ingest/deployments", json=DEPLOY).status_code == 202
        assert [s["name"] for s in c.get("/services").json()] == ["billing"]
        text = c.get("/metrics").text
        assert metric(text, "rca_shared_state_errors_total", component="limits") == 4  # 3 + /services
        assert metric(text, "rca_shared_state_errors_total", component="cache") >= 3


@pytest.fixture
def two_apis(redis_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `rca serve` processes (own DuckDB files) sharing one Redis for their limits."""
    env = {**os.environ, "RCA_LIMITS__BACKEND": "redis", "RCA_REDIS__URL": redis_url,
           "RCA_REDIS__KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}", "RCA_LIMITS__INGEST": "5/minute",
           "RCA_CACHE__BACKEND": "memory", "RCA_LOG_LEVEL": "warning"}
    procs, urls = [], []
    for name in ("a", "b"):
        port = free_port()
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (owned by the process)
        procs.append(subprocess.Popen([RCA, "serve", "--port", str(port), "--data-dir", str(tmp_path / name)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        for url, p in zip(urls, procs, strict=True):
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert p.poll() is None and time.monotonic() < deadline, (tmp_path / "a.log").read_text()
                time.sleep(0.2)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def test_two_api_processes_spend_one_budget_in_redis(two_apis: list[str]) -> None:
    a, b = two_apis
    codes = []
    for i in range(5):
        body = {"deployments": [{"service": "billing", "ts": 1_796_000_000 + i, "version": f"v{i}"}]}
        codes.append(httpx.post((a, b)[i % 2] + "/ingest/deployments", json=body, timeout=30).status_code)
    assert codes == [202] * 5
    for url in (a, b):  # the client's sixth and seventh requests, to either process
        r = httpx.post(url + "/ingest/deployments", json=DEPLOY, timeout=30)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
    assert httpx.get(a + "/incidents", timeout=30).status_code == 200  # queries have no limit here
    stored = len(httpx.get(a + "/changes", timeout=30).json()) + len(httpx.get(b + "/changes", timeout=30).json())
    assert stored == 5
