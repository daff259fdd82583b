"""Deterministic incidents, suspects, anomalies, changes and series written straight into
the real server's store (for snapshots and the 5,000-incident responsiveness test).

Going through the Store protocol (not HTTP ingest) keeps the screens independent of
detector and ranking tuning, so snapshots only change when the TUI changes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import pyarrow as pa

from server.embedded import EmbeddedServer
from server.model import Anomaly, Change, Incident, Suspect, SuspectRef
from server.store.base import Store

ONSET = 1796011220.0  # 2026-11-30T04:00:20Z
SERVICES = ("payments", "checkout", "frontend", "pricing", "search", "cart")


def store_of(srv: EmbeddedServer) -> Store:
    return srv.app.state.rca.store  # type: ignore[no-any-return]


def changes() -> list[Change]:
    return [
        Change(id="dep-481", kind="deployment", services=["payments"], ts=ONSET - 140, author="alice",
               description="Switch card tokenizer to async client",
               fields={"version": "v2.14.0", "previous_version": "v2.13.2", "commit": "9f2c1e7",
                       "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120, "removed": 35},
                                          {"path": "src/payments/client.py", "added": 14, "removed": 2}]}}),
        Change(id="cfg-77", kind="config_change", services=["payments"], ts=ONSET - 80, author="bob",
               description="tighten timeouts",
               fields={"key": "http.client.timeout_ms", "old_value": "2000", "new_value": "200"}),
        Change(id="flag-9", kind="flag_change", services=["pricing"], ts=ONSET - 50, author="carol",
               fields={"flag": "new_pricing_engine", "old_state": "off", "new_state": "on",
                       "rollout_percent": 25}),
        Change(id="dep-12", kind="deployment", services=["checkout"], ts=ONSET - 1500, author="dave",
               fields={"version": "v1.9.0", "previous_version": "v1.8.7", "commit": "77aa01b",
                       "diff": {"files": [{"path": "README.md", "added": 3, "removed": 1}]}}),
    ]


def suspects(incident_id: str, n: int = 4) -> list[Suspect]:
    base = [
        ("dep-481", "deployment", "payments", ONSET - 140, 0.91,
         {"time_proximity": 0.8, "change_point_alignment": 0.95, "blast_radius": 1.0, "error_logs": 0.7,
          "code_diff": 0.4, "history": 0.1},
         "payments deployed v2.14.0 2m20s before onset; latency on payments changed at the deploy; "
         "3 new ERROR patterns on payments mention tokenizer.py"),
        ("cfg-77", "config_change", "payments", ONSET - 80, 0.42,
         {"time_proximity": 0.9, "change_point_alignment": 0.3, "blast_radius": 1.0, "config_change": 0.6},
         "payments config http.client.timeout_ms changed 2000→200 1m20s before onset"),
        ("flag-9", "flag_change", "pricing", ONSET - 50, 0.18,
         {"time_proximity": 0.95, "blast_radius": 0.2, "rollout": 0.25},
         "flag new_pricing_engine on pricing (25% rollout) 50s before onset; pricing is not anomalous"),
        ("dep-12", "deployment", "checkout", ONSET - 1500, 0.05,
         {"time_proximity": 0.1, "blast_radius": 0.5, "code_diff": 0.05},
         "checkout deployed v1.9.0 25m before onset; README-only diff"),
    ]
    out = []
    for i in range(n):
        cid, kind, svc, ts, score, ev, expl = base[i % len(base)]
        if i >= len(base):
            cid, score = f"{cid}-x{i}", round(0.04 * (n - i) / n, 4)
        out.append(Suspect(id=f"sus-{incident_id}-{i + 1}", incident_id=incident_id, rank=i + 1, kind=kind,
                           change_id=cid, service=svc, ts=ts, score=score, evidence=ev, explanation=expl))
    return out


def incident(k: int, *, status: str = "OPEN", severity: float | None = None) -> Incident:
    svc = SERVICES[k % len(SERVICES)]
    other = SERVICES[(k + 1) % len(SERVICES)]
    start = ONSET - 900 * (k - 1)
    sev = severity if severity is not None else round(0.95 - ((k * 37) % 90) / 100, 2)
    return Incident(
        id=f"inc-{k}", status=status,  # type: ignore[arg-type]
        title=f"{svc}: p95_latency_ms up {1.5 + (k % 7) * 0.4:.1f}x", started_at=start, detected_at=start + 20,
        services=[svc, other], severity=sev, anomaly_count=2,
        resolved_at=start + 1200 if status == "RESOLVED" else None,
        top_suspect=SuspectRef(id=f"sus-inc-{k}-1", kind="deployment", change_id="dep-481", score=0.91),
    )


def series_table() -> pa.Table:
    svc, met, ts, val = [], [], [], []
    t = ONSET - 2700.0
    while t <= ONSET + 1200:
        shift = t >= ONSET
        svc += ["payments", "checkout"]
        met += ["p95_latency_ms", "error_rate"]
        ts += [t, t]
        val += [58 + 4 * math.sin(t / 97.0) + (123 if shift else 0),
                0.005 + 0.001 * math.cos(t / 61.0) + (0.03 if t >= ONSET + 30 else 0)]
        t += 10.0
    return pa.table({"service": svc, "metric": met, "ts": pa.array(ts, pa.float64()),
                     "value": pa.array(val, pa.float64()), "labels": pa.array([None] * len(ts), pa.string())})


def anomalies(incident_id: str) -> list[Anomaly]:
    return [
        Anomaly(id=f"an-{incident_id}-1", service="payments", metric="p95_latency_ms", started_at=ONSET,
                detected_at=ONSET + 20, direction="up", score=7.4, baseline=58.0, observed=181.0,
                incident_id=incident_id, join_reason="first anomaly of a new incident", channel="shift",
                reason="p95_latency_ms rose to 181 from a baseline of 58 (+212%, 7.4x its usual noise) "
                       "since 2026-11-30T04:00:20Z: a sustained level shift (CUSUM change point)."),
        Anomaly(id=f"an-{incident_id}-2", service="checkout", metric="error_rate", started_at=ONSET + 30,
                detected_at=ONSET + 60, direction="up", score=5.1, baseline=0.005, observed=0.035,
                incident_id=incident_id, join_reason="topology: checkout calls payments"),
    ]


def seed_small(store: Store) -> None:
    """Six incidents (two resolved); inc-1 carries anomalies, four suspects and series."""
    store.upsert_changes(changes=changes())
    store.insert_metrics(table=series_table())
    incs = [incident(k, status="RESOLVED" if k in (3, 5) else "OPEN") for k in range(1, 7)]
    store.save_incidents(incidents=incs)
    store.save_anomalies(anomalies=anomalies("inc-1"))
    store.replace_suspects(incident_id="inc-1", suspects=suspects("inc-1"))


def seed_many(store: Store, *, n_incidents: int = 5000, n_suspects: int = 200) -> None:
    """``n_incidents`` incidents; inc-1 has ``n_suspects`` suspects."""
    store.upsert_changes(changes=changes())
    store.insert_metrics(table=series_table())
    incs = [incident(k, status="RESOLVED" if k % 4 == 0 else "OPEN") for k in range(1, n_incidents + 1)]
    store.save_incidents(incidents=incs)
    store.save_anomalies(anomalies=anomalies("inc-1"))
    store.replace_suspects(incident_id="inc-1", suspects=suspects("inc-1", n_suspects))


async def wait_for(cond: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> None:
    """Let the app run until ``cond()`` holds (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


