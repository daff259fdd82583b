"""`rca demo` end to end as a user runs it (a real subprocess, real ports): the
faulty deployment becomes an incident whose top-3 suspects contain it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.embedded import free_port


def test_demo_detects_the_faulty_deploy(tmp_path: Path) -> None:
    rca = Path(sys.executable).with_name("rca")
    cmd = [str(rca), "demo", "--no-tui", "--exit-after-detect", "--data-dir", str(tmp_path / "demo"),
           "--port", str(free_port()), "--sim-port", str(free_port()), "--interval", "3",
           "--backfill-hours", "0.5", "--timeout", "60", "--ui-port", str(free_port())]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    dep = re.search(r"\(id (dep-[0-9a-f]+)\)", text)
    assert dep, text
    assert "INCIDENT inc-" in text
    ranked = re.findall(r"#(\d) \S+\s+(\S+)\s+score", text)
    assert dep.group(1) in [cid for _, cid in ranked[:3]], text
    assert "/docs" in text and "rca tui --url" in text
    inc = re.search(r"INCIDENT (inc-\d+)", text)
    assert inc and re.search(rf"web pages: +http://127\.0\.0\.1:\d+/incident\?id={inc.group(1)}", text), text


def test_demo_stopped_with_kill_stops_its_web_pages(tmp_path: Path) -> None:
    """SIGTERM (a supervisor, `timeout`, `kill`) stops the demo as Ctrl-C does: it says so,
    exits 0, and its Streamlit child is gone, not left running on its port."""
    rca = Path(sys.executable).with_name("rca")
    ui_port = free_port()
    cmd = [str(rca), "demo", "--no-tui", "--data-dir", str(tmp_path / "demo"), "--port", str(free_port()),
           "--sim-port", str(free_port()), "--interval", "3", "--backfill-hours", "0.5", "--ui-port", str(ui_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "web pages (rca ui) starting on" in line:
                break
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children, "".join(seen)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the pages answer: the child really runs
            try:
                if httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise AssertionError("the web pages never answered")
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "stopped." in rest
    for child in children:
        assert not os.path.exists(f"/proc/{child}"), f"child {child} still runs"
    try:
        httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=1)
        raise AssertionError("the web pages still answer")
    except httpx.TransportError:
        pass


def test_help_explains_commands() -> None:
    rca = Path(sys.executable).with_name("rca")
    out = subprocess.run([str(rca), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for cmd in ("serve", "demo", "sim", "eval", "tui", "ui"):
        assert cmd in out.stdout
    out = subprocess.run([str(rca), "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert "--no-tui" in out.stdout and "--no-ui" in out.stdout and "backfill" in out.stdout
    out = subprocess.run([str(rca), "ui", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--url" in out.stdout and "--port" in out.stdout and "incident?id=" in out.stdout
    out = subprocess.run([str(rca), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert "--data-dir" in out.stdout
