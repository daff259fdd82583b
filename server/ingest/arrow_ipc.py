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


def _string_col(t: pa.Table, name: str, errors: list[dict[str, Any]]) -> pa.Array | None:
    if name not in t.column_names:
        errors.append(err(["body", name], f"column {name!r} is required", "missing"))
        return None
    col = t.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        errors.append(err(["body", name], f"column {name!r} must be strings, not {col.type}", "string_type"))
        return None
    col = col.cast(pa.string())
    if col.null_count:
        errors.extend(err(["body", _KEY, i, name], "field required", "missing")
                      for i in _bad_rows(col.is_null().to_numpy(zero_copy_only=False)))
        return None
    lens = pc.utf8_length(col)
    bad = pc.or_(pc.less(lens, 1), pc.greater(lens, 512)).to_numpy(zero_copy_only=False)
    if bad.any():
        errors.extend(err(["body", _KEY, i, name], "must be a non-empty string of at most 512 characters")
                      for i in _bad_rows(bad))
    return col


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
    arr = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        errors.extend(err(["body", _KEY, i, name], f"{'timestamp' if name == 'ts' else 'value'} must be finite")
                      for i in _bad_rows(bad))
    return arr


def _canonical(text: str) -> str | None | bool:
    try:
        d = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
        return False
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() if d else None


def _labels_col(t: pa.Table, errors: list[dict[str, Any]]) -> pa.Array:
    n = t.num_rows
    if "labels" not in t.column_names:
        return pa.nulls(n, pa.string())
    col = t.column("labels").combine_chunks()
    if pa.types.is_map(col.type):
        texts = [None if m is None else (orjson.dumps(dict(m), option=orjson.OPT_SORT_KEYS).decode() or None)
                 for m in col.to_pylist()]
        return pa.array([x if x != "{}" else None for x in texts], type=pa.string())
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
        errors.append(err(["body", "labels"], f"column 'labels' must be JSON text or map<string,string>, not {col.type}",
                          "dict_type"))
        return pa.nulls(n, pa.string())
    col = col.cast(pa.string())
    enc = col.dictionary_encode()
    uniq = enc.dictionary.to_pylist()
    canon = [_canonical(u) for u in uniq]
    bad_u = [i for i, c in enumerate(canon) if c is False]
    if bad_u:
        idx = enc.indices.to_numpy(zero_copy_only=False)
        bad = np.isin(idx, bad_u) & ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        errors.extend(err(["body", _KEY, i, "labels"], "labels must be a JSON object of string values", "dict_type")
                      for i in _bad_rows(bad))
        return pa.nulls(n, pa.string())
    out = pa.array([c if isinstance(c, str) else None for c in canon], type=pa.string())
    return out.take(enc.indices)


def validate_table(t: pa.Table) -> pa.Table:
    errors: list[dict[str, Any]] = []
    service = _string_col(t, "service", errors)
    metric = _string_col(t, "metric", errors)
    ts = _number_col(t, "ts", errors)
    value = _number_col(t, "value", errors)
    labels = _labels_col(t, errors)
    if errors:
        errors.sort(key=lambda e: (e["loc"][2] if len(e["loc"]) > 2 and isinstance(e["loc"][2], int) else -1))
        raise BatchError(errors)
    assert service is not None and metric is not None and ts is not None and value is not None
    return pa.table({"service": service, "metric": metric, "ts": pa.array(ts, type=pa.float64()),
                     "value": pa.array(value, type=pa.float64()), "labels": labels})


def decode(body: bytes) -> pa.Table:
    return validate_table(read_stream(body))


def encode(table: pa.Table) -> bytes:
    """An Arrow IPC stream body for ``table`` (clients, tests and the benchmark)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue())
