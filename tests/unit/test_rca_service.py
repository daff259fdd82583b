"""RcaService on a real DuckDB store: suspects persisted, incident updated, labels retrain
the model (versioned and stored), held-out accuracy reported, model reloaded on restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from server.model import Anomaly, Change, Edge, Incident, Label
from server.rca.service import RcaService, candidate_window
from server.store.duckdb import DuckDBStore

T0 = 1_800_000_000.0
EDGES = [Edge("frontend", "checkout"), Edge("checkout", "pricing"), Edge("frontend", "search")]
SERVICES = ["frontend", "checkout", "pricing", "search"]


def add_incident(store: DuckDBStore, k: int, rng: np.random.Generator) -> tuple[str, str, str]:
    """Incident k (6 h apart): a flag on pricing is the cause 5 min before onset; a benign
    deployment of pricing lands 40 s before onset (the prior prefers it)."""
    start = T0 + k * 6 * 3600.0
    onset = start + 3600.0
    ts = start + 10.0 * np.arange(540)
    svc, met, t_col, v_col = [], [], [], []
    for s in SERVICES:
        v = 100.0 * (1 + 0.03 * rng.standard_normal(len(ts)))
        if s != "search":
            v[ts >= onset] *= 2.0
        svc += [s] * len(ts)
        met += ["p95_latency_ms"] * len(ts)
        t_col.append(ts)
        v_col.append(v)
    store.insert_metrics(table=pa.table({
        "service": pa.array(svc, pa.string()), "metric": pa.array(met, pa.string()),
        "ts": pa.array(np.concatenate(t_col)), "value": pa.array(np.concatenate(v_col)),
        "labels": pa.nulls(len(svc), pa.string())}))
    logs_ts = [onset + 5.0 * i for i in range(30)]
    store.insert_logs(table=pa.table({
        "service": pa.array(["pricing"] * 30, pa.string()), "ts": pa.array(logs_ts, pa.float64()),
        "level": pa.array(["ERROR"] * 30, pa.string()),
        "message": pa.array([f"quote {i} failed: TypeError in engine" for i in range(30)], pa.string()),
        "attributes": pa.nulls(30, pa.string())}))
    flag = Change(f"flag-{k}", "flag_change", ["pricing"], onset - 300.0, author="carol",
                  fields={"flag": f"pricing_v{k}", "services": ["pricing"], "old_state": "off", "new_state": "on",
                          "rollout_percent": 50})
    dep = Change(f"dep-{k}", "deployment", ["pricing"], onset - 40.0, author="alice",
                 fields={"version": f"v1.{k}.1", "previous_version": f"v1.{k}.0",
                         "diff": {"files": [{"path": "src/pricing/quotes.py", "added": 40, "removed": 10}]}})
    other = Change(f"cfg-{k}", "config_change", ["search"], onset - 100.0,
                   fields={"key": "cache.ttl_s", "old_value": "60", "new_value": "30"})
    store.upsert_changes(changes=[flag, dep, other])
    inc_id = f"inc-{k}"
    anomalies = [Anomaly(id=f"an-{k}-{s}", service=s, metric="p95_latency_ms", started_at=onset + 10.0 * i,
                         detected_at=onset + 60.0, direction="up", score=6.0, baseline=100.0, observed=200.0,
                         incident_id=inc_id) for i, s in enumerate(["pricing", "checkout", "frontend"])]
    store.save_anomalies(anomalies=anomalies)
    store.save_incidents(incidents=[Incident(id=inc_id, status="OPEN", title="latency up", started_at=onset,
                                             detected_at=onset + 60.0, services=["pricing", "checkout", "frontend"],
                                             severity=0.8, anomaly_count=3)])
    return inc_id, flag.id, dep.id


@pytest.fixture()
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "rca.duckdb")
    s.add_edges(edges=EDGES)
    yield s  # type: ignore[misc]
    s.close()


def test_analyse_incident_persists_ranked_suspects_and_updates_the_incident(store: DuckDBStore) -> None:
    inc_id, flag_id, dep_id = add_incident(store, 0, np.random.default_rng(0))
    svc = RcaService(store)
    svc.analyse_incident(inc_id, watermark=T0 + 3600 + 1800)
    suspects = store.list_suspects(incident_id=inc_id)
    assert [s.rank for s in suspects] == list(range(1, len(suspects) + 1))
    assert {s.change_id for s in suspects} >= {flag_id, dep_id}
    assert all(0.0 <= s.score <= 1.0 and s.explanation and s.evidence for s in suspects)
    assert all(0.0 <= v <= 1.0 for s in suspects for v in s.evidence.values())
    inc = store.get_incident(incident_id=inc_id)
    assert inc is not None and inc.rca_version == 1
    if inc.no_convincing_change:
        assert inc.top_suspect is None
    else:
        assert inc.top_suspect is not None and inc.top_suspect.id == suspects[0].id
    assert svc.model_info()["version"] == 0 and svc.model_info()["heldout"] is None


def test_labels_retrain_a_stored_model_that_learns_the_organisation(store: DuckDBStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    svc = RcaService(store)
    incs = [add_incident(store, k, rng) for k in range(7)]
    wm = T0 + 8 * 6 * 3600.0
    for inc_id, _, _ in incs:
        svc.analyse_incident(inc_id, watermark=wm)
    fresh_id, fresh_flag, _ = incs[-1]
    before = [s.change_id for s in store.list_suspects(incident_id=fresh_id)]
    assert svc.retrain_if_needed() is False  # no labels yet
    for k, (inc_id, flag_id, _) in enumerate(incs[:-1]):
        label = Label(id=f"lab-{k}", incident_id=inc_id, change_id=flag_id, verdict="cause", created_at=T0 + k)
        store.add_label(label=label)
        svc.on_label(label)
    assert svc.retrain_if_needed() is True
    assert svc.retrain_if_needed() is False  # nothing new
    info = svc.model_info()
    assert info["version"] == 1 and info["labels_used"] == 6 and info["labelled_incidents"] == 6
    assert 0.0 < info["blend_weight"] < 1.0
    assert info["heldout"] is not None and info["heldout"]["incidents"] == 6
    svc.analyse_incident(fresh_id, watermark=wm)
    after = [s.change_id for s in store.list_suspects(incident_id=fresh_id)]
    assert after[0] == fresh_flag
    assert before.index(fresh_flag) >= after.index(fresh_flag)
    history = store.list_suspects(incident_id=fresh_id)[0].evidence.get("history", 0.0)
    assert history > 0.3
    # a restart loads the stored model
    again = RcaService(store)
    assert again.model_info()["version"] == 1


def test_candidate_window_brackets_the_onset() -> None:
    since, until = candidate_window(T0)
    assert since < T0 < until


def test_an_alert_opened_incident_without_a_call_graph_names_the_root_service(tmp_path: Path) -> None:
    """Real recordings often post no topology: the incident (opened by an alert on the
    front door) names only frontend, yet every active service is a root candidate."""
    store = DuckDBStore(tmp_path / "rca.duckdb")  # no edges at all
    try:
        rng = np.random.default_rng(3)
        start, onset = T0, T0 + 1800.0
        ts = start + 10.0 * np.arange(300)
        after = ts >= onset
        svc, met, t_col, v_col = [], [], [], []

        def add(service: str, metric: str, values: np.ndarray) -> None:
            svc.extend([service] * len(ts))
            met.extend([metric] * len(ts))
            t_col.append(ts)
            v_col.append(values)

        base = {"frontend": 200.0, "checkout": 120.0, "payments": 80.0, "search": 90.0}
        for s, b in base.items():
            lat = b * (1 + 0.05 * rng.standard_normal(len(ts)))
            if s == "payments":
                lat[after] *= 2.0  # a CPU hog: its own latency doubles ...
            elif s in ("checkout", "frontend"):
                lat = lat + np.where(after, 0.6 * base["payments"], 0.0)  # ... its callers wait on it
            cpu = 0.4 * (1 + 0.05 * rng.standard_normal(len(ts)))
            if s == "payments":
                cpu[after] += 1.5
            add(s, f"{s}_latency-90", lat / 1000.0)  # as recordings name them, in seconds
            add(s, f"{s}_cpu", cpu * 1000.0)
        store.insert_metrics(table=pa.table({
            "service": pa.array(svc, pa.string()), "metric": pa.array(met, pa.string()),
            "ts": pa.array(np.concatenate(t_col)), "value": pa.array(np.concatenate(v_col)),
            "labels": pa.nulls(len(svc), pa.string())}))
        store.save_incidents(incidents=[Incident(id="inc-a", status="OPEN", title="HighLatency", started_at=onset,
                                                 detected_at=onset, services=["frontend"], severity=0.5,
                                                 anomaly_count=0)])
        RcaService(store).analyse_incident("inc-a", watermark=start + 3000.0)
        services = [s for s in store.list_suspects(incident_id="inc-a") if s.kind == "service"]
        assert services[0].service == "payments" and services[0].change_id is None
        assert {s.service for s in services} >= set(base)
        inc = store.get_incident(incident_id="inc-a")
        assert inc is not None and inc.top_suspect is not None
        assert inc.top_suspect.kind == "service" and inc.top_suspect.service == "payments"
        assert inc.top_suspect.id == services[0].id
    finally:
        store.close()
