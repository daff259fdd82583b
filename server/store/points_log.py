"""The accepted-points log behind the DuckDB store's group commit.

Appending every ingest batch to DuckDB on its own costs a statement, a commit and a
write-ahead-log record per batch (about half of the store's time for 10k-point batches).
With group commit the store appends waiting batches to DuckDB together; until then each
accepted batch lives in this file, written and synced before the API answers 202, so an
acknowledged point survives a crash of the process or of the machine.

A record is a 20-byte header (magic, the batch's ingest sequence number, the number of
points, the CRC-32 of the payload) and the payload: series ids (int32), timestamps and
values (float64), little-endian. The file is emptied once DuckDB holds what it holds; on
open the store re-appends the records whose sequence is newer than any stored batch. A
torn record at the end (a crash in the middle of a write, never acknowledged) ends the
replay.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

_HEADER = struct.Struct("<4sqII")  # magic, seq, points, crc32 of the payload
_MAGIC = b"RCAP"


class PointsLog:
    """An append-only file of accepted point batches (one writer: the store, under its lock)."""

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._fd

    def append(self, seq: int, sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        """Write one batch (and sync it, unless ``sync`` is off) before it is acknowledged."""
        parts: list[memoryview] = [memoryview(np.ascontiguousarray(a, dt).data).cast("B")
                                   for a, dt in ((sid, "<i4"), (ts, "<f8"), (value, "<f8"))]
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        record: list[bytes | memoryview] = [_HEADER.pack(_MAGIC, seq, len(sid), crc), *parts]
        size = sum(len(b) for b in record)
        fd = self._open()
        before = os.fstat(fd).st_size
        try:
            written = os.writev(fd, record)
            if written < size:  # a short write (rare on a regular file): write the rest
                rest = b"".join(bytes(b) for b in record)[written:]
                while rest:
                    rest = rest[os.write(fd, rest):]
            if self.sync:
                os.fdatasync(fd)
        except OSError:
            # no torn record may stay in front of later ones (the replay would stop at it)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise

    def read(self) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """The complete records, in order: (seq, series ids, timestamps, values)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        pos = 0
        while pos + _HEADER.size <= len(data):
            magic, seq, n, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + 20 * n
            if magic != _MAGIC or end > len(data):
                break
            payload = data[pos + _HEADER.size:end]
            if zlib.crc32(payload) != crc:
                break
            out.append((seq, np.frombuffer(payload, "<i4", n, 0), np.frombuffer(payload, "<f8", n, 4 * n),
                        np.frombuffer(payload, "<f8", n, 12 * n)))
            pos = end
        return out

    def clear(self) -> None:
        """Empty the file (what it held is in DuckDB now)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            os.truncate(self.path, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
