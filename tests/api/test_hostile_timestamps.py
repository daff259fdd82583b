"""Hostile timestamps and steps (issue 17): out-of-range event times are refused with 422
naming the item and field, and nothing accepted can make a later read fail."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pytest

from server.embedded import EmbeddedServer
from server.store.duckdb import DuckDBStore
from tests.api.helpers import T0, wait_idle

READS = ["/health", "/services", "/services/metrics", "/services/web/metrics/lat/series", "/changes",
         "/incidents"]


def _reads_ok(c: httpx.Client) -> None:
    for path in READS:
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)


def _seed(c: httpx.Client) -> None:
    good = [{"service": "web", "metric": "lat", "ts": T0 + 10 * i, "value": 1.0} for i in range(5)]
    assert c.post("/ingest/metrics", json=good).status_code == 202
    assert c.post("/ingest/deployments", json={"service": "web", "ts": T0, "version": "v1"}).status_code == 202
    wait_idle(c)


def _bad_ts_error(r: httpx.Response, key: str, index: int) -> str:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    hits = [d for d in detail if d["loc"] == ["body", key, index, "ts"]]
    assert hits, detail
    return str(hits[0]["msg"])


@pytest.mark.parametrize("ts", [1796191220000, 1e300, "1796191220000", -1.0, "2300-01-01T00:00:00Z", 1e400])
def test_out_of_range_metric_timestamps_are_refused(http: httpx.Client, ts: object) -> None:
    _seed(http)
    # 1e400 (infinity once decoded) cannot be encoded by orjson: put the text in by hand
    raw = b"1e400" if ts == 1e400 else orjson.dumps(ts)
    batch = [{"service": "web", "metric": "lat", "ts": T0 + 100, "value": 2.0},
             {"service": "web", "metric": "lat", "ts": "__TS__", "value": 2.0}]
    body = orjson.dumps({"points": batch}).replace(b'"__TS__"', raw)
    msg = _bad_ts_error(http.post("/ingest/metrics", content=body, headers={"content-type": "application/json"}),
                        "points", 1)
    if ts in (1796191220000, "1796191220000"):
        assert "looks like epoch milliseconds" in msg and "1796191220" in msg
    nd = b"\n".join(orjson.dumps(p) for p in batch).replace(b'"__TS__"', raw)
    r = http.post("/ingest/metrics", content=nd, headers={"content-type": "application/x-ndjson"})
    _bad_ts_error(r, "points", 1)
    wait_idle(http)
    rows = http.get("/services/metrics").json()
    assert sum(r["points"] for r in rows) == 5  # nothing of the rejected batches was stored
    _reads_ok(http)


@pytest.mark.parametrize("ts", [1796191220000, 1e300])
@pytest.mark.parametrize("path,key,item", [
    ("/ingest/deployments", "deployments", {"service": "web", "version": "v2"}),
    ("/ingest/config_changes", "config_changes", {"service": "web", "key": "k"}),
    ("/ingest/flag_changes", "flag_changes", {"flag": "f", "services": ["web"]}),
    ("/ingest/logs", "logs", {"service": "web", "level": "ERROR", "message": "boom"}),
])
def test_out_of_range_change_and_log_timestamps_are_refused(http: httpx.Client, ts: float, path: str, key: str,
                                                            item: dict[str, object]) -> None:
    _seed(http)
    batch = [{**item, "ts": T0 + 50}, {**item, "ts": ts}]
    msg = _bad_ts_error(http.post(path, json={key: batch}), key, 1)
    if ts == 1796191220000:
        assert "epoch milliseconds" in msg
    # one bare event object (change endpoints): the index is 0
    if key != "logs":
        _bad_ts_error(http.post(path, json={**item, "ts": ts}), key, 0)
    wait_idle(http)
    assert len(http.get("/changes").json()) == 1
    _reads_ok(http)


@pytest.mark.parametrize("step", ["inf", "-inf", "nan", "1e-300", "0", "-5", "1e300", "abc"])
def test_bad_series_steps_are_refused(http: httpx.Client, step: str) -> None:
    _seed(http)
    r = http.get("/services/web/metrics/lat/series", params={"step": step})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "step"]
    r = http.get("/services/web/metrics/lat/series", params={"step": "0.001"})
    assert r.status_code == 200 and len(r.json()["points"]) == 5
    r = http.get("/services/web/metrics/lat/series", params={"step": "1e9"})
    assert r.status_code == 200 and r.json()["points"] == [{"ts": "2001-09-09T01:46:40Z", "value": 1.0}]


def test_data_dir_damaged_by_an_older_release_still_answers(tmp_path: Path) -> None:
    """Points with out-of-range times stored before the range check existed do not turn
    reads into 500s (the times are shown clamped to what ISO 8601 can represent)."""
    data = tmp_path / "d"
    data.mkdir()
    s = DuckDBStore(data / "rca.duckdb")
    s.insert_metrics(table=pa.table({"service": ["web"] * 2, "metric": ["lat"] * 2,
                                     "ts": pa.array([T0, 1e300], pa.float64()),
                                     "value": pa.array([1.0, 2.0], pa.float64()),
                                     "labels": pa.nulls(2, pa.string())}))
    s.close()
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _reads_ok(c)
        assert c.get("/services/metrics").json()[0]["last_ts"].startswith("9999-12-31")
