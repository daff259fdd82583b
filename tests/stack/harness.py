"""Stack mode as separate OS processes on the real broker and PostgreSQL: the API
(`rca serve --role api`) and stage workers (`rca worker STAGE`), each its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from server.embedded import free_port

RCA = str(Path(sys.executable).with_name("rca"))


class Stack:
    def __init__(self, *, bootstrap: str, dsn: str, data_dir: Path, partitions: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ,
                    "RCA_BUS__BACKEND": "kafka", "RCA_BUS__BOOTSTRAP_SERVERS": bootstrap,
                    "RCA_BUS__PARTITIONS": str(partitions), "RCA_BUS__TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}",
                    "RCA_BUS__SESSION_TIMEOUT_MS": "6000",
                    "RCA_STORE__BACKEND": "postgres", "RCA_STORE__POSTGRES_DSN": dsn,
                    "RCA_PIPELINE__CHECKPOINT_SECONDS": "2", "RCA_DATA_DIR": str(data_dir),
                    "RCA_LOG_LEVEL": "warning"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        data_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the process)
        p = subprocess.Popen([RCA, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = p
        return p

    def start_api(self) -> None:
        self._spawn("api", ["serve", "--role", "api", "--port", str(self.port)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"api did not start:\n{self.log('api')}")

    def start_worker(self, stage: str, name: str | None = None) -> str:
        name = name or stage
        self._spawn(name, ["worker", stage, "--member-id", name])
        return name

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no checkpoint, no commit."""
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait(30)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/health", timeout=10).json())

    def wait_workers(self, stage: str, n: int, timeout: float = 90.0, *, owning: int | None = None) -> dict[str, Any]:
        """Until ``n`` live workers of ``stage`` report (each owning a partition when
        ``owning`` partitions must be spread over them)."""
        deadline = time.monotonic() + timeout
        h: dict[str, Any] = {}
        while time.monotonic() < deadline:
            h = self.health()
            st = h.get("stages", {}).get(stage, {})
            if st.get("workers") == n:
                a = st.get("assignments", {})
                if owning is None or (len(a) == n and all(a.values())
                                      and sorted(p for ps in a.values() for p in ps) == list(range(owning))):
                    return h
            time.sleep(0.3)
        raise TimeoutError(f"{stage}: wanted {n} workers, health {h}\n" + "\n".join(
            f"--- {k}\n{self.log(k)}" for k in self.procs))

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.procs.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
