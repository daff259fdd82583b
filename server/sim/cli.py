"""Run the simulated service fleet, or write and replay seeded scenarios.

  rca sim --server URL [--port 8001] [--interval 10] [--backfill-hours 1] [--seed N]
      run the live fleet: every interval it posts p95_latency_ms, error_rate and qps of
      every service plus access/error logs and benign changes to the RCA server, and
      serves controls on --port: POST /inject-latency?service=&ms=&duration=,
      POST /inject-errors?service=&rate=&duration=, POST /deploy?service=&bad=true,
      POST /config-change?service=&bad=true, POST /flag-change?service=&bad=true&rollout=,
      POST /rollback?service=, POST /reset, POST /tick, POST /backfill?hours=, GET /health.

  rca sim scenario --seed N [--kind K] [--org O] [--hours H] --out FILE.json
      write a seeded historical scenario (topology, metrics, logs, changes) with its
      ground truth (which change caused what) under "truth".

  rca sim replay --server URL FILE.json [FILE.json ...]
      push scenarios into a running server in event-time order, wait until it has
      processed them, and print the incidents and top suspects next to the truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from server.sim.recording import RECORDING_STYLES, as_recording
from server.sim.scenario import KINDS, ORGS, Scenario, generate_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _live_args(parser)
    sub = parser.add_subparsers(dest="sim_command", metavar="{live,scenario,replay}")
    live = sub.add_parser("live", help="run the live simulated fleet (the default)")
    _live_args(live)
    sc = sub.add_parser("scenario", help="write a seeded scenario with ground truth to a JSON file")
    sc.add_argument("--seed", type=int, required=True)
    sc.add_argument("--kind", choices=KINDS, default="mixed")
    sc.add_argument("--org", choices=sorted(ORGS), default="default")
    sc.add_argument("--hours", type=float, default=2.0, help="hours of history (default 2)")
    sc.add_argument("--services", type=int, default=10, help="number of services (2-12, default 10)")
    sc.add_argument("--rollback", choices=["random", "yes", "no"], default="random")
    sc.add_argument("--drift", type=float, default=0.0,
                    help="slow autocorrelated latency wander (log-space std, e.g. 0.05; default off)")
    sc.add_argument("--magnitude", type=float, default=1.0, help="scale of the fault (default 1)")
    sc.add_argument("--recording", choices=RECORDING_STYLES, default="sim",
                    help="present the scenario as: sim (default), no-topology (no call graph), real (no call "
                         "graph, metrics named as real recordings name them, sparse error metrics, often no logs)")
    sc.add_argument("--out", required=True, help="output JSON file ('-' for stdout)")
    rp = sub.add_parser("replay", help="replay scenario files into a running server")
    rp.add_argument("--server", required=True, help="base URL of the RCA server")
    rp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for pending == 0")
    rp.add_argument("files", nargs="+", help="scenario JSON files written by 'rca sim scenario'")


def _live_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=None, help="base URL of the RCA server to post to")
    p.add_argument("--host", default="127.0.0.1", help="address for the control API")
    p.add_argument("--port", type=int, default=8001, help="port of the control API (default 8001)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between ticks (default 10)")
    p.add_argument("--backfill-hours", type=float, default=0.0, help="history to post before going live")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--services", type=int, default=10, help="number of services (2-12, default 10)")
    p.add_argument("--drift", type=float, default=0.0,
                   help="slow autocorrelated latency wander (log-space std, e.g. 0.05; default off)")


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "sim_command", None)
    if cmd == "scenario":
        return _scenario(args)
    if cmd == "replay":
        return _replay(args)
    return _live(args)


def _scenario(args: argparse.Namespace) -> int:
    rollback = {"random": None, "yes": True, "no": False}[args.rollback]
    t0 = time.perf_counter()
    sc = generate_scenario(args.seed, kind=args.kind, org=args.org, history_hours=args.hours,
                           n_services=args.services, rollback=rollback, drift=args.drift,
                           magnitude=args.magnitude)
    sc = as_recording(sc, args.recording)
    data = orjson.dumps(sc.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
    if args.out == "-":
        sys.stdout.buffer.write(data + b"\n")
    else:
        Path(args.out).write_bytes(data)
        tr = sc.truth
        print(f"wrote {args.out}: kind={sc.kind} org={sc.org} {len(sc.metrics)} points, {len(sc.logs)} logs, "
              f"{len(sc.changes)} changes in {time.perf_counter() - t0:.2f} s; culprit={tr.culprit_id} "
              f"on {tr.fault_service} ({tr.fault_kind})", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    import httpx

    from server.sim.replay import (
        ReplayError,
        auth_headers,
        culprit_rank,
        get_suspects,
        list_incidents,
        matching_incidents,
        replay,
    )

    with httpx.Client(base_url=args.server, timeout=60.0, headers=auth_headers()) as client:
        for f in args.files:
            sc = Scenario.from_dict(orjson.loads(Path(f).read_bytes()))
            try:
                st = replay(sc, client, timeout=args.timeout)
            except (ReplayError, httpx.HTTPError) as exc:
                print(f"{f}: replay failed: {exc}", file=sys.stderr)
                return 1
            print(f"{f}: sent {st.metrics} points, {st.logs} logs, {st.changes} changes in "
                  f"{st.requests} requests, {st.seconds:.2f} s")
            incs = list_incidents(client, since=sc.start)
            incs = [i for i in incs if sc.start <= _ts(i["started_at"]) <= sc.end]
            matched = {i["id"] for i in matching_incidents(incs, sc.truth)}
            tr = sc.truth
            print(f"  truth: kind={tr.kind} culprit={tr.culprit_id} service={tr.fault_service} "
                  f"fault={tr.fault_kind} affected={','.join(tr.affected_services) or '-'}")
            for inc in incs:
                sus = get_suspects(client, inc["id"])
                top = ", ".join(f"{s.get('change_id')}:{s.get('score', 0):.2f}" for s in sus[:3])
                rank = culprit_rank(sus, tr.culprit_id) if inc["id"] in matched else None
                tag = "fault" if inc["id"] in matched else "other"
                print(f"  {inc['id']} [{tag}] {inc['title']} services={','.join(inc['services'])} "
                      f"culprit_rank={rank} top: {top}")
            if not incs:
                print("  no incidents")
    return 0


def _ts(value: object) -> float:
    from server.timeutil import parse_ts

    return parse_ts(value)


def _live(args: argparse.Namespace) -> int:
    import uvicorn

    from server.sim.live import LiveSim, create_app

    if not args.server:
        print("rca sim: --server URL is required to run the live simulator", file=sys.stderr)
        return 2
    sim = LiveSim(args.server, seed=args.seed, n_services=args.services, interval=args.interval,
                  drift=args.drift)
    app = create_app(sim, run_loop=True, backfill_hours=args.backfill_hours)
    print(f"rca sim: {len(sim.fleet.names)} services -> {args.server}; controls on "
          f"http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
