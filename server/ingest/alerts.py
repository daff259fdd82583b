"""Alerts in: the Alertmanager webhook payload and a generic form -> :class:`Alert` (pure).

Alertmanager (``{"version": "4", "alerts": [...]}``): the service is the first of
``service_labels`` present in the alert's labels (default ``service``, then ``job``), the
name is ``alertname``, the id is derived from the fingerprint and the start time, so the
repeated notifications of one alert (and its resolution) update one stored alert. A
firing alert's ``endsAt`` is Alertmanager's expiry guess, not an end: it is ignored.

Generic: ``{"alerts": [{"id", "name", "service" or "services", "starts_at", "ends_at",
"status", "labels", "annotations"}]}`` (or a bare array, or one bare object). Without
``status``, an alert with ``ends_at`` is resolved, otherwise firing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from server.ingest.errors import BatchError, DecodeError, err
from server.model import Alert
from server.timeutil import TS_MAX, parse_ts, ts_range_error

_ZERO_TIME_BEFORE = 0.0  # Go's zero time (0001-01-01) and anything before 1970 means "not set"


def is_alertmanager(doc: Any) -> bool:
    return isinstance(doc, dict) and "alerts" in doc and ("version" in doc or "groupKey" in doc
                                                          or "receiver" in doc)


def _str_map(v: Any, loc: list[Any], errors: list[dict[str, Any]]) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        errors.append(err(loc, "must be an object of string values", "dict_type"))
        return {}
    out: dict[str, str] = {}
    for k, x in v.items():
        if isinstance(x, bool):
            out[str(k)] = "true" if x else "false"
        elif isinstance(x, str | int | float):
            out[str(k)] = str(x)
        elif x is not None:
            errors.append(err([*loc, k], "must be a string", "string_type"))
    return out


def _time(v: Any, loc: list[Any], errors: list[dict[str, Any]], *, required: bool) -> float | None:
    if v is None or v == "":
        if required:
            errors.append(err(loc, "field required", "missing"))
        return None
    try:
        t = parse_ts(v)
    except ValueError as exc:
        errors.append(err(loc, str(exc)))
        return None
    if t <= _ZERO_TIME_BEFORE:
        if required:
            errors.append(err(loc, "timestamp must be after 1970"))
        return None
    if t >= TS_MAX:
        errors.append(err(loc, ts_range_error(t) or "invalid timestamp"))
        return None
    return t


def parse_alerts(doc: Any, *, service_labels: Sequence[str] = ("service", "job")) -> list[Alert]:
    """Validate a decoded JSON body as a whole (BatchError names each bad item)."""
    if is_alertmanager(doc):
        return _alertmanager(doc, service_labels)
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and "alerts" in doc:
        items = doc["alerts"]
        if not isinstance(items, list):
            raise BatchError([err(["body", "alerts"], "'alerts' must be an array", "list_type")])
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise DecodeError("the body must be an Alertmanager webhook payload, {\"alerts\": [...]}, or an array")
    return _generic(items, service_labels)


def _alertmanager(doc: dict[str, Any], service_labels: Sequence[str]) -> list[Alert]:
    items = doc.get("alerts")
    if not isinstance(items, list):
        raise BatchError([err(["body", "alerts"], "'alerts' must be an array", "list_type")])
    errors: list[dict[str, Any]] = []
    out: list[Alert] = []
    common: dict[str, Any] = doc["commonLabels"] if isinstance(doc.get("commonLabels"), dict) else {}
    for i, a in enumerate(items):
        loc: list[Any] = ["body", "alerts", i]
        if not isinstance(a, dict):
            errors.append(err(loc, "each alert must be an object", "model_type"))
            continue
        n0 = len(errors)
        labels = _str_map(a.get("labels"), [*loc, "labels"], errors)
        labels = {**{str(k): str(v) for k, v in common.items() if k not in labels}, **labels}
        annotations = _str_map(a.get("annotations"), [*loc, "annotations"], errors)
        service = next((labels[k] for k in service_labels if labels.get(k)), None)
        if service is None:
            errors.append(err([*loc, "labels"], f"alert has none of the service labels {list(service_labels)}",
                              "missing"))
        name = labels.get("alertname") or "alert"
        starts = _time(a.get("startsAt"), [*loc, "startsAt"], errors, required=True)
        status = a.get("status", doc.get("status", "firing"))
        if status not in ("firing", "resolved"):
            errors.append(err([*loc, "status"], "status must be 'firing' or 'resolved'"))
        ends = _time(a.get("endsAt"), [*loc, "endsAt"], errors, required=False) if status == "resolved" else None
        if len(errors) > n0 or service is None or starts is None:
            continue
        if status == "resolved" and ends is None:
            ends = starts
        fp = a.get("fingerprint")
        if not isinstance(fp, str) or not fp:
            fp = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
        out.append(Alert(
            id=f"am-{fp}-{int(starts)}", name=name, services=[service], starts_at=starts,
            status="resolved" if status == "resolved" else "firing", ends_at=ends, labels=labels,
            annotations=annotations, fingerprint=fp, source="alertmanager",
            generator_url=a.get("generatorURL") if isinstance(a.get("generatorURL"), str) else None,
        ))
    if errors:
        raise BatchError(errors)
    return out


def _generic(items: list[Any], service_labels: Sequence[str]) -> list[Alert]:
    errors: list[dict[str, Any]] = []
    out: list[Alert] = []
    for i, a in enumerate(items):
        loc: list[Any] = ["body", "alerts", i]
        if not isinstance(a, dict):
            errors.append(err(loc, "each alert must be an object", "model_type"))
            continue
        n0 = len(errors)
        labels = _str_map(a.get("labels"), [*loc, "labels"], errors)
        annotations = _str_map(a.get("annotations"), [*loc, "annotations"], errors)
        services = a.get("services")
        if services is None and a.get("service") is not None:
            services = [a.get("service")]
        if services is None:
            services = [labels[k] for k in service_labels if labels.get(k)][:1]
        if (not isinstance(services, list) or not services
                or not all(isinstance(s, str) and 0 < len(s) <= 512 for s in services)):
            errors.append(err([*loc, "services"], "services must be a non-empty array of service names "
                              "(or give service)", "missing" if not services else "list_type"))
        name = a.get("name") or labels.get("alertname")
        if not isinstance(name, str) or not name or len(name) > 512:
            errors.append(err([*loc, "name"], "name must be a non-empty string of at most 512 characters",
                              "missing" if name is None else "string_type"))
        starts = _time(a.get("starts_at"), [*loc, "starts_at"], errors, required=True)
        ends = _time(a.get("ends_at"), [*loc, "ends_at"], errors, required=False)
        status = a.get("status") or ("resolved" if ends is not None else "firing")
        if status not in ("firing", "resolved"):
            errors.append(err([*loc, "status"], "status must be 'firing' or 'resolved'"))
        if status == "resolved" and ends is None and not any(e["loc"][:4] == [*loc, "ends_at"] for e in errors):
            errors.append(err([*loc, "ends_at"], "a resolved alert needs ends_at", "missing"))
        if starts is not None and ends is not None and ends < starts:
            errors.append(err([*loc, "ends_at"], "ends_at is before starts_at"))
        aid = a.get("id")
        if aid is not None and (not isinstance(aid, str) or not aid or len(aid) > 512):
            errors.append(err([*loc, "id"], "id must be a non-empty string", "string_type"))
        if len(errors) > n0 or starts is None:
            continue
        out.append(Alert(
            id=aid or "", name=str(name), services=list(dict.fromkeys(services)), starts_at=starts,
            status="resolved" if status == "resolved" else "firing",
            ends_at=ends if status == "resolved" else None, labels=labels, annotations=annotations,
            source="generic",
        ))
    if errors:
        raise BatchError(errors)
    return out
