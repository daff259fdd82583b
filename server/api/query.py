"""Query endpoints: incidents, anomalies, suspects, labels, changes, services, series, model."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from server.api import convert, schemas
from server.api.auth import Principal, audit, require
from server.api.deps import State, ts_param
from server.model import Label
from server.rca.service import model_info_of_store
from server.timeutil import iso

router = APIRouter()


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
            summary="Incidents, newest first")
def list_incidents(
    state: State,
    status: Literal["OPEN", "RESOLVED"] | None = None,
    service: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601 or epoch seconds; incidents started at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    incs = state.store.list_incidents(status=status, service=service, since=ts_param(since, "since"),
                                      limit=limit, offset=offset)
    return [convert.incident_public(i) for i in incs]


@router.get("/incidents/{incident_id}", response_model=schemas.IncidentPublic, tags=["incidents"])
def get_incident(incident_id: str, state: State) -> Any:
    return convert.incident_public(_incident_or_404(state, incident_id))


@router.get("/incidents/{incident_id}/anomalies", response_model=list[schemas.AnomalyPublic], tags=["incidents"])
def get_anomalies(incident_id: str, state: State) -> Any:
    inc = _incident_or_404(state, incident_id)
    return [convert.anomaly_public(a) for a in state.store.list_anomalies(incident_id=inc.id)]


@router.get("/incidents/{incident_id}/suspects", response_model=list[schemas.SuspectPublic], tags=["incidents"],
            summary="Ranked suspects with evidence and explanation, best first")
def get_suspects(incident_id: str, state: State) -> Any:
    inc = _incident_or_404(state, incident_id)
    return [convert.suspect_public(s) for s in state.store.list_suspects(incident_id=inc.id)]


@router.get("/incidents/{incident_id}/labels", response_model=list[schemas.LabelPublic], tags=["incidents"],
            summary="Labels given to this incident (extension)")
def get_labels(incident_id: str, state: State) -> Any:
    inc = _incident_or_404(state, incident_id)
    return [convert.label_public(lb) for lb in state.store.list_labels(incident_id=inc.id)]


@router.post("/incidents/{incident_id}/label", response_model=schemas.LabelPublic, tags=["incidents"],
             summary="Label a change as the cause (or not) of an incident")
async def post_label(incident_id: str, body: schemas.LabelIn, state: State,
                     who: Annotated[Principal, require("label")]) -> Any:
    incident_id = _incident_or_404(state, incident_id).id
    change_id = body.change_id
    if body.suspect_id is not None:
        sus = state.store.get_suspect(suspect_id=body.suspect_id)
        if sus is None or sus.incident_id != incident_id:
            raise HTTPException(404, detail=f"suspect {body.suspect_id!r} not found in incident {incident_id!r}")
        if sus.change_id is None:
            raise HTTPException(422, detail=[{"loc": ["body", "suspect_id"], "type": "value_error",
                                              "msg": "this suspect names no change; label a change_id instead"}])
        if change_id is not None and change_id != sus.change_id:
            raise HTTPException(422, detail=[{"loc": ["body", "change_id"], "type": "value_error",
                                              "msg": "change_id does not match the suspect's change"}])
        change_id = sus.change_id
    if change_id is None:
        raise HTTPException(422, detail=[{"loc": ["body", "change_id"], "type": "missing",
                                          "msg": "give change_id or suspect_id"}])
    if state.store.get_change(change_id=change_id) is None:
        raise HTTPException(404, detail=f"change {change_id!r} not found")
    label = Label(id=state.store.next_id(prefix="lbl"), incident_id=incident_id, change_id=change_id,
                  verdict=body.verdict, created_at=time.time(), suspect_id=body.suspect_id, author=body.author,
                  note=body.note)
    state.store.add_label(label=label)
    audit(state, who, "label", incident_id, label_id=label.id, change_id=change_id, verdict=body.verdict,
          author=body.author)
    await state.publisher.label(label)
    return convert.label_public(label)


@router.post("/incidents/{incident_id}/rerun_rca", status_code=202, tags=["incidents"],
             summary="Recompute suspects (reflects all labels so far)")
async def rerun_rca(incident_id: str, state: State, who: Annotated[Principal, require("label")]) -> JSONResponse:
    incident_id = _incident_or_404(state, incident_id).id
    audit(state, who, "rerun_rca", incident_id)
    await state.publisher.rerun(incident_id)
    return JSONResponse({"accepted": 1, "incident_id": incident_id}, status_code=202)


@router.get("/changes", tags=["changes"], summary="Change events, newest first")
def list_changes(
    state: State,
    service: str | None = None,
    since: str | None = None,
    until: str | None = None,
    kind: Literal["deployment", "config_change", "flag_change"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[dict[str, Any]]:
    changes = state.store.list_changes(service=service, since=ts_param(since, "since"),
                                       until=ts_param(until, "until"), kind=kind, limit=limit)
    return [convert.change_public(c) for c in changes]


@router.get("/changes/{change_id}", tags=["changes"], summary="One change event (extension)")
def get_change(change_id: str, state: State) -> dict[str, Any]:
    c = state.store.get_change(change_id=change_id)
    if c is None:
        raise HTTPException(404, detail=f"change {change_id!r} not found")
    return convert.change_public(c)


@router.get("/services", response_model=list[schemas.ServicePublic], tags=["services"])
def list_services(state: State) -> Any:
    return [{"name": s["name"], "metrics": s["metrics"], "last_seen": iso(s["last_seen"])}
            for s in state.store.list_services()]


@router.get("/services/metrics", response_model=list[schemas.SeriesInfoPublic], tags=["services"])
def list_series(state: State, service: str | None = None) -> Any:
    return [{"service": s.service, "metric": s.metric, "points": s.points, "first_ts": iso(s.first_ts),
             "last_ts": iso(s.last_ts)} for s in state.store.list_series(service=service)]


@router.get("/services/{service}/metrics/{metric}/series", response_model=schemas.SeriesPublic, tags=["services"])
def get_series(
    service: str, metric: str, state: State, since: str | None = None, until: str | None = None,
    step: Annotated[float | None, Query(gt=0, description="bucket width in seconds (averages)")] = None,
) -> Any:
    ts, vals = state.store.get_series(service=service, metric=metric, since=ts_param(since, "since"),
                                      until=ts_param(until, "until"), step=step)
    if len(ts) == 0 and metric not in {s.metric for s in state.store.list_series(service=service)}:
        raise HTTPException(404, detail=f"no series {service}/{metric}")
    return {"service": service, "metric": metric,
            "points": [{"ts": iso(float(t)), "value": float(v)} for t, v in zip(ts, vals, strict=True)]}


@router.get("/model", tags=["model"], summary="Ranking model: version, labels used, held-out accuracy (extension)")
def get_model(state: State) -> dict[str, Any]:
    return model_info_of_store(state.store)
