"""Model dataclasses -> public JSON shapes of the contract (pure)."""

from __future__ import annotations

from typing import Any

from server.model import Alert, Anomaly, Change, Incident, Label, Suspect
from server.timeutil import iso


def alert_public(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id, "name": a.name, "status": a.status, "services": a.services, "starts_at": iso(a.starts_at),
        "ends_at": iso(a.ends_at), "labels": a.labels, "annotations": a.annotations, "source": a.source,
        "fingerprint": a.fingerprint, "generator_url": a.generator_url, "join_reason": a.join_reason,
    }


def incident_public(i: Incident, alerts: list[Alert] | None = None) -> dict[str, Any]:
    top = None
    if i.top_suspect is not None:
        t = i.top_suspect
        top = {"id": t.id, "kind": t.kind, "change_id": t.change_id, "score": t.score, "service": t.service}
    return {
        "id": i.id, "status": i.status, "title": i.title, "started_at": iso(i.started_at),
        "detected_at": iso(i.detected_at), "resolved_at": iso(i.resolved_at), "services": i.services,
        "severity": i.severity, "anomaly_count": i.anomaly_count, "top_suspect": top,
        "no_convincing_change": i.no_convincing_change,
        "alerts": [alert_public(a) for a in alerts or []],
    }


def anomaly_public(a: Anomaly) -> dict[str, Any]:
    return {
        "id": a.id, "incident_id": a.incident_id, "service": a.service, "metric": a.metric,
        "started_at": iso(a.started_at), "detected_at": iso(a.detected_at), "ended_at": iso(a.ended_at),
        "direction": a.direction, "score": a.score, "baseline": a.baseline, "observed": a.observed,
        "join_reason": a.join_reason, "labels": dict(a.labels or {}), "channel": a.channel, "reason": a.reason,
    }


def suspect_public(s: Suspect) -> dict[str, Any]:
    return {
        "id": s.id, "incident_id": s.incident_id, "rank": s.rank, "kind": s.kind, "change_id": s.change_id,
        "service": s.service, "ts": iso(s.ts), "score": s.score, "evidence": s.evidence,
        "explanation": s.explanation,
    }


def label_public(lb: Label) -> dict[str, Any]:
    return {
        "id": lb.id, "incident_id": lb.incident_id, "change_id": lb.change_id, "service": lb.service,
        "suspect_id": lb.suspect_id,
        "verdict": lb.verdict, "author": lb.author, "note": lb.note, "created_at": iso(lb.created_at),
    }


def change_public(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": c.kind, "id": c.id}
    if c.kind == "flag_change":
        out["services"] = c.services
    else:
        out["service"] = c.service
    out["ts"] = iso(c.ts)
    out.update({k: v for k, v in c.fields.items() if k not in ("services",)})
    if c.author is not None:
        out["author"] = c.author
    if c.description is not None:
        out["description"] = c.description
    return out
