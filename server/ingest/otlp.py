"""OTLP/HTTP metrics and logs -> the metric point and log tables (pure).

Both encodings of the OpenTelemetry protocol are taken: binary protobuf
(``application/x-protobuf``) and JSON (``application/json``: lowerCamelCase or original
field names, 64-bit integers as strings or numbers, enums as integers, trace and span
ids as hex, unknown fields ignored), optionally ``Content-Encoding: gzip`` or
``deflate``. The message classes come from ``opentelemetry-proto``; the protobuf
library does the decoding.

The resource's ``service.name`` gives the service. Metric mapping:

- gauge and sum data points: one point each (``as_double`` or ``as_int``), the data
  point attributes (plus the resource attributes named in ``resource_labels``) as labels;
- histogram and exponential histogram: ``<name>_count``, ``<name>_sum`` and quantile
  series ``<name>`` with a ``quantile`` label (0.5, 0.9, 0.95, 0.99), interpolated
  within the buckets of each data point;
- summary: its quantile values as ``<name>{quantile=...}``, plus ``_count`` and ``_sum``.

Data points whose value is not finite (or flagged "no recorded value") are dropped and
reported in the response's ``partialSuccess``; a resource without ``service.name`` or a
point without a timestamp rejects the request (nothing stored).
"""

from __future__ import annotations

import base64
import gzip
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from server.ingest.errors import BatchError, DecodeError, UnsupportedMediaType, err

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
QUANTILES = (0.5, 0.9, 0.95, 0.99)
DEFAULT_RESOURCE_LABELS = ("service.instance.id", "service.version", "deployment.environment",
                           "deployment.environment.name", "host.name", "k8s.pod.name", "k8s.namespace.name")
_NO_RECORDED_VALUE = 1
MAX_ERRORS = 100


@dataclass(slots=True)
class OtlpResult:
    table: pa.Table
    rejected: int  # data points / log records dropped (reported as partial success)
    message: str


def media_type(content_type: str | None) -> str:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if ct == JSON:
        return JSON
    raise UnsupportedMediaType(f"OTLP/HTTP takes Content-Type {PROTOBUF} or {JSON}, not {ct or 'none'!r}")


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    try:
        if enc == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            d = zlib.decompressobj()
        else:
            raise UnsupportedMediaType(f"unsupported Content-Encoding {enc!r}; use gzip, deflate or identity")
        out = d.decompress(body, max_bytes + 1)
        if len(out) > max_bytes:
            raise DecodeError(f"decompressed body exceeds the limit of {max_bytes} bytes")
        return out
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise DecodeError(f"body is not valid {enc}: {exc}") from exc


_HEX = re.compile(r"^[0-9a-fA-F]*$")
_ID_KEYS = {"traceId", "spanId", "trace_id", "span_id", "parentSpanId", "parent_span_id"}


def _hex_ids_to_base64(node: Any, depth: int = 0) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    if depth > 64:
        return
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                if not _HEX.match(v) or len(v) % 2:
                    raise DecodeError(f"{k} {v!r} must be a hex string")
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                _hex_ids_to_base64(v, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _hex_ids_to_base64(v, depth + 1)


def _parse(raw: bytes, mtype: str, cls: type[Message]) -> Any:
    msg = cls()
    if mtype == PROTOBUF:
        try:
            msg.ParseFromString(raw)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"body is not a valid {cls.__name__} protobuf message: {exc}") from exc
        return msg
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DecodeError(f"the JSON body must be an {cls.__name__} object")
    _hex_ids_to_base64(doc)
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"body is not a valid OTLP/JSON {cls.__name__}: {exc}") from exc
    return msg


def any_value(v: Any) -> Any:
    """An OTLP AnyValue as plain JSON-able Python."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return orjson.dumps(v).decode()


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _service(resource: Any, loc: list[Any], errors: list[dict[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    attrs = _attrs(resource.attributes)
    svc = attrs.get("service.name")
    if not isinstance(svc, str) or not svc:
        errors.append(err([*loc, "resource", "attributes", "service.name"],
                          "resource has no service.name attribute (string)", "missing"))
        return None, attrs
    return svc, attrs


def _labels_text(lab: dict[str, str]) -> str | None:
    return orjson.dumps(lab, option=orjson.OPT_SORT_KEYS).decode() if lab else None


# ---- metrics -------------------------------------------------------------------------------


def bucket_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """Quantile of an explicit-bucket histogram by linear interpolation inside the bucket
    (the lowest bucket starts at 0 when its bound is positive; the overflow bucket
    answers its lower bound)."""
    total = sum(counts)
    if total <= 0 or not bounds:
        return None
    rank = q * total
    cum = 0.0
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        if cum + c >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            hi = float(bounds[i])
            lo = float(bounds[i - 1]) if i > 0 else min(0.0, hi)
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
    return float(bounds[-1])


def exp_bucket_quantile(q: float, dp: Any) -> float | None:
    """Quantile of an exponential histogram data point (base 2**2**-scale)."""
    base = 2.0 ** (2.0 ** -dp.scale)
    spans: list[tuple[float, float, int]] = []
    neg = dp.negative
    for k in range(len(neg.bucket_counts) - 1, -1, -1):
        idx = neg.offset + k
        spans.append((-(base ** (idx + 1)), -(base ** idx), neg.bucket_counts[k]))
    if dp.zero_count:
        spans.append((0.0, 0.0, dp.zero_count))
    pos = dp.positive
    for k, c in enumerate(pos.bucket_counts):
        idx = pos.offset + k
        spans.append((base ** idx, base ** (idx + 1), c))
    total = sum(c for _, _, c in spans)
    if total <= 0:
        return None
    rank = q * total
    cum = 0.0
    for lo, hi, c in spans:
        if c <= 0:
            continue
        if cum + c >= rank:
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
    return spans[-1][1]


def decode_metrics(raw: bytes, mtype: str, *, resource_labels: Sequence[str] = DEFAULT_RESOURCE_LABELS) -> OtlpResult:
    req = _parse(raw, mtype, ExportMetricsServiceRequest)
    errors: list[dict[str, Any]] = []
    svc_col: list[str] = []
    met_col: list[str] = []
    ts_col: list[float] = []
    val_col: list[float] = []
    lab_col: list[str | None] = []
    dropped = 0

    def add(service: str, name: str, ts: float, value: float, lab: dict[str, str]) -> None:
        nonlocal dropped
        if not math.isfinite(value):
            dropped += 1
            return
        svc_col.append(service)
        met_col.append(name)
        ts_col.append(ts)
        val_col.append(value)
        lab_col.append(_labels_text(lab))

    for ri, rm in enumerate(req.resource_metrics):
        rloc: list[Any] = ["body", "resourceMetrics", ri]
        service, rattrs = _service(rm.resource, rloc, errors)
        base = {k: _text(rattrs[k]) for k in resource_labels if k in rattrs and k != "service.name"}
        for si, sm in enumerate(rm.scope_metrics):
            for mi, metric in enumerate(sm.metrics):
                mloc = [*rloc, "scopeMetrics", si, "metrics", mi]
                name = metric.name
                if not name or len(name) > 512:
                    errors.append(err([*mloc, "name"], "metric name must be a non-empty string of at most 512 characters"))
                    continue
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for pi, dp in enumerate(getattr(metric, kind).data_points):
                    if not dp.time_unix_nano:
                        errors.append(err([*mloc, kind, "dataPoints", pi, "timeUnixNano"],
                                          "data point has no timestamp", "missing"))
                        continue
                    if service is None or len(errors) >= MAX_ERRORS:
                        continue
                    ts = dp.time_unix_nano / 1e9
                    lab = {**base, **{k: _text(v) for k, v in _attrs(dp.attributes).items()}}
                    if dp.flags & _NO_RECORDED_VALUE:
                        dropped += 1
                        continue
                    if kind in ("gauge", "sum"):
                        which = dp.WhichOneof("value")
                        if which is None:
                            dropped += 1
                            continue
                        add(service, name, ts, float(getattr(dp, which)), lab)
                        continue
                    add(service, f"{name}_count", ts, float(dp.count), lab)
                    if kind == "summary" or dp.HasField("sum"):
                        add(service, f"{name}_sum", ts, float(dp.sum), lab)
                    if kind == "summary":
                        for qv in dp.quantile_values:
                            add(service, name, ts, float(qv.value), {**lab, "quantile": _text(float(qv.quantile))})
                        continue
                    for q in QUANTILES:
                        v = (bucket_quantile(q, list(dp.explicit_bounds), list(dp.bucket_counts))
                             if kind == "histogram" else exp_bucket_quantile(q, dp))
                        if v is not None:
                            add(service, name, ts, float(v), {**lab, "quantile": _text(q)})
    if errors:
        raise BatchError(errors)
    table = pa.table({
        "service": pa.array(svc_col, type=pa.string()), "metric": pa.array(met_col, type=pa.string()),
        "ts": pa.array(ts_col, type=pa.float64()), "value": pa.array(val_col, type=pa.float64()),
        "labels": pa.array(lab_col, type=pa.string()),
    })
    msg = f"{dropped} data point(s) without a finite value were dropped" if dropped else ""
    return OtlpResult(table, dropped, msg)


# ---- logs ----------------------------------------------------------------------------------


def severity_level(number: int, text: str) -> str:
    """OTLP severity (number 1-24, else the text) -> DEBUG INFO WARN ERROR FATAL."""
    if number > 0:
        if number <= 8:
            return "DEBUG"  # TRACE* and DEBUG*
        return ("INFO", "WARN", "ERROR", "FATAL")[min(3, (number - 9) // 4)]
    t = text.strip().upper()
    for prefix, level in (("TRACE", "DEBUG"), ("DEBUG", "DEBUG"), ("INFO", "INFO"), ("WARN", "WARN"),
                          ("ERR", "ERROR"), ("FATAL", "FATAL"), ("CRIT", "FATAL"), ("EMERG", "FATAL"),
                          ("ALERT", "FATAL"), ("NOTICE", "INFO")):
        if t.startswith(prefix):
            return level
    return "INFO"


def decode_logs(raw: bytes, mtype: str) -> OtlpResult:
    req = _parse(raw, mtype, ExportLogsServiceRequest)
    errors: list[dict[str, Any]] = []
    svc_col: list[str] = []
    ts_col: list[float] = []
    lvl_col: list[str] = []
    msg_col: list[str] = []
    attr_col: list[str | None] = []
    for ri, rl in enumerate(req.resource_logs):
        rloc: list[Any] = ["body", "resourceLogs", ri]
        service, _ = _service(rl.resource, rloc, errors)
        for si, sl in enumerate(rl.scope_logs):
            for li, rec in enumerate(sl.log_records):
                t = rec.time_unix_nano or rec.observed_time_unix_nano
                if not t:
                    errors.append(err([*rloc, "scopeLogs", si, "logRecords", li, "timeUnixNano"],
                                      "log record has neither timeUnixNano nor observedTimeUnixNano", "missing"))
                    continue
                if service is None or len(errors) >= MAX_ERRORS:
                    continue
                body = any_value(rec.body) if rec.HasField("body") else None
                message = body if isinstance(body, str) else ("" if body is None else orjson.dumps(body).decode())
                if not message and rec.event_name:
                    message = rec.event_name
                attrs = _attrs(rec.attributes)
                if rec.trace_id:
                    attrs["trace_id"] = rec.trace_id.hex()
                if rec.span_id:
                    attrs["span_id"] = rec.span_id.hex()
                if sl.scope.name:
                    attrs.setdefault("otel.scope.name", sl.scope.name)
                svc_col.append(service)
                ts_col.append(t / 1e9)
                lvl_col.append(severity_level(rec.severity_number, rec.severity_text))
                msg_col.append(message)
                attr_col.append(orjson.dumps(attrs, default=str).decode() if attrs else None)
    if errors:
        raise BatchError(errors)
    table = pa.table({
        "service": pa.array(svc_col, type=pa.string()), "ts": pa.array(ts_col, type=pa.float64()),
        "level": pa.array(lvl_col, type=pa.string()), "message": pa.array(msg_col, type=pa.string()),
        "attributes": pa.array(attr_col, type=pa.string()),
    })
    return OtlpResult(table, 0, "")


def response_body(signal: str, mtype: str, rejected: int, message: str) -> bytes:
    """The Export*ServiceResponse in the request's encoding (partial success when some
    data points or records were dropped)."""
    resp: Any = ExportMetricsServiceResponse() if signal == "metrics" else ExportLogsServiceResponse()
    if rejected:
        ps = resp.partial_success
        if signal == "metrics":
            ps.rejected_data_points = rejected
        else:
            ps.rejected_log_records = rejected
        ps.error_message = message
    if mtype == PROTOBUF:
        return bytes(resp.SerializeToString())
    return json_format.MessageToJson(resp, indent=None).encode()
