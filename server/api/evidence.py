"""Read-only evidence endpoints (extensions) for the Streamlit pages and other clients.

- ``GET /incidents/{id}/log_patterns``: log templates (Drain, as RCA mines them) around a
  change or the onset, with counts before and after, new patterns first.
- ``GET /changes/{id}/incidents``: the incidents in which a change is a ranked suspect.
- ``GET /model/versions``: every trained ranking-model version (held-out accuracy per
  version is the learning curve).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from server.api import schemas
from server.api.deps import State
from server.api.query import _incident_or_404
from server.rca.drain import build_index
from server.rca.engine import CANDIDATE_AFTER_S, LOOKBACK_S
from server.rca.log_patterns import pattern_counts
from server.timeutil import iso

router = APIRouter(responses={404: {"model": schemas.ErrorPublic, "description": "unknown incident or change"},
                               422: {"model": schemas.ErrorPublic, "description": "invalid parameter"}})

#: Incidents scanned for one change's suspects (incidents within the candidate window).
MAX_SCANNED_INCIDENTS = 2000


class LogPatternPublic(BaseModel):
    service: str
    template: str = Field(description="Drain template; variable parts are <*>")
    level: str = Field(description="highest level among the pattern's lines")
    before: int = Field(description="lines in [at - before_s, at)")
    after: int = Field(description="lines in [at, at + after_s]")
    new: bool = Field(description="new or surging after `at` (the rule of the error_logs evidence)")
    first_after_s: float | None = Field(description="seconds from `at` to the pattern's first line after it")
    example: str = Field(description="one raw message of the pattern")


class LogPatternsPublic(BaseModel):
    incident_id: str
    change_id: str | None = Field(description="the change the window is centred on (null: the onset)")
    at: str = Field(description="the moment counted around (the change's time, else the onset)")
    before_s: float
    after_s: float
    services: list[str]
    min_level: str
    lines: int = Field(description="log lines read in the window")
    sample_step: int = Field(description="1: every line mined; k: a 1-in-k sample (counts scaled up)")
    patterns: list[LogPatternPublic]


class ChangeIncidentPublic(BaseModel):
    incident_id: str
    title: str
    status: str
    started_at: str
    severity: float
    suspect_id: str
    rank: int
    score: float


class ModelVersionPublic(BaseModel):
    version: int
    labels_used: int = 0
    labelled_incidents: int = 0
    trained_at: str | None = None
    blend_weight: float = 0.0
    heldout: dict[str, float] | None = Field(
        default=None, description="grouped-CV AC@1/AC@3/MRR of the blend (and prior_*) at this version")


@router.get("/incidents/{incident_id}/log_patterns", response_model=LogPatternsPublic, tags=["incidents"],
            summary="Log patterns around a change (or the onset) with counts before and after (extension)")
def get_log_patterns(
    incident_id: str,
    state: State,
    change_id: Annotated[str | None, Query(description="centre on this change (default: the top change suspect)")] = None,
    before: Annotated[float, Query(gt=0, le=86_400, description="seconds counted before")] = 1800.0,
    after: Annotated[float, Query(gt=0, le=86_400, description="seconds counted after")] = 600.0,
    min_level: Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"] = "WARN",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    inc = _incident_or_404(state, incident_id)
    store = state.store
    change = None
    if change_id is not None:
        change = store.get_change(change_id=change_id)
        if change is None:
            raise HTTPException(404, detail=f"change {change_id!r} not found")
    else:
        top = next((s for s in store.list_suspects(incident_id=inc.id) if s.change_id), None)
        if top is not None and top.change_id is not None:
            change = store.get_change(change_id=top.change_id)
    at = change.ts if change is not None else inc.started_at
    services = sorted(set(inc.services) | (set(change.services) if change is not None else set()))
    logs = store.get_logs(services=services, since=at - before, until=at + after, min_level=min_level)
    index = build_index(logs, since=at - before, until=at + after)
    pats = pattern_counts(index, at=at, before_s=before, after_s=after, services=set(services))
    return {
        "incident_id": inc.id, "change_id": change.id if change is not None else None, "at": iso(at),
        "before_s": before, "after_s": after, "services": services, "min_level": min_level,
        "lines": index.lines, "sample_step": index.sample_step,
        "patterns": [{"service": p.service, "template": p.template, "level": p.level, "before": p.before,
                      "after": p.after, "new": p.new, "first_after_s": p.first_after_s, "example": p.example}
                     for p in pats[:limit]],
    }


@router.get("/changes/{change_id}/incidents", response_model=list[ChangeIncidentPublic], tags=["changes"],
            summary="Incidents in which this change is a ranked suspect (extension)")
def get_change_incidents(change_id: str, state: State) -> Any:
    store = state.store
    change = store.get_change(change_id=change_id)
    if change is None:
        raise HTTPException(404, detail=f"change {change_id!r} not found")
    # a change can only be a candidate of incidents whose onset is in this window
    incs = store.list_incidents(since=change.ts - CANDIDATE_AFTER_S, until=change.ts + LOOKBACK_S,
                                limit=MAX_SCANNED_INCIDENTS)
    out = []
    for inc in incs:
        for s in store.list_suspects(incident_id=inc.id):
            if s.change_id == change_id:
                out.append({"incident_id": inc.id, "title": inc.title, "status": inc.status,
                            "started_at": iso(inc.started_at), "severity": inc.severity, "suspect_id": s.id,
                            "rank": s.rank, "score": s.score})
                break
    out.sort(key=lambda r: (r["rank"], r["started_at"]))
    return out


@router.get("/model/versions", response_model=list[ModelVersionPublic], tags=["model"],
            summary="Every trained ranking-model version, oldest first (extension)")
def get_model_versions(state: State) -> Any:
    out = []
    for version, info in state.store.list_model_infos():
        trained = info.get("trained_at")
        out.append({"version": version, "labels_used": int(info.get("labels_used") or 0),
                    "labelled_incidents": int(info.get("labelled_incidents") or 0),
                    "trained_at": iso(float(trained)) if isinstance(trained, int | float) else trained,
                    "blend_weight": float(info.get("blend_weight") or 0.0), "heldout": info.get("heldout")})
    return out
