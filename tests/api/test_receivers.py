"""Standard-protocol receivers through real HTTP against the embedded server (DuckDB file).

Bodies are built with the same libraries the real clients use (protobuf + snappy for
remote-write, opentelemetry-proto for OTLP, pyarrow for Arrow IPC); the tests with the
real Prometheus, Alertmanager and OpenTelemetry SDK are in tests/e2e/.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from server.embedded import EmbeddedServer
from server.ingest import arrow_ipc, remote_write
from tests.api.helpers import T0, wait_idle

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
RW = {"content-type": "application/x-protobuf", "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0"}


def _series(http: httpx.Client, service: str | None = None) -> list[dict[str, Any]]:
    params = {"service": service} if service else {}
    return http.get("/services/metrics", params=params).json()


# ---- remote-write -------------------------------------------------------------------------------


def _stored_labels(server: EmbeddedServer, service: str) -> list[tuple[str, float, str | None]]:
    """(metric, value, labels text) as stored, read from the server's own store."""
    store: Any = server.app.state.rca.store
    return [tuple(r) for r in store._q("SELECT metric, value, labels FROM metrics WHERE service = ? "
                                      "ORDER BY metric, labels, ts", [service])]


def test_remote_write_v1_labels_become_series(http: httpx.Client, server: EmbeddedServer) -> None:
    body = remote_write.encode_v1([
        ({"__name__": "http_requests_total", "job": "api", "instance": "a:9100", "code": "200"},
         [(T0, 1.0), (T0 + 15, 2.0)]),
        ({"__name__": "http_requests_total", "job": "api", "instance": "b:9100", "code": "200"},
         [(T0, 5.0), (T0 + 15, float("nan"))]),  # NaN: a stale marker, dropped
        ({"__name__": "up", "service": "checkout", "job": "kubernetes-pods"}, [(T0, 1.0)]),
    ])
    r = http.post("/api/v1/write", content=body, headers=RW)
    assert r.status_code == 204, r.text
    wait_idle(http)
    api = _series(http, "api")
    assert sum(s["points"] for s in api) == 3
    assert _stored_labels(server, "api") == [
        ("http_requests_total", 1.0, '{"code":"200","instance":"a:9100"}'),
        ("http_requests_total", 2.0, '{"code":"200","instance":"a:9100"}'),
        ("http_requests_total", 5.0, '{"code":"200","instance":"b:9100"}')]
    checkout = _series(http, "checkout")
    assert [s["metric"] for s in checkout] == ["up"]  # service label wins over job
    assert _stored_labels(server, "checkout") == [("up", 1.0, '{"job":"kubernetes-pods"}')]


def test_remote_write_v2_and_errors(http: httpx.Client) -> None:
    body = remote_write.encode_v2([({"__name__": "queue_depth", "job": "worker", "queue": "emails"},
                                    [(T0, 3.0), (T0 + 10, 4.0)])])
    r = http.post("/api/v1/write", content=body,
                  headers={**RW, "content-type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
    assert r.status_code == 204 and r.headers["x-prometheus-remote-write-samples-written"] == "2"
    assert http.post("/api/v1/write", content=b"not snappy at all", headers=RW).status_code == 400
    garbage = bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff\x0f"))
    r = http.post("/api/v1/write", content=garbage, headers=RW)
    assert r.status_code == 400 and "protobuf" in r.json()["detail"]
    assert http.post("/api/v1/write", content=body, headers={**RW, "content-type": "application/json"}).status_code == 415
    assert http.post("/api/v1/write", content=body, headers={**RW, "content-encoding": "gzip"}).status_code == 415
    no_service = remote_write.encode_v1([
        ({"__name__": "ok_metric", "job": "x"}, [(T0, 1.0)]),
        ({"__name__": "orphan", "instance": "z"}, [(T0, 1.0)])])
    r = http.post("/api/v1/write", content=no_service, headers=RW)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "timeseries", 1, "labels"]
    wait_idle(http)
    assert [s["service"] for s in _series(http)] == ["worker"]  # nothing of the rejected requests


# ---- Arrow IPC ------------------------------------------------------------------------------------


def test_arrow_ipc_ingest(http: httpx.Client) -> None:
    t = pa.table({"service": ["checkout"] * 3, "metric": pa.array(["p95_latency_ms"] * 3).dictionary_encode(),
                  "ts": pa.array([T0, T0 + 10, T0 + 20]), "value": pa.array([1, 2, 3], type=pa.int32()),
                  "labels": ['{"pod":"b","region":"eu"}', '{"region":"eu","pod":"b"}', None]})
    r = http.post("/ingest/metrics", content=arrow_ipc.encode(t),
                  headers={"content-type": arrow_ipc.MEDIA_TYPE})
    assert r.status_code == 202 and r.json() == {"accepted": 3}
    wait_idle(http)
    rows = _series(http, "checkout")
    assert sum(s["points"] for s in rows) == 3
    bad = pa.table({"service": ["a", None], "metric": ["m", "m"], "ts": [T0, T0], "value": [1.0, float("inf")]})
    r = http.post("/ingest/metrics", content=arrow_ipc.encode(bad), headers={"content-type": arrow_ipc.MEDIA_TYPE})
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", "points", 1, "service"] in locs and ["body", "points", 1, "value"] in locs
    r = http.post("/ingest/metrics", content=b"\x00garbage", headers={"content-type": arrow_ipc.MEDIA_TYPE})
    assert r.status_code == 400
    wait_idle(http)
    assert sum(s["points"] for s in _series(http)) == 3


# ---- OTLP ---------------------------------------------------------------------------------------------


def _otlp_json(ts_ns: int) -> dict[str, Any]:
    return {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}},
                                    {"key": "service.instance.id", "value": {"stringValue": "pod-1"}}]},
        "scopeMetrics": [{"scope": {"name": "manual"}, "metrics": [
            {"name": "queue.size", "gauge": {"dataPoints": [
                {"timeUnixNano": str(ts_ns), "asInt": "7", "attributes": [{"key": "queue", "value": {"stringValue": "q1"}}],
                 "exemplars": [{"timeUnixNano": str(ts_ns), "asDouble": 1.0,
                                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}},
            {"name": "http.server.duration", "unit": "ms", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                {"timeUnixNano": str(ts_ns), "count": "10", "sum": 300.0, "bucketCounts": ["2", "6", "2"],
                 "explicitBounds": [10.0, 50.0]}]}},
            {"name": "unknown.field.ok", "futureKind": {}, "sum": {"isMonotonic": True, "aggregationTemporality": 2,
                                                                   "dataPoints": [{"timeUnixNano": str(ts_ns), "asDouble": 2.5}]}},
        ]}]}]}


def test_otlp_json_and_protobuf_metrics(http: httpx.Client) -> None:
    ts_ns = int(T0 * 1e9)
    r = http.post("/v1/metrics", content=json.dumps(_otlp_json(ts_ns)), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
    assert r.json() == {}
    wait_idle(http)
    rows = {s["metric"]: s for s in _series(http, "cart")}
    assert {"queue.size", "http.server.duration", "http.server.duration_count", "http.server.duration_sum",
            "unknown.field.ok"} <= set(rows)
    q = http.get("/services/cart/metrics/http.server.duration/series", params={"label": ["quantile=0.5"]}).json()
    assert q["points"] and 10.0 < q["points"][0]["value"] <= 50.0  # median inside the 10-50 bucket
    # protobuf, gzip-compressed (what the OTel Collector's otlphttp exporter sends)
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "cart"
    m = rm.scope_metrics.add().metrics.add(name="cpu.utilization")
    dp = m.gauge.data_points.add(time_unix_nano=ts_ns + 10**10, as_double=0.5)
    m.gauge.data_points.add(time_unix_nano=ts_ns + 2 * 10**10, as_double=float("nan"))
    dp.attributes.add(key="core").value.int_value = 3
    r = http.post("/v1/metrics", content=gzip.compress(req.SerializeToString()),
                  headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    wait_idle(http)
    assert next(s for s in _series(http, "cart") if s["metric"] == "cpu.utilization")["points"] == 1


def test_otlp_errors_store_nothing(http: httpx.Client) -> None:
    doc = _otlp_json(int(T0 * 1e9))
    doc["resourceMetrics"][0]["resource"]["attributes"] = []
    r = http.post("/v1/metrics", content=json.dumps(doc), headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "service.name"
    assert http.post("/v1/metrics", content=b"\x0a\xff", headers={"content-type": "application/x-protobuf"}).status_code == 400
    assert http.post("/v1/metrics", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    assert http.post("/v1/logs", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    logs = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                              "scopeLogs": [{"logRecords": [
                                  {"timeUnixNano": str(int(T0 * 1e9)), "severityNumber": 17, "body": {"stringValue": "boom"},
                                   "traceId": "5b8efff798038103d269b633813fc60c"},
                                  {"severityText": "INFO", "body": {"stringValue": "no time"}}]}]}]}
    r = http.post("/v1/logs", content=json.dumps(logs), headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "timeUnixNano"
    wait_idle(http)
    assert _series(http) == []


# ---- alerts -------------------------------------------------------------------------------------------


def test_generic_alert_opens_incident_and_resolution_follows(http: httpx.Client) -> None:
    http.post("/ingest/deployments", json={"id": "dep-1", "service": "checkout", "ts": T0 - 120, "version": "v2"})
    alert = {"id": "al-x", "name": "HighLatency", "services": ["checkout"], "starts_at": T0,
             "labels": {"severity": "page"}, "annotations": {"summary": "p95 > 500 ms"}}
    r = http.post("/ingest/alerts", json={"alerts": [alert]})
    assert r.status_code == 202 and r.json() == {"accepted": 1, "ids": ["al-x"]}
    wait_idle(http)
    incs = http.get("/incidents").json()
    assert len(incs) == 1
    inc = incs[0]
    assert inc["status"] == "OPEN" and inc["services"] == ["checkout"]
    assert inc["started_at"] == "2025-11-30T00:00:00Z" and inc["anomaly_count"] == 0
    assert [a["id"] for a in inc["alerts"]] == ["al-x"] and inc["alerts"][0]["status"] == "firing"
    assert "HighLatency" in inc["title"]
    sus = http.get(f"/incidents/{inc['id']}/suspects").json()
    # RCA ran on the alert's incident: the deploy leads the change suspects (the root-service suspect for
    # checkout, the same service, may rank beside it: with no metrics it has no deviation to judge)
    changes = [s for s in sus if s["kind"] != "service"]
    assert changes and changes[0]["change_id"] == "dep-1"
    # a second alert on the same service joins; then both resolve -> the incident resolves
    r = http.post("/ingest/alerts", json=[{"name": "ErrorRate", "service": "checkout", "starts_at": T0 + 60}])
    new_id = r.json()["ids"][0]
    wait_idle(http)
    assert len(http.get("/incidents").json()) == 1
    http.post("/ingest/alerts", json={"alerts": [{**alert, "ends_at": T0 + 600},
                                                 {"id": new_id, "name": "ErrorRate", "service": "checkout",
                                                  "starts_at": T0 + 60, "ends_at": T0 + 300}]})
    wait_idle(http)
    inc = http.get(f"/incidents/{inc['id']}").json()
    assert inc["status"] == "RESOLVED" and inc["resolved_at"] == "2025-11-30T00:10:00Z"
    assert {a["status"] for a in inc["alerts"]} == {"resolved"}


def test_alertmanager_payload_and_bad_alerts(http: httpx.Client) -> None:
    payload = {"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
               "status": "firing", "receiver": "rca", "groupLabels": {"alertname": "HighErrorRate"},
               "commonLabels": {"alertname": "HighErrorRate", "job": "payments"}, "commonAnnotations": {},
               "externalURL": "http://alertmanager:9093",
               "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "job": "payments",
                                                          "severity": "critical"},
                           "annotations": {"summary": "5xx above 5%"}, "startsAt": "2025-11-30T00:05:00.123456789Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                           "fingerprint": "c4e0a2c3d6b7a8f9"}]}
    r = http.post("/ingest/alerts", json=payload)
    assert r.status_code == 202 and r.json()["ids"] == [f"am-c4e0a2c3d6b7a8f9-{int(T0) + 300}"]
    assert http.post("/ingest/alerts", json=payload).json()["accepted"] == 1  # repeat: idempotent
    wait_idle(http)
    (inc,) = http.get("/incidents").json()
    assert inc["services"] == ["payments"] and inc["alerts"][0]["source"] == "alertmanager"
    assert inc["severity"] >= 0.9
    bad = [{"name": "x", "services": ["a"], "starts_at": T0},
           {"name": "y", "starts_at": "yesterday", "services": ["a"]},
           {"name": "z", "starts_at": T0}]
    r = http.post("/ingest/alerts", json={"alerts": bad})
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", "alerts", 1, "starts_at"] in locs and ["body", "alerts", 2, "services"] in locs
    assert http.post("/ingest/alerts", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert http.post("/ingest/alerts", content=b"a", headers={"content-type": "text/csv"}).status_code == 415
    wait_idle(http)
    assert len(http.get("/incidents").json()) == 1


# ---- change webhooks ------------------------------------------------------------------------------------

SECRETS = {"webhooks": {"github_secret": "gh-s3cret", "argocd_token": "argo-t0ken", "launchdarkly_secret": "ld-s3cret"}}


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[httpx.Client]:
    with EmbeddedServer(data_dir=tmp_path / "data", **SECRETS) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c


def _sig(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_webhooks_signed(signed: httpx.Client) -> None:
    dep = (FIX / "github_deployment.json").read_bytes()
    status = (FIX / "github_deployment_status.json").read_bytes()
    h = {"content-type": "application/json", "x-github-event": "deployment"}
    assert signed.post("/ingest/webhooks/github", content=dep, headers=h).status_code == 401  # unsigned
    r = signed.post("/ingest/webhooks/github", content=dep, headers={**h, "x-hub-signature-256": "sha256=" + "0" * 64})
    assert r.status_code == 401
    r = signed.post("/ingest/webhooks/github", content=dep,
                    headers={**h, "x-hub-signature-256": "sha256=" + _sig("gh-s3cret", dep)})
    assert r.status_code == 202 and r.json()["ids"] == ["gh-deployment-145988746"]
    r = signed.post("/ingest/webhooks/github", content=status,
                    headers={**h, "x-github-event": "deployment_status",
                             "x-hub-signature-256": "sha256=" + _sig("gh-s3cret", status)})
    assert r.status_code == 202
    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    r = signed.post("/ingest/webhooks/github", content=ping,
                    headers={**h, "x-github-event": "ping", "x-hub-signature-256": "sha256=" + _sig("gh-s3cret", ping)})
    assert r.json() == {"accepted": 0, "ids": [], "ignored": "ping"}
    wait_idle(signed)
    changes = {c["id"]: c for c in signed.get("/changes").json()}
    assert set(changes) == {"gh-deployment-145988746", "gh-deployment-145988747"}
    d = changes["gh-deployment-145988746"]
    assert (d["kind"], d["service"], d["version"], d["previous_version"], d["author"], d["ts"]) == (
        "deployment", "payments", "v2.14.0", "v2.13.2", "alice", "2026-11-30T03:58:00Z")
    s = changes["gh-deployment-145988747"]
    assert (s["service"], s["version"], s["commit"][:7], s["ts"]) == ("checkout", "main", "4b825dc", "2026-11-30T04:02:30Z")


def test_argocd_and_launchdarkly_webhooks(signed: httpx.Client) -> None:
    app = (FIX / "argocd_app.json").read_bytes()
    flat = (FIX / "argocd_template.json").read_bytes()
    j = {"content-type": "application/json"}
    assert signed.post("/ingest/webhooks/argocd", content=app, headers=j).status_code == 401
    assert signed.post("/ingest/webhooks/argocd", content=app,
                       headers={**j, "authorization": "Bearer wrong"}).status_code == 401
    for body in (app, flat):
        r = signed.post("/ingest/webhooks/argocd", content=body, headers={**j, "authorization": "Bearer argo-t0ken"})
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    running = json.loads(flat)
    running["phase"] = "Running"
    r = signed.post("/ingest/webhooks/argocd", json=running, headers={"x-rca-token": "argo-t0ken"})
    assert r.json()["accepted"] == 0 and "Running" in r.json()["ignored"]

    ld = (FIX / "launchdarkly_flag.json").read_bytes()
    assert signed.post("/ingest/webhooks/launchdarkly", content=ld,
                       headers={**j, "x-ld-signature": _sig("wrong", ld)}).status_code == 401
    r = signed.post("/ingest/webhooks/launchdarkly", content=ld, headers={**j, "x-ld-signature": _sig("ld-s3cret", ld)})
    assert r.status_code == 202 and r.json()["ids"] == ["ld-5defe4e0d2ed1a0a1a3d5b5b-new-pricing-engine-production"]
    wait_idle(signed)
    changes = {c["id"]: c for c in signed.get("/changes").json()}
    pricing = next(c for c in changes.values() if c.get("application") == "pricing-prod")
    assert (pricing["kind"], pricing["service"], pricing["version"], pricing["author"], pricing["ts"]) == (
        "deployment", "pricing", "v3.1.0", "carol", "2026-11-30T03:59:10Z")
    search = next(c for c in changes.values() if c.get("application") == "search-prod")
    assert search["service"] == "search" and search["version"] == "2026.11.30-1" and search.get("author") is None
    flag = changes["ld-5defe4e0d2ed1a0a1a3d5b5b-new-pricing-engine-production"]
    assert (flag["kind"], flag["flag"], flag["services"], flag["old_state"], flag["new_state"],
            flag["rollout_percent"], flag["author"]) == (
        "flag_change", "new-pricing-engine", ["pricing"], "off", "on", 25.0, "carol@example.com")
    assert len(changes) == 3  # nothing from the rejected requests


def test_unsigned_webhooks_accepted_without_secret_and_openapi(http: httpx.Client) -> None:
    ld = json.loads((FIX / "launchdarkly_flag.json").read_text())
    ld["currentVersion"]["tags"] = []
    r = http.post("/ingest/webhooks/launchdarkly", json=ld)
    assert r.status_code == 422 and "service" in r.json()["detail"][0]["msg"]
    r = http.post("/ingest/webhooks/launchdarkly", params={"service": ["pricing", "checkout"]}, json=ld)
    assert r.status_code == 202
    wait_idle(http)
    assert http.get("/changes").json()[0]["services"] == ["pricing", "checkout"]
    doc = http.get("/openapi.json").json()
    for path in ("/api/v1/write", "/v1/metrics", "/v1/logs", "/ingest/alerts", "/ingest/webhooks/github",
                 "/ingest/webhooks/argocd", "/ingest/webhooks/launchdarkly"):
        (op,) = doc["paths"][path].values()
        assert {"400", "413", "415", "422"} <= set(op["responses"]), path
    assert "application/vnd.apache.arrow.stream" in doc["paths"]["/ingest/metrics"]["post"]["requestBody"]["content"]
    assert "alerts" in doc["components"]["schemas"]["IncidentPublic"]["properties"]


def test_alert_and_detector_anomaly_share_one_incident(http: httpx.Client) -> None:
    """An alert first opens the incident; the detector's anomaly on the same service a
    little later joins it (and vice versa an alert joins a detector incident)."""
    from tests.api.helpers import series

    shift = 600
    http.post("/ingest/alerts", json={"alerts": [{"id": "al-pay", "name": "PaymentsSlow", "service": "payments",
                                                  "starts_at": T0 + shift * 10 + 30}]})
    wait_idle(http)
    (opened,) = http.get("/incidents").json()
    assert opened["anomaly_count"] == 0
    r = http.post("/ingest/metrics", json={"points": series("payments", "p95_latency_ms", n=720, base=60,
                                                            shift_at=shift, factor=3, seed=1)})
    assert r.status_code == 202
    wait_idle(http)
    (inc,) = http.get("/incidents").json()
    assert inc["id"] == opened["id"] and inc["anomaly_count"] >= 1
    assert inc["started_at"] < opened["started_at"]  # the detector's onset is earlier than the alert
    assert [a["id"] for a in inc["alerts"]] == ["al-pay"] and "payments: p95_latency_ms up" in inc["title"]
    assert inc["alerts"][0]["join_reason"] == "opened by alert PaymentsSlow"
