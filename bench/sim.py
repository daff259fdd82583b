"""Speed of the simulator: scenario generation and replay into a fresh embedded server.

    python bench/sim.py [--seeds 5] [--hours 2] [--no-replay]

Prints figures; asserts nothing (see bench/ for the other benchmarks).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from server.sim.fleet import generate_metrics, make_fleet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--no-replay", action="store_true")
    args = p.parse_args(argv)

    from server.sim.scenario import generate_scenario

    rng = np.random.default_rng(0)
    fleet = make_fleet(rng, 10)
    ts = 1793577600.0 + 10.0 * np.arange(360)
    t0 = time.perf_counter()
    for _ in range(20):
        generate_metrics(fleet, ts, rng)
    print(f"metrics, 1 h x 10 services x 3 metrics (10 800 points): {(time.perf_counter() - t0) / 20 * 1000:.1f} ms")

    gen: list[float] = []
    rep: list[float] = []
    sizes: list[tuple[int, int, int]] = []
    for seed in range(1, args.seeds + 1):
        t0 = time.perf_counter()
        sc = generate_scenario(seed, history_hours=args.hours)
        gen.append(time.perf_counter() - t0)
        sizes.append((len(sc.metrics), len(sc.logs), len(sc.changes)))
        if args.no_replay:
            continue
        from server.embedded import EmbeddedServer
        from server.sim.replay import replay

        with tempfile.TemporaryDirectory() as d, EmbeddedServer(data_dir=d) as srv:
            rep.append(replay(sc, srv.url).seconds)
    m, lg, c = (int(statistics.mean(x)) for x in zip(*sizes, strict=True))
    print(f"scenario, {args.hours:g} h ({m} points, {lg} logs, {c} changes): generate median "
          f"{statistics.median(gen):.2f} s, max {max(gen):.2f} s over {len(gen)} seeds")
    if rep:
        print(f"replay into a fresh embedded server until pending == 0: median {statistics.median(rep):.2f} s, "
              f"max {max(rep):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
