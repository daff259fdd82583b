"""Start the web app (frontend/, Next.js) against an RCA server.

Installs the npm dependencies from the committed package-lock.json (npm ci) when they
are missing or older than the lock, builds the app (next build) when the build is
missing or older than a source file, then serves it (next start). The server and
simulator URLs are read at run time, so one build serves any server:

  rca web                                   # http://127.0.0.1:3000 -> server on :8000
  rca web --url http://rca.internal:8000 --port 3300
  rca web --sim-url http://127.0.0.1:8001   # the simulator whose controls /demo uses

Needs Node.js 18.17 or later with npm. The browser talks only to the web app: its
route handlers forward to the server (/api/rca/...) and the simulator (/api/sim/...),
so neither needs CORS.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from server.commands.term import interrupt_on_term

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
BUILD_INPUTS = ("src", "public", "package.json", "package-lock.json", "next.config.mjs", "tsconfig.json",
                ".eslintrc.json")

Say = Callable[[str], None]


class WebError(RuntimeError):
    """A problem the user can fix (no Node.js, no frontend/ directory, a failed build)."""


def _say(msg: str) -> None:
    print(f"rca web: {msg}", file=sys.stderr, flush=True)


def env(api_url: str | None = None, sim_url: str | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["NEXT_TELEMETRY_DISABLED"] = "1"
    if api_url:
        e["RCA_API_URL"] = api_url
    if sim_url:
        e["RCA_SIM_URL"] = sim_url
    return e


def check_tools(frontend: Path = FRONTEND) -> None:
    if not (frontend / "package.json").exists():
        raise WebError(f"no web app at {frontend}: 'rca web' runs from a source checkout (pip install -e .)")
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise WebError(f"'{tool}' not found: install Node.js 18.17+ with npm (Debian: apt-get install nodejs npm)")


def _newest_mtime(paths: Iterator[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
        elif p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def deps_stale(frontend: Path = FRONTEND) -> bool:
    marker = frontend / "node_modules" / ".package-lock.json"
    lock = frontend / "package-lock.json"
    return not marker.exists() or lock.stat().st_mtime > marker.stat().st_mtime


def build_stale(frontend: Path = FRONTEND) -> bool:
    build_id = frontend / ".next" / "BUILD_ID"
    if not build_id.exists():
        return True
    return _newest_mtime(frontend / p for p in BUILD_INPUTS) > build_id.stat().st_mtime


def _run(cmd: list[str], frontend: Path, say: Say) -> None:
    """Run a step, streaming its output as progress; raise WebError when it fails."""
    say(f"$ {' '.join(cmd)}")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=frontend, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = (tail + [line])[-30:]
            say(f"  {line}")
    if proc.wait() != 0:
        raise WebError(f"'{' '.join(cmd)}' failed (exit {proc.returncode}):\n" + "\n".join(tail[-15:]))
    say(f"  done in {time.monotonic() - t0:.0f}s")


@contextlib.contextmanager
def _build_lock(frontend: Path) -> Iterator[None]:
    with open(frontend / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # one install/build at a time (tests and a user's rca web)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _deps(frontend: Path, say: Say) -> None:
    if deps_stale(frontend):
        say("installing npm dependencies from package-lock.json (first run takes a minute or two)")
        _run(["npm", "ci", "--no-audit", "--no-fund"], frontend, say)


def ensure_deps(frontend: Path = FRONTEND, *, say: Say = _say) -> None:
    """npm ci when the dependencies are missing or older than package-lock.json."""
    check_tools(frontend)
    with _build_lock(frontend):
        _deps(frontend, say)


def ensure_built(frontend: Path = FRONTEND, *, say: Say = _say, rebuild: bool = False) -> None:
    """npm ci when the dependencies are missing or stale, next build when the build is."""
    check_tools(frontend)
    with _build_lock(frontend):
        _deps(frontend, say)
        if rebuild or build_stale(frontend):
            say("building the web app (next build; a few minutes on a small machine)")
            _run([str(frontend / "node_modules" / ".bin" / "next"), "build"], frontend, say)
        else:
            say("the build is up to date")


def start(*, port: int, host: str = "127.0.0.1", api_url: str, sim_url: str | None = None,
          frontend: Path = FRONTEND, quiet: bool = False) -> subprocess.Popen[bytes]:
    """``next start`` in its own process group (stop it with :func:`stop`)."""
    cmd = [str(frontend / "node_modules" / ".bin" / "next"), "start", "-p", str(port), "-H", host]
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(cmd, cwd=frontend, env=env(api_url, sim_url), stdout=out, stderr=out,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("RCA_API_URL", "http://127.0.0.1:8000"),
                   help="RCA server the web app reads (default http://127.0.0.1:8000, env RCA_API_URL)")
    p.add_argument("--sim-url", default=os.environ.get("RCA_SIM_URL", "http://127.0.0.1:8001"),
                   help="simulator controls used by /demo (default http://127.0.0.1:8001, env RCA_SIM_URL)")
    p.add_argument("--port", type=int, default=3000, help="port of the web app (default 3000)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--rebuild", action="store_true", help="build again even when the build looks up to date")


def run(args: argparse.Namespace) -> int:
    try:
        ensure_built(rebuild=args.rebuild)
    except WebError as exc:
        print(f"rca web: {exc}", file=sys.stderr)
        return 1
    interrupt_on_term()  # a `kill` stops the web app's server too, as Ctrl-C does
    proc = start(port=args.port, host=args.host, api_url=args.url.rstrip("/"), sim_url=args.sim_url.rstrip("/"))
    _say(f"http://{args.host}:{args.port}  (server {args.url}, simulator {args.sim_url}); Ctrl-C to stop")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)
