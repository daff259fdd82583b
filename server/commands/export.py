"""Export a server's incident history for analysis: incidents, anomalies, suspects with
their evidence, labels, changes, topology, metrics and logs as Parquet files, plus
manifest.json (schema version, row counts, time range, server version).

The data comes over HTTP (GET /export, a streamed zip), so this works against a remote
server as well as a local one; it is written to disk as it arrives (bounded memory) and
unpacked into --out. Load the result with workbench.client.load_polars / load_duckdb,
or open the notebooks in notebooks/.

Examples:
  rca export --url http://127.0.0.1:8000 --out exports/nov
  rca export --out exports/payments --service payments --since 2026-11-01T00:00:00Z
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("RCA_URL", "http://127.0.0.1:8000"),
                   help="server base URL (default $RCA_URL or http://127.0.0.1:8000)")
    p.add_argument("--out", type=Path, required=True, help="directory to write the Parquet files and manifest to")
    p.add_argument("--since", default=None, help="ISO 8601 or epoch seconds: rows at or after this time")
    p.add_argument("--until", default=None, help="ISO 8601 or epoch seconds: rows at or before this time")
    p.add_argument("--service", action="append", default=None,
                   help="only rows of this service (repeatable; an incident matches if any of its services does)")
    p.add_argument("--force", action="store_true", help="write into --out even if it already holds an export")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server per read")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.table import Table

    from workbench.client.errors import ClientError
    from workbench.client.export import MANIFEST, download_export

    err = Console(stderr=True)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        err.print(f"[red]rca export: --out {out} is a file, not a directory[/red]")
        return 2
    if (out / MANIFEST).exists() and not args.force:
        err.print(f"[red]rca export: {out} already holds an export; use --force to overwrite it[/red]")
        return 2
    (out / MANIFEST).unlink(missing_ok=True)
    t0 = time.perf_counter()
    progress = Progress(TextColumn("[bold]export[/bold] {task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeElapsedColumn(), console=err, disable=args.quiet,
                        transient=False)
    try:
        with progress:
            task = progress.add_task(args.url, total=None)
            manifest = download_export(args.url, out, since=args.since, until=args.until, services=args.service,
                                       timeout=args.timeout, on_bytes=lambda n: progress.advance(task, n))
            done = progress.tasks[0].completed
            progress.update(task, total=done, completed=done)
    except ClientError as exc:
        err.print(f"[red]rca export: {exc}[/red]")
        return 1
    seconds = time.perf_counter() - t0
    counts = manifest["counts"]
    table = Table(show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    con = Console(file=sys.stdout)
    con.print(f"export written to {out}", soft_wrap=True)
    con.print(table)
    tr = manifest["time_range"]
    points = counts.get("metrics", 0) + counts.get("logs", 0)
    con.print(f"data {tr.get('data_first') or '-'} .. {tr.get('data_last') or '-'}; server {manifest['server_version']}, "
              f"export schema {manifest['schema_version']}; {seconds:.1f} s ({points / max(seconds, 1e-9):,.0f} "
              "points and log lines/s)", soft_wrap=True)
    return 0
