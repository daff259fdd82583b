"""Where an ingest batch's CPU time goes, stage by stage, in one process (no HTTP, no bus):
the floor under ``bench/ingest.py``'s end-to-end figures.

For each format the same pre-encoded 10k-point batches as ``bench/ingest.py`` go through
the server's own code: decode and validate the body into a ``Points`` batch, store it in
a DuckDB file (as the API does before its 202: logged and synced, appended to DuckDB in
groups; ``RCA_STORE__FLUSH_SECONDS=0`` in the environment: one commit per batch), hand the
``MetricPoints`` event over (in process: the points themselves; ``--encode-events``: encoded
and decoded, as on Kafka), and detect (the detector stage: series lookup, sort, the
compiled kernel). CPU time per stage is measured with ``time.process_time`` on one core;
the kernel's own share is printed apart. What ``bench/ingest.py`` measures above the sum
is the HTTP server, the event loop and the stage workers' bookkeeping.

    taskset -c 1 python bench/ingest_floor.py [--formats json,arrow,remote-write] [--batches 40]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench_ingest  # noqa: E402

from server.api.validation import parse_items, validate_metrics  # noqa: E402
from server.detector.core import DetectorConfig, warm_up  # noqa: E402
from server.detector.worker import DetectorStage  # noqa: E402
from server.events import MetricPoints, decode, encode  # noqa: E402
from server.ingest import arrow_ipc, json_points, prom_scan, remote_write  # noqa: E402
from server.model.points import Points  # noqa: E402
from server.store.duckdb import DuckDBStore  # noqa: E402

STORE = "store (log + DuckDB group commit)"
FORMATS = ("json", "json-reference", "ndjson", "arrow", "remote-write")


def _decoder(fmt: str) -> Callable[[bytes], Points]:
    if fmt in ("json", "ndjson"):
        nd = fmt == "ndjson"

        def fast(body: bytes) -> Points:
            got = json_points.decode(body, ndjson=nd)
            assert got is not None, "the batch did not take the fast path"
            return got
        return fast
    if fmt == "json-reference":
        return lambda body: Points.from_table(validate_metrics(parse_items(body, "points")))
    if fmt == "arrow":
        return arrow_ipc.decode_points
    prom_scan.warm_up()  # as the server does at start (its compare is first used on the third batch)
    cache = remote_write.SeriesCache(("service", "job"))
    return lambda body: remote_write.decode(remote_write.decompress(body, 1 << 30), cache=cache).points


def run(fmt: str, batches: int, encode_events: bool = False) -> dict[str, float]:
    data = bench_ingest.Data(batches, 1000, 10_000, labels=True)
    bodies = bench_ingest.encode("json" if fmt == "json-reference" else fmt, data, False)
    decode_body = _decoder(fmt)
    with tempfile.TemporaryDirectory(prefix="rca-floor-") as d:
        flush = float(os.environ.get("RCA_STORE__FLUSH_SECONDS", "0.25"))
        store = DuckDBStore(Path(d) / "rca.duckdb", threads=1, flush_seconds=flush)
        stage = DetectorStage(DetectorConfig())
        kernel = stage.detector.step
        spent: dict[str, float] = {}

        def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
            t0 = time.process_time()
            out = fn(*args)
            spent[name] = spent.get(name, 0.0) + time.process_time() - t0
            return out

        def step(*args: Any) -> Any:
            return timed("  of which the detector kernel", kernel, *args)

        stage.detector.step = step  # type: ignore[method-assign]
        gc.freeze()
        for i, body in enumerate(bodies):
            if i == 1:  # the first batch (new series, caches) is not counted, as in bench/ingest.py
                spent.clear()
            points = timed("decode + validate", decode_body, body)
            seq = timed(STORE, lambda p=points: store.insert_points(points=p))
            if encode_events:
                msg = timed("event encode + decode", lambda p=points, s=seq: decode(encode(MetricPoints.from_points(p, s))))
            else:
                msg = timed("event hand-over", MetricPoints.in_memory, points, seq)
            timed("detect", stage.process_points, msg.points())  # type: ignore[union-attr]
        timed(STORE, store.flush)  # the last group (the flusher thread's CPU counts where it falls)
        store.close()
    n = 10_000 * (batches - 1)
    return {k: v / n * 1e6 for k, v in spent.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", default="json,arrow,remote-write",
                    help="comma-separated subset of " + ", ".join(FORMATS))
    ap.add_argument("--batches", type=int, default=40, help="10k-point batches per format (the first is not timed)")
    ap.add_argument("--encode-events", action="store_true",
                    help="encode and decode the detector's event as on Kafka (in process it is handed over as is)")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        ap.error(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warm_up()
    json_points.warm_up()
    print(f"CPU microseconds per point, 10k-point batches of 1,000 labelled series; load {os.getloadavg()[0]:.1f}",
          flush=True)
    for fmt in formats:
        per = run(fmt, args.batches, args.encode_events)
        total = sum(v for k, v in per.items() if not k.startswith(" "))
        print(f"{fmt}:")
        for k, v in per.items():
            print(f"  {k:34s} {v:6.3f} us/pt")
        print(f"  {'total':34s} {total:6.3f} us/pt  ->  {1e6 / total:,.0f} points per CPU-second", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
