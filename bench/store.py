"""Telemetry store throughput, side by side: DuckDB, PostgreSQL and ClickHouse (chDB).

Inserts ``--points`` points of ``--series`` series (3 metrics per service, 10-s ticks)
in Arrow batches of ``--batch`` points through ``insert_metrics`` (DuckDB: one file;
PostgreSQL: binary COPY into a fresh database; ClickHouse: Arrow inserts through
clickhouse-connect into chDB, the ClickHouse engine in process, on a scratch directory,
roll-ups and catalogue included), then times the reads the RCA and the UIs make: every
series of 3 services in [onset - 1 h, onset + 30 min] (``get_series_many``), the
before/after stats of the same window (``series_before_after``), one series' raw points
over 6 h (``get_series``) and one series bucketed to 1 min over the whole range
(``get_series`` with ``step``); then bytes on disk per point.

PostgreSQL comes from ``--dsn`` / ``RCA_STORE__POSTGRES_DSN``, else ``stack/lib/postgres.sh up``
starts one (and stops it afterwards). Scratch data goes under ``--tmp`` (default: the
system's temporary directory) and is removed afterwards.

    python bench/store.py [--points 3000000] [--series 1500] [--batch 100000] [--reads 100]
                          [--backends duckdb,postgres,clickhouse]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from server.store.base import Store  # noqa: E402

PG_SCRIPT = ROOT / "stack" / "lib" / "postgres.sh"
T0 = 1_764_460_800.0
STEP = 10.0
METRICS = ("p95_latency_ms", "error_rate", "qps")


def batches(points: int, n_series: int, batch: int) -> Iterator[pa.Table]:
    """Live-like batches: each holds the next ticks of every series."""
    rng = np.random.default_rng(0)
    services = np.array([f"svc-{i // 3:04d}" for i in range(n_series)])
    metrics = np.array([METRICS[i % 3] for i in range(n_series)])
    base = rng.uniform(10, 500, n_series)
    ticks_per_batch = max(1, batch // n_series)
    total_ticks = points // n_series
    for t in range(0, total_ticks, ticks_per_batch):
        k = min(ticks_per_batch, total_ticks - t)
        ts = T0 + STEP * (t + np.repeat(np.arange(k), n_series))
        idx = np.tile(np.arange(n_series), k)
        vals = base[idx] * (1 + 0.05 * rng.standard_normal(idx.size))
        yield pa.table({"service": pa.array(services[idx]), "metric": pa.array(metrics[idx]),
                        "ts": pa.array(ts), "value": pa.array(vals), "labels": pa.nulls(idx.size, pa.string())})


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def fmt(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20) if len(ms) >= 2 else ms * 19
    return f"median {statistics.median(ms):7.2f} ms  p95 {q[18]:7.2f} ms"


def run(name: str, store: Store, args: argparse.Namespace, settle: Callable[[], object] | None = None,
        settle_what: str = "") -> dict[str, float]:
    print(f"== {name}: inserting {args.points:,} points of {args.series} series in batches of {args.batch:,}",
          flush=True)
    inserted, spent, t_wall = 0, 0.0, time.perf_counter()
    every = max(1, (args.points // args.batch) // 20)  # about 20 progress lines
    for i, tbl in enumerate(batches(args.points, args.series, args.batch)):
        t = time.perf_counter()
        inserted += store.insert_metrics(table=tbl)
        spent += time.perf_counter() - t
        if i % every == every - 1:
            print(f"   {inserted:>12,} points ({100 * inserted / args.points:5.1f}%)  {inserted / spent:>12,.0f} "
                  f"points/s  {time.perf_counter() - t_wall:7.1f} s", flush=True)
    wall = time.perf_counter() - t_wall
    rate = inserted / spent
    print(f"   insert: {inserted:,} points in {spent:.1f} s of store time ({wall:.1f} s wall): "
          f"{rate:,.0f} points/s", flush=True)
    if settle is not None:  # what the engine does by itself soon after a bulk load
        t = time.perf_counter()
        settle()
        print(f"   {settle_what} in {time.perf_counter() - t:.1f} s (before the reads)", flush=True)
    rng = np.random.default_rng(1)
    n_services = args.series // 3
    t_end = T0 + STEP * (args.points // args.series)
    picks = [([f"svc-{s:04d}" for s in rng.choice(n_services, 3, replace=False)],
              float(rng.uniform(T0 + 3600, max(T0 + 3600, t_end - 1800)))) for _ in range(args.reads)]
    it = iter(picks)

    def window() -> None:
        svcs, onset = next(it)
        got = store.get_series_many(services=svcs, since=onset - 3600, until=onset + 1800)
        assert len(got) == 9, got.keys()

    it2 = iter(picks)

    def before_after() -> None:
        svcs, onset = next(it2)
        store.series_before_after(services=svcs, at=onset, before=3600, after=1800)

    it3 = iter(picks)

    def raw_series() -> None:
        svcs, onset = next(it3)
        ts, _ = store.get_series(service=svcs[0], metric="qps", since=onset - 5 * 3600, until=onset + 3600)
        assert ts.size > 0

    it4 = iter(picks)

    def bucketed() -> None:
        svcs, _ = next(it4)
        store.get_series(service=svcs[0], metric="p95_latency_ms", step=60.0)

    w, b = timed(window, args.reads), timed(before_after, args.reads)
    r, s = timed(raw_series, args.reads), timed(bucketed, args.reads)
    print(f"   RCA window (3 services x 3 metrics, 1.5 h):  {fmt(w)}")
    print(f"   before/after stats (same window):            {fmt(b)}")
    print(f"   one series, raw points over 6 h:             {fmt(r)}")
    print(f"   one series bucketed to 1 min, whole range:   {fmt(s)}", flush=True)
    return {"points": float(inserted), "insert_pps": rate, "window_ms": statistics.median(w),
            "before_after_ms": statistics.median(b), "raw_ms": statistics.median(r),
            "bucketed_ms": statistics.median(s)}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def disk(name: str, result: dict[str, float], raw: int, total: int, note: str) -> None:
    result["bytes_per_point_raw"] = raw / result["points"]
    result["bytes_per_point"] = total / result["points"]
    print(f"   on disk: {total / 1e6:,.1f} MB, {result['bytes_per_point']:.2f} bytes/point "
          f"(points alone {result['bytes_per_point_raw']:.2f}; {note})", flush=True)


@contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    """A fresh database on the given server (or on one the script starts)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    started = False
    if not dsn:
        print("== starting PostgreSQL with stack/lib/postgres.sh up", flush=True)
        running = subprocess.run(["bash", "-c", f"source {PG_SCRIPT} && _pg_pid"], capture_output=True)
        subprocess.run(["bash", str(PG_SCRIPT), "up"], check=True)
        started = running.returncode != 0
        dsn = subprocess.run(["bash", str(PG_SCRIPT), "dsn"], capture_output=True, text=True,
                             check=True).stdout.strip()
    name = f"rca_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    parts = conninfo_to_dict(dsn)
    parts["dbname"] = name
    try:
        yield make_conninfo("", **parts)
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if started:
            subprocess.run(["bash", str(PG_SCRIPT), "down"], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=3_000_000, help="points to insert per backend")
    ap.add_argument("--series", type=int, default=1500, help="series (3 metrics per service)")
    ap.add_argument("--batch", type=int, default=100_000, help="points per insert_metrics call")
    ap.add_argument("--reads", type=int, default=100, help="RCA-window reads to time")
    ap.add_argument("--backends", default="duckdb,postgres,clickhouse",
                    help="comma-separated, run in this order: duckdb, postgres, clickhouse")
    ap.add_argument("--dsn", default=os.environ.get("RCA_STORE__POSTGRES_DSN"),
                    help="PostgreSQL server to create a scratch database on (default: start one)")
    ap.add_argument("--tmp", type=Path, default=None, help="where the DuckDB file and the chDB directory go")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("duckdb", "postgres", "clickhouse"):
            ap.error(f"unknown backend {b!r}: choose from duckdb, postgres, clickhouse")
    if args.points < args.series * 2 or args.series < 9:
        ap.error("--points must be at least twice --series, and --series at least 9 (3 services)")
    print(f"== {len(backends)} backends, {args.points:,} points each; load {os.getloadavg()[0]:.2f} "
          f"(1 min), {os.cpu_count()} CPUs", flush=True)
    results: dict[str, dict[str, float]] = {}
    for backend in backends:
        if backend == "duckdb":
            from server.store.duckdb import DuckDBStore

            with tempfile.TemporaryDirectory(dir=args.tmp) as d:
                path = Path(d) / "bench.duckdb"
                duck = DuckDBStore(path)
                results[backend] = res = run("duckdb", duck, args, partial(duck._q, "CHECKPOINT"),
                                             "checkpoint (WAL into the file)")
                duck.close()
                size = dir_bytes(Path(d))
                disk("duckdb", res, size, size, "one file, catalogue in memory")
        elif backend == "postgres":
            from server.store.postgres import PostgresStore

            with postgres(args.dsn) as dsn:
                pg = PostgresStore(dsn)
                results[backend] = res = run("postgres", pg, args, partial(pg._q, "ANALYZE metrics"),
                                             "ANALYZE (as autovacuum does)")
                raw = int(pg._q("SELECT pg_total_relation_size('metrics')")[0][0])
                total = raw + int(pg._q("SELECT pg_total_relation_size('series')")[0][0])
                pg.close()
                disk("postgres", res, raw, total, "table and its (series_id, ts) index")
        else:
            from server.store.clickhouse import ClickHouseStore

            with tempfile.TemporaryDirectory(dir=args.tmp) as d:
                ch = ClickHouseStore(path=Path(d) / "chdb")
                results[backend] = res = run("clickhouse (chDB)", ch, args, ch.optimize,
                                             "OPTIMIZE ... FINAL (merges parts, as background merges do)")
                usage = ch.disk_usage()
                raw = usage.get("metrics", (0, 0))[0]
                total = sum(v[0] for k, v in usage.items() if k != "meta")
                print("   " + ", ".join(f"{k} {v[0] / 1e6:,.1f} MB / {v[1]:,} rows" for k, v in usage.items()))
                ch.close()
                disk("clickhouse", res, raw, total, "with the 1-min and 1-h roll-ups and the catalogue")
    print(f"\nload {os.getloadavg()[0]:.2f} (1 min) at the end")
    print("\n| backend | points | insert points/s | RCA window ms | before/after ms | raw 6 h ms | "
          "bucketed ms | bytes/point (points only) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in results.items():
        print(f"| {k} | {r['points']:,.0f} | {r['insert_pps']:,.0f} | {r['window_ms']:.2f} | "
              f"{r['before_after_ms']:.2f} | {r['raw_ms']:.2f} | {r['bucketed_ms']:.2f} | "
              f"{r['bytes_per_point']:.2f} ({r['bytes_per_point_raw']:.2f}) |")


if __name__ == "__main__":
    main()
