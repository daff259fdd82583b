"""The real Prometheus and Alertmanager (Debian packages) as clients of the server.

- Prometheus scrapes a real target (a prometheus_client HTTP server in this process)
  and remote-writes to ``/api/v1/write``: the series arrive with their labels.
- Alertmanager receives an alert on its own HTTP API (v2) and sends its webhook to
  ``/ingest/alerts``: an incident opens listing the alert, and resolves when the alert does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from server.embedded import EmbeddedServer, free_port
from tests.e2e import promstack


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    promstack.ensure_installed()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path / "data") as s:
        yield s


def test_prometheus_scrapes_and_remote_writes_labelled_series(srv: EmbeddedServer, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    latency = Gauge("checkout_latency_ms", "p95 latency", ["pod", "region"], registry=registry)
    for pod, v in (("a", 100.0), ("b", 110.0), ("c", 95.0)):
        latency.labels(pod=pod, region="eu").set(v)
    target_port = free_port()
    exporter, thread = start_http_server(target_port, addr="127.0.0.1", registry=registry)
    config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
remote_write:
  - url: {srv.url}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 500
    metadata_config:
      send: true
"""
    prom, prom_url = promstack.start_prometheus(tmp_path, config)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            def labelled() -> list[dict[str, Any]] | None:
                rows = [r for r in http.get("/services/metrics", params={"service": "checkout"}).json()
                        if r["metric"] == "checkout_latency_ms"]
                return rows if sum(r["points"] for r in rows) >= 6 else None

            promstack.until(labelled, 60, "remote-written checkout_latency_ms points")
            metrics = {r["metric"] for r in http.get("/services/metrics", params={"service": "checkout"}).json()}
            assert {"checkout_latency_ms", "up", "scrape_duration_seconds"} <= metrics
            store: Any = srv.app.state.rca.store
            labels = {r[0] for r in store._q("SELECT DISTINCT labels FROM metrics WHERE service = 'checkout' "
                                             "AND metric = 'checkout_latency_ms'")}
            inst = f"127.0.0.1:{target_port}"
            assert labels == {f'{{"instance":"{inst}","pod":"{p}","region":"eu"}}' for p in "abc"}
            values = {r[0] for r in store._q("SELECT DISTINCT value FROM metrics WHERE metric = 'checkout_latency_ms'")}
            assert values == {100.0, 110.0, 95.0}
    finally:
        prom.stop()
        exporter.shutdown()
        thread.join(5)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_alertmanager_webhook_opens_and_resolves_an_incident(srv: EmbeddedServer, tmp_path: Path) -> None:
    config = f"""
route:
  receiver: rca
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rca
    webhook_configs:
      - url: {srv.url}/ingest/alerts
        send_resolved: true
"""
    am, am_url = promstack.start_alertmanager(tmp_path, config)
    try:
        starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        alert = {"labels": {"alertname": "HighLatency", "service": "checkout", "severity": "page"},
                 "annotations": {"summary": "p95 above 500 ms"}, "startsAt": _iso(starts),
                 "generatorURL": "http://prometheus.example/graph"}
        r = httpx.post(f"{am_url}/api/v2/alerts", json=[alert], timeout=10)
        assert r.status_code == 200, r.text
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            incs = promstack.until(lambda: http.get("/incidents").json() or None, 60, "an incident from Alertmanager")
            (inc,) = incs
            assert inc["status"] == "OPEN" and inc["services"] == ["checkout"]
            assert inc["started_at"] == _iso(starts)
            (a,) = inc["alerts"]
            assert (a["name"], a["source"], a["status"], a["labels"]["severity"]) == (
                "HighLatency", "alertmanager", "firing", "page")
            assert a["annotations"]["summary"] == "p95 above 500 ms" and a["fingerprint"]
            # resolve it at Alertmanager: the resolved notification resolves the incident
            ends = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
            r = httpx.post(f"{am_url}/api/v2/alerts", json=[{**alert, "endsAt": _iso(ends)}], timeout=10)
            assert r.status_code == 200
            done = promstack.until(lambda: [i for i in http.get("/incidents").json() if i["status"] == "RESOLVED"] or None,
                          60, "the incident to resolve")
            assert done[0]["id"] == inc["id"] and done[0]["resolved_at"] == _iso(ends)
            assert done[0]["alerts"][0]["status"] == "resolved"
    finally:
        am.stop()
