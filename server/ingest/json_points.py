"""Fast path for JSON and NDJSON metric batches: bytes straight to a :class:`Points` batch.

``msgspec`` decodes the body against the point schema into compact structs that the
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

from server.api.validation import MAX_LABEL_NAME, MAX_LABEL_VALUE, MAX_LABELS
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
