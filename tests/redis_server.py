"""A real Redis (Debian's redis-server) for the tests: a private server on a free port with
its data in the test's tmp dir, stopped by PID. Installs the package first through
``stack/lib/redis.sh install`` when it is missing (idempotent; needs root for apt)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from server.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


def ensure_installed() -> None:
    if shutil.which("redis-server"):
        return
    subprocess.run(["bash", str(ROOT / "stack" / "lib" / "redis.sh"), "install"], check=True, timeout=900)


class RedisServer:
    def __init__(self, data_dir: Path) -> None:
        ensure_installed()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "redis.log"
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(data_dir),
             "--save", "", "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.RedisError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"redis-server did not start:\n{log}") from exc
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
