"""Writing an export: Parquet files plus ``manifest.json``, into a directory or into a
zip written incrementally to a byte stream (what ``GET /export`` sends).

Memory stays bounded by one record batch: each batch becomes one Parquet row group
written straight to the output, and the zip sink hands out its bytes after every batch.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from server.export.tables import EXPORT_SCHEMA_VERSION, ExportFilter, TableSource, sources
from server.store.base import Store
from server.timeutil import iso

MANIFEST = "manifest.json"
MODEL_FILE = "model.bin"


class _Counting:
    """A write-only binary file that knows its position (Parquet needs ``tell``)."""

    def __init__(self, raw: IO[bytes] | Any) -> None:
        self.raw = raw
        self.pos = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self.raw.write(data)
        self.pos += n
        return n

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


class Target(Protocol):
    def open(self, name: str) -> AbstractContextManager[IO[bytes]]: ...

    def write_bytes(self, name: str, data: bytes) -> None: ...


class DirectoryTarget:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        return (self.path / name).open("wb")

    def write_bytes(self, name: str, data: bytes) -> None:
        (self.path / name).write_bytes(data)


class ByteSink:
    """A non-seekable output that buffers what is written until :meth:`take`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class ZipTarget:
    """Entries written one after another into a zip on a non-seekable sink (sizes go in
    data descriptors; Parquet is already compressed, so entries are stored)."""

    def __init__(self, sink: ByteSink) -> None:
        self.zip = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)  # type: ignore[call-overload]

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        return self.zip.open(name, "w", force_zip64=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        self.zip.writestr(name, data)

    def close(self) -> None:
        self.zip.close()


@dataclass(slots=True)
class Progress:
    table: str
    rows: int  # rows of this table written so far
    total_rows: int  # rows of every table written so far
    done: bool = False


@dataclass(slots=True)
class _Span:
    lo: float | None = None
    hi: float | None = None

    def add(self, col: pa.Array | pa.ChunkedArray) -> None:
        if len(col) == 0:
            return
        mm = pc.min_max(pc.cast(pc.cast(col, pa.int64()), pa.float64()))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo is None or hi is None:
            return
        lo, hi = lo / 1e6, hi / 1e6
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)


@dataclass(slots=True)
class ExportInfo:
    """What the manifest records beside the counts (the server's identity and settings)."""

    server_version: str
    settings: dict[str, Any] = field(default_factory=dict)


def write_export(store: Store, filt: ExportFilter, target: Target, info: ExportInfo, *,
                 tables: list[TableSource] | None = None) -> Iterator[Progress]:
    """Write every table and then the manifest to ``target``; yields after every batch."""
    counts: dict[str, int] = {}
    files: dict[str, str] = {}
    span = _Span()
    total = 0
    started = time.time()
    for src in tables if tables is not None else sources(store, filt):
        fname = f"{src.name}.parquet"
        n = 0
        with target.open(fname) as raw:
            out = _Counting(raw)
            # dictionary pages for the string columns only: on float columns (values,
            # times) they cost most of the write time and save nothing
            strings = [f.name for f in src.schema if pa.types.is_string(f.type)]
            writer = pq.ParquetWriter(pa.PythonFile(out, mode="w"), src.schema, compression="zstd",
                                      use_dictionary=strings)
            try:
                for batch in src.batches():
                    writer.write_batch(batch)
                    n += batch.num_rows
                    total += batch.num_rows
                    if src.name in ("metrics", "logs"):
                        span.add(batch.column("ts"))
                    yield Progress(src.name, n, total)
            finally:
                writer.close()
        counts[src.name] = n
        files[src.name] = fname
        yield Progress(src.name, n, total, done=True)
    model: dict[str, Any] | None = None
    latest = store.load_latest_model()
    if latest is not None:
        version, blob, model_info = latest
        target.write_bytes(MODEL_FILE, blob)
        model = {"file": MODEL_FILE, "version": version, "info": model_info}
    manifest = {
        "format": "rca-export",
        "schema_version": EXPORT_SCHEMA_VERSION,
        "server_version": info.server_version,
        "created_at": iso(started),
        "seconds": round(time.time() - started, 3),
        "time_range": {"since": iso(filt.since), "until": iso(filt.until),
                       "data_first": iso(span.lo), "data_last": iso(span.hi)},
        "filters": {"services": list(filt.services)},
        "counts": counts,
        "files": files,
        "model": model,
        "settings": info.settings,
    }
    target.write_bytes(MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
    yield Progress(MANIFEST, 0, total, done=True)


def export_to_dir(store: Store, filt: ExportFilter, out: Path, info: ExportInfo) -> dict[str, Any]:
    """Write an export directory straight from a store (same files as the zip); returns the manifest."""
    for _ in write_export(store, filt, DirectoryTarget(out), info):
        pass
    return dict(json.loads((Path(out) / MANIFEST).read_text()))


def zip_stream(store: Store, filt: ExportFilter, info: ExportInfo) -> Iterator[bytes]:
    """The export as zip bytes, produced incrementally (a chunk after every batch)."""
    sink = ByteSink()
    target = ZipTarget(sink)
    try:
        for _ in write_export(store, filt, target, info):
            chunk = sink.take()
            if chunk:
                yield chunk
    finally:
        target.close()
    tail = sink.take()
    if tail:
        yield tail
