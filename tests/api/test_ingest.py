"""Ingest endpoints through real HTTP against the embedded server (DuckDB file)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.api.helpers import T0, wait_idle


def _points(n: int = 3) -> list[dict]:
    return [{"service": "checkout", "metric": "p95_latency_ms", "ts": T0 + 10 * i, "value": 100.0 + i}
            for i in range(n)]


def _stored_points(http: httpx.Client, service: str = "checkout", metric: str = "p95_latency_ms") -> int:
    rows = http.get("/services/metrics", params={"service": service}).json()
    return sum(r["points"] for r in rows if r["metric"] == metric)


def test_metrics_wrapped_bare_and_ndjson(http: httpx.Client) -> None:
    r = http.post("/ingest/metrics", json={"points": _points(3)})
    assert r.status_code == 202 and r.json()["accepted"] == 3
    bare = [{"service": "checkout", "metric": "p95_latency_ms", "ts": "2025-11-30T01:00:00Z", "value": 5,
             "labels": {"region": "eu-west-1"}}]
    assert http.post("/ingest/metrics", json=bare).json() == {"accepted": 1}
    nd = b"\n".join(orjson.dumps({"service": "checkout", "metric": "qps", "ts": T0 + i, "value": 1.5})
                    for i in range(4)) + b"\n"
    r = http.post("/ingest/metrics", content=nd, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["accepted"] == 4
    wait_idle(http)
    assert _stored_points(http) == 4
    assert _stored_points(http, metric="qps") == 4
    series = http.get("/services/checkout/metrics/p95_latency_ms/series").json()
    assert series["points"][0] == {"ts": "2025-11-30T00:00:00Z", "value": 100.0}
    assert series["points"][-1]["ts"] == "2025-11-30T01:00:00Z"


@pytest.mark.parametrize("bad,field", [
    ({"metric": "m", "ts": T0, "value": 1}, "service"),
    ({"service": "", "metric": "m", "ts": T0, "value": 1}, "service"),
    ({"service": "s", "ts": T0, "value": 1}, "metric"),
    ({"service": "s", "metric": "m", "value": 1}, "ts"),
    ({"service": "s", "metric": "m", "ts": "2025-11-30T00:00:00", "value": 1}, "ts"),  # no zone
    ({"service": "s", "metric": "m", "ts": "yesterday", "value": 1}, "ts"),
    ({"service": "s", "metric": "m", "ts": True, "value": 1}, "ts"),
    ({"service": "s", "metric": "m", "ts": T0}, "value"),
    ({"service": "s", "metric": "m", "ts": T0, "value": "12"}, "value"),
    ({"service": "s", "metric": "m", "ts": T0, "value": None}, "value"),
    ({"service": "s", "metric": "m", "ts": T0, "value": 1, "labels": {"a": 1}}, "labels"),
    ({"service": 3, "metric": "m", "ts": T0, "value": 1}, "service"),
])
def test_metrics_bad_item_rejects_whole_batch(http: httpx.Client, bad: dict, field: str) -> None:
    batch = _points(5)
    batch.insert(2, bad)
    r = http.post("/ingest/metrics", json={"points": batch})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(d["loc"] == ["body", "points", 2, field] for d in detail), detail
    wait_idle(http)
    assert _stored_points(http) == 0  # nothing of the batch stored


def test_metrics_nonfinite_and_malformed_bodies(http: httpx.Client) -> None:
    body = b'{"points": [{"service": "s", "metric": "m", "ts": 1764460800, "value": NaN}]}'
    r = http.post("/ingest/metrics", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422  # NaN is not JSON
    assert http.post("/ingest/metrics", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert http.post("/ingest/metrics", json={"pts": []}).status_code == 422
    assert http.post("/ingest/metrics", json={"points": "x"}).status_code == 422
    assert http.post("/ingest/metrics", json=[1, 2]).status_code == 422
    r = http.post("/ingest/metrics", content=b'[{"service": "s", "metric": "m", "ts": 1, "value": 1e400}]',
                  headers={"content-type": "application/json"})
    assert r.status_code == 422
    nd = b'{"service": "s", "metric": "m", "ts": 1, "value": 1}\n{broken\n'
    r = http.post("/ingest/metrics", content=nd, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 422
    assert http.get("/services/metrics").json() == []


def test_oversized_body_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.embedded import EmbeddedServer
    from server.settings import ApiSettings

    with EmbeddedServer(data_dir=tmp_path / "d", api=ApiSettings(max_body_bytes=1000)) as srv, \
            httpx.Client(base_url=srv.url) as c:
        r = c.post("/ingest/metrics", json={"points": _points(50)})
        assert r.status_code == 413
        assert "detail" in r.json()
        assert c.get("/services/metrics").json() == []
        assert c.post("/ingest/metrics", json={"points": _points(2)}).status_code == 202


def test_logs(http: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    logs = [{"service": "checkout", "ts": T0 + 1.5, "level": "error", "message": "upstream timeout",
             "attributes": {"trace_id": "ab12"}},
            {"service": "checkout", "ts": "2025-11-30T00:00:02Z", "level": "WARNING", "message": "slow"}]
    r = http.post("/ingest/logs", json={"logs": logs})
    assert r.status_code == 202 and r.json()["accepted"] == 2
    bad = logs + [{"service": "checkout", "ts": T0, "level": "LOUD", "message": "x"}]
    r = http.post("/ingest/logs", json={"logs": bad})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:4] == ["body", "logs", 2, "level"]
    r = http.post("/ingest/logs", json=[{"service": "checkout", "ts": T0, "level": "INFO"}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == ["body", "logs", 0, "message"]
    wait_idle(http)
    store = server.app.state.rca.store  # the API has no log listing; read the real store
    assert store.count_logs(services=None, since=0, until=2e9) == 2  # rejected batches stored nothing


def test_deployments_ids_idempotent_and_listed(http: httpx.Client) -> None:
    dep = {"id": "dep-481", "service": "payments", "ts": "2025-11-30T03:58:00Z", "version": "v2.14.0",
           "previous_version": "v2.13.2", "commit": "9f2c1e7", "author": "alice",
           "description": "Switch card tokenizer to async client",
           "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120, "removed": 35}]}}
    r = http.post("/ingest/deployments", json={"deployments": [dep]})
    assert r.status_code == 202 and r.json()["ids"] == ["dep-481"]
    assert http.post("/ingest/deployments", json=dep).status_code == 202  # one bare event, same id
    r = http.post("/ingest/deployments", json=[{"service": "payments", "ts": T0, "version": "v3"}])
    assigned = r.json()["ids"][0]
    assert assigned and assigned != "dep-481"
    changes = http.get("/changes", params={"kind": "deployment"}).json()
    assert [c["id"] for c in changes].count("dep-481") == 1
    got = next(c for c in changes if c["id"] == "dep-481")
    assert got["service"] == "payments" and got["ts"] == "2025-11-30T03:58:00Z"
    assert got["version"] == "v2.14.0" and got["diff"]["files"][0]["path"] == "src/payments/tokenizer.py"
    assert got["author"] == "alice" and got["kind"] == "deployment"
    # required fields
    r = http.post("/ingest/deployments", json={"deployments": [dict(dep, id="dep-new"), {"service": "x", "ts": T0}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == ["body", "deployments", 1, "version"]
    assert "dep-new" not in [c["id"] for c in http.get("/changes").json()]  # nothing of the batch stored


def test_config_and_flag_changes(http: httpx.Client) -> None:
    cfg = {"id": "cfg-77", "service": "payments", "ts": "2025-11-30T03:59:00Z", "key": "http.client.timeout_ms",
           "old_value": "2000", "new_value": 200, "author": "bob", "description": "tighten timeouts"}
    assert http.post("/ingest/config_changes", json={"config_changes": [cfg]}).status_code == 202
    flag = {"id": "flag-9", "flag": "new_pricing_engine", "services": ["pricing", "checkout"],
            "ts": "2025-11-30T03:59:30Z", "old_state": "off", "new_state": "on", "rollout_percent": 25,
            "author": "carol"}
    assert http.post("/ingest/flag_changes", json={"flag_changes": [flag]}).status_code == 202
    bad_flag = dict(flag, id="flag-10", services=[])
    r = http.post("/ingest/flag_changes", json={"flag_changes": [bad_flag]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == ["body", "flag_changes", 0, "services"]
    r = http.post("/ingest/config_changes", json=[{"service": "payments", "ts": T0}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == ["body", "config_changes", 0, "key"]
    changes = {c["id"]: c for c in http.get("/changes").json()}
    assert set(changes) == {"cfg-77", "flag-9"}
    assert changes["cfg-77"]["new_value"] == "200" and changes["cfg-77"]["key"] == "http.client.timeout_ms"
    assert changes["flag-9"]["services"] == ["pricing", "checkout"]
    assert changes["flag-9"]["rollout_percent"] == 25
    by_service = http.get("/changes", params={"service": "checkout"}).json()
    assert [c["id"] for c in by_service] == ["flag-9"]
    window = http.get("/changes", params={"since": "2025-11-30T03:59:10Z"}).json()
    assert [c["id"] for c in window] == ["flag-9"]
    assert http.get("/changes", params={"until": 1764475150}).json()[0]["id"] == "cfg-77"
    assert http.get("/changes", params={"since": "garbage"}).status_code == 422


def test_topology_edges_accumulate(http: httpx.Client) -> None:
    r = http.post("/ingest/topology", json={"edges": [{"source": "frontend", "target": "checkout"}]})
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    assert http.post("/ingest/topology", json=[{"source": "frontend", "target": "checkout"},
                                                 {"source": "checkout", "target": "payments"}]).status_code == 202
    assert http.post("/ingest/topology", json={"edges": [{"source": "a"}]}).status_code == 422


def test_health_metrics_services_and_docs(http: httpx.Client) -> None:
    http.post("/ingest/metrics", json={"points": _points(5)})
    http.post("/ingest/deployments", json={"service": "payments", "ts": T0, "version": "v1"})
    wait_idle(http)
    h = http.get("/health").json()
    assert h["status"] == "ok" and h["pending"] == 0 and h["components"]["store"] == "ok"
    services = {s["name"]: s for s in http.get("/services").json()}
    assert services["checkout"]["metrics"] == ["p95_latency_ms"]
    assert services["checkout"]["last_seen"] == "2025-11-30T00:00:40Z"
    assert "payments" in services  # known from its change events
    info = http.get("/services/metrics").json()
    assert info == [{"service": "checkout", "metric": "p95_latency_ms", "points": 5,
                     "first_ts": "2025-11-30T00:00:00Z", "last_ts": "2025-11-30T00:00:40Z", "labels": {}}]
    step = http.get("/services/checkout/metrics/p95_latency_ms/series", params={"step": 20}).json()
    assert [p["value"] for p in step["points"]] == [100.5, 102.5, 104.0]
    assert http.get("/services/checkout/metrics/nope/series").status_code == 404
    m = http.get("/metrics")
    assert m.status_code == 200 and "rca_ingested_events_total" in m.text
    doc = http.get("/openapi.json").json()
    assert "/ingest/metrics" in doc["paths"] and "MetricPointIn" in doc["components"]["schemas"]
    assert http.get("/docs").status_code == 200
    assert http.get("/incidents/nope").status_code == 404
    assert http.get("/incidents", params={"status": "BOGUS"}).status_code == 422
