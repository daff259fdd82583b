"""Large export in bounded memory: seed >= 10M metric points (plus logs) straight into
a DuckDB store through the Store protocol (Arrow ingest, no HTTP), start `rca serve` on
it as its own process, run `rca export` against it as another process, and print the
export time, throughput and the peak RSS of both processes (psutil, sampled every 20 ms),
beside the size of what was exported.

    python bench/export.py [--points 10000000] [--series 1000] [--logs 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.embedded import free_port  # noqa: E402
from server.store.duckdb import DuckDBStore  # noqa: E402

T0 = 1_793_577_600.0
CHUNK = 1_000_000


def seed(path: Path, points: int, n_series: int, logs: int) -> float:
    t = time.perf_counter()
    store = DuckDBStore(path)
    rng = np.random.default_rng(0)
    services = np.array([f"svc-{i // 4:04d}" for i in range(n_series)], dtype=object)
    metrics = np.array([("p95_latency_ms", "error_rate", "qps", "cpu")[i % 4] for i in range(n_series)], dtype=object)
    per_series = points // n_series
    done = 0
    step = 10.0
    while done < per_series * n_series:
        k0 = done // n_series
        k = min(CHUNK // n_series, per_series - k0)
        sid = np.tile(np.arange(n_series), k)
        ts = T0 + step * np.repeat(np.arange(k0, k0 + k), n_series)
        store.insert_metrics(table=pa.table({
            "service": pa.array(services[sid], pa.string()), "metric": pa.array(metrics[sid], pa.string()),
            "ts": pa.array(ts, pa.float64()), "value": pa.array(rng.gamma(4.0, 25.0, len(sid)), pa.float64()),
            "labels": pa.nulls(len(sid), pa.string())}))
        done += len(sid)
    msgs = np.array([f"request {i} failed: upstream timeout after {i % 900} ms" for i in range(1000)], dtype=object)
    lv = np.array(["INFO", "WARN", "ERROR"], dtype=object)
    for lo in range(0, logs, CHUNK):
        n = min(CHUNK, logs - lo)
        idx = np.arange(lo, lo + n)
        store.insert_logs(table=pa.table({
            "service": pa.array(services[idx % n_series], pa.string()),
            "ts": pa.array(T0 + idx * (step * per_series / max(logs, 1)), pa.float64()),
            "level": pa.array(lv[idx % 3], pa.string()), "message": pa.array(msgs[idx % 1000], pa.string()),
            "attributes": pa.nulls(n, pa.string())}))
    store.close()
    return time.perf_counter() - t


class Peak:
    """Peak RSS of a process tree, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def rss(self) -> int:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._th.join()
        return self.peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--memory-limit", default="512MB", help="the server's DuckDB memory limit (RCA_STORE__MEMORY_LIMIT)")
    ap.add_argument("--keep", action="store_true", help="keep the data and export directories")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rca-bench-export-"))
    data, out = work / "data", work / "out"
    data.mkdir()
    secs = seed(data / "rca.duckdb", args.points, args.series, args.logs)
    n_points = (args.points // args.series) * args.series
    print(f"seeded {n_points:,} points and {args.logs:,} log lines through the store in {secs:.1f} s "
          f"({(data / 'rca.duckdb').stat().st_size / 1e6:.0f} MB DuckDB file)", flush=True)
    port = free_port()
    env = {**os.environ, "RCA_STORE__MEMORY_LIMIT": args.memory_limit} if args.memory_limit else dict(os.environ)
    rca = [sys.executable, "-m", "server.cli"]
    srv = subprocess.Popen([*rca, "serve", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
                           env=env, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or srv.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        srv_peak = Peak(srv.pid)
        idle_rss = srv_peak.rss()
        t = time.perf_counter()
        cli = subprocess.Popen([*rca, "export", "--url", url, "--out", str(out), "--quiet"],
                               stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
        cli_peak = Peak(cli.pid)
        rc = cli.wait()
        seconds = time.perf_counter() - t
        cli_max, srv_max = cli_peak.stop(), srv_peak.stop()
        if rc != 0:
            raise SystemExit(f"rca export failed with exit code {rc}")
    finally:
        srv.terminate()
        srv.wait(30)
    size = sum(f.stat().st_size for f in out.iterdir())
    import json

    counts = json.loads((out / "manifest.json").read_text())["counts"]
    rows = counts["metrics"] + counts["logs"]
    print(f"export of {counts['metrics']:,} points + {counts['logs']:,} log lines: {seconds:.1f} s, "
          f"{rows / seconds:,.0f} rows/s, {size / 1e6:.0f} MB of Parquet ({size / seconds / 1e6:.1f} MB/s)")
    print(f"peak RSS: server {srv_max / 1e6:.0f} MB (idle before the export {idle_rss / 1e6:.0f} MB, "
          f"DuckDB memory limit {args.memory_limit}); rca export CLI {cli_max / 1e6:.0f} MB")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
