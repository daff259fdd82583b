"""Detector throughput: point-updates per second and state bytes per series.

Each step advances every series by one point (the server's 10-s tick) in one
StreamingDetector.step call: events and the per-point anomaly-likelihood score, the
server's detector with its defaults, timed once every series is past its kNN buffer
(400 points: younger series compare fewer lags and cost less; runs before 2026-12-06
21:00 warmed up 40 steps only and measured that young regime, 1.5-1.9x faster).  The
compiled kernel is loaded (or compiled) before timing.  It prints the mean wall-clock rate, the rate of the fastest step, and the rate
per CPU-second of the median step (thread CPU time: what the detector costs when the
core is shared with other processes, as on a loaded machine).  Run on one core:

    taskset -c 1 .venv/bin/python bench/detect.py [--series 10000 100000] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from server.detector.core import DetectorConfig, StreamingDetector  # noqa: E402


def bench(n_series: int, steps: int, warm_steps: int | None = None, seed: int = 0) -> tuple[float, float, float, int, int]:
    rng = np.random.default_rng(seed)
    config = DetectorConfig()
    det = StreamingDetector(config, capacity=n_series)
    if warm_steps is None:  # every series past its kNN buffer: the steady state (younger series compare fewer lags)
        warm_steps = config.buffer + 2 * config.dim
    idx = np.arange(n_series, dtype=np.int64)
    base = rng.uniform(1.0, 1000.0, n_series)
    noise = rng.normal(0.0, 1.0, (8, n_series)) * (0.02 * base)
    t0 = 1.7e9
    events = 0
    for i in range(warm_steps):
        det.step(idx, np.full(n_series, t0 + 10.0 * i), base + noise[i % 8])
    # a regression on 1 % of the series half-way through the timed run
    shifted = rng.choice(n_series, max(1, n_series // 100), replace=False)
    total = 0.0
    best = float("inf")
    cpu: list[float] = []
    for i in range(warm_steps, warm_steps + steps):
        v = base + noise[i % 8]
        if i >= warm_steps + steps // 2:
            v = v.copy()
            v[shifted] *= 1.5
        ts = np.full(n_series, t0 + 10.0 * i)
        start = time.perf_counter()
        c0 = time.thread_time()
        events += len(det.step(idx, ts, v).events)
        cpu.append(time.thread_time() - c0)
        dt = time.perf_counter() - start
        total += dt
        best = min(best, dt)
    cpu_median = float(np.median(cpu))
    return n_series * steps / total, n_series / best, n_series / max(cpu_median, 1e-9), det.nbytes_per_series(), events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    print("point-updates/s: mean over the timed steps, and of the fastest step (less sensitive to other")
    print("processes on a shared machine); events: opens on the 1 % of series shifted half-way (+ closes)")
    print(f"{'series':>10} {'steps':>6} {'mean upd/s':>14} {'best-step upd/s':>16} {'per CPU-s upd/s':>16} "
          f"{'bytes/series':>13} {'events':>8}")
    bench(100, 2, warm_steps=2)  # compile (or load the cached compiled kernel) outside the timing
    for n in args.series:
        steps = max(20, args.steps * 10_000 // max(n, 10_000))
        rate, best, per_cpu, nbytes, events = bench(n, steps)
        print(f"{n:>10} {steps:>6} {rate:>14,.0f} {best:>16,.0f} {per_cpu:>16,.0f} {nbytes:>13} {events:>8}",
              flush=True)


if __name__ == "__main__":
    main()
