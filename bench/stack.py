"""Stack throughput: end-to-end points/s (from the first post until ``pending`` is 0)
and each stage's lag, with one and with two detector workers, every stage its own OS
process on the real Kafka broker and PostgreSQL of ``stack/local.sh`` (started if needed).

    .venv/bin/python bench/stack.py [--batches 30] [--series 1000] [--batch-size 10000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.stack.harness import Stack  # noqa: E402

T0 = 1_764_460_800.0


def stack_env() -> dict[str, str]:
    subprocess.run([str(ROOT / "stack" / "local.sh"), "up"], check=True)
    out = subprocess.run([str(ROOT / "stack" / "local.sh"), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fresh_database(dsn: str) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"rca_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    parts = conninfo_to_dict(dsn)
    parts["dbname"] = name
    return make_conninfo("", **parts)


def drop_database(dsn: str, url: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_bodies(batches: int, n_series: int, batch_size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    per_series = max(1, batch_size // n_series)
    services = [f"svc-{i // 3:04d}" for i in range(n_series)]
    metrics = [("p95_latency_ms", "error_rate", "qps")[i % 3] for i in range(n_series)]
    base = rng.uniform(10, 500, n_series)
    bodies = []
    for b in range(batches):
        pts = []
        for k in range(per_series):
            ts = T0 + 10.0 * (b * per_series + k)
            vals = base * (1 + 0.05 * rng.standard_normal(n_series))
            pts.extend({"service": services[i], "metric": metrics[i], "ts": ts, "value": float(vals[i])}
                       for i in range(n_series))
        bodies.append(orjson.dumps({"points": pts}))
    return bodies


def run(detectors: int, bodies: list[bytes], points: int, env: dict[str, str], partitions: int) -> dict[str, Any]:
    dsn = fresh_database(env["RCA_STORE__POSTGRES_DSN"])
    try:
        with tempfile.TemporaryDirectory(prefix="rca-stack-bench-") as d, \
                Stack(bootstrap=env["RCA_BUS__BOOTSTRAP_SERVERS"], dsn=dsn, data_dir=Path(d),
                      partitions=partitions) as s:
            s.env["RCA_PIPELINE__CHECKPOINT_SECONDS"] = "30"
            s.start_api()
            for i in range(detectors):
                s.start_worker("detector", f"d{i + 1}")
            s.start_worker("grouping")
            s.start_worker("rca")
            s.wait_workers("detector", detectors, owning=partitions)
            s.wait_workers("rca", 1)
            with httpx.Client(base_url=s.url, timeout=300) as c:
                c.post("/ingest/metrics", content=bodies[0], headers={"content-type": "application/json"})
                while c.get("/health").json()["pending"]:
                    time.sleep(0.05)
                max_lag: dict[str, int] = {}
                done = threading.Event()

                def sample() -> None:
                    with httpx.Client(base_url=s.url, timeout=30) as h:
                        while not done.is_set():
                            for stage, st in h.get("/health").json()["stages"].items():
                                max_lag[stage] = max(max_lag.get(stage, 0), int(st["lag"]))
                            time.sleep(0.25)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                t0 = time.perf_counter()
                for body in bodies[1:]:
                    c.post("/ingest/metrics", content=body,
                           headers={"content-type": "application/json"}).raise_for_status()
                t_http = time.perf_counter() - t0
                while c.get("/health").json()["pending"]:
                    time.sleep(0.05)
                t_all = time.perf_counter() - t0
                done.set()
                sampler.join()
        return {"detectors": detectors, "accept": points / t_http, "sustained": points / t_all, "lag": max_lag}
    finally:
        drop_database(env["RCA_STORE__POSTGRES_DSN"], dsn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    env = stack_env()
    print(f"encoding {args.batches} batches of {args.batch_size:,} points ({args.series} series)...", flush=True)
    bodies = make_bodies(args.batches, args.series, args.batch_size)
    points = args.batch_size * (len(bodies) - 1)
    print(f"{points:,} timed points over HTTP into `rca serve --role api`; metrics topic with "
          f"{args.partitions} partitions; every stage its own process", flush=True)
    print(f"{'detectors':>9}  {'HTTP accept pts/s':>17}  {'end-to-end pts/s':>16}  max lag (messages) per stage")
    for n in (1, 2):
        r = run(n, bodies, points, env, args.partitions)
        lag = ", ".join(f"{k} {v}" for k, v in r["lag"].items())
        print(f"{r['detectors']:>9}  {r['accept']:>17,.0f}  {r['sustained']:>16,.0f}  {lag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
