"""Arrow IPC stream ingest (``application/vnd.apache.arrow.stream``) -> the point table (pure).

Columns: ``service`` and ``metric`` (string, large string or dictionary of strings),
``ts`` (epoch seconds as a number, or an Arrow timestamp), ``value`` (any number), and
optionally ``labels`` (JSON object text, or a ``map<string, string>``). The batch is
validated column-wise as a whole, with the rules of the JSON path; label sets are
brought to their canonical text once per distinct label set, not per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from server.ingest.errors import BatchError, DecodeError, err
from server.model.points import Points, encode_column

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
MAX_ERRORS = 100
_KEY = "points"


def read_stream(body: bytes) -> pa.Table:
    if not body:
        raise DecodeError("request body is empty")
    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DecodeError(f"body is not an Arrow IPC stream: {exc}") from exc


def _bad_rows(mask: Any) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.asarray(mask))[:MAX_ERRORS]]


def _as_string(t: pa.Table, name: str, errors: list[dict[str, Any]]) -> pa.Array | None:
    col = t.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        errors.append(err(["body", name], f"column {name!r} must be strings, not {col.type}", "string_type"))
        return None
    return col.cast(pa.string())


def _encoded(t: pa.Table, name: str, errors: list[dict[str, Any]]) -> tuple[pa.Array, np.ndarray, int] | None:
    """A string column as (distinct values, per-row index; -1: null, number of nulls). A
    dictionary column keeps its indices (only its dictionary is made distinct)."""
    col = t.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type) and (pa.types.is_string(col.type.value_type)
                                             or pa.types.is_large_string(col.type.value_type)):
        values, remap = encode_column(col.dictionary.cast(pa.string()))
        idx = col.indices.fill_null(-1) if col.indices.null_count else col.indices
        codes = idx.to_numpy(zero_copy_only=False).astype(np.int64)
        if len(remap):
            codes = np.where(codes < 0, -1, remap[np.maximum(codes, 0)])
        return values, codes, col.null_count
    string = _as_string(t, name, errors)
    if string is None:
        return None
    values, codes = encode_column(string)
    return values, codes, string.null_count


def _key_col(t: pa.Table, name: str, errors: list[dict[str, Any]]) -> tuple[pa.Array, np.ndarray] | None:
    """A service or metric column as (distinct values, per-row index): every check runs
    on the distinct values, not on every row."""
    if name not in t.column_names:
        errors.append(err(["body", name], f"column {name!r} is required", "missing"))
        return None
    got = _encoded(t, name, errors)
    if got is None:
        return None
    values, idx, nulls = got
    if nulls:
        errors.extend(err(["body", _KEY, i, name], "field required", "missing") for i in _bad_rows(idx < 0))
        return None
    lens = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((lens < 1) | (lens > 512))
    if len(bad):
        errors.extend(err(["body", _KEY, i, name], "must be a non-empty string of at most 512 characters")
                      for i in _bad_rows(np.isin(idx, bad)))
    return values, idx


def _number_col(t: pa.Table, name: str, errors: list[dict[str, Any]]) -> np.ndarray | None:
    if name not in t.column_names:
        errors.append(err(["body", name], f"column {name!r} is required", "missing"))
        return None
    col = t.column(name).combine_chunks()
    if name == "ts" and pa.types.is_timestamp(col.type):
        col = pc.divide(col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64()).cast(pa.float64()), 1e6)
    elif not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        errors.append(err(["body", name], f"column {name!r} must be numbers, not {col.type}", "float_type"))
        return None
    if col.null_count:
        errors.extend(err(["body", _KEY, i, name], "field required", "missing")
                      for i in _bad_rows(col.is_null().to_numpy(zero_copy_only=False)))
        return None
    arr = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        errors.extend(err(["body", _KEY, i, name], f"{'timestamp' if name == 'ts' else 'value'} must be finite")
                      for i in _bad_rows(bad))
    return arr


_CANONICAL: dict[str, str | None | bool] = {}  # raw label text -> canonical text (bounded below)
_MISS = object()


def _canonical(text: str) -> str | None | bool:
    """The canonical text of a raw label object (None: no labels; False: not valid),
    remembered: a client sends the same label sets in every batch."""
    got = _CANONICAL.get(text, _MISS)
    if got is not _MISS:
        return got  # type: ignore[return-value]
    if len(_CANONICAL) >= 200_000:
        _CANONICAL.clear()
    got = _CANONICAL[text] = _parse_labels(text)
    return got


def _parse_labels(text: str) -> str | None | bool:
    try:
        d = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
        return False
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() if d else None


def _labels_col(t: pa.Table, errors: list[dict[str, Any]]) -> tuple[pa.Array, np.ndarray]:
    """The labels column as (distinct canonical texts, per-row index; -1: no labels): each
    distinct raw text is parsed and made canonical once."""
    n = t.num_rows
    none = (pa.array([], pa.string()), np.full(n, -1, dtype=np.int64))
    if "labels" not in t.column_names:
        return none
    col = t.column("labels").combine_chunks()
    if pa.types.is_map(col.type):
        texts = [None if m is None else (orjson.dumps(dict(m), option=orjson.OPT_SORT_KEYS).decode() or None)
                 for m in col.to_pylist()]
        col = pa.array([x if x != "{}" else None for x in texts], type=pa.string())
        t = pa.table({"labels": col})
    if pa.types.is_null(col.type):
        return none
    got = _encoded(t, "labels", [])
    if got is None:
        errors.append(err(["body", "labels"], f"column 'labels' must be JSON text or map<string,string>, not {col.type}",
                          "dict_type"))
        return none
    raw, idx, _ = got
    last = _LAST_LABELS
    if last is not None and len(last[0]) == len(raw) and last[0].equals(raw):
        return last[1], last[2][idx]  # the label sets of the last batch (a client's usual case): one compare
    canon = [_canonical(u) for u in raw.to_pylist()]
    bad_u = [i for i, c in enumerate(canon) if c is False]
    if bad_u:
        errors.extend(err(["body", _KEY, i, "labels"], "labels must be a JSON object of string values", "dict_type")
                      for i in _bad_rows(np.isin(idx, bad_u)))
        return none
    # raw texts that spell one label set differently (key order, spaces) become one value
    distinct: dict[str, int] = {}
    remap = np.array([-1 if c is None else distinct.setdefault(str(c), len(distinct)) for c in canon] + [-1],
                     dtype=np.int64)
    values = pa.array(list(distinct), pa.string())
    _remember_labels(raw, values, remap)
    return values, remap[idx]


# the distinct raw label texts of the last valid batch, their canonical values and the
# remap from one to the other (one tuple, replaced whole: decoders run in worker threads)
_LAST_LABELS: tuple[pa.Array, pa.Array, np.ndarray] | None = None


def _remember_labels(raw: pa.Array, values: pa.Array, remap: np.ndarray) -> None:
    global _LAST_LABELS
    _LAST_LABELS = (raw, values, remap)


def validate_points(t: pa.Table) -> Points:
    errors: list[dict[str, Any]] = []
    service = _key_col(t, "service", errors)
    metric = _key_col(t, "metric", errors)
    ts = _number_col(t, "ts", errors)
    value = _number_col(t, "value", errors)
    labels = _labels_col(t, errors)
    if errors:
        errors.sort(key=lambda e: (e["loc"][2] if len(e["loc"]) > 2 and isinstance(e["loc"][2], int) else -1))
        raise BatchError(errors)
    assert service is not None and metric is not None and ts is not None and value is not None
    return Points.from_codes(service, metric, labels, ts, value)


def decode_points(body: bytes) -> Points:
    """An Arrow IPC stream body as a validated batch (BatchError names every bad row)."""
    t = read_stream(body)
    keys = _key_buffers(t)
    if keys is not None:
        last = _LAST_KEYS
        if last is not None and _same_keys(last[0], keys):
            errors: list[dict[str, Any]] = []
            ts, value = _number_col(t, "ts", errors), _number_col(t, "value", errors)
            if not errors and ts is not None and value is not None:  # else validated below, which names the rows
                return Points(last[1], last[2].copy(), ts, value)
    points = validate_points(t)
    if keys is not None:
        _remember_keys(keys, points)
    return points


#: a key column as its bytes: (what they mean: types, offset, length, null count, index
#: width), then its Arrow buffers (data, offsets, dictionary indices, validity; None: absent)
_Buffers = tuple[tuple[int, ...], tuple[pa.Buffer | None, ...]]


def _string_buffers(t: pa.Table, name: str) -> _Buffers | None:
    """A string or dictionary-of-strings column as :data:`_Buffers` (its Arrow buffers,
    not copied); None for any other type."""
    col = t.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    meta = [arr.type.id, arr.offset, len(arr), arr.null_count]
    bufs = arr.buffers()
    held: list[pa.Buffer | None] = [bufs[0] if arr.null_count else None]  # validity (of the indices)
    if pa.types.is_dictionary(arr.type):
        if bufs[1] is None:
            return None
        held.append(bufs[1])  # the indices
        meta.append(arr.type.index_type.id)
        arr = arr.dictionary
        meta += [arr.type.id, arr.offset, len(arr), arr.null_count]
        bufs = arr.buffers()
        held.append(bufs[0] if arr.null_count else None)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or bufs[1] is None:
        return None
    held += [bufs[1], bufs[2]]  # offsets, bytes
    return tuple(meta), tuple(held)


def _key_buffers(t: pa.Table) -> tuple[_Buffers | None, ...] | None:
    """The buffers of the service, metric and labels columns (labels: None when absent),
    what :func:`decode_points` compares with the last batch's; None when a column is of a
    type not compared that way."""
    names = t.column_names
    if "service" not in names or "metric" not in names or t.num_rows == 0:
        return None
    out: list[_Buffers | None] = [_string_buffers(t, "service"), _string_buffers(t, "metric")]
    if out[0] is None or out[1] is None:
        return None
    if "labels" in names and not pa.types.is_null(t.column("labels").type):
        lab = _string_buffers(t, "labels")
        if lab is None:
            return None
        out.append(lab)
    else:
        out.append(None)
    return tuple(out)


def _same_keys(a: tuple[_Buffers | None, ...], b: tuple[_Buffers | None, ...]) -> bool:
    """Whether two batches' key columns are byte for byte the same (Arrow's own buffer
    compare: a memcmp, no array per compare)."""
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            if x is not y:
                return False
            continue
        if x[0] != y[0] or len(x[1]) != len(y[1]):
            return False
        for u, v in zip(x[1], y[1], strict=True):
            if u is None or v is None:
                if u is not v:
                    return False
            elif not u.equals(v):
                return False
    return True


# the key columns' buffers of the last valid batch, with its series table and codes: a
# batch whose service, metric and labels columns are byte for byte the same (a client's
# fixed layout: the same series in the same order every time) reuses them after one
# compare, and only its timestamps and values are read (one tuple, replaced whole:
# decoders run in worker threads)
_LAST_KEYS: tuple[tuple[_Buffers | None, ...], pa.Table, np.ndarray] | None = None


def _remember_keys(keys: tuple[_Buffers | None, ...], points: Points) -> None:
    global _LAST_KEYS
    _LAST_KEYS = (keys, points.series, points.code)


def decode(body: bytes) -> pa.Table:
    """The wide point table (service, metric, ts, value, labels) of a body."""
    return decode_points(body).table()


def encode(table: pa.Table) -> bytes:
    """An Arrow IPC stream body for ``table`` (clients, tests and the benchmark)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue())
