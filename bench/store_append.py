"""What a group commit of points costs DuckDB, by the size of the group, with and
without row-group merges at checkpoints (``max_vacuum_tasks``).

The embedded store appends accepted batches to the points table in groups (see
``RCA_STORE__FLUSH_ROWS`` / ``__FLUSH_SECONDS``). DuckDB writes the full row groups
(122,880 rows) of a large append straight to the file; the rest ends in a partial row
group. At a checkpoint DuckDB may merge adjacent partial row groups into fewer, which
rewrites them. This bench appends the same points (10k-point batches of 1,000 series, as
``bench/ingest.py`` sends) in groups of several sizes into a fresh file, then checkpoints,
and prints CPU nanoseconds per point for the appends and the checkpoint, and the file's
bytes per point.

    taskset -c 1 python bench/store_append.py [--points 4000000] [--groups 100000,130000,262144,500000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.store.duckdb import _points_rows  # noqa: E402

N_SERIES = 1000
BATCH = 10_000


def batches(total: int) -> list[pa.Table]:
    rng = np.random.default_rng(0)
    out = []
    per = BATCH // N_SERIES
    for b in range(total // BATCH):
        sid = np.tile(np.arange(N_SERIES, dtype=np.int32), per)
        ts = np.repeat(1.764e9 + 10.0 * np.arange(b * per, (b + 1) * per), N_SERIES)
        value = rng.uniform(10, 500, N_SERIES)[sid] * (1 + 0.05 * rng.standard_normal(BATCH))
        out.append(_points_rows(b, sid, ts, value))
    return out


def run(data: list[pa.Table], group: int, vacuum: bool) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "points.duckdb")
        config: dict[str, str | bool | int | float | list[str]] = {"threads": 1}
        if not vacuum:
            config["max_vacuum_tasks"] = 0
        con = duckdb.connect(path, config=config)
        con.execute("CREATE TABLE points (sid INTEGER, ts DOUBLE, value DOUBLE, seq BIGINT)")
        waiting: list[pa.Table] = []
        rows = 0
        t0 = time.process_time()
        for batch in data + [None]:  # type: ignore[list-item]
            if batch is not None:
                waiting.append(batch)
                rows += batch.num_rows
            if waiting and (rows >= group or batch is None):
                rows_ = pa.concat_tables(waiting)  # noqa: F841 (read by DuckDB)
                con.execute("INSERT INTO points SELECT * FROM rows_")
                waiting, rows = [], 0
        t1 = time.process_time()
        con.execute("CHECKPOINT")
        t2 = time.process_time()
        con.close()
        n = sum(b.num_rows for b in data)
        return (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, os.path.getsize(path) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=4_000_000, help="points appended per run")
    ap.add_argument("--groups", default="100000,130000,262144,500000",
                    help="comma-separated group sizes (rows per append; 262144 is the default flush_rows)")
    args = ap.parse_args()
    data = batches(args.points)
    print(f"DuckDB {duckdb.__version__}: {args.points:,} points in 10k-point batches, appended in groups; "
          f"CPU ns per point, file bytes per point")
    for group in (int(g) for g in args.groups.split(",")):
        for vacuum in (True, False):
            ins, ckpt, size = run(data, group, vacuum)
            what = "merges (DuckDB default)" if vacuum else "no merges (max_vacuum_tasks=0)"
            print(f"  group {group:>9,}  {what:32s} append {ins:5.0f}  checkpoint {ckpt:5.0f}  "
                  f"total {ins + ckpt:5.0f} ns/pt  file {size:5.1f} B/pt", flush=True)


if __name__ == "__main__":
    main()
