"""Live demo on the embedded default, with no other service running.

Starts the RCA server (DuckDB file under --data-dir, in-process bus) and the simulated
fleet, backfills an hour of history so baselines exist, then runs live (the fleet
reports every --interval seconds) and rolls out a faulty deployment. As soon as the
incident is detected it prints the incident, its ranked suspects with their evidence,
how long detection took, and the URLs to explore; then it opens the terminal UI
(unless --no-tui or no terminal). Press Ctrl-C to stop (a `kill` stops it as cleanly:
the server, the simulator and the web pages it started all end).

The data dir is wiped at start so the demo always begins from a clean slate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from server.commands.term import interrupt_on_term
from server.embedded import EmbeddedServer, free_port


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8000, help="RCA server port (default 8000)")
    p.add_argument("--sim-port", type=int, default=8001, help="simulator control port (default 8001)")
    p.add_argument("--data-dir", type=Path, default=Path("demo-data"),
                   help="data dir for the demo (wiped at start; default ./demo-data)")
    p.add_argument("--backfill-hours", type=float, default=1.0, help="history sent before going live (default 1)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between live reports (default 10)")
    p.add_argument("--service", default=None, help="service that gets the faulty deployment (default: picked)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="give up if no incident is detected this many seconds after the bad deploy (default 120)")
    p.add_argument("--no-tui", action="store_true", help="do not open the terminal UI after detection")
    p.add_argument("--no-ui", action="store_true", help="do not start the Streamlit pages (rca ui)")
    p.add_argument("--ui-port", type=int, default=8502, help="port of the Streamlit pages (default 8502)")
    p.add_argument("--exit-after-detect", action="store_true",
                   help="stop once the incident and its suspects are printed (for scripts and CI)")


def _say(t0: float, msg: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)


def _pick_service(health: dict[str, Any]) -> str:
    """A service with callers, so the regression visibly propagates upstream."""
    edges = health.get("edges") or []
    callers: dict[str, int] = {}
    for e in edges:
        callers[e["target"]] = callers.get(e["target"], 0) + 1
    names = health.get("services") or []
    ranked = sorted((s for s in names if callers.get(s)), key=lambda s: (-callers[s], s))
    return ranked[0] if ranked else names[0]


class _SimServer:
    def __init__(self, server_url: str, port: int, *, seed: int, interval: float, backfill_hours: float) -> None:
        from server.sim.live import LiveSim, create_app

        self.sim = LiveSim(server_url, seed=seed, interval=interval)
        app = create_app(self.sim, run_loop=True, backfill_hours=backfill_hours)
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="rca-sim", daemon=True)

    def start(self) -> None:
        self._thread.start()
        for _ in range(600):
            if self._server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("simulator did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)


def _print_incident(api: httpx.Client, inc: dict[str, Any]) -> None:
    print()
    print(f"  INCIDENT {inc['id']}  {inc['title']}")
    print(f"    services: {', '.join(inc['services'])}   severity {inc['severity']:.2f}")
    print(f"    onset {inc['started_at']}   detected {inc['detected_at']}")
    suspects = api.get(f"/incidents/{inc['id']}/suspects").json()
    if inc.get("no_convincing_change"):
        print("    no convincing change among the candidates")
    for s in suspects[:3]:
        ev = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["evidence"].items(), key=lambda kv: -kv[1])[:4])
        print(f"    #{s['rank']} {s['kind']:<13} {s['change_id']}  score {s['score']:.2f}  ({ev})")
        print(f"       {s['explanation']}")
    print()


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    interrupt_on_term()  # a `kill` stops the server, the simulator and the pages as Ctrl-C does
    if args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    port = args.port or free_port()
    try:
        srv = EmbeddedServer(data_dir=args.data_dir, port=port).start()
    except (OSError, RuntimeError, SystemExit) as exc:
        print(f"rca demo: cannot start the server on port {port}: {exc} (try --port)", file=sys.stderr)
        return 1
    _say(t0, f"RCA server on {srv.url} (data dir {args.data_dir.resolve()})")
    sim = _SimServer(srv.url, args.sim_port, seed=args.seed, interval=args.interval,
                     backfill_hours=args.backfill_hours)
    try:
        sim.start()
    except (OSError, RuntimeError, SystemExit) as exc:
        print(f"rca demo: cannot start the simulator on port {args.sim_port}: {exc} (try --sim-port)",
              file=sys.stderr)
        srv.stop()
        return 1
    _say(t0, f"simulator controls on {sim.url} ({len(sim.sim.fleet.names)} services); "
             f"backfilling {args.backfill_hours:g} h of history...")
    ui = None if args.no_ui else _start_ui(srv.url, args.ui_port, t0)
    try:
        return _main(args, srv, sim, t0, ui_url=ui.url if ui is not None else None)
    except KeyboardInterrupt:
        print("\nstopped.")
        return 0
    finally:
        if ui is not None:
            ui.stop()
        sim.stop()
        srv.stop()


def _start_ui(server_url: str, port: int, t0: float) -> Any:
    """The Streamlit pages as a child process; the demo goes on without them if they cannot start."""
    from workbench.ui_cli import UiProcess

    try:
        ui = UiProcess(server_url, port=port)
    except OSError as exc:
        print(f"rca demo: web pages not started: {exc} (--ui-port, or --no-ui)", file=sys.stderr)
        return None
    _say(t0, f"web pages (rca ui) starting on {ui.url}")
    return ui


def _main(args: argparse.Namespace, srv: EmbeddedServer, sim: _SimServer, t0: float, *,
          ui_url: str | None = None) -> int:
    with httpx.Client(base_url=srv.url, timeout=30) as api, httpx.Client(base_url=sim.url, timeout=30) as ctl:
        # wait for the backfill to be sent and processed
        while sim.sim.ticks == 0 or sim.sim.sent["metrics"] == 0:
            if sim.sim.errors:
                print(f"rca demo: simulator error: {sim.sim.last_error}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        srv.wait_idle(timeout=300)
        n_points = sum(s["points"] for s in api.get("/services/metrics").json())
        _say(t0, f"history ingested and processed: {n_points:,} points, "
                 f"{len(api.get('/changes').json())} benign changes, {len(api.get('/incidents').json())} incidents")
        health = ctl.get("/health").json()
        service = args.service or _pick_service(health)
        # deploy just before the next report so the first faulty point arrives promptly
        last = sim.sim.last_tick or time.time()
        wait = (last + args.interval - args.interval / 2 - 1.0) - time.time()
        while wait < 0:
            wait += args.interval
        _say(t0, f"live: the fleet reports every {args.interval:g}s; rolling out a faulty deployment of "
                 f"{service} in {wait:.0f}s")
        time.sleep(wait)
        r = ctl.post("/deploy", params={"service": service, "bad": "true"})
        r.raise_for_status()
        dep = r.json()["deployment"]
        t_deploy = time.monotonic()
        known = {i["id"] for i in api.get("/incidents").json()}
        _say(t0, f"deployed {service} {dep.get('version')} (id {dep['id']}); waiting for detection...")
        found = None
        while time.monotonic() - t_deploy < args.timeout:
            for inc in api.get("/incidents", params={"status": "OPEN"}).json():
                if inc["id"] not in known and inc.get("top_suspect"):
                    found = inc
                    break
            if found:
                break
            time.sleep(0.5)
        if found is None:
            print(f"rca demo: no incident detected within {args.timeout:.0f}s of the deploy", file=sys.stderr)
            return 1
        _say(t0, f"incident detected {time.monotonic() - t_deploy:.1f}s after the faulty deploy")
        _print_incident(api, found)
        top = found["top_suspect"]["change_id"]
        verdict = "the faulty deployment is the top suspect" if top == dep["id"] else \
            f"top suspect is {top}; the faulty deployment was {dep['id']}"
        print(f"  {verdict}")
        print(f"  API docs:     {srv.url}/docs")
        print(f"  incidents:    {srv.url}/incidents/{found['id']}/suspects")
        print(f"  simulator:    {sim.url}/health   (POST /deploy?service=&bad=true, /inject-latency, /reset)")
        print(f"  terminal UI:  rca tui --url {srv.url}")
        if ui_url:
            print(f"  web pages:    {ui_url}/incident?id={found['id']}   (rca ui; all incidents at {ui_url})")
        print(f"  web app:      rca web --url {srv.url} --sim-url {sim.url}   "
              f"(then http://127.0.0.1:3000/incidents/{found['id']}, live demo at /demo)")
        print(flush=True)
        if args.exit_after_detect:
            return 0
        if not args.no_tui and sys.stdin.isatty() and sys.stdout.isatty():
            from workbench.tui.cli import run_tui

            return run_tui(srv.url)
        _say(t0, "running live; press Ctrl-C to stop")
        while True:
            time.sleep(1)
