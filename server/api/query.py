"""Query endpoints: incidents, anomalies, suspects, labels, changes, services, series, model."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from server.api import convert, schemas
from server.api.auth import Principal, audit, require
from server.api.deps import State, ts_param
from server.api.shared import cached
from server.events import LabelAdded, RerunRequested
from server.model import Label
from server.model.labels import matches, parse_matchers
from server.rca.service import model_info_of_store
from server.shared.base import STATE, TELEMETRY
from server.timeutil import iso

MAX_OFFSET = 1_000_000_000  # beyond any store's row count, and within every store's integer range

router = APIRouter(responses={503: {"model": schemas.ErrorPublic, "description": "storage error"}})

_NO_INCIDENT: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorPublic, "description": "unknown incident"}}


def _incident_or_404(state: State, incident_id: str) -> Any:
    """The incident, following merges: an incident merged into another answers as that one."""
    seen = {incident_id}
    inc = state.store.get_incident(incident_id=incident_id)
    while inc is None:
        target = state.store.merged_into(incident_id=incident_id)
        if target is None or target in seen:
            raise HTTPException(404, detail=f"incident {incident_id!r} not found")
        seen.add(target)
        incident_id = target
        inc = state.store.get_incident(incident_id=incident_id)
    return inc


@router.get("/incidents", response_model=list[schemas.IncidentPublic], tags=["incidents"],
            summary="Incidents, newest first", responses={422: {"model": schemas.ErrorPublic}})
def list_incidents(
    state: State,
    status: Literal["OPEN", "RESOLVED"] | None = None,
    service: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601 or epoch seconds; incidents started at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    until: Annotated[str | None, Query(description="ISO 8601 or epoch seconds; incidents started at or before")] = None,
) -> Any:
    lo, hi = ts_param(since, "since"), ts_param(until, "until")

    def compute() -> Any:
        incs = state.store.list_incidents(status=status, service=service, since=lo, until=hi, limit=limit,
                                          offset=offset)
        alerts = _alerts_by_incident(state, [i.id for i in incs])
        return [convert.incident_public(i, alerts.get(i.id)) for i in incs]

    return cached(state, (STATE,), f"incidents?{status}&{service}&{lo}&{hi}&{limit}&{offset}", compute)


@router.get("/incidents/{incident_id}", response_model=schemas.IncidentPublic, tags=["incidents"],
            responses=_NO_INCIDENT)
def get_incident(incident_id: str, state: State) -> Any:
    def compute() -> Any:
        inc = _incident_or_404(state, incident_id)
        return convert.incident_public(inc, _alerts_by_incident(state, [inc.id]).get(inc.id))

    return cached(state, (STATE,), f"incident/{incident_id}", compute)


def _alerts_by_incident(state: State, incident_ids: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if incident_ids:
        for a in state.store.list_alerts(incident_ids=incident_ids):
            out.setdefault(a.incident_id or "", []).append(a)
    return out


@router.get("/incidents/{incident_id}/anomalies", response_model=list[schemas.AnomalyPublic], tags=["incidents"],
            responses=_NO_INCIDENT)
def get_anomalies(incident_id: str, state: State) -> Any:
    def compute() -> Any:
        inc = _incident_or_404(state, incident_id)
        return [convert.anomaly_public(a) for a in state.store.list_anomalies(incident_id=inc.id)]

    return cached(state, (STATE,), f"anomalies/{incident_id}", compute)


@router.get("/incidents/{incident_id}/suspects", response_model=list[schemas.SuspectPublic], tags=["incidents"],
            summary="Ranked suspects with evidence and explanation, best first", responses=_NO_INCIDENT)
def get_suspects(incident_id: str, state: State) -> Any:
    def compute() -> Any:
        inc = _incident_or_404(state, incident_id)
        return [convert.suspect_public(s) for s in state.store.list_suspects(incident_id=inc.id)]

    return cached(state, (STATE,), f"suspects/{incident_id}", compute)


@router.get("/incidents/{incident_id}/labels", response_model=list[schemas.LabelPublic], tags=["incidents"],
            summary="Labels given to this incident (extension)", responses=_NO_INCIDENT)
def get_labels(incident_id: str, state: State) -> Any:
    inc = _incident_or_404(state, incident_id)
    return [convert.label_public(lb) for lb in state.store.list_labels(incident_id=inc.id)]


@router.post("/incidents/{incident_id}/label", response_model=schemas.LabelPublic, tags=["incidents"],
             summary="Label a change as the cause (or not) of an incident",
             responses={404: {"model": schemas.ErrorPublic, "description": "unknown incident, suspect or change"},
                        422: {"model": schemas.ErrorPublic, "description": "invalid label"}})
async def post_label(incident_id: str, body: schemas.LabelIn, state: State,
                     who: Annotated[Principal, require("label")]) -> Any:
    incident_id = _incident_or_404(state, incident_id).id
    change_id, service = body.change_id, body.service
    if body.suspect_id is not None:
        sus = state.store.get_suspect(suspect_id=body.suspect_id)
        if sus is None or sus.incident_id != incident_id:
            raise HTTPException(404, detail=f"suspect {body.suspect_id!r} not found in incident {incident_id!r}")
        if sus.change_id is None:  # a root-service suspect
            if change_id is not None:
                raise HTTPException(422, detail=[{"loc": ["body", "change_id"], "type": "value_error",
                                                  "msg": "this suspect is a service, not a change"}])
            if service is not None and service != sus.service:
                raise HTTPException(422, detail=[{"loc": ["body", "service"], "type": "value_error",
                                                  "msg": "service does not match the suspect's service"}])
            service = sus.service
        else:
            if change_id is not None and change_id != sus.change_id:
                raise HTTPException(422, detail=[{"loc": ["body", "change_id"], "type": "value_error",
                                                  "msg": "change_id does not match the suspect's change"}])
            change_id = sus.change_id
    if change_id is not None and service is not None and body.suspect_id is None:
        raise HTTPException(422, detail=[{"loc": ["body", "service"], "type": "value_error",
                                          "msg": "give change_id or service, not both"}])
    if change_id is None and service is None:
        raise HTTPException(422, detail=[{"loc": ["body", "change_id"], "type": "missing",
                                          "msg": "give change_id, suspect_id or service"}])
    if change_id is not None:
        if state.store.get_change(change_id=change_id) is None:
            raise HTTPException(404, detail=f"change {change_id!r} not found")
        service = None
    elif service is not None and service not in _known_services(state, incident_id):
        raise HTTPException(404, detail=f"service {service!r} not found")
    label = Label(id=state.store.next_id(prefix="lbl"), incident_id=incident_id, change_id=change_id,
                  verdict=body.verdict, created_at=time.time(), suspect_id=body.suspect_id, author=body.author,
                  note=body.note, service=service)
    await state.publisher.store_event(lambda: state.store.add_label(label=label),
                                      lambda _: LabelAdded(label_id=label.id, incident_id=label.incident_id))
    audit(state, who, "label", incident_id, label_id=label.id, change_id=change_id, verdict=body.verdict,
          author=body.author)
    return convert.label_public(label)


def _known_services(state: Any, incident_id: str) -> set[str]:
    """Services a label may name: the incident's suspects' and the store's services."""
    names = {s.service for s in state.store.list_suspects(incident_id=incident_id) if s.service}
    names |= {str(s.get("name")) for s in state.store.list_services()}
    names |= {e.source for e in state.store.get_topology()} | {e.target for e in state.store.get_topology()}
    return names


@router.post("/incidents/{incident_id}/rerun_rca", status_code=202, tags=["incidents"],
             response_model=schemas.RerunAccepted, responses=_NO_INCIDENT,
             summary="Recompute suspects (reflects all labels so far)")
async def rerun_rca(incident_id: str, state: State, who: Annotated[Principal, require("label")]) -> Any:
    incident_id = _incident_or_404(state, incident_id).id
    audit(state, who, "rerun_rca", incident_id)
    await state.publisher.store_event(lambda: None, lambda _: RerunRequested(incident_id=incident_id))
    return {"accepted": 1, "incident_id": incident_id}


@router.get("/changes", tags=["changes"], summary="Change events, newest first",
            response_model=list[schemas.ChangePublic], response_model_exclude_unset=True,
            responses={422: {"model": schemas.ErrorPublic}})
def list_changes(
    state: State,
    service: str | None = None,
    since: str | None = None,
    until: str | None = None,
    kind: Literal["deployment", "config_change", "flag_change"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> Any:
    changes = state.store.list_changes(service=service, since=ts_param(since, "since"),
                                       until=ts_param(until, "until"), kind=kind, limit=limit)
    return [convert.change_public(c) for c in changes]


@router.get("/changes/{change_id}", tags=["changes"], summary="One change event (extension)",
            response_model=schemas.ChangePublic, response_model_exclude_unset=True,
            responses={404: {"model": schemas.ErrorPublic, "description": "unknown change"}})
def get_change(change_id: str, state: State) -> Any:
    c = state.store.get_change(change_id=change_id)
    if c is None:
        raise HTTPException(404, detail=f"change {change_id!r} not found")
    return convert.change_public(c)


@router.get("/services", response_model=list[schemas.ServicePublic], tags=["services"])
def list_services(state: State) -> Any:
    return cached(state, (STATE, TELEMETRY), "services", lambda: [
        {"name": s["name"], "metrics": s["metrics"], "last_seen": iso(s["last_seen"])}
        for s in state.store.list_services()])


_LABEL_DOC = ("label matcher key=value (repeatable: every matcher must hold); selects the label sets of the "
              "series, e.g. label=pod=a. An empty value also matches a series without that label.")
LabelMatchers = Annotated[list[str] | None, Query(description=_LABEL_DOC)]
# Bucket widths from a millisecond to ~30 years: anything else is refused (422), never put into SQL.
STEP_MIN, STEP_MAX = 1e-3, 1e9


def _matchers(label: list[str] | None) -> dict[str, str]:
    try:
        return parse_matchers(label or [])
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", "label"], "msg": str(exc), "type": "value_error"}]) from exc


@router.get("/services/metrics", response_model=list[schemas.SeriesInfoPublic], tags=["services"],
            summary="The series catalogue: one row per series (service, metric, label set)")
def list_series(state: State, service: str | None = None, metric: str | None = None,
                label: LabelMatchers = None) -> Any:
    want = _matchers(label)
    return [{"service": s.service, "metric": s.metric, "points": s.points, "first_ts": iso(s.first_ts),
             "last_ts": iso(s.last_ts), "labels": s.labels}
            for s in state.store.list_series(service=service)
            if (metric is None or s.metric == metric) and (not want or matches(s.labels, want))]


@router.get("/services/{service}/metrics/{metric}/series", response_model=schemas.SeriesPublic, tags=["services"],
            summary="Stored points of a metric; label sets selected by label matchers, averaged when several",
            responses={404: {"model": schemas.ErrorPublic, "description": "unknown series"},
                       422: {"model": schemas.ErrorPublic}})
def get_series(
    service: str, metric: str, state: State, since: str | None = None, until: str | None = None,
    step: Annotated[float | None, Query(ge=STEP_MIN, le=STEP_MAX, allow_inf_nan=False,
                                        description="bucket width in seconds (averages), 0.001 to 1e9")] = None,
    label: LabelMatchers = None,
) -> Any:
    want = _matchers(label)
    catalogue = [s for s in state.store.list_series(service=service) if s.metric == metric]
    chosen = [s for s in catalogue if matches(s.labels, want)]
    if not chosen:
        what = f" with labels {', '.join(f'{k}={v}' for k, v in want.items() if k[:1] != chr(0))}" if want else ""
        raise HTTPException(404, detail=f"no series {service}/{metric}{what}")
    ts, vals = state.store.get_series(service=service, metric=metric, since=ts_param(since, "since"),
                                      until=ts_param(until, "until"), step=step, labels=want or None)
    return {"service": service, "metric": metric, "label_sets": len(chosen),
            "points": [{"ts": iso(float(t)), "value": float(v)} for t, v in zip(ts, vals, strict=True)]}


@router.get("/model", tags=["model"], summary="Ranking model: version, labels used, held-out accuracy (extension)",
            response_model=schemas.ModelInfoPublic, response_model_exclude_unset=True)
def get_model(state: State) -> Any:
    return cached(state, (STATE,), "model", lambda: model_info_of_store(state.store))
