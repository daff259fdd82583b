"""Exports for analysts: download ``GET /export`` into a directory, and load an export
directory (or a live server) into polars or DuckDB in one call.

    from workbench.client import load_polars, load_duckdb
    frames = load_polars("exports/2026-11")          # {"incidents": DataFrame, ...}
    con = load_duckdb("http://127.0.0.1:8000")        # a live server: downloads first
    con.sql("SELECT status, count(*) FROM incidents GROUP BY 1").show()

Every table of the export is there (see docs/export.md for the columns):
incidents, anomalies, suspects, evidence, labels, changes, topology, metrics, logs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from workbench.client.errors import ClientError, NotFound, RequestRejected, ServerError, ValidationFailed
from workbench.client.transport import _detail, _short

if TYPE_CHECKING:
    import duckdb

MANIFEST = "manifest.json"
SUPPORTED_SCHEMA = 1
TimeLike = str | float | int


class ExportError(ClientError):
    """An export directory is missing, incomplete or from an unsupported format version."""


def _params(since: TimeLike | None, until: TimeLike | None,
            services: Iterable[str] | None) -> list[tuple[str, str | int | float | bool | None]]:
    out: list[tuple[str, str | int | float | bool | None]] = []
    if since is not None:
        out.append(("since", str(since)))
    if until is not None:
        out.append(("until", str(until)))
    out += [("service", s) for s in services or ()]
    return out


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    resp.read()
    detail = _detail(resp)
    msg = f"GET /export: HTTP {resp.status_code}: {_short(detail)}"
    cls = {404: NotFound, 422: ValidationFailed}.get(resp.status_code)
    if cls is None:
        cls = ServerError if resp.status_code >= 500 else RequestRejected
    raise cls(msg, status_code=resp.status_code, detail=detail)


def download_export(base_url: str, out_dir: Path | str, *, since: TimeLike | None = None,
                    until: TimeLike | None = None, services: Iterable[str] | None = None,
                    on_bytes: Callable[[int], None] | None = None, timeout: float = 60.0,
                    headers: dict[str, str] | None = None, chunk_bytes: int = 1 << 20) -> dict[str, Any]:
    """Stream ``GET /export`` to disk and unpack it into ``out_dir``; returns the manifest.

    The zip goes to a file next to the output (never into memory) and is removed after it
    is unpacked. ``on_bytes(n)`` is called for every chunk received (progress bars).
    Raises :class:`ExportError` when the download is incomplete or the row counts of the
    files disagree with the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    part = out / ".export.zip.part"
    url = base_url.rstrip("/")
    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                          headers=headers) as http, \
                http.stream("GET", "/export", params=_params(since, until, services)) as resp:
            _raise_for(resp)
            with part.open("wb") as f:
                for chunk in resp.iter_bytes(chunk_bytes):
                    f.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
    except httpx.TimeoutException as exc:
        part.unlink(missing_ok=True)
        raise ClientError(f"GET /export: server at {url} did not answer in time ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise ClientError(f"GET /export: cannot read the export from {url}: {exc or type(exc).__name__}") from exc
    try:
        with zipfile.ZipFile(part) as zf:
            for member in zf.namelist():
                if "/" in member or member.startswith("."):
                    raise ExportError(f"unexpected entry {member!r} in the export zip")
            zf.extractall(out)
    except zipfile.BadZipFile as exc:
        raise ExportError(f"the export from {url} is not a complete zip (connection cut?): {exc}") from exc
    finally:
        part.unlink(missing_ok=True)
    return verify_export(out)


def read_manifest(path: Path | str) -> dict[str, Any]:
    p = Path(path) / MANIFEST
    if not p.exists():
        raise ExportError(f"{path} is not an export directory (no {MANIFEST}; incomplete export?)")
    manifest: dict[str, Any] = json.loads(p.read_text())
    version = manifest.get("schema_version")
    if manifest.get("format") != "rca-export" or not isinstance(version, int):
        raise ExportError(f"{p} is not an rca export manifest")
    if version > SUPPORTED_SCHEMA:
        raise ExportError(f"export schema {version} is newer than this client supports ({SUPPORTED_SCHEMA}); "
                          "upgrade rca-workbench")
    return manifest


def verify_export(path: Path | str) -> dict[str, Any]:
    """The manifest, after checking every table's file exists with the row count it states."""
    import pyarrow.parquet as pq

    manifest = read_manifest(path)
    for table, n in manifest["counts"].items():
        f = Path(path) / manifest["files"][table]
        if not f.exists():
            raise ExportError(f"{f} is missing")
        rows = pq.ParquetFile(f).metadata.num_rows
        if rows != n:
            raise ExportError(f"{f} has {rows} rows, the manifest says {n}")
    return manifest


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _files(path: Path, tables: Iterable[str] | None) -> dict[str, Path]:
    manifest = read_manifest(path)
    names = list(tables) if tables is not None else list(manifest["files"])
    unknown = [t for t in names if t not in manifest["files"]]
    if unknown:
        raise ExportError(f"no table {unknown[0]!r} in the export; tables: {', '.join(manifest['files'])}")
    return {t: path / manifest["files"][t] for t in names}


def load_polars(source: Path | str, *, tables: Iterable[str] | None = None, lazy: bool = False,
                since: TimeLike | None = None, until: TimeLike | None = None,
                services: Iterable[str] | None = None) -> dict[str, Any]:
    """Every table of an export directory, or of a live server (a ``http(s)://`` URL;
    ``since``/``until``/``services`` filter that download), as polars DataFrames keyed by
    table name; ``lazy=True`` gives LazyFrames over the files (directory sources only)."""
    import polars as pl

    if _is_url(source):
        with tempfile.TemporaryDirectory(prefix="rca-export-") as tmp:
            download_export(str(source), tmp, since=since, until=until, services=services)
            return {t: pl.read_parquet(f) for t, f in _files(Path(tmp), tables).items()}
    files = _files(Path(source), tables)
    if lazy:
        return {t: pl.scan_parquet(f) for t, f in files.items()}
    return {t: pl.read_parquet(f) for t, f in files.items()}


def load_duckdb(source: Path | str, *, con: duckdb.DuckDBPyConnection | None = None,
                tables: Iterable[str] | None = None, since: TimeLike | None = None,
                until: TimeLike | None = None, services: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new in-memory one unless ``con`` is given) with one relation
    per table: views over the Parquet files of an export directory, or tables loaded
    from a live server (a ``http(s)://`` URL, downloaded first)."""
    import duckdb

    con = con if con is not None else duckdb.connect()
    if _is_url(source):
        tmp = tempfile.mkdtemp(prefix="rca-export-")
        try:
            download_export(str(source), tmp, since=since, until=until, services=services)
            for t, f in _files(Path(tmp), tables).items():
                con.execute(f'CREATE OR REPLACE TABLE "{t}" AS SELECT * FROM read_parquet(?)', [str(f)])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return con
    for t, f in _files(Path(source), tables).items():
        path = str(f.resolve()).replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW \"{t}\" AS SELECT * FROM read_parquet('{path}')")
    return con

