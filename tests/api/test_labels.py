"""Labelled series through real HTTP (embedded server, DuckDB file): a series is
(service, metric, label set); label matchers; the catalogue; cardinality limits; detector
state with labels across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from server.embedded import EmbeddedServer
from server.settings import ApiSettings
from tests.api.helpers import T0, series, wait_idle

PODS = ("pod-a", "pod-b", "pod-c")
N = 720
SHIFT = 600


def _pods(n: int = N, shift_at: int | None = SHIFT, bad: str = "pod-b") -> list[dict[str, Any]]:
    """Three pods of checkout report p95_latency_ms at the same timestamps; one degrades."""
    pts: list[dict[str, Any]] = []
    for k, pod in enumerate(PODS):
        for p in series("checkout", "p95_latency_ms", n=n, base=120, seed=10 + k,
                        shift_at=shift_at if pod == bad else None, factor=3):
            p["labels"] = {"pod": pod, "region": "eu-west-1"}
            pts.append(p)
    return pts


def test_three_pods_are_three_series_and_one_degrading_pod_opens_an_incident(http: httpx.Client) -> None:
    # the case: 3 pods x 100 timestamps = 300 points, none counted late
    first = [p for p in _pods() if p["ts"] < T0 + 100 * 10]
    assert len(first) == 300
    assert http.post("/ingest/metrics", json={"points": first}).status_code == 202
    wait_idle(http)
    health = http.get("/health").json()
    assert health["late_points"] == 0
    rows = http.get("/services/metrics", params={"service": "checkout"}).json()
    assert [(r["labels"]["pod"], r["points"]) for r in rows] == [(p, 100) for p in PODS]
    # the rest of the history, pod-b degrades at SHIFT
    rest = [p for p in _pods() if p["ts"] >= T0 + 100 * 10]
    assert http.post("/ingest/metrics", json={"points": rest}).status_code == 202
    wait_idle(http)
    assert http.get("/health").json()["late_points"] == 0
    incidents = http.get("/incidents").json()
    assert len(incidents) == 1, incidents
    inc = incidents[0]
    assert inc["services"] == ["checkout"]
    anomalies = http.get(f"/incidents/{inc['id']}/anomalies").json()
    assert anomalies and all(a["labels"] == {"pod": "pod-b", "region": "eu-west-1"} for a in anomalies), anomalies
    assert all(a["service"] == "checkout" and a["direction"] == "up" for a in anomalies)
    from server.timeutil import parse_ts

    assert abs(parse_ts(anomalies[0]["started_at"]) - (T0 + SHIFT * 10)) <= 30
    # the service-level view (no matcher) averages the pods; the pod's own series shows the shift
    avg = http.get("/services/checkout/metrics/p95_latency_ms/series", params={"since": T0 + 5000}).json()
    pod_b = http.get("/services/checkout/metrics/p95_latency_ms/series",
                     params={"since": T0 + 5000, "label": "pod=pod-b"}).json()
    assert avg["label_sets"] == 3 and pod_b["label_sets"] == 1
    assert len(avg["points"]) == len(pod_b["points"]) == N - 500
    late_avg = np.mean([p["value"] for p in avg["points"][-50:]])
    late_b = np.mean([p["value"] for p in pod_b["points"][-50:]])
    assert late_b == pytest.approx(360, rel=0.1) and late_avg == pytest.approx(200, rel=0.1)


def test_label_matchers_on_series_and_catalogue(http: httpx.Client) -> None:
    pts = []
    for i in range(3):
        ts = T0 + 10 * i
        pts += [{"service": "web", "metric": "lat", "ts": ts, "value": 10.0, "labels": {"pod": "a", "zone": "z1"}},
                {"service": "web", "metric": "lat", "ts": ts, "value": 20.0, "labels": {"zone": "z1", "pod": "b"}},
                {"service": "web", "metric": "lat", "ts": ts, "value": 60.0, "labels": {"pod": "c", "zone": "z2"}},
                {"service": "web", "metric": "qps", "ts": ts, "value": 5.0}]
    assert http.post("/ingest/metrics", json=pts).status_code == 202
    wait_idle(http)

    def values(*labels: str, step: float | None = None) -> list[float]:
        params: dict[str, Any] = {"label": list(labels)}
        if step is not None:
            params["step"] = step
        r = http.get("/services/web/metrics/lat/series", params=params)
        assert r.status_code == 200, r.text
        return [p["value"] for p in r.json()["points"]]

    assert values() == [30.0, 30.0, 30.0]
    assert values("pod=b") == [20.0, 20.0, 20.0]
    assert values("zone=z1") == [15.0, 15.0, 15.0]
    assert values("zone=z1", "pod=a") == [10.0, 10.0, 10.0]
    assert values("zone=z1", step=60) == [15.0]
    # no label set matches: 404 naming the matchers
    r = http.get("/services/web/metrics/lat/series", params={"label": "pod=zz"})
    assert r.status_code == 404 and "pod=zz" in r.json()["detail"]
    # a malformed matcher is a 422 naming the parameter
    for bad in ("pod", "=a", ""):
        r = http.get("/services/web/metrics/lat/series", params={"label": bad})
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"] == ["query", "label"]
    r = http.get("/services/metrics", params={"label": "nolabel"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "label"]
    # the catalogue: one row per series, with its labels; matchers filter it
    rows = http.get("/services/metrics", params={"service": "web"}).json()
    assert [(r["metric"], r["labels"], r["points"]) for r in rows] == [
        ("lat", {"pod": "a", "zone": "z1"}, 3), ("lat", {"pod": "b", "zone": "z1"}, 3),
        ("lat", {"pod": "c", "zone": "z2"}, 3), ("qps", {}, 3)]
    rows = http.get("/services/metrics", params=[("label", "zone=z1")]).json()
    assert [r["labels"]["pod"] for r in rows] == ["a", "b"]
    rows = http.get("/services/metrics", params={"service": "web", "metric": "qps"}).json()
    assert [r["labels"] for r in rows] == [{}]
    # /services lists each metric once
    assert http.get("/services").json()[0]["metrics"] == ["lat", "qps"]
    # a label set is canonical: key order and an empty object do not make new series
    more = [{"service": "web", "metric": "lat", "ts": T0 + 100, "value": 1.0, "labels": {"zone": "z2", "pod": "c"}},
            {"service": "web", "metric": "qps", "ts": T0 + 100, "value": 1.0, "labels": {}}]
    assert http.post("/ingest/metrics", json=more).status_code == 202
    wait_idle(http)
    assert len(http.get("/services/metrics").json()) == 4
    r = http.post("/ingest/metrics", json=[{"service": "web", "metric": "lat", "ts": T0, "value": 1.0,
                                            "labels": {"": "x"}}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "points", 0, "labels"]
    # the typed client: label sets in the catalogue, matchers on the series
    from workbench.client import RcaClient

    with RcaClient(str(http.base_url)) as client:
        infos = client.service_metrics(service="web")
        assert [i.labels.get("pod") for i in infos] == ["a", "b", "c", None]
        s = client.series("web", "lat", labels={"zone": "z1", "pod": "b"}, until=T0 + 50)
        assert s.values == [20.0, 20.0, 20.0]


def test_cardinality_limits_reject_the_whole_batch(tmp_path: Path) -> None:
    api = ApiSettings(max_series_per_service=6, max_series_per_metric=4, max_series=10)
    with EmbeddedServer(data_dir=tmp_path / "d", api=api) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        ok = [{"service": "web", "metric": "lat", "ts": T0, "value": 1.0, "labels": {"pod": str(i)}}
              for i in range(4)]
        assert c.post("/ingest/metrics", json=ok).status_code == 202
        # one more pod of the same metric: over max_series_per_metric; nothing of the batch stored
        batch = [{"service": "web", "metric": "lat", "ts": T0 + 10, "value": 2.0, "labels": {"pod": "0"}},
                 {"service": "web", "metric": "qps", "ts": T0 + 10, "value": 2.0},
                 {"service": "web", "metric": "lat", "ts": T0 + 10, "value": 2.0, "labels": {"pod": "new"}}]
        r = c.post("/ingest/metrics", json={"points": batch})
        assert r.status_code == 422
        d = r.json()["detail"][0]
        assert d["type"] == "cardinality_limit" and d["limit"] == "max_series_per_metric"
        assert (d["existing_series"], d["new_series"], d["max_series"]) == (4, 1, 4)
        assert "web/lat" in d["msg"] and "RCA_API__MAX_SERIES_PER_METRIC" in d["msg"]
        wait_idle(c)
        rows = c.get("/services/metrics").json()
        assert len(rows) == 4 and sum(r["points"] for r in rows) == 4
        # per service
        nd = b"\n".join(b'{"service": "web", "metric": "m%d", "ts": %d, "value": 1}' % (i, T0) for i in range(3))
        r = c.post("/ingest/metrics", content=nd, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 422 and r.json()["detail"][0]["limit"] == "max_series_per_service"
        assert "service web" in r.json()["detail"][0]["msg"]
        # the whole store
        many = [{"service": f"s{i}", "metric": "m", "ts": T0, "value": 1.0} for i in range(7)]
        r = c.post("/ingest/metrics", json=many)
        assert r.status_code == 422 and r.json()["detail"][0]["limit"] == "max_series"
        assert len(c.get("/services/metrics").json()) == 4
        # existing series keep taking points; new ones within the limits are accepted
        more = [*batch[:2], {"service": "other", "metric": "m", "ts": T0, "value": 1.0}]
        assert c.post("/ingest/metrics", json=more).status_code == 202
        wait_idle(c)
        assert len(c.get("/services/metrics").json()) == 6
        assert c.get("/health").status_code == 200


def test_restart_keeps_labelled_detector_state(tmp_path: Path) -> None:
    """The baselines of each pod's series survive a restart: after it, the rest of the
    history opens the same anomaly on pod-b as an uninterrupted run would."""
    pts = _pods()
    cut = T0 + (SHIFT - 20) * 10
    data = tmp_path / "d"
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/ingest/metrics", json=[p for p in pts if p["ts"] < cut]).raise_for_status()
        wait_idle(c)
    # the detector checkpoint (DetectorStage.save: names plus label sets) is in the store now
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        c.post("/ingest/metrics", json=[p for p in pts if p["ts"] >= cut]).raise_for_status()
        wait_idle(c)
        health = c.get("/health").json()
        assert health["late_points"] == 0
        incidents = c.get("/incidents").json()
        assert len(incidents) == 1 and incidents[0]["services"] == ["checkout"]
        anomalies = c.get(f"/incidents/{incidents[0]['id']}/anomalies").json()
        assert {a["labels"]["pod"] for a in anomalies} == {"pod-b"}
        from server.timeutil import parse_ts

        # the kept baselines (480 points of each pod) see the 3x shift at its onset and keep it
        # open; fresh ones (a run without the state file) report a resolved 1.3x blip 80 s early
        assert abs(parse_ts(anomalies[0]["started_at"]) - (T0 + SHIFT * 10)) <= 30
        assert incidents[0]["status"] == "OPEN"
        assert anomalies[0]["observed"] / anomalies[0]["baseline"] > 2
