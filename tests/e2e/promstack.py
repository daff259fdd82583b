"""Start the real Prometheus / Alertmanager (Debian packages) for a test: own port, own
data dir under the test's tmp dir, stopped by PID. Installs them first through
``.ci/steps/20-prometheus.sh`` when they are missing (idempotent; needs root for apt)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from server.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def until(fn: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``fn`` every 0.5 s until it returns something truthy (that value), else TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def ensure_installed() -> None:
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        return
    subprocess.run(["bash", "-c", f"set -euo pipefail; source {ROOT / '.ci/steps/20-prometheus.sh'}"], check=True)


class Proc:
    """One child process, logged to a file, stopped by its own PID."""

    def __init__(self, args: list[str], log: Path, ready_url: str, timeout: float = 60.0) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{args[0]} not ready at {ready_url}:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()


def start_prometheus(tmp: Path, config: str) -> tuple[Proc, str]:
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(config)
    data = tmp / "prom-data"
    data.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    proc = Proc(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                tmp / "prometheus.log", f"{url}/-/ready")
    return proc, url


def start_alertmanager(tmp: Path, config: str) -> tuple[Proc, str]:
    port = free_port()
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(config)
    data = tmp / "am-data"
    data.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    proc = Proc(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                tmp / "alertmanager.log", f"{url}/-/ready")
    return proc, url
