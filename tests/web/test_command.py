"""`rca web`: installs and builds only when needed, then serves the app against --url."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.commands import web
from server.embedded import EmbeddedServer, free_port


def _fake_frontend(tmp: Path) -> Path:
    fe = tmp / "frontend"
    (fe / "src").mkdir(parents=True)
    (fe / "node_modules").mkdir()
    (fe / ".next").mkdir()
    for f in ("package.json", "package-lock.json", "node_modules/.package-lock.json", "src/page.tsx",
              ".next/BUILD_ID"):
        (fe / f).write_text("{}")
    return fe


def _touch(p: Path, t: float) -> None:
    os.utime(p, (t, t))


def test_install_and_build_are_redone_only_when_their_inputs_are_newer(tmp_path: Path) -> None:
    fe = _fake_frontend(tmp_path)
    now = time.time()
    for p in fe.rglob("*"):
        _touch(p, now - 100)
    _touch(fe / "node_modules/.package-lock.json", now - 50)
    _touch(fe / ".next/BUILD_ID", now - 50)
    assert not web.deps_stale(fe) and not web.build_stale(fe)
    _touch(fe / "src/page.tsx", now)
    assert web.build_stale(fe) and not web.deps_stale(fe)
    _touch(fe / "package-lock.json", now)
    assert web.deps_stale(fe)
    (fe / ".next/BUILD_ID").unlink()
    assert web.build_stale(fe)


def test_a_missing_web_app_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(web.WebError, match="no web app at"):
        web.check_tools(tmp_path / "nowhere")


def test_rca_web_serves_the_built_app_against_the_given_server(built_app: Path, tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "web", "--url", srv.url, "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/incidents", timeout=10)
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            else:
                pytest.fail("rca web did not serve within 90 s")
            assert ">Incidents</h1>" in r.text and srv.url in r.text  # the page, read from this server
        finally:
            # `kill` of the command alone (a supervisor's SIGTERM) stops the app's own
            # server too (it runs in a process group of its own), as Ctrl-C does
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "the build is up to date" in out
    assert f"http://127.0.0.1:{port}" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/incidents", timeout=5)
