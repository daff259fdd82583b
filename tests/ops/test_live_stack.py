"""The stack running as it is operated: the API (`rca serve --role api`) and one worker per
stage (`rca worker STAGE --metrics-port N`), each its own OS process, on the real Kafka
broker, PostgreSQL and Redis, scraped by the real Prometheus (Debian package) with the
stack's own rule files.

- The query cache lives in Redis and is dropped by writes of *other* processes: an empty
  incident list cached for 300 s gives way to the incidents the grouping worker writes.
- Prometheus scrapes every process; every metric that a dashboard panel or a rule queries
  is one the processes really export (or a recording rule made from them), the bus lag
  comes per partition, the stage histograms have observations, every rule evaluates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.embedded import free_port
from server.sim.replay import replay
from server.sim.scenario import generate_scenario
from tests.e2e import promstack
from tests.kafka_broker import kafka_bootstrap
from tests.ops.queries import RULES, queried_names
from tests.redis_server import RedisServer
from tests.stack.harness import Stack

pytestmark = pytest.mark.slow
PARTITIONS = 2
def prom_config(api: str, workers: dict[str, int]) -> str:
    jobs = [("rca-api", [api])] + [(f"rca-{stage}", [f"127.0.0.1:{port}"]) for stage, port in workers.items()]
    scrape = "".join(f"""
  - job_name: {job}
    static_configs:
      - targets: {targets!r}""".replace("'", '"') for job, targets in jobs)
    rules = "".join(f"\n  - {p}" for p in RULES)
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:{rules}
scrape_configs:{scrape}
"""


def cache_count(text: str, result: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'rca_cache_requests_total{{result="{result}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"rca_cache_requests_total{{result={result}}} not exported")


def test_stack_processes_share_the_cache_and_export_what_dashboards_and_rules_query(
        pg_database: str, tmp_path: Path) -> None:
    promstack.ensure_installed()
    with RedisServer(tmp_path / "redis") as redis, \
            Stack(bootstrap=kafka_bootstrap(), dsn=pg_database, data_dir=tmp_path / "stack",
                  partitions=PARTITIONS) as st:
        st.env.update({"RCA_REDIS__URL": redis.url, "RCA_CACHE__BACKEND": "redis", "RCA_CACHE__TTL_SECONDS": "300",
                       "RCA_LIMITS__BACKEND": "redis", "RCA_LIMITS__QUERY": "10000/minute"})
        st.start_api()
        ports = {stage: free_port() for stage in ("detector", "grouping", "rca")}
        for stage, port in ports.items():
            st._spawn(stage, ["worker", stage, "--member-id", stage, "--metrics-port", str(port),
                              "--metrics-host", "127.0.0.1"])
        for stage in ports:
            st.wait_workers(stage, 1)

        with httpx.Client(base_url=st.url, timeout=30) as c:
            # an empty answer, cached in Redis for 300 s, then served from the cache
            assert c.get("/incidents").json() == [] and c.get("/incidents").json() == []
            assert cache_count(c.get("/metrics").text, "hit") >= 1
            sc = generate_scenario(5, kind="deployment", history_hours=1.0, n_services=4)
            replay(sc, st.url, timeout=300)
            # the grouping and RCA workers (other processes) wrote incidents and suspects:
            # their writes dropped the cached answers, so they show at once
            incidents = c.get("/incidents").json()
            assert incidents, "the scenario's regression should open an incident"
            suspects = c.get(f"/incidents/{incidents[0]['id']}/suspects").json()
            assert suspects and c.get(f"/incidents/{incidents[0]['id']}/suspects").json() == suspects

        prom, prom_url = promstack.start_prometheus(tmp_path, prom_config(f"127.0.0.1:{st.port}", ports))
        try:
            with httpx.Client(base_url=prom_url, timeout=30) as p:
                def query(q: str) -> list[dict[str, Any]]:
                    body = p.get("/api/v1/query", params={"query": q}).json()
                    assert body["status"] == "success", body
                    return list(body["data"]["result"])

                def all_up() -> bool:
                    targets = p.get("/api/v1/targets").json()["data"]["activeTargets"]
                    return len(targets) == 4 and all(t["health"] == "up" for t in targets)

                promstack.until(all_up, 60, "every process scraped")
                # the recording rules evaluated at least twice over scraped samples (rates need two)
                promstack.until(lambda: query("rca:stage_messages:rate1m"), 60, "recording rules")

                def missing() -> dict[str, list[str]]:
                    names = set(p.get("/api/v1/label/__name__/values").json()["data"])
                    return {name: sorted(where) for name, where in queried_names().items() if name not in names}

                # a loaded machine may need another scrape interval before every series is in
                deadline = time.monotonic() + 60
                while missing() and time.monotonic() < deadline:
                    time.sleep(1)
                left = missing()
                assert left == {}, f"queried but not exported: {left}"

                lag = query('rca_bus_lag_messages{stage="detector"}')
                assert {r["metric"]["partition"] for r in lag} == {str(i) for i in range(PARTITIONS)}
                assert {r["metric"]["job"] for r in lag} == {"rca-api", "rca-detector"}
                for stage in ("detector", "grouping", "rca"):
                    done = query(f'rca_stage_batch_seconds_count{{stage="{stage}", job="rca-{stage}"}}')
                    assert done and float(done[0]["value"][1]) > 0, f"{stage}: no batch observed"
                assert float(query('rca_analysis_seconds_count{job="rca-rca"}')[0]["value"][1]) > 0
                assert float(query('rca_ingested_events_total{kind="metrics", job="rca-api"}')[0]["value"][1]) > 0
                assert float(query('max(rca_incidents{status="OPEN"}) + max(rca_incidents{status="RESOLVED"})')
                             [0]["value"][1]) == len(incidents)
                groups = p.get("/api/v1/rules").json()["data"]["groups"]
                bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
                assert bad == [], bad
        finally:
            prom.stop()
