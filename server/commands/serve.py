"""Start the whole system in one process on the embedded default: the HTTP API, the
detector, grouping and RCA workers as asyncio tasks, a DuckDB file under --data-dir and
an in-process event bus. No other service is needed.

With --role api the process serves ingest and queries only; the stages run as
`rca worker detector|grouping|rca` processes on a shared bus and store (stack mode:
RCA_BUS__BACKEND=kafka, RCA_STORE__BACKEND=postgres; `stack/local.sh env` prints them).

Settings can also come from environment variables with the prefix RCA_
(e.g. RCA_DATA_DIR, RCA_PORT, RCA_GROUPING__GAP_SECONDS); flags win over them.

Security: on a loopback address the server may run open (no API key) until the first key
is created with 'rca keys create'. Listening on any other address needs API keys, or
--allow-open to say explicitly that an open server is wanted.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1, env RCA_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000, env RCA_PORT)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory for the DuckDB file and detector state (default ./data, env RCA_DATA_DIR)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.add_argument("--role", default=None, choices=["all", "api"],
                   help="all: API and every stage in this process (default, env RCA_ROLE); "
                        "api: ingest and queries only, stages run as `rca worker STAGE`")
    p.add_argument("--allow-open", action="store_true", default=None,
                   help="listen on a non-loopback address without API keys (env RCA_AUTH__ALLOW_OPEN)")


def fail(msg: str, code: int = 1) -> int:
    print(f"rca serve: {msg}", file=sys.stderr, flush=True)
    return code


def load_settings(overrides: dict[str, Any]) -> Any:
    """Settings from flags and RCA_ variables; a bad value raises SystemExit with one clear line."""
    from pydantic import ValidationError

    from server.settings import Settings

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            name = "RCA_" + "__".join(str(p).upper() for p in e["loc"])
            lines.append(f"bad setting {name}: {e['msg']} (got {e.get('input')!r})")
        raise SystemExit(fail("; ".join(lines), 2)) from None


def port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another server?); choose another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def preflight(settings: Any) -> str | None:
    """Checks that would otherwise end in a traceback: the port, the data dir, open exposure."""
    from server.app import build_store
    from server.auth import is_loopback
    from server.store.base import StoreError

    why = port_free(settings.host, settings.port)
    if why:
        return why
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        store = build_store(settings)
    except (StoreError, OSError) as exc:
        text = str(exc)
        if "lock" in text.lower():
            return (f"the data dir {Path(settings.data_dir).resolve()} is in use by another process "
                    f"(only one server may open it): {text.splitlines()[0]}")
        return f"cannot open the data dir {Path(settings.data_dir).resolve()}: {text.splitlines()[0]}"
    try:
        keys = store.count_active_api_keys()
    finally:
        store.close()
    if not is_loopback(settings.host) and keys == 0 and settings.auth.mode != "required" \
            and not settings.auth.allow_open:
        return (f"refusing to listen on {settings.host} without API keys: anyone who can reach it could send "
                "data and labels. Create a key first ('rca keys create --role admin --name me'), or pass "
                "--allow-open (RCA_AUTH__ALLOW_OPEN=true) to run open on purpose")
    return None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.guard import uvicorn_options
    from server.app import create_app

    overrides: dict[str, Any] = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir,
                                                   "log_level": args.log_level, "role": args.role}.items()
                                 if v is not None}
    if args.allow_open:
        overrides["auth"] = {"allow_open": True}
    settings = load_settings(overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    why = preflight(settings)
    if why:
        return fail(why)
    print(f"rca serve: http://{settings.host}:{settings.port}  (docs: /docs, data dir: {settings.data_dir.resolve()})",
          flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, **uvicorn_options(settings.api.header_timeout_seconds))
    return 0
