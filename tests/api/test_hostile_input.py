"""Hostile input, class by class (issue 17), against a real embedded server: each class
is refused with a 4xx that names the item and the field, nothing of the refused request
is stored, the server stays healthy, and what it does accept (however extreme) cannot
make a later read fail. A 500 closes its keep-alive connection cleanly.

Classes covered elsewhere: keys and roles, content types, cross-origin writes, Host
names and slow clients (test_security.py); timestamps in epoch milliseconds and
``step=inf``/``step=1e-300`` (test_hostile_timestamps.py); series cardinality per
service, per metric and in total (test_labels.py); a flood (test_flood.py).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from server.embedded import EmbeddedServer
from server.ingest import arrow_ipc
from tests.api.helpers import T0, wait_idle

POINT = {"service": "web", "metric": "lat", "ts": T0, "value": 1.0}
LOG = {"service": "web", "ts": T0, "level": "ERROR", "message": "boom"}
DEP = {"service": "web", "ts": T0, "version": "v1"}


def _deep(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cur = out
    for _ in range(n - 1):
        cur["a"] = {}
        cur = cur["a"]
    return out


def _otlp(ts_ns: int) -> dict[str, Any]:
    return {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
                                 "scopeMetrics": [{"metrics": [{"name": "lat", "gauge": {"dataPoints": [
                                     {"timeUnixNano": str(int(T0 * 1e9)), "asDouble": 1.0},
                                     {"timeUnixNano": str(ts_ns), "asDouble": 2.0}]}}]}]}]}


def _arrow(ts: list[float], values: list[float]) -> bytes:
    n = len(ts)
    return arrow_ipc.encode(pa.table({"service": ["web"] * n, "metric": ["lat"] * n, "ts": ts, "value": values}))


# (name, path, body: JSON document or (raw bytes, content type), the loc that must be named)
CASES: list[tuple[str, str, Any, list[Any]]] = [
    ("service name over 512 characters", "/ingest/metrics",
     {"points": [POINT, {**POINT, "service": "s" * 600}]}, ["body", "points", 1, "service"]),
    ("empty metric name", "/ingest/metrics", {"points": [POINT, {**POINT, "metric": ""}]}, ["body", "points", 1, "metric"]),
    ("value too large to average", "/ingest/metrics", {"points": [POINT, {**POINT, "value": 1e300}]},
     ["body", "points", 1, "value"]),
    ("Infinity literal as a value", "/ingest/metrics",
     (b'{"points": [{"service": "web", "metric": "lat", "ts": 1764460800, "value": Infinity}]}', "application/json"),
     ["body", "points", 0, "value"]),
    ("NaN literal as a log time", "/ingest/logs",
     (b'{"logs": [{"service": "web", "ts": NaN, "level": "ERROR", "message": "boom"}]}', "application/json"),
     ["body", "logs", 0, "ts"]),
    ("a label value that is not a string", "/ingest/metrics",
     {"points": [{**POINT, "labels": {"pod": 3}}]}, ["body", "points", 0, "labels"]),
    ("33 labels on one point", "/ingest/metrics",
     {"points": [{**POINT, "labels": {f"k{i}": "v" for i in range(33)}}]}, ["body", "points", 0, "labels"]),
    ("a label name over 128 characters", "/ingest/metrics",
     {"points": [{**POINT, "labels": {"k" * 129: "v"}}]}, ["body", "points", 0, "labels"]),
    ("a bad line in NDJSON", "/ingest/metrics",
     (json.dumps(POINT).encode() + b"\n{not json\n", "application/x-ndjson"), ["body", 1]),
    ("Arrow IPC timestamp beyond 2200", "/ingest/metrics", (_arrow([T0, 1e300], [1.0, 2.0]), arrow_ipc.MEDIA_TYPE),
     ["body", "points", 1, "ts"]),
    ("Arrow IPC value too large", "/ingest/metrics", (_arrow([T0, T0 + 1], [1.0, -1e200]), arrow_ipc.MEDIA_TYPE),
     ["body", "points", 1, "value"]),
    ("OTLP point time beyond 2200 (the largest uint64)", "/v1/metrics", _otlp(2**64 - 1),
     ["body", "dataPoints", 1, "ts"]),
    ("log message over 64 KiB", "/ingest/logs", {"logs": [LOG, {**LOG, "message": "x" * 70_000}]},
     ["body", "logs", 1, "message"]),
    ("log attributes nested 300 deep", "/ingest/logs", {"logs": [{**LOG, "attributes": _deep(300)}]},
     ["body", "logs", 0, "attributes"]),
    ("unknown log level", "/ingest/logs", {"logs": [{**LOG, "level": "LOUD"}]}, ["body", "logs", 0, "level"]),
    ("version over 512 characters", "/ingest/deployments", {"deployments": [DEP, {**DEP, "version": "v" * 600}]},
     ["body", "deployments", 1, "version"]),
    ("description over 16 KiB", "/ingest/deployments", {"deployments": [{**DEP, "description": "d" * 20_000}]},
     ["body", "deployments", 0, "description"]),
    ("flag change without services", "/ingest/flag_changes",
     {"flag_changes": [{"flag": "f", "services": [], "ts": T0}]}, ["body", "flag_changes", 0, "services"]),
    ("rollout over 100 percent", "/ingest/flag_changes",
     {"flag_changes": [{"flag": "f", "services": ["web"], "ts": T0, "rollout_percent": 150}]},
     ["body", "flag_changes", 0, "rollout_percent"]),
    ("an edge with an empty target", "/ingest/topology", {"edges": [{"source": "a", "target": ""}]},
     ["body", "edges", 0, "target"]),
    ("alert starting after 2200", "/ingest/alerts", {"alerts": [{"name": "A", "service": "web", "starts_at": 1e300}]},
     ["body", "alerts", 0, "starts_at"]),
    ("an Idempotency-Key over 200 characters", "/ingest/topology", {"edges": []}, ["header", "Idempotency-Key"]),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("hostile")) as s:
        yield s


def _stored(c: httpx.Client) -> dict[str, Any]:
    wait_idle(c)
    return {"points": sum(s["points"] for s in c.get("/services/metrics").json()), "changes": len(c.get("/changes").json()),
            "incidents": len(c.get("/incidents").json()), "topology": c.get("/metrics").text.count("rca_ingested")}


@pytest.mark.parametrize("name,path,body,loc", CASES, ids=[c[0] for c in CASES])
def test_each_hostile_class_is_refused_naming_the_item_and_field(srv: EmbeddedServer, name: str, path: str,
                                                                 body: Any, loc: list[Any]) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        before = _stored(c)
        headers = {"Idempotency-Key": "k" * 201} if loc[0] == "header" else {}
        if isinstance(body, tuple):
            r = c.post(path, content=body[0], headers={**headers, "content-type": body[1]})
        else:
            r = c.post(path, json=body, headers=headers)
        assert r.status_code == 422, (name, r.status_code, r.text[:300])
        detail = r.json()["detail"]
        assert any(d["loc"][:len(loc)] == loc and d["msg"] for d in detail), (name, detail)
        assert _stored(c) == before  # nothing of the refused request
        assert c.get("/health").json()["status"] == "ok"


def test_body_and_batch_limits_refuse_with_413_and_store_nothing(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path / "d", api={"max_body_bytes": 20_000, "max_batch_items": 50}) as s, \
            httpx.Client(base_url=s.url, timeout=30) as c:
        big = json.dumps({"points": [{**POINT, "ts": T0 + i} for i in range(300)]}).encode()
        assert len(big) > 20_000
        r = c.post("/ingest/metrics", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
        # the same without a Content-Length (chunked): counted as it arrives

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 4096):
                yield big[i:i + 4096]

        r = c.post("/ingest/metrics", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
        # every endpoint with a body, not only ingest
        r = c.post("/incidents/inc-1/label", content=b'{"note": "' + b"n" * 30_000 + b'"}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 413
        # more items than max_batch_items
        r = c.post("/ingest/metrics", json={"points": [{**POINT, "ts": T0 + i} for i in range(60)]})
        assert r.status_code == 413 and "60 items exceeds the limit of 50" in r.json()["detail"]
        assert c.get("/services/metrics").json() == []
        assert c.post("/ingest/metrics", json={"points": [POINT]}).status_code == 202


def test_a_change_id_of_another_kind_is_refused(http: httpx.Client) -> None:
    assert http.post("/ingest/deployments", json={**DEP, "id": "chg-1"}).status_code == 202
    assert http.post("/ingest/deployments", json={**DEP, "id": "chg-1"}).status_code == 202  # same kind: idempotent
    r = http.post("/ingest/config_changes", json={"config_changes": [
        {"id": "cfg-ok", "service": "web", "ts": T0, "key": "k"}, {"id": "chg-1", "service": "web", "ts": T0, "key": "k"}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "config_changes", 1, "id"]
    assert "already used by a deployment" in r.json()["detail"][0]["msg"]
    assert [c["id"] for c in http.get("/changes").json()] == ["chg-1"]  # nothing of the refused batch


def test_unknown_fields_are_ignored_and_harmless(http: httpx.Client) -> None:
    extra = {"x-future": {"nested": [1, {"deep": None}]}, "pod": 7}
    assert http.post("/ingest/metrics", json={"points": [{**POINT, **extra}], "version": 2}).status_code == 202
    assert http.post("/ingest/deployments", json={**DEP, "id": "dep-u", **extra}).status_code == 202
    assert http.post("/ingest/logs", json={"logs": [{**LOG, **extra}]}).status_code == 202
    wait_idle(http)
    change = http.get("/changes/dep-u").json()
    assert "x-future" not in change and "pod" not in change
    assert http.get("/services/metrics").json()[0]["labels"] == {}


def test_nothing_accepted_makes_a_later_read_fail(http: httpx.Client) -> None:
    """The extremes of what is accepted, then every read: all answer 200 with valid JSON."""
    big = 9.9e99  # just under the value bound: averages and baselines stay finite
    pts = [{"service": "edge", "metric": "huge", "ts": T0 + 10 * i, "value": big * (1 if i % 2 else -1)}
           for i in range(400)]
    pts += [{"service": "edge", "metric": "tiny", "ts": T0 + 10 * i, "value": 1e-300 * i} for i in range(400)]
    pts += [{"service": "edge", "metric": "lvl", "ts": T0 + 10 * i, "value": big if i > 300 else 1.0}
            for i in range(400)]
    pts += [{"service": "édge/ü ñ", "metric": "m", "ts": 0, "value": 0.0},
            {"service": "edge", "metric": "lat", "ts": 7_258_118_399.0, "value": 1.0,
             "labels": {f"{'k' * 125}{i:03d}": "v" * 1024 for i in range(32)}}]
    assert http.post("/ingest/metrics", json={"points": pts}).status_code == 202
    logs = [{**LOG, "service": "edge", "ts": T0 + i, "message": "m" * 65_000, "attributes": _deep(16)} for i in range(3)]
    assert http.post("/ingest/logs", json={"logs": logs}).status_code == 202
    assert http.post("/ingest/deployments", json={"id": "d" * 512, "service": "s" * 512, "ts": T0, "version": "v" * 512,
                                                  "description": "d" * 16_384}).status_code == 202
    assert http.post("/ingest/flag_changes", json={"flag": "f", "services": ["edge"], "ts": T0 + 5,
                                                   "rollout_percent": 0.000001}).status_code == 202
    wait_idle(http)
    health = http.get("/health").json()
    assert health["status"] == "ok" and all(s["errors"] == 0 for s in health["stages"].values()), health
    reads = ["/health", "/services", "/services/metrics", "/changes", "/incidents", "/model", "/metrics", "/export",
             "/services/edge/metrics/huge/series", "/services/edge/metrics/huge/series?step=3600",
             "/services/edge/metrics/tiny/series?step=0.001", "/services/edge/metrics/lvl/series?step=1e9",
             "/services/edge/metrics/lat/series?step=60"]
    for inc in http.get("/incidents").json():
        reads += [f"/incidents/{inc['id']}/{part}" for part in ("anomalies", "suspects", "labels", "log_patterns")]
    for path in reads:
        r = http.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        if r.headers["content-type"].startswith("application/json"):
            text = r.text
            assert "NaN" not in text and "Infinity" not in text, path
            if "/series" in path:
                assert all(isinstance(p["value"], float) for p in r.json()["points"]), path


def test_a_500_closes_its_keep_alive_connection_cleanly(server: EmbeddedServer) -> None:
    # A bug cannot be made to happen on demand: the store's method is replaced by one that
    # raises (fault injection), the rest of the server is real.
    store = server.app.state.rca.store

    def broken(**_: Any) -> Any:
        raise RuntimeError("injected fault")

    store.list_services = broken
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /services HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while True:  # the server sends the answer, then closes: read until EOF (no reset)
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 500")
        headers = {k.lower(): v.strip().lower() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        assert headers["connection"] == "close" and headers["content-type"] == "application/json"
        assert "internal server error (RuntimeError)" in json.loads(body)["detail"]
    finally:
        del store.list_services
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/services").status_code == 200 and c.get("/health").json()["status"] == "ok"
