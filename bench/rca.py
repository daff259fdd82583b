"""RCA latency per incident with 20, 200 and 2,000 candidate changes and 1M log lines.

Prints figures (no pass/fail). Two measurements:

* ``engine``: the pure engine (``server.rca.engine.analyse``) on in-memory inputs:
  Drain template mining over the log window, evidence for every candidate, ranking.
* ``store+engine``: ``RcaService.analyse_incident`` on a DuckDB store holding the same
  data (store reads of changes, series and the 1M-line log window, analysis, writing
  suspects and the incident).

    .venv/bin/python bench/rca.py [--logs 1000000] [--candidates 20,200,2000] [--no-store]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.model import Anomaly, Change, Edge, Incident, LogWindow  # noqa: E402
from server.rca.engine import RcaContext, analyse  # noqa: E402

T0 = 1_800_000_000.0
ONSET = T0 + 2 * 3600.0
SERVICES = ["frontend", "checkout", "payments", "pricing", "search", "catalog", "inventory", "auth", "shipping",
            "db-proxy"]
EDGES = [Edge("frontend", "checkout"), Edge("frontend", "search"), Edge("checkout", "payments"),
         Edge("checkout", "pricing"), Edge("checkout", "inventory"), Edge("search", "catalog"),
         Edge("frontend", "auth"), Edge("checkout", "shipping"), Edge("payments", "db-proxy"),
         Edge("inventory", "db-proxy")]
TEMPLATES = [
    ("WARN", "slow request took {n} ms (request_id={h})"),
    ("WARN", "client disconnected before response was sent (request_id={h})"),
    ("ERROR", "invalid request payload: missing field 'customer_id' (request_id={h})"),
    ("WARN", "cache miss rate high for prefix item{n}: {n}%"),
    ("ERROR", "request {h} failed: 500 Internal Server Error"),
    ("WARN", "GC pause of {n} ms"),
    ("WARN", "retrying request to payments (attempt {n})"),
    ("ERROR", "upstream timeout calling payments after {n} ms"),
]


def make_logs(n: int, rng: np.random.Generator) -> LogWindow:
    ts = np.sort(rng.uniform(ONSET - 3600.0, ONSET + 1800.0, n))
    svc_idx = rng.integers(0, len(SERVICES), n)
    tpl_idx = rng.integers(0, len(TEMPLATES), n)
    nums = rng.integers(0, 100_000, n)
    hexes = rng.integers(0, 2**32, n)
    # a new error on payments after the onset
    new = (ts > ONSET) & (rng.random(n) < 0.02)
    messages = []
    levels = []
    services = []
    for i in range(n):
        if new[i]:
            messages.append(f"Unhandled exception in tokenizer.py line {nums[i] % 500}: TypeError")
            levels.append("ERROR")
            services.append("payments")
            continue
        lvl, t = TEMPLATES[tpl_idx[i]]
        messages.append(t.format(n=nums[i], h=f"{hexes[i]:08x}"))
        levels.append(lvl)
        services.append(SERVICES[svc_idx[i]])
    return LogWindow(service=services, ts=ts.tolist(), level=levels, message=messages)


def as_arrow(logs: LogWindow) -> LogWindow:
    """The same window with Arrow columns (what a store can hand over without copying)."""
    return LogWindow(service=pa.array(logs.service, pa.string()), ts=pa.array(logs.ts, pa.float64()),  # type: ignore[arg-type]
                     level=pa.array(logs.level, pa.string()), message=pa.array(logs.message, pa.string()))


def make_series(rng: np.random.Generator) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    ts = np.arange(ONSET - 3600.0, ONSET + 1800.0, 10.0)
    out = {}
    for s in SERVICES:
        for m, base in (("p95_latency_ms", 80.0), ("error_rate", 0.01), ("qps", 300.0)):
            v = base * (1 + 0.05 * rng.standard_normal(len(ts)))
            if s in ("payments", "checkout", "frontend") and m == "p95_latency_ms":
                v[ts >= ONSET] *= 2.5
            out[(s, m)] = (ts, v)
    return out


def make_changes(n: int, rng: np.random.Generator) -> list[Change]:
    out = [Change("dep-culprit", "deployment", ["payments"], ONSET - 45.0, author="alice",
                  fields={"version": "v2.14.0", "previous_version": "v2.13.2",
                          "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120, "removed": 35}]}})]
    for i in range(n - 1):
        svc = SERVICES[int(rng.integers(0, len(SERVICES)))]
        t = float(ONSET - rng.uniform(0, 7000.0))
        k = i % 3
        if k == 0:
            out.append(Change(f"dep-{i}", "deployment", [svc], t, author="bob",
                              fields={"version": f"v1.{i}.0", "previous_version": f"v1.{i - 1}.0",
                                      "diff": {"files": [{"path": f"src/{svc}/mod{i % 7}.py", "added": 10,
                                                          "removed": 3}]}}))
        elif k == 1:
            out.append(Change(f"cfg-{i}", "config_change", [svc], t,
                              fields={"key": "cache.ttl_s", "old_value": "60", "new_value": "30"}))
        else:
            out.append(Change(f"flag-{i}", "flag_change", [svc], t,
                              fields={"flag": f"flag_{i}", "old_state": "off", "new_state": "on",
                                      "rollout_percent": 25}))
    return out


def make_anomalies() -> list[Anomaly]:
    return [Anomaly(id=f"an-{i}", service=s, metric="p95_latency_ms", started_at=ONSET + 10 * i,
                    detected_at=ONSET + 60, direction="up", score=6.0, baseline=80.0, observed=200.0,
                    incident_id="inc-1") for i, s in enumerate(["payments", "checkout", "frontend"])]


def bench_engine(n_cands: int, logs: LogWindow, series: dict, rng: np.random.Generator, repeat: int,  # type: ignore[type-arg]
                 label: str) -> None:
    changes = make_changes(n_cands, rng)
    anomalies = make_anomalies()
    inc = Incident(id="inc-1", status="OPEN", title="t", started_at=ONSET, detected_at=ONSET + 60,
                   services=["payments", "checkout", "frontend"], severity=0.8, anomaly_count=3)
    times: list[float] = []
    res = None
    for _ in range(repeat):
        ctx = RcaContext(incident=inc, anomalies=anomalies, changes=changes, edges=EDGES, series=series, logs=logs,
                         watermark=ONSET + 1800.0)
        t0 = time.perf_counter()
        res = analyse(ctx)
        times.append(time.perf_counter() - t0)
    assert res is not None
    top = res.suspects[0].change.id if res.suspects else None
    tm = res.timings
    print(f"engine ({label:6s}) candidates={n_cands:5d} log_lines={len(logs):8d}  median {statistics.median(times):.3f}s "
          f"(logs {tm.get('logs', 0):.3f}s, evidence {tm.get('features', 0):.3f}s, rank {tm.get('rank', 0):.3f}s)"
          f"  suspects={len(res.suspects)} top={top}", flush=True)


def bench_store(n_cands: int, logs: LogWindow, series: dict, rng: np.random.Generator, repeat: int) -> None:  # type: ignore[type-arg]
    from server.rca.service import RcaService
    from server.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as d:
        store = DuckDBStore(Path(d) / "rca.duckdb")
        try:
            svc_col, ts_col, met_col, val_col = [], [], [], []
            for (s, m), (ts, v) in series.items():
                svc_col += [s] * len(ts)
                met_col += [m] * len(ts)
                ts_col.append(ts)
                val_col.append(v)
            store.insert_metrics(table=pa.table({
                "service": pa.array(svc_col, pa.string()), "metric": pa.array(met_col, pa.string()),
                "ts": pa.array(np.concatenate(ts_col)), "value": pa.array(np.concatenate(val_col)),
                "labels": pa.nulls(len(svc_col), pa.string())}))
            store.insert_logs(table=pa.table({
                "service": pa.array(logs.service, pa.string()), "ts": pa.array(logs.ts, pa.float64()),
                "level": pa.array(logs.level, pa.string()), "message": pa.array(logs.message, pa.string()),
                "attributes": pa.nulls(len(logs), pa.string())}))
            store.upsert_changes(changes=make_changes(n_cands, rng))
            store.add_edges(edges=EDGES)
            store.save_anomalies(anomalies=make_anomalies())
            store.save_incidents(incidents=[Incident(
                id="inc-1", status="OPEN", title="t", started_at=ONSET, detected_at=ONSET + 60,
                services=["payments", "checkout", "frontend"], severity=0.8, anomaly_count=3)])
            service = RcaService(store)
            times, reads = [], []
            for _ in range(repeat):
                inc = store.get_incident(incident_id="inc-1")
                assert inc is not None
                t0 = time.perf_counter()
                service.build_context(inc, watermark=ONSET + 1800.0)
                reads.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                service.analyse_incident("inc-1", watermark=ONSET + 1800.0)
                times.append(time.perf_counter() - t0)
            top = store.get_incident(incident_id="inc-1")
            print(f"store+engine  candidates={n_cands:5d} log_lines={len(logs):8d}  median "
                  f"{statistics.median(times):.3f}s (store reads alone {statistics.median(reads):.3f}s)  "
                  f"top={top.top_suspect.change_id if top and top.top_suspect else None}", flush=True)
        finally:
            store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logs", type=int, default=1_000_000)
    p.add_argument("--candidates", default="20,200,2000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-store", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    logs = make_logs(args.logs, rng)
    series = make_series(rng)
    print(f"generated {len(logs)} log lines (WARN/ERROR) and {len(series)} series in {time.perf_counter() - t0:.1f}s",
          flush=True)
    arrow_logs = as_arrow(logs)
    for n in [int(x) for x in args.candidates.split(",")]:
        bench_engine(n, arrow_logs, series, rng, args.repeat, "arrow")
    for n in [int(x) for x in args.candidates.split(",")]:
        bench_engine(n, logs, series, rng, args.repeat, "lists")
    if not args.no_store:
        for n in [int(x) for x in args.candidates.split(",")]:
            bench_store(n, logs, series, rng, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
