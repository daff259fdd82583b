"""Batch validation for ingest bodies (pure: bytes in, Arrow tables / dataclasses out).

A batch is validated as a whole: :class:`BatchError` carries one entry per bad item
(``loc`` names the body key, the item index and the field) and nothing is stored.
Metric batches are validated column-wise (NumPy / Arrow) for throughput; the rules
are those of :class:`server.api.schemas.MetricPointIn`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, TypeAdapter, ValidationError

from server.api import schemas
from server.model import Change, Edge
from server.model.labels import canonical_labels
from server.model.points import Points
from server.timeutil import TS_MAX, TS_MIN, parse_ts, ts_range_error

MAX_ERRORS = 100
# Metric values are finite and of magnitude below this: beyond it, sums and squares in
# averages and detector baselines overflow to infinity (no real metric comes near it).
MAX_ABS_VALUE = 1e100
MAX_LABELS = 32  # labels per point
MAX_LABEL_NAME = 128
MAX_LABEL_VALUE = 1024


class BatchError(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid item(s)")
        self.errors = errors[:MAX_ERRORS]


def _err(loc: list[Any], msg: str, typ: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": typ}


def _non_finite(doc: Any, loc: list[Any], out: list[dict[str, Any]]) -> None:
    """Append an error for every NaN or infinite number in a decoded document."""
    if isinstance(doc, float) and not math.isfinite(doc):
        field = loc[-1] if loc and isinstance(loc[-1], str) else "value"
        out.append(_err(loc, f"{field} must be a finite number (NaN and infinities are not accepted)",
                        "finite_number"))
    elif isinstance(doc, dict):
        for k, v in doc.items():
            _non_finite(v, [*loc, k], out)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            _non_finite(v, [*loc, i], out)


def _name_non_finite(text: bytes, loc: list[Any]) -> list[dict[str, Any]]:
    """After strict JSON decoding failed: if the body only holds NaN, Infinity or numbers
    too large for a double (which the lenient stdlib decoder reads as non-finite floats),
    name each item and field that holds one; otherwise nothing (the JSON error stands)."""
    import json

    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return []
    out: list[dict[str, Any]] = []
    _non_finite(doc, loc, out)
    return out


def parse_items(body: bytes, key: str, *, ndjson: bool = False, allow_single: bool = False) -> list[Any]:
    """Decode a wrapped body (``{key: [...]}``), a bare array, NDJSON, or (for change
    endpoints) one bare event object into a list of raw items."""
    if ndjson:
        items = []
        for lineno, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                named = _name_non_finite(line, ["body", key, len(items)])
                raise BatchError(named or [_err(["body", lineno], f"invalid JSON on line {lineno + 1}: {exc}",
                                                "json_invalid")]) from exc
        return items
    if not body.strip():
        raise BatchError([_err(["body"], "request body is empty", "missing")])
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        named = _name_non_finite(body, ["body"])
        # name items as the wrapped form does: ["body", key, index, field]
        for e in named:
            if len(e["loc"]) > 1 and isinstance(e["loc"][1], int):  # a bare array
                e["loc"] = ["body", key, *e["loc"][1:]]
            elif len(e["loc"]) > 1 and e["loc"][1] != key:  # one bare event object
                e["loc"] = ["body", key, 0, *e["loc"][1:]]
        raise BatchError(named or [_err(["body"], f"invalid JSON: {exc}", "json_invalid")]) from exc
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        if key in doc:
            items = doc[key]
            if not isinstance(items, list):
                raise BatchError([_err(["body", key], f"'{key}' must be an array", "list_type")])
            return items
        if allow_single:
            return [doc]
        raise BatchError([_err(["body", key], f"missing '{key}' array", "missing")])
    raise BatchError([_err(["body"], f"body must be an object with '{key}' or an array", "model_type")])


# ---- metrics (column-wise) ------------------------------------------------------------


def _ts_column(raw: list[Any], key: str, errors: list[dict[str, Any]]) -> np.ndarray:
    n = len(raw)
    out = np.empty(n, dtype=np.float64)
    num_mask = np.fromiter(((type(v) is int or type(v) is float) for v in raw), dtype=bool, count=n)
    if num_mask.any():
        idx = np.flatnonzero(num_mask)
        out[idx] = np.array([raw[i] for i in idx], dtype=np.float64)
    str_idx = np.flatnonzero(~num_mask)
    if len(str_idx):
        strs = [raw[i] for i in str_idx]
        if all(type(s) is str for s in strs):
            try:
                parsed = pc.cast(pa.array(strs, type=pa.string()), pa.timestamp("us", tz="UTC"))
                out[str_idx] = parsed.cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
                strs = []
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        if strs:  # slow path: find exactly which items are bad (and parse the good ones)
            for i in str_idx:
                try:
                    out[i] = parse_ts(raw[i])
                except ValueError as exc:
                    errors.append(_err(["body", key, int(i), "ts"], str(exc)))
    return out


def _check_ts_range(ts: np.ndarray, key: str, errors: list[dict[str, Any]], skip: set[int]) -> None:
    """Name every point whose timestamp is not finite or outside the accepted range
    (:data:`server.timeutil.TS_MIN` .. ``TS_MAX``); one vectorised test when all are fine."""
    ok = (ts >= TS_MIN) & (ts < TS_MAX)  # NaN fails both
    if ok.all():
        return
    for j in np.flatnonzero(~ok):
        if int(j) not in skip:
            errors.append(_err(["body", key, int(j), "ts"], ts_range_error(float(ts[j])) or "invalid timestamp"))


_NUM = {int, float}


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is float or t is int


def validate_metrics(items: list[Any], key: str = "points") -> pa.Table:
    """Validate raw metric points column-wise; returns an Arrow table
    (service, metric, ts float64, value float64, labels JSON string or null).

    Each column is checked with one fast pass; only a column that fails is walked
    item by item to name every bad index."""
    errors: list[dict[str, Any]] = []
    n = len(items)
    if set(map(type, items)) - {dict}:
        errors = [_err(["body", key, i], "each point must be an object", "model_type")
                  for i, it in enumerate(items) if type(it) is not dict]
        raise BatchError(errors)
    services = [it.get("service") for it in items]
    metrics = [it.get("metric") for it in items]
    for name, col in (("service", services), ("metric", metrics)):
        if not (set(map(type, col)) - {str}) and (not col or (min(map(len, col)) > 0 and max(map(len, col)) <= 512)):
            continue
        for i, v in enumerate(col):
            if type(v) is not str:
                msg = "field required" if v is None else "must be a string"
                errors.append(_err(["body", key, i, name], msg, "missing" if v is None else "string_type"))
            elif not v or len(v) > 512:
                errors.append(_err(["body", key, i, name], "must be a non-empty string of at most 512 characters"))
    raw_ts = [it.get("ts") for it in items]
    if not (set(map(type, raw_ts)) - _NUM):
        ts = np.array(raw_ts, dtype=np.float64)
        _check_ts_range(ts, key, errors, set())
    else:
        shape_errors = []
        for i, v in enumerate(raw_ts):
            if v is None:
                shape_errors.append(_err(["body", key, i, "ts"], "field required", "missing"))
            elif type(v) is bool or not isinstance(v, int | float | str):
                shape_errors.append(_err(["body", key, i, "ts"],
                                         "timestamp must be an ISO 8601 string with a zone or epoch seconds"))
        errors.extend(shape_errors)
        if not errors:
            ts_errors: list[dict[str, Any]] = []
            ts = _ts_column(raw_ts, key, ts_errors)
            errors.extend(ts_errors)
            _check_ts_range(ts, key, errors, {e["loc"][2] for e in ts_errors})
        else:
            ts = np.empty(0)
    raw_val = [it.get("value") for it in items]
    if not (set(map(type, raw_val)) - _NUM):
        values = np.array(raw_val, dtype=np.float64)
    else:
        for i, v in enumerate(raw_val):
            if not _is_num(v):
                errors.append(_err(["body", key, i, "value"],
                                   "field required" if v is None else "value must be a number",
                                   "missing" if v is None else "float_type"))
        values = np.zeros(n)
    errors.extend(_err(["body", key, int(j), "value"], "value must be finite", "finite_number")
                  for j in np.flatnonzero(~np.isfinite(values)))
    errors.extend(_err(["body", key, int(j), "value"], _TOO_LARGE, "finite_number")
                  for j in np.flatnonzero(np.isfinite(values) & (np.abs(values) >= MAX_ABS_VALUE)))
    raw_labels = [it.get("labels") for it in items]
    labels: list[str | None] | None = None
    if set(map(type, raw_labels)) - {type(None)}:
        labels = [None] * n
        for i, lab in enumerate(raw_labels):
            if lab is None:
                continue
            if type(lab) is not dict or not all(type(k) is str and type(v) is str for k, v in lab.items()):
                errors.append(_err(["body", key, i, "labels"], "labels must be an object of string values",
                                   "dict_type"))
            elif len(lab) > MAX_LABELS or any(not k or len(k) > MAX_LABEL_NAME or len(v) > MAX_LABEL_VALUE
                                              for k, v in lab.items()):
                errors.append(_err(["body", key, i, "labels"],
                                   f"at most {MAX_LABELS} labels per point, names of 1 to {MAX_LABEL_NAME} and "
                                   f"values of at most {MAX_LABEL_VALUE} characters", "too_long"))
            else:
                labels[i] = canonical_labels(lab)  # one text per label set: the series key
    if errors:
        errors.sort(key=lambda e: (e["loc"][2] if len(e["loc"]) > 2 else -1))
        raise BatchError(errors)
    return pa.table({
        "service": pa.array(services, type=pa.string()),
        "metric": pa.array(metrics, type=pa.string()),
        "ts": pa.array(ts, type=pa.float64()),
        "value": pa.array(values, type=pa.float64()),
        "labels": pa.array(labels, type=pa.string()) if labels is not None else pa.nulls(n, pa.string()),
    })


_TOO_LARGE = f"value must be of magnitude below {MAX_ABS_VALUE:g}"


def check_table_bounds(table: pa.Table, key: str) -> None:
    """The last check before a decoded table is stored, whatever protocol it came in
    (JSON, NDJSON, Arrow IPC, remote-write, OTLP): every ``ts`` inside the accepted range
    and (metrics) every ``value`` finite and below :data:`MAX_ABS_VALUE` in magnitude, so
    that nothing stored can break a later read or a detector baseline. Rows are named by
    their index in the decoded batch (with service and metric, since a protocol's own
    nesting is gone by now); BatchError, nothing stored."""
    errors: list[dict[str, Any]] = []
    checks = [("ts", lambda a: ~((a >= TS_MIN) & (a < TS_MAX)), lambda v: ts_range_error(v) or "invalid timestamp")]
    if "value" in table.column_names:
        checks.append(("value", lambda a: ~(np.abs(a) < MAX_ABS_VALUE),
                       lambda v: _TOO_LARGE if math.isfinite(v) else "value must be finite"))
    for name, is_bad, why in checks:
        arr = table.column(name).to_numpy()
        bad = np.flatnonzero(is_bad(arr))
        for j in bad[:MAX_ERRORS - len(errors)]:
            row = table.slice(int(j), 1).to_pylist()[0]
            what = "/".join(str(row[c]) for c in ("service", "metric") if c in row)
            errors.append(_err(["body", key, int(j), name], f"{what}: {why(float(arr[j]))}"))
    if errors:
        raise BatchError(errors)


def check_points_bounds(points: Points, key: str) -> None:
    """:func:`check_table_bounds` for a :class:`Points` batch: one vectorised pass over the
    timestamps and values; the wide table (row names in the errors) only when one is out."""
    ts, value = points.ts, points.value
    if bool(((ts >= TS_MIN) & (ts < TS_MAX)).all()) and bool((np.abs(value) < MAX_ABS_VALUE).all()):
        return
    check_table_bounds(points.table(), key)


# ---- everything else (pydantic, per item, with index in loc) ----------------------------------


def _validate_list(items: list[Any], model: type[BaseModel], key: str) -> list[Any]:
    adapter: TypeAdapter[list[Any]] = _ADAPTERS.setdefault(model, TypeAdapter(list[model]))  # type: ignore[valid-type]
    try:
        return adapter.validate_python(items)
    except ValidationError as exc:
        errs = []
        for e in exc.errors(include_url=False, include_context=False):
            loc = ["body", key, *e["loc"]]
            errs.append({"loc": loc, "msg": e["msg"], "type": e["type"]})
        raise BatchError(errs) from exc


_ADAPTERS: dict[type[BaseModel], TypeAdapter[list[Any]]] = {}


def validate_logs(items: list[Any], key: str = "logs") -> pa.Table:
    logs: list[schemas.LogIn] = _validate_list(items, schemas.LogIn, key)
    return pa.table({
        "service": pa.array([x.service for x in logs], type=pa.string()),
        "ts": pa.array([x.ts for x in logs], type=pa.float64()),
        "level": pa.array([x.level for x in logs], type=pa.string()),
        "message": pa.array([x.message for x in logs], type=pa.string()),
        "attributes": pa.array(
            [orjson.dumps(x.attributes).decode() if x.attributes is not None else None for x in logs],
            type=pa.string()),
    })


def _check_finite_ts(objs: list[Any], key: str) -> None:
    errs = [_err(["body", key, i, "ts"], "timestamp must be finite") for i, o in enumerate(objs)
            if not math.isfinite(o.ts)]
    if errs:
        raise BatchError(errs)


def validate_changes(items: list[Any], kind: str, key: str) -> list[tuple[Change, bool]]:
    """Returns (change, id_was_given) pairs; ids are assigned later by the caller."""
    model: Any = {
        "deployment": schemas.DeploymentIn, "config_change": schemas.ConfigChangeIn,
        "flag_change": schemas.FlagChangeIn,
    }[kind]
    objs = _validate_list(items, model, key)
    _check_finite_ts(objs, key)
    seen: dict[str, int] = {}
    out: list[tuple[Change, bool]] = []
    for o in objs:
        data = o.model_dump(exclude_none=True)
        cid = data.pop("id", None)
        ts = data.pop("ts")
        author = data.pop("author", None)
        description = data.pop("description", None)
        if kind == "flag_change":
            services = list(dict.fromkeys(data.pop("services")))
            data["services"] = services
        else:
            services = [data.pop("service")]
        change = Change(id=cid or "", kind=kind, services=services, ts=ts, author=author,  # type: ignore[arg-type]
                        description=description, fields=data)
        if cid:
            if cid in seen:  # the same id twice in one batch: stored once (idempotent)
                continue
            seen[cid] = len(out)
        out.append((change, bool(cid)))
    return out


def validate_edges(items: list[Any], key: str = "edges") -> list[Edge]:
    objs: list[schemas.EdgeIn] = _validate_list(items, schemas.EdgeIn, key)
    return [Edge(source=e.source, target=e.target) for e in objs]
