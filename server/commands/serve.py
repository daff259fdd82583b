"""Start the whole system in one process on the embedded default: the HTTP API, the
detector, grouping and RCA workers as asyncio tasks, a DuckDB file under --data-dir and
an in-process event bus. No other service is needed.

With --role api the process serves ingest and queries only; the stages run as
`rca worker detector|grouping|rca` processes on a shared bus and store (stack mode:
RCA_BUS__BACKEND=kafka, RCA_STORE__BACKEND=postgres; `stack/local.sh env` prints them).

Settings can also come from environment variables with the prefix RCA_
(e.g. RCA_DATA_DIR, RCA_PORT, RCA_GROUPING__GAP_SECONDS); flags win over them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1, env RCA_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000, env RCA_PORT)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory for the DuckDB file and detector state (default ./data, env RCA_DATA_DIR)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.add_argument("--role", default=None, choices=["all", "api"],
                   help="all: API and every stage in this process (default, env RCA_ROLE); "
                        "api: ingest and queries only, stages run as `rca worker STAGE`")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir,
                                   "log_level": args.log_level, "role": args.role}.items() if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"rca serve: http://{settings.host}:{settings.port}  (docs: /docs, data dir: {settings.data_dir.resolve()})",
          flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False)
    return 0
