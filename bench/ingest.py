"""Sustained ingest throughput per format, end to end: batches over HTTP into the store,
with detection running, until the pipeline has processed everything (pending == 0).

Formats: JSON and NDJSON (``/ingest/metrics``), Arrow IPC stream (``/ingest/metrics``,
``application/vnd.apache.arrow.stream``), Prometheus remote-write 1.0 (``/api/v1/write``,
one sample per time series entry, as Prometheus sends them) and OTLP/HTTP protobuf
(``/v1/metrics``, gauges). Every format carries the same points (service, metric, one
``instance`` label per series).

For each format a fresh ``rca serve`` process is started and pinned to one core
(taskset, when available); this client is pinned to the other core and sends
pre-encoded bodies. Besides wall-clock rates, the server's own CPU time is read from
/proc, so "points per CPU-second" is the one-core figure even on a busy machine.

    python bench/ingest.py [--formats json,ndjson,arrow,remote-write,otlp] [--batches 40]
                           [--series 1000] [--batch-size 10000] [--iso] [--no-labels]
                           [--repeat N] [--rca OTHER_CHECKOUT/.venv/bin/rca]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cramjam
import httpx
import numpy as np
import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.embedded import free_port  # noqa: E402
from server.ingest import arrow_ipc  # noqa: E402
from server.ingest.prompb import WriteRequest  # noqa: E402

T0 = 1_764_460_800.0
FORMATS = ("json", "ndjson", "arrow", "remote-write", "otlp")
HEADERS = {
    "json": {"content-type": "application/json"},
    "ndjson": {"content-type": "application/x-ndjson"},
    "arrow": {"content-type": arrow_ipc.MEDIA_TYPE},
    "remote-write": {"content-type": "application/x-protobuf", "content-encoding": "snappy",
                     "x-prometheus-remote-write-version": "0.1.0"},
    "otlp": {"content-type": "application/x-protobuf"},
}
PATHS = {"json": "/ingest/metrics", "ndjson": "/ingest/metrics", "arrow": "/ingest/metrics",
         "remote-write": "/api/v1/write", "otlp": "/v1/metrics"}


class Data:
    """The points of every batch, as columns (the same for every format)."""

    def __init__(self, batches: int, n_series: int, batch_size: int, labels: bool) -> None:
        rng = np.random.default_rng(0)
        self.per_series = batch_size // n_series
        self.services = [f"svc-{i // 3:04d}" for i in range(n_series)]
        self.metrics = [("p95_latency_ms", "error_rate", "qps")[i % 3] for i in range(n_series)]
        self.instances = [f"10.0.{i // 250}.{i % 250}:9100" if labels else None for i in range(n_series)]
        self.base = rng.uniform(10, 500, n_series)
        self.batches = batches
        self.n_series = n_series
        self.rng = rng

    def batch(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(series index, ts, value) of batch b, timestamp-major."""
        steps = b * self.per_series + np.arange(self.per_series)
        idx = np.tile(np.arange(self.n_series), self.per_series)
        ts = np.repeat(T0 + 10.0 * steps, self.n_series)
        vals = self.base[idx] * (1 + 0.05 * self.rng.standard_normal(len(idx)))
        return idx, ts, vals


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def encode(fmt: str, data: Data, iso: bool) -> list[bytes]:
    out = []
    for b in range(data.batches):
        idx, ts, vals = data.batch(b)
        if fmt in ("json", "ndjson"):
            pts = []
            for i, t, v in zip(idx.tolist(), ts.tolist(), vals.tolist(), strict=True):
                p: dict[str, object] = {"service": data.services[i], "metric": data.metrics[i],
                                        "ts": _iso(t) if iso else t, "value": v}
                if data.instances[i]:
                    p["labels"] = {"instance": data.instances[i]}
                pts.append(p)
            out.append(orjson.dumps({"points": pts}) if fmt == "json"
                       else b"\n".join(orjson.dumps(p) for p in pts) + b"\n")
        elif fmt == "arrow":
            inst = [data.instances[i] for i in idx.tolist()]
            out.append(arrow_ipc.encode(pa.table({
                "service": pa.array([data.services[i] for i in idx.tolist()]).dictionary_encode(),
                "metric": pa.array([data.metrics[i] for i in idx.tolist()]).dictionary_encode(),
                "ts": pa.array(ts), "value": pa.array(vals),
                "labels": pa.array([orjson.dumps({"instance": x}).decode() if x else None for x in inst]),
            })))
        elif fmt == "remote-write":
            req = WriteRequest()
            for i, t, v in zip(idx.tolist(), ts.tolist(), vals.tolist(), strict=True):
                s = req.timeseries.add()
                s.labels.add(name="__name__", value=data.metrics[i])
                if data.instances[i]:
                    s.labels.add(name="instance", value=data.instances[i])
                s.labels.add(name="job", value=data.services[i])
                s.samples.add(value=v, timestamp=int(t * 1000))
            out.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
        else:
            out.append(_otlp(data, idx, ts, vals))
    return out


def _otlp(data: Data, idx: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    req = ExportMetricsServiceRequest()
    by_service: dict[str, dict[str, object]] = {}
    for i, t, v in zip(idx.tolist(), ts.tolist(), vals.tolist(), strict=True):
        svc = data.services[i]
        d = by_service.get(svc)
        if d is None:
            rm = req.resource_metrics.add()
            rm.resource.attributes.add(key="service.name").value.string_value = svc
            d = by_service[svc] = {"scope": rm.scope_metrics.add(), "metrics": {}}
        metrics: dict[str, object] = d["metrics"]  # type: ignore[assignment]
        m = metrics.get(data.metrics[i])
        if m is None:
            m = metrics[data.metrics[i]] = d["scope"].metrics.add(name=data.metrics[i])  # type: ignore[attr-defined]
        dp = m.gauge.data_points.add(time_unix_nano=int(t * 1e9), as_double=v)  # type: ignore[attr-defined]
        if data.instances[i]:
            dp.attributes.add(key="instance").value.string_value = data.instances[i]
    return bytes(req.SerializeToString())


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc (0 where /proc is absent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_format(fmt: str, bodies: list[bytes], points_per_batch: int, log: Callable[[str], None],
               rca: str | None = None) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="rca-bench-"))
    port = free_port()
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    rca = rca or str(Path(sys.executable).with_name("rca"))
    proc = subprocess.Popen([*taskset, rca, "serve", "--port", str(port), "--data-dir", str(data),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=300) as c:
            for _ in range(600):
                try:
                    c.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)

            def post(body: bytes) -> None:
                r = c.post(PATHS[fmt], content=body, headers=HEADERS[fmt])
                if r.status_code >= 300:
                    raise SystemExit(f"{fmt}: {r.status_code} {r.text[:300]}")

            def idle() -> None:
                while c.get("/health").json()["pending"]:
                    time.sleep(0.01)

            post(bodies[0])  # warm-up batch (imports, compilation, first series) is not timed
            idle()
            cpu0 = _cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            for body in bodies[1:]:
                post(body)
            t_http = time.perf_counter() - t0
            idle()
            t_all = time.perf_counter() - t0
            cpu = _cpu_seconds(proc.pid) - cpu0
            health = c.get("/health").json()
            stored = sum(s["points"] for s in c.get("/services/metrics").json())
        n = points_per_batch * (len(bodies) - 1)
        res = {"sent": n + points_per_batch, "stored": stored, "http": n / t_http, "sustained": n / t_all,
               "cpu": n / cpu if cpu > 0 else float("nan"), "late": health.get("late_points", 0),
               "bytes": sum(map(len, bodies)) / len(bodies)}
        log(f"{fmt:>13}: {res['sustained']:>11,.0f} pts/s sustained  {res['http']:>11,.0f} pts/s accepted  "
            f"{res['cpu']:>11,.0f} pts/CPU-s  stored {stored:,}/{res['sent']:,}  pending 0  "
            f"({res['bytes'] / 1024:,.0f} KiB/batch)")
        return res
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of " + ", ".join(FORMATS))
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--iso", action="store_true", help="ISO 8601 timestamps in JSON/NDJSON instead of epoch numbers")
    ap.add_argument("--no-labels", action="store_true", help="points without labels")
    ap.add_argument("--rca", default=None, help="the rca command to start (default: the one beside this Python); "
                    "e.g. another checkout's .venv/bin/rca to compare releases under the same load")
    ap.add_argument("--repeat", type=int, default=1, help="runs per format (a fresh server each)")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        ap.error(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    data = Data(args.batches, args.series, args.batch_size, labels=not args.no_labels)
    ppb = data.per_series * args.series
    taskset = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1
    if taskset:
        os.sched_setaffinity(0, {1})
    print(f"{args.batches} batches of {ppb:,} points ({args.series} series, "
          f"{'no labels' if args.no_labels else 'one instance label each'}); server pinned to one core: {taskset}",
          flush=True)
    for fmt in formats:
        print(f"encoding {fmt}...", flush=True)
        bodies = encode(fmt, data, args.iso)
        for _ in range(args.repeat):
            run_format(fmt, bodies, ppb, lambda s: print(s, flush=True), rca=args.rca)
    return 0


if __name__ == "__main__":
    sys.exit(main())
