"""Developer tool: collect candidate rows from simulated scenarios and fit the prior.

Runs each scenario through the real embedded server (HTTP replay, detector, grouping,
RCA), keeps every incident's candidate feature rows together with the scenario's ground
truth, and fits the prior's weights by maximum likelihood of the "one cause or none"
model (see :mod:`server.rca.ranking`), regularised towards the hand-set weights.

Only *tuning* seeds may be used here (see docs/ranking.md); evaluation seeds are
disjoint. Usage::

    python -m server.rca.tune collect --seeds 1000-1119 --out /tmp/rca_rows.json
    python -m server.rca.tune fit /tmp/rca_rows.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

import numpy as np

from server.rca.features import FEATURES
from server.rca.ranking import PRIOR_BIAS, PRIOR_WEIGHTS
from server.sim.scenario import parse_seeds


def collect(seeds: list[int], *, org: str = "default", mix: dict[str, float] | None = None,
            mixed: bool = False) -> list[dict[str, Any]]:
    import httpx

    from server.embedded import EmbeddedServer
    from server.sim.replay import list_incidents, matching_incidents, replay
    from server.sim.scenario import generate_scenario, pick_kind

    out: list[dict[str, Any]] = []
    for seed in seeds:
        kind = "mixed" if mixed else pick_kind(seed, mix)
        sc = generate_scenario(seed, kind=kind, org=org)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d, EmbeddedServer(data_dir=d) as srv:
            replay(sc, srv.url)
            with httpx.Client(base_url=srv.url) as c:
                incs = list_incidents(c)
            matched = {i["id"] for i in matching_incidents(incs, sc.truth)}
            rca = srv.app.state.workers.rca
            for inc in incs:
                cached = rca._rows.get(inc["id"])
                if cached is None:
                    continue
                rows = cached[1]
                ids = [r.change.id for r in rows]
                culprit = sc.truth.culprit_id if inc["id"] in matched else None
                out.append({
                    "seed": seed, "kind": sc.kind, "org": org, "incident": inc["id"], "matched": inc["id"] in matched,
                    "culprit": culprit, "culprit_index": ids.index(culprit) if culprit in ids else None,
                    "ids": ids, "x": [[round(float(v), 5) for v in r.values] for r in rows],
                    "kinds": [r.change.kind for r in rows], "services": [r.change.services for r in rows],
                    "decoys": [i for i in ids if i in set(sc.truth.decoy_ids)],
                })
        print(f"seed {seed} {sc.kind:13s} incidents={len(incs)} matched={len(matched)} "
              f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return out


def _nll(params: np.ndarray, data: list[tuple[np.ndarray, int | None]], anchor: np.ndarray, lam: float) -> float:
    w, b = params[:-1], params[-1]
    total = 0.0
    for x, j in data:
        z = x @ w + b
        m = max(float(z.max()), 0.0)
        lse = m + np.log(np.exp(-m) + np.exp(z - m).sum())
        total += lse - (float(z[j]) if j is not None else 0.0)
    return total + lam * float(((params - anchor) ** 2).sum())


def fit(records: list[dict[str, Any]], *, lam: float = 0.05) -> tuple[dict[str, float], float]:
    from scipy.optimize import minimize

    data: list[tuple[np.ndarray, int | None]] = []
    for r in records:
        if not r["x"]:
            continue
        if r["matched"] and r["culprit_index"] is None:
            continue  # culprit not among candidates: nothing to learn about weights
        data.append((np.array(r["x"], dtype=np.float64), r["culprit_index"]))
    anchor = np.array([PRIOR_WEIGHTS.get(n, 0.0) for n in FEATURES] + [PRIOR_BIAS])
    free = [i for i, n in enumerate(FEATURES) if n in PRIOR_WEIGHTS and not n.startswith("hist")] + [len(FEATURES)]

    def f(p: np.ndarray) -> float:
        full = anchor.copy()
        full[free] = p
        return _nll(full, data, anchor, lam)

    negative = {"after_onset", "is_rollback"}
    bounds = [((None, 0.0) if FEATURES[i] in negative else (0.0, None)) if i < len(FEATURES) else (None, None)
              for i in free]
    res = minimize(f, anchor[free], method="L-BFGS-B", bounds=bounds)
    full = anchor.copy()
    full[free] = res.x
    return {n: round(float(full[i]), 2) for i, n in enumerate(FEATURES) if n in PRIOR_WEIGHTS}, round(float(full[-1]), 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.rca.tune")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--seeds", required=True)
    c.add_argument("--org", default="default")
    c.add_argument("--out", required=True)
    c.add_argument("--mixed", action="store_true", help="kind drawn from the organisation's profile")
    f = sub.add_parser("fit")
    f.add_argument("path")
    f.add_argument("--lam", type=float, default=0.05)
    args = p.parse_args(argv)
    if args.cmd == "collect":
        recs = collect(parse_seeds(args.seeds), org=args.org, mixed=args.mixed)
        with open(args.out, "w") as fh:
            json.dump(recs, fh)
        return 0
    with open(args.path) as fh:
        recs = json.load(fh)
    weights, bias = fit(recs, lam=args.lam)
    print(json.dumps({"weights": weights, "bias": bias}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
