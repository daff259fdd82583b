"""Streamlit pages for exploring incidents, anomalies and suspect evidence in a browser.

Starts the multipage app (Incidents, Incident evidence, Explorer, Changes, Model) against
an RCA server and prints its URL. The pages call the server only through
``workbench.client``; a down or slow server shows a message with a retry button.

    rca serve &
    rca ui --url http://127.0.0.1:8000 --port 8502

Deep links: ``http://HOST:PORT/incident?id=inc-3`` opens one incident's evidence (see
docs/ui.md for every page's query parameters). Press Ctrl-C to stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from workbench.client import DEFAULT_URL

APP = Path(__file__).resolve().parent / "streamlit_app.py"
DEFAULT_UI_PORT = 8502
#: environment variables the app reads (set by ``rca ui`` for the Streamlit process)
ENV_SERVER_URL = "RCA_UI_SERVER_URL"
ENV_TIMEOUT = "RCA_UI_TIMEOUT"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get(ENV_SERVER_URL, DEFAULT_URL),
                   help=f"RCA server URL (default {DEFAULT_URL}, or ${ENV_SERVER_URL})")
    p.add_argument("--port", type=int, default=DEFAULT_UI_PORT, help=f"port of the web pages (default {DEFAULT_UI_PORT})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--key", default=None,
                   help="API key sent as a bearer token when the server requires keys (default: env RCA_API_KEY)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to wait for the server per request before saying it is slow (default 5)")


def streamlit_command(*, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--server.runOnSave", "false", "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal", "--theme.base", "light",
    ]


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError naming the port when something already listens there (Streamlit would
    fail later with a less clear message, and its health check would answer for the other app)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"port {port} on {host} is already in use (pick another with --port)") from exc


class UiProcess:
    """The Streamlit server as a child process (used by ``rca ui``, ``rca demo`` and tests)."""

    def __init__(self, server_url: str, *, port: int = DEFAULT_UI_PORT, host: str = "127.0.0.1",
                 timeout: float = 5.0, quiet: bool = True, api_key: str | None = None) -> None:
        self.server_url = server_url
        self.host, self.port = host, port
        _check_port_free(host, port)
        env = dict(os.environ)
        env[ENV_SERVER_URL] = server_url
        env[ENV_TIMEOUT] = str(timeout)
        if api_key:
            env["RCA_API_KEY"] = api_key  # workbench.client sends it with every request
        env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
        # Streamlit's own output goes to a temporary log, shown when it fails to start
        self._log = tempfile.TemporaryFile(mode="w+b") if quiet else None  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(streamlit_command(port=port, host=host), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT if quiet else None, stdin=subprocess.DEVNULL)

    def output_tail(self, n: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:].strip()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> UiProcess:
        """Block until the pages answer (Streamlit's health endpoint), or raise RuntimeError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.output_tail()
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode} (is port {self.port} free?)"
                                   + (f"\n{tail}" if tail else ""))
            try:
                if httpx.get(f"{self.url}/_stcore/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the web pages did not start on {self.url} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> UiProcess:
        return self.wait_ready()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _exit_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    try:
        ui = UiProcess(args.url, port=args.port, host=args.host, timeout=args.timeout, quiet=True,
                       api_key=args.key)
    except OSError as exc:
        print(f"rca ui: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _exit_on_term)  # stop the Streamlit child on `kill` too
    try:
        ui.wait_ready()
    except RuntimeError as exc:
        print(f"rca ui: {exc}", file=sys.stderr)
        ui.stop()
        return 1
    print(f"RCA web pages on {ui.url}  (server {args.url}); deep link: {ui.url}/incident?id=INCIDENT_ID", flush=True)
    print("press Ctrl-C to stop", flush=True)
    try:
        return ui.proc.wait() or 0
    except KeyboardInterrupt:
        print("\nstopped.")
        return 0
    finally:
        ui.stop()
