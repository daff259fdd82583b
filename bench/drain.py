"""Drain time per case while history grows: N seeded scenarios (with their topology)
replayed one after another into one embedded server, each as its own team (its services
renamed ``cNN-<service>``, so every case brings new topology edges) and three hours after
the previous one in event time; for each case the time from its
last post until ``pending`` is 0, and the RCA analyses run so far (from ``/metrics``).
Work proportional to what changed keeps both flat as history grows.

    .venv/bin/python bench/drain.py [--cases 50] [--first-seed 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.embedded import EmbeddedServer  # noqa: E402
from server.sim.replay import replay, wait_idle  # noqa: E402
from server.sim.scenario import Scenario, generate_scenario  # noqa: E402

T_BASE = 1_800_000_000.0
SPACING_S = 3 * 3600.0


def as_case(sc: Scenario, i: int) -> Scenario:
    """The scenario's services prefixed with the case number, its times moved to slot ``i``."""
    pre, shift = f"c{i:02d}-", T_BASE + i * SPACING_S - sc.start

    def item(d: dict[str, Any]) -> dict[str, Any]:
        out = dict(d, ts=float(d["ts"]) + shift)
        if "service" in out:
            out["service"] = pre + out["service"]
        if "services" in out:
            out["services"] = [pre + x for x in out["services"]]
        return out

    return dataclasses.replace(
        sc, start=sc.start + shift, end=sc.end + shift, metrics=[item(m) for m in sc.metrics],
        logs=[item(x) for x in sc.logs], changes=[item(c) for c in sc.changes],
        edges=[{"source": pre + e["source"], "target": pre + e["target"]} for e in sc.edges])


def analyses(c: httpx.Client) -> int:
    m = re.search(r"^rca_analysis_seconds_count (\S+)$", c.get("/metrics").text, re.M)
    return int(float(m.group(1))) if m else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=1000)
    args = ap.parse_args()
    scenarios = [as_case(generate_scenario(args.first_seed + i), i) for i in range(args.cases)]
    drains: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rca-drain-") as d, EmbeddedServer(data_dir=d) as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as c:
        for i, sc in enumerate(scenarios, 1):
            replay(sc, c, wait=False)
            t0 = time.perf_counter()
            wait_idle(c, timeout=600)
            drains.append(time.perf_counter() - t0)
            if i % 10 == 0 or i == 1:
                print(f"case {i:3d}: drain {drains[-1]:.2f} s, analyses so far {analyses(c):,}", flush=True)
        total = analyses(c)
    k = min(10, len(drains))
    print(f"cases: {len(drains)}; RCA analyses: {total:,}")
    print(f"drain per case: first {k} mean {statistics.mean(drains[:k]):.2f} s, last {k} mean "
          f"{statistics.mean(drains[-k:]):.2f} s, total {sum(drains):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
