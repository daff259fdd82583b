"""Request specs for every endpoint of the contract (pure: no I/O).

Each function returns a :class:`Call` (method, path, query, JSON body and a parser of
the decoded response). The sync and async clients only execute calls, so both expose
exactly the same endpoints with the same arguments and typed results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from workbench.client.models import (
    Anomaly,
    Change,
    Health,
    Incident,
    Label,
    Series,
    SeriesInfo,
    Service,
    Suspect,
    to_iso,
)

T = TypeVar("T")
TimeLike = datetime | float | int | str


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    body: Any = None
    # status codes that are not errors for this call, mapped to the result they stand for
    tolerate: tuple[int, ...] = ()


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _jsonable(value: Any) -> Any:
    """Request payload item -> JSON-ready value (dataclasses, datetimes, nested)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _params(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if v is None:
            continue
        out[k] = to_iso(v) if isinstance(v, datetime) else v
    return out


def _list(parse_item: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    def parse(data: Any) -> list[T]:
        if not isinstance(data, list):
            raise TypeError(f"expected a JSON array, got {type(data).__name__}")
        return [parse_item(x) for x in data]

    return parse


def _accepted(data: Any) -> int:
    if isinstance(data, Mapping):
        return int(data.get("accepted") or 0)
    return 0


def _dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else {"body": data}


# ---- ingestion ---------------------------------------------------------------------------

def ingest(kind: str, items: Iterable[Any]) -> Call[int]:
    """``kind`` is metrics/logs/deployments/config_changes/flag_changes; returns accepted count."""
    wrapper = {"metrics": "points", "logs": "logs", "deployments": "deployments",
               "config_changes": "config_changes", "flag_changes": "flag_changes"}[kind]
    return Call("POST", f"/ingest/{kind}", _accepted, body={wrapper: [_jsonable(x) for x in items]})


def ingest_topology(edges: Iterable[Any]) -> Call[int]:
    norm = []
    for e in edges:
        if isinstance(e, tuple | list):
            norm.append({"source": e[0], "target": e[1]})
        else:
            norm.append(_jsonable(e))
    return Call("POST", "/ingest/topology", _accepted, body={"edges": norm})


# ---- query -------------------------------------------------------------------------------

def incidents(*, status: str | None = None, service: str | None = None, since: TimeLike | None = None,
              limit: int | None = None, offset: int | None = None) -> Call[list[Incident]]:
    return Call("GET", "/incidents", _list(Incident.from_json),
                params=_params(status=status, service=service, since=since, limit=limit, offset=offset))


def incident(incident_id: str) -> Call[Incident]:
    return Call("GET", f"/incidents/{_seg(incident_id)}", Incident.from_json)


def anomalies(incident_id: str) -> Call[list[Anomaly]]:
    return Call("GET", f"/incidents/{_seg(incident_id)}/anomalies", _list(Anomaly.from_json))


def suspects(incident_id: str) -> Call[list[Suspect]]:
    return Call("GET", f"/incidents/{_seg(incident_id)}/suspects", _list(Suspect.from_json))


def label(incident_id: str, *, verdict: str, change_id: str | None = None, suspect_id: str | None = None,
          author: str | None = None, note: str | None = None) -> Call[Label]:
    if verdict not in ("cause", "not_cause"):
        raise ValueError("verdict must be 'cause' or 'not_cause'")
    if not change_id and not suspect_id:
        raise ValueError("give change_id or suspect_id")
    body = _jsonable({"change_id": change_id, "suspect_id": suspect_id, "verdict": verdict,
                      "author": author, "note": note})
    return Call("POST", f"/incidents/{_seg(incident_id)}/label", Label.from_json, body=body)


def labels(incident_id: str) -> Call[list[Label]]:
    """``GET /incidents/{id}/labels`` (extension): labels given to the incident so far."""
    return Call("GET", f"/incidents/{_seg(incident_id)}/labels", _list(Label.from_json))


def rerun_rca(incident_id: str) -> Call[dict[str, Any]]:
    return Call("POST", f"/incidents/{_seg(incident_id)}/rerun_rca", _dict)


def changes(*, service: str | None = None, since: TimeLike | None = None, until: TimeLike | None = None,
            kind: str | None = None, limit: int | None = None) -> Call[list[Change]]:
    return Call("GET", "/changes", _list(Change.from_json),
                params=_params(service=service, since=since, until=until, kind=kind, limit=limit))


def change(change_id: str) -> Call[Change]:
    """``GET /changes/{id}`` (extension): one change event."""
    return Call("GET", f"/changes/{_seg(change_id)}", Change.from_json)


def services() -> Call[list[Service]]:
    return Call("GET", "/services", _list(Service.from_json))


def service_metrics(*, service: str | None = None) -> Call[list[SeriesInfo]]:
    return Call("GET", "/services/metrics", _list(SeriesInfo.from_json), params=_params(service=service))


def series(service: str, metric: str, *, since: TimeLike | None = None, until: TimeLike | None = None,
           step: float | None = None, labels: Mapping[str, str] | None = None) -> Call[Series]:
    """``labels`` selects label sets (``label=key=value`` matchers); without it the server
    averages every label set of the metric."""
    matchers = [f"{k}={v}" for k, v in sorted(labels.items())] if labels else None
    return Call("GET", f"/services/{_seg(service)}/metrics/{_seg(metric)}/series", Series.from_json,
                params=_params(since=since, until=until, step=step, label=matchers))


def health() -> Call[Health]:
    return Call("GET", "/health", Health.from_json)


def model() -> Call[dict[str, Any] | None]:
    """``GET /model`` (extension): model info, or ``None`` when the server has no such endpoint."""

    def parse(data: Any) -> dict[str, Any] | None:
        return None if data is None else _dict(data)

    return Call("GET", "/model", parse, tolerate=(404,))
