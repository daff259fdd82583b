"""A metric batch as its distinct series plus its points (pure: no I/O).

A series is (service, metric, label set); inside the server a label set travels as its
canonical text (:mod:`server.model.labels`). A :class:`Points` batch holds each of its
distinct series once (``series``: service, metric, labels; ``k`` rows) and, per point,
only the row of its series in that table (``code``, int32), its timestamp and its value.
Every ingest path produces this form, the store, the publisher and the detector consume
it: validation, interning, partitioning and the catalogue work once per series, and no
stage builds a Python object per point. :meth:`Points.table` gives the wide table
(service, metric, ts, value, labels) for code that wants one row per point.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

SEP = "\x1f"  # canonical label JSON never holds a raw \x1f (JSON escapes control characters)

SERIES_SCHEMA = pa.schema([("service", pa.string()), ("metric", pa.string()), ("labels", pa.string())])
POINTS_SCHEMA = pa.schema([("code", pa.int32()), ("ts", pa.float64()), ("value", pa.float64())])

SeriesKey = tuple[str, str, str | None]  # service, metric, canonical label text (None: no labels)


def partition_key(service: str, metric: str) -> bytes:
    """What a series' bus partition is chosen from (see :func:`server.bus.base.partition_of`):
    every label set of one metric of one service lands on one partition."""
    return f"{service}{SEP}{metric}".encode()


@dataclass(frozen=True, slots=True)
class Points:
    series: pa.Table  # service, metric, labels (string; labels null for none), one row per series
    code: np.ndarray  # int32 (n,): row of the point's series in ``series``
    ts: np.ndarray  # float64 (n,), epoch seconds
    value: np.ndarray  # float64 (n,)

    @property
    def n(self) -> int:
        return len(self.code)

    @property
    def k(self) -> int:
        return int(self.series.num_rows)

    def keys(self) -> list[SeriesKey]:
        """The series of the batch as (service, metric, labels) tuples, in ``series`` order."""
        cols = [self.series.column(c).to_pylist() for c in ("service", "metric", "labels")]
        return [(s, m, lab or None) for s, m, lab in zip(*cols, strict=True)]

    def table(self) -> pa.Table:
        """One row per point: service, metric, ts, value, labels (what a wide reader wants)."""
        idx = pa.array(self.code, type=pa.int32())
        return pa.table({
            "service": self.series.column("service").take(idx),
            "metric": self.series.column("metric").take(idx),
            "ts": pa.array(self.ts, type=pa.float64()),
            "value": pa.array(self.value, type=pa.float64()),
            "labels": self.series.column("labels").take(idx),
        })

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Points:
        return cls(SERIES_SCHEMA.empty_table(), np.empty(0, np.int32), np.empty(0), np.empty(0))

    @classmethod
    def build(cls, keys: list[SeriesKey], code: np.ndarray, ts: np.ndarray, value: np.ndarray) -> Points:
        """From per-series keys (which may repeat: two spellings of one label set) and
        per-point codes into ``keys``; repeated keys are merged into one series."""
        return cls.build_with_remap(keys, code, ts, value)[0]

    @classmethod
    def build_with_remap(cls, keys: list[SeriesKey], code: np.ndarray, ts: np.ndarray,
                         value: np.ndarray) -> tuple[Points, np.ndarray | None]:
        """:meth:`build`, and the map from ``keys`` to the batch's series when some keys
        repeat (None: none does, codes are kept)."""
        uniq: dict[SeriesKey, int] = {}
        remap: np.ndarray | None = np.fromiter((uniq.setdefault(k, len(uniq)) for k in keys), dtype=np.int32,
                                               count=len(keys))
        if len(uniq) != len(keys):
            code = remap[code]  # type: ignore[index]
            keys = list(uniq)
        else:
            remap = None
        return cls(_series_table(keys), np.ascontiguousarray(code, dtype=np.int32),
                   np.ascontiguousarray(ts, dtype=np.float64), np.ascontiguousarray(value, dtype=np.float64)), remap

    @classmethod
    def from_table(cls, table: pa.Table) -> Points:
        """From a wide table (service, metric, ts, value, optional labels, each label set in
        its canonical text): the distinct series are found with Arrow's hash kernels, not a
        Python loop over points."""
        n = table.num_rows
        if n == 0:
            return cls.empty()
        cols = []
        for name in ("service", "metric", "labels"):
            if name in table.column_names and table.column(name).type != pa.null():
                col = table.column(name).combine_chunks()
                if pa.types.is_dictionary(col.type):
                    col = col.cast(col.type.value_type)
                cols.append(encode_column(col.cast(pa.string())))
            else:
                cols.append((pa.array([], pa.string()), np.full(n, -1, dtype=np.int64)))
        ts = table.column("ts").to_numpy().astype(np.float64, copy=False)
        value = table.column("value").to_numpy().astype(np.float64, copy=False)
        return cls.from_codes(cols[0], cols[1], cols[2], ts, value)

    @classmethod
    def from_codes(cls, service: tuple[pa.Array, np.ndarray], metric: tuple[pa.Array, np.ndarray],
                   labels: tuple[pa.Array, np.ndarray], ts: np.ndarray, value: np.ndarray) -> Points:
        """From each key column as (distinct values, per-point index into them; -1: null).
        The distinct values of a column must be distinct (labels: distinct canonical texts)."""
        cols = (service, metric, labels)
        sizes = [len(d) + 1 for d, _ in cols]  # + 1: a slot for null
        combined = np.zeros(len(ts), dtype=np.int64)
        for (_, idx), size in zip(cols, sizes, strict=True):
            combined *= size
            combined += np.where(idx < 0, size - 1, idx)
        last = _LAST_CODES
        if (last is not None and len(last[1]) == len(combined) and np.array_equal(last[1], combined)
                and all(a is b or (len(a) == len(b) and a.equals(b)) for a, (b, _) in zip(last[0], cols, strict=True))):
            # the series of the last batch, in the same order (a scrape, a client's fixed layout): one compare
            return cls(last[2], last[3].copy(), np.ascontiguousarray(ts, dtype=np.float64),
                       np.ascontiguousarray(value, dtype=np.float64))
        enc = pc.dictionary_encode(pa.array(combined))
        uniq = enc.dictionary.to_numpy()
        code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        parts = []
        for size in reversed(sizes):
            parts.append(uniq % size)
            uniq = uniq // size
        parts.reverse()
        taken = []
        for (values, _), size, part in zip(cols, sizes, parts, strict=True):
            slot = pa.array(part, pa.int64())
            taken.append(values.take(pc.if_else(pc.equal(slot, size - 1), None, slot)))
        series = pa.table({"service": taken[0], "metric": taken[1], "labels": taken[2]})
        _remember_codes((service[0], metric[0], labels[0]), combined, series, code)
        return cls(series, code.copy(), np.ascontiguousarray(ts, dtype=np.float64),
                   np.ascontiguousarray(value, dtype=np.float64))

    # ---- subsets -----------------------------------------------------------------------
    def take(self, rows: np.ndarray) -> Points:
        """The points at ``rows`` (in that order), with only the series they use."""
        code = self.code[rows]
        used = np.zeros(self.k, dtype=bool)
        used[code] = True
        keep = np.flatnonzero(used)
        if len(keep) == self.k:
            return Points(self.series, code, self.ts[rows], self.value[rows])
        remap = np.full(self.k, -1, dtype=np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        return Points(self.series.take(pa.array(keep)), remap[code], self.ts[rows], self.value[rows])

    def split(self, partition_of_series: np.ndarray, partitions: int) -> list[Points]:
        """One batch per partition (possibly empty), given each series' partition; point
        order is kept within a partition."""
        if partitions <= 1:
            return [self]
        part = partition_of_series[self.code] if self.n else np.empty(0, np.int64)
        return [self.take(np.flatnonzero(part == p)) for p in range(partitions)]

    def partitions(self, partitions: int, cache: dict[tuple[str, str], int] | None = None) -> np.ndarray:
        """The partition of each series (crc32 of service and metric, as the bus hashes keys)."""
        if partitions <= 1:
            return np.zeros(self.k, dtype=np.int64)
        svc = self.series.column("service").to_pylist()
        met = self.series.column("metric").to_pylist()
        out = np.empty(self.k, dtype=np.int64)
        for i, sm in enumerate(zip(svc, met, strict=True)):
            p = cache.get(sm) if cache is not None else None
            if p is None:
                p = zlib.crc32(partition_key(*sm)) % partitions
                if cache is not None:
                    cache[sm] = p
            out[i] = p
        return out

    # ---- bytes -------------------------------------------------------------------------
    def to_ipc(self) -> tuple[bytes, bytes]:
        """(series, points) as two Arrow IPC streams."""
        pts = pa.table({"code": pa.array(self.code, pa.int32()), "ts": pa.array(self.ts, pa.float64()),
                        "value": pa.array(self.value, pa.float64())})
        return _ipc(self.series), _ipc(pts)

    @classmethod
    def from_ipc(cls, series: bytes | memoryview, points: bytes | memoryview) -> Points:
        s = _read(series)
        p = _read(points)
        if p.num_rows == 0:
            return cls(s, np.empty(0, np.int32), np.empty(0), np.empty(0))
        return cls(s, p.column("code").to_numpy().astype(np.int32, copy=False),
                   p.column("ts").to_numpy().astype(np.float64, copy=False),
                   p.column("value").to_numpy().astype(np.float64, copy=False))


# the last batch built by Points.from_codes: its distinct key values, combined per-point
# keys, series table and codes (one tuple, replaced whole: decoders run in worker threads)
_LAST_CODES: tuple[tuple[pa.Array, pa.Array, pa.Array], np.ndarray, pa.Table, np.ndarray] | None = None


def _remember_codes(values: tuple[pa.Array, pa.Array, pa.Array], combined: np.ndarray, series: pa.Table,
                    code: np.ndarray) -> None:
    global _LAST_CODES
    _LAST_CODES = (values, combined, series, code)


def encode_column(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(distinct values, per-row index into them; -1 for null) of a string column."""
    enc = col.dictionary_encode()
    idx = enc.indices
    codes = (idx.fill_null(-1) if idx.null_count else idx).to_numpy(zero_copy_only=False).astype(np.int64)
    return enc.dictionary, codes


def _series_table(keys: list[SeriesKey]) -> pa.Table:
    if not keys:
        return SERIES_SCHEMA.empty_table()
    svc, met, lab = zip(*keys, strict=True)
    return pa.table({"service": pa.array(svc, pa.string()), "metric": pa.array(met, pa.string()),
                     "labels": pa.array(lab, pa.string())})


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    out: bytes = sink.getvalue().to_pybytes()
    return out


def _read(data: Any) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def series_stats(code: np.ndarray, ts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series of a batch: point count, first and last timestamp (one compiled pass)."""
    code = np.ascontiguousarray(code, dtype=np.int32)
    if len(code) and (int(code.min()) < 0 or int(code.max()) >= k):
        raise ValueError(f"series codes must be in [0, {k})")
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = _stats(code, np.ascontiguousarray(ts, dtype=np.float64), k)
    return out


@njit(cache=True, nogil=True)
def _stats(code: np.ndarray, ts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    count = np.zeros(k, dtype=np.int64)
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    for q in range(len(code)):
        c = code[q]
        t = ts[q]
        count[c] += 1
        if t < lo[c]:
            lo[c] = t
        if t > hi[c]:
            hi[c] = t
    return count, lo, hi
