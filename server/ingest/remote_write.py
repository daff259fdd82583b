"""Prometheus remote-write (1.0 and 2.0) -> the metric point table (pure).

A request body is snappy-compressed (block format) protobuf. Each time series becomes
one series of ours: the service is the first of ``service_labels`` present (default
``service``, then ``job``), the metric is ``__name__``, every other non-empty label stays
a label. Samples with a non-finite value are dropped (Prometheus sends a NaN "stale
marker" when a series disappears); they are counted, not stored. The output is the same
Arrow table the JSON path produces (service, metric, ts float64 epoch s, value float64,
labels canonical JSON text or null).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import numpy as np
import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError

from server.ingest import json_scan, prom_scan
from server.ingest.errors import BatchError, DecodeError, UnsupportedMediaType, err
from server.ingest.prompb import TimeSeries, WriteRequest, WriteRequestV2
from server.model.points import Points

V1 = "prometheus.WriteRequest"
V2 = "io.prometheus.write.v2.Request"
MAX_ERRORS = 100
_CACHE_MAX = 200_000


@dataclass(slots=True)
class WriteResult:
    points: Points
    series: int
    samples: int
    dropped_non_finite: int
    proto: str

    @property
    def table(self) -> pa.Table:
        """The wide point table (service, metric, ts, value, labels)."""
        return self.points.table()


def protocol_of(content_type: str | None) -> str:
    """The protobuf message named by the Content-Type (1.0 when no ``proto=`` is given)."""
    ct = (content_type or "application/x-protobuf").lower()
    parts = [p.strip() for p in ct.split(";")]
    if parts[0] not in ("application/x-protobuf", "application/protobuf"):
        raise UnsupportedMediaType(f"remote-write takes Content-Type application/x-protobuf, not {parts[0]!r}")
    for p in parts[1:]:
        if p.startswith("proto="):
            proto = p[len("proto="):].strip('"')
            if proto in (V1.lower(), V2.lower()):
                return V1 if proto == V1.lower() else V2
            raise UnsupportedMediaType(f"unsupported remote-write message {proto!r}; use {V1} or {V2}")
    return V1


def decompress(body: bytes, max_bytes: int, encoding: str | None = "snappy") -> np.ndarray:
    """Snappy block decompression with a bound on the decompressed size, into a byte array
    of the size the block declares (no copy after it)."""
    enc = (encoding or "snappy").strip().lower()
    if enc != "snappy":
        raise UnsupportedMediaType(f"remote-write bodies are Content-Encoding: snappy, not {enc!r}")
    if not body:
        raise DecodeError("request body is empty")
    size = _uvarint(body)
    if size is None:
        raise DecodeError("body is not snappy-compressed (bad length header)")
    if size > max_bytes:
        raise DecodeError(f"decompressed body of {size} bytes exceeds the limit of {max_bytes} bytes")
    out = np.empty(size, dtype=np.uint8)
    try:
        got = cramjam.snappy.decompress_raw_into(body, out.data)
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise DecodeError(f"body is not valid snappy (block format): {exc}") from exc
    if got != size:
        raise DecodeError(f"body is not valid snappy (block format): {got} bytes, not the {size} declared")
    return out


def _uvarint(buf: bytes) -> int | None:
    value = shift = 0
    for i, b in enumerate(buf[:10]):
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value if i < 5 else None
        shift += 7
    return None


class SeriesCache:
    """(raw label pairs) -> (service, metric, labels text): Prometheus sends the same
    series in every request, so each label set is turned into our series key once."""

    def __init__(self, service_labels: Sequence[str]) -> None:
        self.service_labels = tuple(service_labels)
        self._d: dict[tuple[str, ...], tuple[str | None, str | None, str | None]] = {}
        # fast path: raw label bytes -> series number; the series' key columns by number
        self._raw: dict[bytes, int] = {}
        self.svc: list[str | None] = []
        self.met: list[str | None] = []
        self.lab: list[str | None] = []
        self.bad: set[int] = set()  # series numbers without a service or metric name
        # raw series number -> number of its (service, metric, labels) key: label sets spelt
        # in another order are one series
        self.canon: list[int] = []
        self._canon_of: dict[tuple[str | None, str | None, str | None], int] = {}
        self._canon_arr: np.ndarray = np.empty(0, dtype=np.int64)
        self.keys: list[tuple[str | None, str | None, str | None]] = []
        self._cols: tuple[int, pa.Array, pa.Array, pa.Array] | None = None
        self.lock = threading.Lock()  # requests decode in worker threads; one at a time per cache
        #: the last request's distinct label bytes (lengths, bytes back to back) and their series numbers
        self.last_spans: tuple[np.ndarray, np.ndarray, list[int]] | None = None
        #: the last request's bytes, label spans, their numbering (intern_spans' result) and
        #: the series numbers of the distinct ones
        self.last_layout: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]] | None = None
        #: the last request's sample -> label span numbers and the batch's series and codes
        #: (valid while its layout is: a request like it reuses both after one compare)
        self.last_points: tuple[np.ndarray, pa.Table, np.ndarray] | None = None
        #: with last_points: the last request's bytes, where its samples' values and times sit
        #: (scan_v1's fields) and its number of series; a request of the same bytes but for
        #: those is read without a scan (prom_scan.same_but_samples)
        self.last_fields: tuple[np.ndarray, np.ndarray, int] | None = None

    def canonical(self) -> tuple[np.ndarray, pa.Array, pa.Array, pa.Array]:
        """(raw series number -> key number, and the key columns by key number)."""
        if len(self._canon_arr) != len(self.canon):
            self._canon_arr = np.array(self.canon, dtype=np.int64)
        n = len(self.keys)
        if self._cols is None or self._cols[0] != n:
            svc, met, lab = zip(*self.keys, strict=True) if self.keys else ((), (), ())
            self._cols = (n, pa.array(svc, type=pa.string()), pa.array(met, type=pa.string()),
                          pa.array(lab, type=pa.string()))
        return self._canon_arr, self._cols[1], self._cols[2], self._cols[3]

    def begin(self) -> None:
        """Bound memory between requests (series numbers stay valid within one)."""
        if len(self._raw) >= _CACHE_MAX:
            self._raw.clear()
            self.last_spans = self.last_layout = self.last_points = self.last_fields = None
            self.svc, self.met, self.lab = [], [], []
            self.bad, self._cols = set(), None
            self.canon, self._canon_of, self.keys = [], {}, []
            self._canon_arr = np.empty(0, dtype=np.int64)
        if len(self._d) >= _CACHE_MAX:
            self._d.clear()

    def raw_id(self, label_bytes: bytes) -> int:
        hit = self._raw.get(label_bytes)
        if hit is not None:
            return hit
        ts = TimeSeries.FromString(label_bytes)
        s, m, t = self.key(tuple(x for lab in ts.labels for x in (lab.name, lab.value)))
        n = len(self.svc)
        self.svc.append(s)
        self.met.append(m)
        self.lab.append(t)
        key = (s, m, t)
        c = self._canon_of.get(key)
        if c is None:
            c = self._canon_of[key] = len(self.keys)
            self.keys.append(key)
        self.canon.append(c)
        if s is None or m is None:
            self.bad.add(n)
        self._raw[label_bytes] = n
        return n

    def key(self, pairs: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
        hit = self._d.get(pairs)
        if hit is not None:
            return hit
        lab = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2) if pairs[i + 1] != ""}
        metric = lab.pop("__name__", None)
        service = None
        for name in self.service_labels:
            if name in lab:
                service = lab.pop(name)
                break
        text = orjson.dumps(lab, option=orjson.OPT_SORT_KEYS).decode() if lab else None
        out = (service, metric, text)
        self._d[pairs] = out
        return out


def decode(raw: bytes | np.ndarray, *, proto: str = V1, cache: SeriesCache) -> WriteResult:
    """Decompressed protobuf -> point table. Whole-request validation: a series without
    a metric name or a service label rejects the request (422), nothing is kept."""
    with cache.lock:
        return _decode(raw, proto, cache)


def _decode(raw: bytes | np.ndarray, proto: str, cache: SeriesCache) -> WriteResult:
    cache.begin()
    if proto == V1:
        fast = _decode_v1_fast(np.frombuffer(raw, np.uint8) if isinstance(raw, bytes) else raw, cache)
        if fast is not None:
            return fast
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes()
    try:
        req = (WriteRequest if proto == V1 else WriteRequestV2).FromString(raw)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"body is not a valid {proto} protobuf message: {exc}") from exc
    if proto == V1:
        series = [(tuple(x for lab in ts.labels for x in (lab.name, lab.value)), ts.samples)
                  for ts in req.timeseries]
    else:
        symbols = list(req.symbols)
        series = []
        for i, ts in enumerate(req.timeseries):
            refs = list(ts.labels_refs)
            if len(refs) % 2 or (refs and max(refs) >= len(symbols)):
                raise DecodeError(f"timeseries {i}: labels_refs must be pairs of indices into symbols")
            series.append((tuple(symbols[r] for r in refs), ts.samples))
    return _table(series, cache, proto)


def _writable(buf: np.ndarray) -> np.ndarray:
    """The request's bytes as the next request's compare may write them (see
    ``prom_scan.same_but_samples``): a decompressed body already is; bytes are copied."""
    return buf if buf.flags.writeable else buf.copy()


def _decode_v1_fast(buf: np.ndarray, cache: SeriesCache) -> WriteResult | None:
    """The compiled scan (see :mod:`server.ingest.prom_scan`) of the request's bytes;
    None: use the protobuf library."""
    memo, prior = cache.last_fields, cache.last_points
    if memo is not None and prior is not None and len(buf) == len(memo[0]):
        # the usual scrape: the last request's bytes but for the samples' values and times
        ok, ts_ms, values = prom_scan.same_but_samples(buf, memo[0], memo[1])
        if ok and np.isfinite(values).all():
            cache.last_fields = (_writable(buf), memo[1], memo[2])
            return WriteResult(Points(prior[1], prior[2].copy(), ts_ms.astype(np.float64) / 1e3, values),
                               memo[2], len(values), 0, V1)
    status, ls, le, n_series, s_series, s_ts, s_val, n, fields = prom_scan.scan_v1(
        buf, len(buf) // prom_scan.BYTES_PER_SERIES + 64)
    if status == prom_scan.GROW:
        status, ls, le, n_series, s_series, s_ts, s_val, n, fields = prom_scan.scan_v1(buf, 0)
    cache.last_fields = None
    if status != prom_scan.OK:
        return None
    # where this request's samples sit, kept with its points (see above)
    sample_fields = (_writable(buf), fields[:n].copy(), n_series) if n and fields[0, 0] >= 0 else None
    get = cache.raw_id
    # Prometheus sends each series' labels again with every sample: equal label bytes are
    # numbered in the compiled pass, and only the distinct ones are looked up in the cache
    starts, ends = ls[:n_series], le[:n_series]
    layout = cache.last_layout
    if (layout is not None and np.array_equal(layout[1], starts) and np.array_equal(layout[2], ends)
            and prom_scan.same_spans(buf, layout[0], starts, ends)):
        # the label spans of the last request, in its order: its numbering and series numbers
        same, first, distinct = layout[3], layout[4], layout[5]
        prior, values = cache.last_points, s_val[:n]
        if prior is not None and np.array_equal(prior[0], s_series[:n]) and np.isfinite(values).all():
            # and its samples laid out as its were (the usual scrape): its series and codes
            ts = s_ts[:n].astype(np.float64) / 1e3
            cache.last_fields = sample_fields
            return WriteResult(Points(prior[1], prior[2].copy(), ts, values.copy()), n_series, n, 0, V1)
    else:
        cache.last_points = None  # made for another layout
        same, first = json_scan.intern_spans(buf, starts, ends)
        # the distinct label bytes, back to back: a request with the series of the last one
        # in another layout reuses its series numbers after one compare
        f_start, f_end = starts[first], ends[first]
        lens = f_end - f_start
        gathered, _ = json_scan.gather(buf, f_start, f_end)
        last = cache.last_spans
        if last is not None and np.array_equal(last[0], lens) and np.array_equal(last[1], gathered):
            distinct = last[2]
        else:
            try:
                distinct = [get(buf[a:b].tobytes()) for a, b in zip(f_start.tolist(), f_end.tolist(), strict=True)]
            except ProtobufDecodeError:
                return None
            cache.last_spans = (lens, gathered, distinct)
    cache.last_layout = (buf, starts, ends, same, first, distinct)
    ids = np.array(distinct, dtype=np.int64)[same]
    id_list = distinct
    svc, met = cache.svc, cache.met
    bad = ([i for i, k in enumerate(ids.tolist()) if k in cache.bad]
           if cache.bad and not cache.bad.isdisjoint(id_list) else [])
    if bad:
        errors: list[dict[str, Any]] = []
        for i in bad[:MAX_ERRORS]:
            k = int(ids[i])
            if met[k] is None:
                errors.append(err(["body", "timeseries", i, "labels", "__name__"],
                                  "series has no __name__ label (metric name)", "missing"))
            if svc[k] is None:
                errors.append(err(["body", "timeseries", i, "labels"],
                                  f"series has none of the service labels {list(cache.service_labels)}", "missing"))
        raise BatchError(errors)
    if not n:
        return WriteResult(Points.empty(), n_series, 0, 0, V1)
    values = s_val[:n]
    canon, c_svc, c_met, c_lab = cache.canonical()
    sample_ids = canon[ids[s_series[:n]]]
    ts = s_ts[:n].astype(np.float64) / 1e3
    keep = np.isfinite(values)
    dropped = int(n - keep.sum())
    if dropped:
        sample_ids, ts, values = sample_ids[keep], ts[keep], values[keep]
    # the request's series: the keys its samples use, numbered in this batch
    used = np.zeros(len(cache.keys), dtype=bool)
    used[sample_ids] = True
    keys = np.flatnonzero(used)
    remap = np.zeros(len(cache.keys), dtype=np.int32)
    remap[keys] = np.arange(len(keys), dtype=np.int32)
    take = pa.array(keys, type=pa.int64())
    series = pa.table({"service": c_svc.take(take), "metric": c_met.take(take), "labels": c_lab.take(take)})
    points = Points(series, remap[sample_ids], np.ascontiguousarray(ts), values.copy())
    if not dropped:
        cache.last_points = (s_series[:n].copy(), series, points.code)
        cache.last_fields = sample_fields
    return WriteResult(points, n_series, n, dropped, V1)


def _table(series: list[tuple[tuple[str, ...], Any]], cache: SeriesCache, proto: str) -> WriteResult:
    errors: list[dict[str, Any]] = []
    svc: list[str | None] = []
    met: list[str | None] = []
    lab: list[str | None] = []
    counts: list[int] = []
    ts_parts: list[list[int]] = []
    val_parts: list[list[float]] = []
    for i, (pairs, samples) in enumerate(series):
        s, m, t = cache.key(pairs)
        if m is None or s is None:
            if len(errors) < MAX_ERRORS:
                if m is None:
                    errors.append(err(["body", "timeseries", i, "labels", "__name__"],
                                      "series has no __name__ label (metric name)", "missing"))
                if s is None:
                    errors.append(err(["body", "timeseries", i, "labels"],
                                      f"series has none of the service labels {list(cache.service_labels)}",
                                      "missing"))
            continue
        n = len(samples)
        if not n:
            continue
        svc.append(s)
        met.append(m)
        lab.append(t)
        counts.append(n)
        ts_parts.append([x.timestamp for x in samples])
        val_parts.append([x.value for x in samples])
    if errors:
        raise BatchError(errors)
    total = sum(counts)
    if not total:
        return WriteResult(Points.empty(), len(series), 0, 0, proto)
    ts = np.fromiter((t for part in ts_parts for t in part), dtype=np.float64, count=total) / 1e3
    values = np.fromiter((v for part in val_parts for v in part), dtype=np.float64, count=total)
    idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    keep = np.isfinite(values)
    dropped = int(total - keep.sum())
    if dropped:
        idx, ts, values = idx[keep], ts[keep], values[keep]
    take = pa.array(idx, type=pa.int32())
    table = pa.table({
        "service": pa.array(svc, type=pa.string()).take(take),
        "metric": pa.array(met, type=pa.string()).take(take),
        "ts": pa.array(ts, type=pa.float64()),
        "value": pa.array(values, type=pa.float64()),
        "labels": pa.array(lab, type=pa.string()).take(take),
    })
    return WriteResult(Points.from_table(table), len(series), total, dropped, proto)


def encode_v1(series: Sequence[tuple[dict[str, str], Sequence[tuple[float, float]]]]) -> bytes:
    """A snappy-compressed remote-write 1.0 body: ``[(labels, [(ts_seconds, value), ...])]``
    (used by tests and the benchmark; Prometheus itself is the real client)."""
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for t, v in samples:
            ts.samples.add(value=v, timestamp=int(round(t * 1000)))
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def encode_v2(series: Sequence[tuple[dict[str, str], Sequence[tuple[float, float]]]]) -> bytes:
    """A snappy-compressed remote-write 2.0 body (symbols table + label refs)."""
    req = WriteRequestV2()
    symbols: dict[str, int] = {"": 0}
    for labels, samples in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            for s in (k, labels[k]):
                ts.labels_refs.append(symbols.setdefault(s, len(symbols)))
        for t, v in samples:
            ts.samples.add(value=v, timestamp=int(round(t * 1000)))
    req.symbols.extend(symbols)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
