"""Developer tool: collect candidate rows from simulated scenarios and fit the prior.

Runs each scenario through the real embedded server (HTTP replay, detector, grouping,
RCA), keeps every incident's candidate feature rows together with the scenario's ground
truth, and fits the prior's weights by maximum likelihood of the "one cause or none"
model (see :mod:`server.rca.ranking`), regularised towards the hand-set weights.

Only *tuning* seeds may be used here (see docs/ranking.md); evaluation seeds are
disjoint. Incidents with no culprit (infrastructure faults) teach the prior that "none of
these changes" is an answer too: that is what keeps a benign change from being presented
as the convincing cause of a CPU hog. Usage::

    python -m server.rca.tune collect --seeds 1000-1119 --out culprits.json
    python -m server.rca.tune collect --family root --seeds 1300-1419 --out root.json
    python -m server.rca.tune collect --family releases --seeds 1500-1559 --out releases.json
    python -m server.rca.tune fit culprits.json root.json releases.json
    python -m server.rca.tune fit-services root.json releases.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

import numpy as np

from server.rca.features import BASE_FEATURES, FEATURES
from server.rca.ranking import PRIOR_BIAS, PRIOR_WEIGHTS
from server.rca.signals import CHANGE_SIGNALS
from server.sim.scenario import parse_seeds


def _scenario(seed: int, *, org: str, mix: dict[str, float] | None, mixed: bool, family: str,
              recording: str) -> Any:
    from server.sim.recording import root_scenario
    from server.sim.scenario import generate_scenario, pick_kind

    if family == "root":  # infrastructure faults with no culprit change (as `rca eval rca` builds them)
        return root_scenario(seed, recording)
    if family == "releases":
        return generate_scenario(seed, kind="releases", org=org)
    return generate_scenario(seed, kind="mixed" if mixed else pick_kind(seed, mix), org=org)


def collect(seeds: list[int], *, org: str = "default", mix: dict[str, float] | None = None,
            mixed: bool = False, family: str = "culprits", recording: str = "sim") -> list[dict[str, Any]]:
    """Change rows (``x``, the culprit's index; None = no culprit, "none of them" is the
    answer) and root-service rows (``sx``, the root's index) of every incident of each
    scenario, as the server ranked them last."""
    import httpx

    from server.embedded import EmbeddedServer
    from server.sim.replay import list_incidents, matching_incidents, replay

    out: list[dict[str, Any]] = []
    for seed in seeds:
        sc = _scenario(seed, org=org, mix=mix, mixed=mixed, family=family, recording=recording)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d, EmbeddedServer(data_dir=d) as srv:
            replay(sc, srv.url)
            with httpx.Client(base_url=srv.url) as c:
                incs = list_incidents(c)
            before = 1200.0 if family != "culprits" else 600.0
            matched = {i["id"] for i in matching_incidents(incs, sc.truth, before_s=before)}
            rca = srv.app.state.workers.rca
            for inc in incs:
                cached = rca._rows.get(inc["id"])
                if cached is None:
                    continue
                rows, srows = cached[1], cached[2]
                ids = [r.change.id for r in rows]
                culprit = sc.truth.culprit_id if inc["id"] in matched else None
                root = (sc.truth.culprit_service or sc.truth.fault_service) if inc["id"] in matched else None
                names = [r.service for r in srows]
                out.append({
                    "seed": seed, "kind": sc.kind, "org": org, "incident": inc["id"], "matched": inc["id"] in matched,
                    "culprit": culprit, "culprit_index": ids.index(culprit) if culprit in ids else None,
                    "ids": ids, "x": [[round(float(v), 5) for v in r.values] for r in rows],
                    "kinds": [r.change.kind for r in rows], "services": [r.change.services for r in rows],
                    "decoys": [i for i in ids if i in set(sc.truth.decoy_ids)],
                    "root": root, "root_index": names.index(root) if root in names else None,
                    "sx": [[round(float(v), 5) for v in r.values] for r in srows],
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


def fit(records: list[dict[str, Any]], *, lam: float = 0.3) -> tuple[dict[str, float], float]:
    from scipy.optimize import minimize

    data: list[tuple[np.ndarray, int | None]] = []
    for r in records:
        if not r["x"]:
            continue
        if r.get("culprit") is not None and r["culprit_index"] is None:
            continue  # culprit not among candidates: nothing to learn about weights
        # incidents with no culprit (infrastructure faults, unmatched incidents) teach "none"
        data.append((np.array(r["x"], dtype=np.float64), r["culprit_index"]))
    anchor = np.array([PRIOR_WEIGHTS.get(n, 0.0) for n in FEATURES] + [PRIOR_BIAS])
    # every evidence signal is free (a weight fitted to 0 once may come back), history and
    # kind columns stay with the learnt model
    free = [i for i, n in enumerate(FEATURES) if n in BASE_FEATURES] + [len(FEATURES)]

    def f(p: np.ndarray) -> float:
        full = anchor.copy()
        full[free] = p
        return _nll(full, data, anchor, lam)

    negative = {s.name for s in CHANGE_SIGNALS if s.weight < 0}  # penalties stay penalties
    bounds = [((None, 0.0) if FEATURES[i] in negative else (0.0, None)) if i < len(FEATURES) else (None, None)
              for i in free]
    res = minimize(f, anchor[free], method="L-BFGS-B", bounds=bounds)
    full = anchor.copy()
    full[free] = res.x
    return {n: round(float(full[i]), 2) for i, n in enumerate(FEATURES) if n in BASE_FEATURES}, round(float(full[-1]), 2)


def fit_services(records: list[dict[str, Any]], *, lam: float = 0.3) -> tuple[dict[str, float], float]:
    """Root-service prior weights by maximum likelihood of "one root or none" over the
    matched incidents whose root is among the candidates, L2 towards the current weights."""
    from scipy.optimize import minimize

    from server.rca.roots import SERVICE_FEATURES, SERVICE_PRIOR_BIAS, SERVICE_PRIOR_WEIGHTS

    data = [(np.array(r["sx"], dtype=np.float64), int(r["root_index"])) for r in records
            if r.get("sx") and r.get("root_index") is not None]
    anchor = np.array([SERVICE_PRIOR_WEIGHTS.get(n, 0.0) for n in SERVICE_FEATURES] + [SERVICE_PRIOR_BIAS])
    bounds = [(0.0, None)] * len(SERVICE_FEATURES) + [(None, None)]
    res = minimize(lambda p: _nll(p, data, anchor, lam), anchor, method="L-BFGS-B",  # type: ignore[arg-type]
                   bounds=bounds)
    return ({n: round(float(v), 2) for n, v in zip(SERVICE_FEATURES, res.x[:-1], strict=True)},
            round(float(res.x[-1]), 2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.rca.tune")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--seeds", required=True)
    c.add_argument("--org", default="default")
    c.add_argument("--out", required=True)
    c.add_argument("--mixed", action="store_true", help="kind drawn from the organisation's profile")
    c.add_argument("--family", choices=["culprits", "root", "releases"], default="culprits",
                   help="culprit changes (default), infrastructure faults with no culprit (root), or "
                        "simultaneous releases")
    c.add_argument("--recording", default="sim", help="recording style of root scenarios: sim, no-topology, real")
    f = sub.add_parser("fit", help="fit the change prior on collected rows (several files may be given)")
    f.add_argument("paths", nargs="+")
    f.add_argument("--lam", type=float, default=0.3)
    fs = sub.add_parser("fit-services", help="fit the root-service prior on collected rows")
    fs.add_argument("paths", nargs="+")
    fs.add_argument("--lam", type=float, default=0.3)
    args = p.parse_args(argv)
    if args.cmd == "collect":
        bad = [x for x in parse_seeds(args.seeds) if x not in range(1000, 2000)]
        if bad:
            raise SystemExit(f"seeds {bad[:3]}... are not tuning seeds (1000-1999): evaluation seeds stay unseen")
        recs = collect(parse_seeds(args.seeds), org=args.org, mixed=args.mixed, family=args.family,
                       recording=args.recording)
        with open(args.out, "w") as fh:
            json.dump(recs, fh)
        return 0
    recs = []
    for path in args.paths:
        with open(path) as fh:
            recs += json.load(fh)
    weights, bias = fit(recs, lam=args.lam) if args.cmd == "fit" else fit_services(recs, lam=args.lam)
    print(json.dumps({"weights": weights, "bias": bias}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
