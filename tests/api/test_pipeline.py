"""The pipeline through HTTP: detection -> incident -> suspects; labels and rerun;
restart durability; replay in one batch gives the same incidents as live arrival."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from server.embedded import EmbeddedServer
from tests.api.helpers import T0, series, wait_idle

EDGES = [{"source": "frontend", "target": "checkout"}, {"source": "checkout", "target": "payments"},
         {"source": "frontend", "target": "search"}]
SHIFT = 600  # index of the first shifted point (10-s steps)
N = 720


def _history() -> list[dict[str, Any]]:
    pts: list[dict[str, Any]] = []
    pts += series("payments", "p95_latency_ms", n=N, base=60, shift_at=SHIFT, factor=3, seed=1)
    pts += series("checkout", "p95_latency_ms", n=N, base=120, shift_at=SHIFT + 1, factor=2, seed=2)
    pts += series("frontend", "p95_latency_ms", n=N, base=200, shift_at=SHIFT + 2, factor=1.6, seed=3)
    pts += series("payments", "error_rate", n=N, base=0.002, noise=0.3, seed=4)
    pts += series("search", "p95_latency_ms", n=N, base=80, seed=5)
    pts += series("search", "qps", n=N, base=300, seed=6)
    return pts


def _changes(c: httpx.Client) -> None:
    c.post("/ingest/topology", json={"edges": EDGES}).raise_for_status()
    c.post("/ingest/deployments", json=[
        {"id": "dep-bad", "service": "payments", "ts": T0 + SHIFT * 10 - 20, "version": "v2.14.0",
         "previous_version": "v2.13.2", "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120,
                                                            "removed": 35}]}},
        {"id": "dep-old", "service": "search", "ts": T0 + 1000, "version": "v9"},
    ]).raise_for_status()
    c.post("/ingest/config_changes", json={"id": "cfg-decoy", "service": "search", "ts": T0 + SHIFT * 10 - 60,
                                           "key": "cache.ttl", "old_value": "60", "new_value": "30"}).raise_for_status()


def _summary(c: httpx.Client) -> list[tuple[Any, ...]]:
    out = []
    for inc in c.get("/incidents").json():
        sus = c.get(f"/incidents/{inc['id']}/suspects").json()
        out.append((inc["started_at"], inc["detected_at"], tuple(sorted(inc["services"])), inc["anomaly_count"],
                    inc["status"], tuple(s["change_id"] for s in sus[:3])))
    return sorted(out)


def test_level_shift_becomes_incident_with_ranked_suspects(http: httpx.Client) -> None:
    _changes(http)
    r = http.post("/ingest/metrics", json={"points": _history()})
    assert r.status_code == 202
    wait_idle(http)
    incidents = http.get("/incidents").json()
    assert len(incidents) == 1, incidents
    inc = incidents[0]
    assert inc["status"] == "OPEN"
    assert set(inc["services"]) == {"payments", "checkout", "frontend"}
    onset = T0 + SHIFT * 10
    from server.timeutil import parse_ts

    assert abs(parse_ts(inc["started_at"]) - onset) <= 30
    assert parse_ts(inc["detected_at"]) >= parse_ts(inc["started_at"])
    assert parse_ts(inc["detected_at"]) - onset <= 60
    assert inc["title"].startswith("payments: p95_latency_ms up")
    assert 0 < inc["severity"] <= 1
    anomalies = http.get(f"/incidents/{inc['id']}/anomalies").json()
    assert {a["service"] for a in anomalies} == {"payments", "checkout", "frontend"}
    assert all(a["direction"] == "up" and a["observed"] > a["baseline"] for a in anomalies)
    assert all(a["join_reason"] for a in anomalies)
    # each anomaly says why it is anomalous: which channel, against what baseline, how far, since when
    for a in anomalies:
        assert a["channel"] in ("shift", "range", "knn", "seasonal", "drift", "level")
        assert a["reason"].startswith(f"{a['metric']} rose to ") and " from a baseline of " in a["reason"]
        assert "x its usual noise" in a["reason"] and f"since {a['started_at']}" in a["reason"]
    suspects = http.get(f"/incidents/{inc['id']}/suspects").json()
    assert suspects and suspects[0]["change_id"] == "dep-bad"
    assert inc["top_suspect"]["change_id"] == "dep-bad"
    assert [s["rank"] for s in suspects] == list(range(1, len(suspects) + 1))
    for s in suspects:
        assert 0 <= s["score"] <= 1 and s["explanation"]
        assert s["evidence"] and all(0 <= v <= 1 for v in s["evidence"].values())
    # filters
    assert http.get("/incidents", params={"service": "search"}).json() == []
    assert len(http.get("/incidents", params={"status": "OPEN", "service": "checkout"}).json()) == 1
    assert http.get("/incidents", params={"status": "RESOLVED"}).json() == []
    assert http.get("/incidents", params={"since": "2025-12-01T00:00:00Z"}).json() == []
    assert http.get("/incidents", params={"limit": 1, "offset": 1}).json() == []


def test_label_and_rerun(http: httpx.Client) -> None:
    _changes(http)
    http.post("/ingest/metrics", json={"points": _history()})
    wait_idle(http)
    inc = http.get("/incidents").json()[0]
    sus = http.get(f"/incidents/{inc['id']}/suspects").json()
    r = http.post(f"/incidents/{inc['id']}/label", json={"suspect_id": sus[0]["id"], "verdict": "cause",
                                                          "author": "alice", "note": "rolled back"})
    assert r.status_code == 200
    body = r.json()
    assert body["change_id"] == "dep-bad" and body["verdict"] == "cause" and body["author"] == "alice"
    # a change that was not a suspect can still be labelled
    r = http.post(f"/incidents/{inc['id']}/label", json={"change_id": "dep-old", "verdict": "not_cause"})
    assert r.status_code == 200
    assert http.post(f"/incidents/{inc['id']}/label", json={"change_id": "nope", "verdict": "cause"}).status_code == 404
    assert http.post(f"/incidents/{inc['id']}/label", json={"change_id": "dep-bad", "verdict": "maybe"}).status_code == 422
    assert http.post(f"/incidents/{inc['id']}/label", json={"verdict": "cause"}).status_code == 422
    assert http.post("/incidents/inc-999/label", json={"change_id": "dep-bad", "verdict": "cause"}).status_code == 404
    labels = http.get(f"/incidents/{inc['id']}/labels").json()
    assert [lb["change_id"] for lb in labels] == ["dep-bad", "dep-old"]
    r = http.post(f"/incidents/{inc['id']}/rerun_rca")
    assert r.status_code == 202
    assert http.post("/incidents/inc-999/rerun_rca").status_code == 404
    wait_idle(http)
    again = http.get(f"/incidents/{inc['id']}/suspects").json()
    assert again and again[0]["change_id"] == "dep-bad"
    model = http.get("/model").json()
    assert "version" in model


def test_restart_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        c.post("/ingest/metrics", json={"points": _history()})
        c.post("/ingest/logs", json={"logs": [{"service": "payments", "ts": T0 + 6000, "level": "ERROR",
                                               "message": "tokenizer timeout"}]})
        wait_idle(c)
        before = _summary(c)
        changes_before = c.get("/changes").json()
        services_before = c.get("/services/metrics").json()
    assert before
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert _summary(c) == before
        assert c.get("/changes").json() == changes_before
        assert c.get("/services/metrics").json() == services_before
        # detector state survived: continuing the same shifted series opens no new incident
        more = [p for p in series("payments", "p95_latency_ms", n=N + 30, base=60, shift_at=SHIFT, factor=3,
                                  seed=1)[N:]]
        c.post("/ingest/metrics", json={"points": more})
        wait_idle(c)
        assert len(c.get("/incidents").json()) == len(before)


def test_replay_in_one_batch_equals_live_arrival(tmp_path: Path) -> None:
    pts = _history()
    with EmbeddedServer(data_dir=tmp_path / "replay") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        c.post("/ingest/metrics", json={"points": pts})
        wait_idle(c)
        replay = _summary(c)
    with EmbeddedServer(data_dir=tmp_path / "live") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        by_ts: dict[float, list[dict[str, Any]]] = {}
        for p in pts:
            by_ts.setdefault(p["ts"], []).append(p)
        tick: list[dict[str, Any]] = []
        for i, ts in enumerate(sorted(by_ts)):  # 10-s ticks, sent as they would arrive live
            tick.extend(by_ts[ts])
            if i % 6 == 5:
                c.post("/ingest/metrics", json={"points": tick}).raise_for_status()
                tick = []
        if tick:
            c.post("/ingest/metrics", json={"points": tick}).raise_for_status()
        wait_idle(c)
        live = _summary(c)
    assert replay and replay == live


def test_changes_sent_after_metrics_still_rank_a_resolved_incident(http: httpx.Client) -> None:
    """A recorded incident replayed metrics-first: the regression has recovered and the
    incident resolved before its changes arrive; they must still be ranked."""
    http.post("/ingest/topology", json={"edges": EDGES}).raise_for_status()
    pts: list[dict[str, Any]] = []
    for svc, base, seed in (("payments", 60.0, 1), ("checkout", 120.0, 2)):
        shifted = series(svc, "p95_latency_ms", n=N + 600, base=base, shift_at=SHIFT, factor=3, seed=seed)
        normal = series(svc, "p95_latency_ms", n=N + 600, base=base, seed=seed + 10)
        pts += [s if SHIFT <= i < SHIFT + 60 else m for i, (s, m) in enumerate(zip(shifted, normal, strict=True))]
    http.post("/ingest/metrics", json={"points": pts}).raise_for_status()
    wait_idle(http)
    incidents = http.get("/incidents").json()
    assert len(incidents) == 1 and incidents[0]["status"] == "RESOLVED"
    _changes(http)
    wait_idle(http)
    inc = http.get(f"/incidents/{incidents[0]['id']}").json()
    assert inc["top_suspect"] and inc["top_suspect"]["change_id"] == "dep-bad"


def test_topology_sent_after_metrics_gives_the_same_incident(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path / "late-topology") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        c.post("/ingest/metrics", json={"points": _history()}).raise_for_status()
        wait_idle(c)
        before = c.get("/incidents").json()
        assert len(before) == 3  # no topology yet: one incident per service
        _changes(c)  # topology and changes arrive last
        wait_idle(c)
        late = _summary(c)
        survivor = c.get("/incidents").json()[0]["id"]
        for inc in before:  # merged incidents keep answering, as the incident they joined
            assert c.get(f"/incidents/{inc['id']}").json()["id"] == survivor
            assert c.get(f"/incidents/{inc['id']}/suspects").json()[0]["change_id"] == "dep-bad"
        assert c.get("/incidents/inc-999").status_code == 404
    with EmbeddedServer(data_dir=tmp_path / "first") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        c.post("/ingest/metrics", json={"points": _history()}).raise_for_status()
        wait_idle(c)
        first = _summary(c)
    assert len(late) == 1 and late == first


def test_series_sent_one_after_another_give_the_same_incidents(tmp_path: Path) -> None:
    pts = _history()
    with EmbeddedServer(data_dir=tmp_path / "a") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        c.post("/ingest/metrics", json={"points": pts}).raise_for_status()
        wait_idle(c)
        together = _summary(c)
    with EmbeddedServer(data_dir=tmp_path / "b") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        keys = sorted({(p["service"], p["metric"]) for p in pts}, reverse=True)
        for key in keys:  # whole history of one series, then the next
            one = [p for p in pts if (p["service"], p["metric"]) == key]
            c.post("/ingest/metrics", json={"points": one}).raise_for_status()
        wait_idle(c)
        one_by_one = _summary(c)
    assert together and one_by_one == together


def test_shutdown_finishes_accepted_work(tmp_path: Path) -> None:
    """Points acknowledged with 202 are processed before the server exits."""
    data = tmp_path / "data"
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        _changes(c)
        c.post("/ingest/metrics", json={"points": _history()}).raise_for_status()
        # stop right away, without waiting for pending == 0
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        incidents = c.get("/incidents").json()
        assert len(incidents) == 1 and incidents[0]["top_suspect"]["change_id"] == "dep-bad"


def test_labels_follow_an_incident_merged_into_another(tmp_path: Path) -> None:
    """A label given before a late topology merges incidents stays visible (on the incident
    it joined) and keeps training the ranker."""
    with EmbeddedServer(data_dir=tmp_path / "labels-merge") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        c.post("/ingest/metrics", json={"points": _history()}).raise_for_status()
        c.post("/ingest/deployments", json=[{"id": "dep-bad", "service": "payments", "ts": T0 + SHIFT * 10 - 20,
                                             "version": "v2.14.0"}]).raise_for_status()
        wait_idle(c)
        before = sorted(c.get("/incidents").json(), key=lambda i: (i["started_at"], i["id"]))
        assert len(before) == 3
        merged_away = before[-1]["id"]  # not the earliest: it will be merged into another
        r = c.post(f"/incidents/{merged_away}/label", json={"change_id": "dep-bad", "verdict": "cause"})
        assert r.status_code == 200
        wait_idle(c)
        c.post("/ingest/topology", json={"edges": EDGES}).raise_for_status()
        wait_idle(c)
        incidents = c.get("/incidents").json()
        assert len(incidents) == 1
        survivor = incidents[0]["id"]
        assert survivor != merged_away
        labels = c.get(f"/incidents/{survivor}/labels").json()
        assert [lb["change_id"] for lb in labels] == ["dep-bad"]
        assert c.get(f"/incidents/{merged_away}/labels").json() == labels  # the old id answers too
        assert c.get("/model").json()["labels_used"] >= 1
