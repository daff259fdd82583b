"""Fast paths for JSON and NDJSON metric batches: bytes straight to a :class:`Points` batch.

First a compiled scan (:mod:`server.ingest.json_scan`) that groups points by series as it
reads them; when the body has a shape it does not take, ``msgspec`` decodes the body against the point schema into compact structs that the
garbage collector never scans (a dict per point, plus its label dict, cost more than the
JSON parsing itself, most of it in collections), label sets stay raw JSON text until
their series is known, and every check that can run once per series (names, label sets)
does. Only a batch that passes every rule takes this path; anything else (a bad item, an
unusual shape) returns None and goes through :func:`server.api.validation.validate_metrics`,
which stays the reference and names every bad item and field. Tests check that both give
the same batch.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from server.api.validation import MAX_LABEL_NAME, MAX_LABEL_VALUE, MAX_LABELS
from server.ingest import json_scan
from server.model.points import Points, SeriesKey
from server.timeutil import TS_MAX, TS_MIN

_NO_LABELS = msgspec.Raw(b"null")


class _Point(msgspec.Struct, gc=False):
    service: str
    metric: str
    ts: float  # ISO 8601 text goes the reference way
    value: float
    labels: msgspec.Raw = _NO_LABELS


class _Body(msgspec.Struct, gc=False):
    points: list[_Point]


_WRAPPED = msgspec.json.Decoder(_Body)
_BARE = msgspec.json.Decoder(list[_Point])
_LINE = msgspec.json.Decoder(_Point)


_CANONICAL: dict[bytes, str | None | bool] = {}  # raw label object -> canonical text (bounded below)


def _labels(raw: bytes) -> str | None | bool:
    """The canonical text of a raw label object (None: no labels; False: not valid),
    remembered: a client sends the same label sets in every batch."""
    got = _CANONICAL.get(raw)
    if got is None and raw not in _CANONICAL:
        if len(_CANONICAL) >= 200_000:
            _CANONICAL.clear()
        got = _CANONICAL[raw] = _parse_labels(raw)
    return got


def _parse_labels(raw: bytes) -> str | None | bool:
    if raw == b"null":
        return None
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    if type(d) is not dict or len(d) > MAX_LABELS:
        return False
    for k, v in d.items():
        if type(v) is not str or not k or len(k) > MAX_LABEL_NAME or len(v) > MAX_LABEL_VALUE:
            return False
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() if d else None


def _ok_name(s: str) -> bool:
    return 0 < len(s) <= 512


def decode(body: bytes, *, ndjson: bool = False) -> Points | None:
    """The batch, or None when the body is not a valid batch of the common shape (the
    caller then validates it the slow way, which names what is wrong)."""
    got = scan(body, ndjson=ndjson)
    return got if got is not None else decode_structs(body, ndjson=ndjson)


def _words() -> tuple[np.ndarray, ...]:
    return (json_scan._SERVICE, json_scan._METRIC, json_scan._TS, json_scan._VALUE, json_scan._LABELS,
            json_scan._POINTS)


def scan(body: bytes, *, ndjson: bool = False) -> Points | None:
    """The compiled scan; None when the body is not of the shape it takes."""
    buf = np.frombuffer(body, dtype=np.uint8)
    cap = len(body) // 40 + 1  # a point object takes at least 46 bytes
    if len(body) < 2:
        return None
    spans = np.empty((cap, 6), dtype=np.int64)
    num = np.empty((cap, 2))
    exact = np.empty((cap, 2), dtype=np.bool_)
    numspan = np.empty((cap, 4), dtype=np.int64)
    code = np.empty(cap, dtype=np.int32)
    reps = np.empty(cap, dtype=np.int64)
    table = np.full(1 << max(4, (2 * cap - 1).bit_length()), -1, dtype=np.int64)
    status, n, k = json_scan.scan(buf, ndjson, spans, num, exact, numspan, code, reps, table, *_words())
    if status != json_scan.OK:
        return None
    num, exact = num[:n], exact[:n]
    slow = np.flatnonzero(~exact.ravel())
    if len(slow):  # numbers the scan could not convert exactly: Arrow's parser (correctly rounded)
        flat = numspan[:n].reshape(n * 2, 2)[slow]
        data, offsets = json_scan.gather(buf, np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]))
        text = pa.StringArray.from_buffers(len(slow), pa.py_buffer(offsets), pa.py_buffer(data))
        try:
            num.reshape(-1)[slow] = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    ts, value = np.ascontiguousarray(num[:, 0]), np.ascontiguousarray(num[:, 1])
    if not (np.isfinite(value).all() and ((ts >= TS_MIN) & (ts < TS_MAX)).all()):
        return None
    rep = spans[reps[:k]]
    # the series' name and label bytes, back to back: a batch with the series of the last
    # one, first seen in the same order (a client's fixed layout), reuses its series table
    flat = rep.reshape(-1, 2)
    data, offsets = json_scan.gather(buf, np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]))
    last = _LAST_SERIES
    if last is not None and np.array_equal(last[1], offsets) and np.array_equal(last[0], data):
        series, remap = last[2], last[3]
        code = code[:n] if remap is None else remap[code[:n]]
        return Points(series, np.ascontiguousarray(code, dtype=np.int32), ts, value)
    keys: list[SeriesKey] = []
    try:
        for s0, s1, m0, m1, l0, l1 in zip(*(rep[:, c].tolist() for c in range(6)), strict=True):
            svc, met = body[s0:s1].decode(), body[m0:m1].decode()
            lab = _labels(body[l0:l1] if l1 > l0 else b"null")
            if lab is False or not (_ok_name(svc) and _ok_name(met)):
                return None
            keys.append((svc, met, lab))  # type: ignore[arg-type]
    except UnicodeDecodeError:
        return None
    points, remap = Points.build_with_remap(keys, code[:n], ts, value)
    _remember_series(data, offsets, points.series, remap)
    return points


# the last scanned batch's series bytes (data, offsets), its series table and the remap of
# repeated keys (None: none repeat); one tuple, replaced whole (decoders run in threads)
_LAST_SERIES: tuple[np.ndarray, np.ndarray, pa.Table, np.ndarray | None] | None = None


def _remember_series(data: np.ndarray, offsets: np.ndarray, series: pa.Table, remap: np.ndarray | None) -> None:
    global _LAST_SERIES
    _LAST_SERIES = (data, offsets, series, remap)


def warm_up() -> None:
    """Compile (or load from Numba's cache) the scan before the first request needs it."""
    scan(b'{"points": [{"service": "s", "metric": "m", "ts": 1700000000.5, "value": 1e300, "labels": {}}]}')


def decode_structs(body: bytes, *, ndjson: bool = False) -> Points | None:
    """The ``msgspec`` path (any key order, escapes, big bodies of one shape)."""
    try:
        if ndjson:
            pts: list[Any] = _LINE.decode_lines(body)
        elif body.lstrip()[:1] == b"[":
            pts = _BARE.decode(body)
        else:
            pts = _WRAPPED.decode(body).points
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    n = len(pts)
    if n == 0:
        return Points.empty()
    combos: dict[tuple[str, str, bytes], int] = {}
    get = combos.setdefault
    code = np.fromiter([get((p.service, p.metric, bytes(p.labels)), len(combos)) for p in pts],
                       dtype=np.int32, count=n)
    ts = np.fromiter([p.ts for p in pts], dtype=np.float64, count=n)
    value = np.fromiter([p.value for p in pts], dtype=np.float64, count=n)
    if not (np.isfinite(value).all() and ((ts >= TS_MIN) & (ts < TS_MAX)).all()):
        return None
    keys: list[SeriesKey] = []
    for svc, met, raw in combos:
        lab = _labels(raw)
        if lab is False or not (_ok_name(svc) and _ok_name(met)):
            return None
        keys.append((svc, met, lab))  # type: ignore[arg-type]
    return Points.build(keys, code, ts, value)
