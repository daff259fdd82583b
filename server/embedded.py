"""Run the real server in-process on a free port (uvicorn in a thread).

Used by tests, evaluations and ``rca demo``::

    with EmbeddedServer(data_dir=tmp) as srv:
        httpx.get(srv.url + "/health")
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from server.api.guard import uvicorn_options
from server.app import create_app
from server.settings import Settings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    def __init__(self, data_dir: Path | str, *, host: str = "127.0.0.1", port: int | None = None,
                 log_level: str = "warning", **overrides: Any) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.settings = Settings(data_dir=Path(data_dir), host=host, port=self.port, **overrides)
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, host=host, port=self.port, log_level=log_level, lifespan="on",
                                access_log=False, **uvicorn_options(self.settings.api.header_timeout_seconds))
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 180.0) -> EmbeddedServer:
        self._thread = threading.Thread(target=self._server.run, name="rca-embedded-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("embedded server failed to start")
            time.sleep(0.02)
        raise TimeoutError("embedded server did not start in time")

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._thread = None

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until every ingested event has been processed (``pending == 0``)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while time.monotonic() < deadline:
                if c.get("/health").json()["pending"] == 0:
                    return
                time.sleep(0.05)
        raise TimeoutError("server still has pending work")

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
