"""Polars tables for the Streamlit pages (pure: typed client models in, DataFrames out)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from workbench.client import Change, ChangeIncident, Incident, Label, LogPattern, Suspect
from workbench.ui.charts import change_summary, suspect_label


def _utc(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.astimezone(UTC).replace(tzinfo=None)


_TS = pl.Datetime("us")


def incidents_frame(incidents: Sequence[Incident]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [i.id for i in incidents],
            "status": [i.status for i in incidents],
            "title": [i.title for i in incidents],
            "severity": [round(i.severity, 3) for i in incidents],
            "onset (UTC)": [_utc(i.started_at) for i in incidents],
            "detected (UTC)": [_utc(i.detected_at) for i in incidents],
            "services": [", ".join(i.services) for i in incidents],
            "anomalies": [i.anomaly_count for i in incidents],
            "top suspect": [(i.top_suspect.change_id or f"{i.top_suspect.kind}") if i.top_suspect else ""
                            for i in incidents],
            "top score": [round(i.top_suspect.score, 3) if i.top_suspect else None for i in incidents],
        },
        schema_overrides={"onset (UTC)": _TS, "detected (UTC)": _TS, "top score": pl.Float64},
    )


def suspects_frame(suspects: Sequence[Suspect], labels: Sequence[Label] = ()) -> pl.DataFrame:
    verdicts: dict[str, str] = {}
    for lb in labels:  # the newest label of a change (or suspect) wins
        for key in (lb.change_id, lb.suspect_id):
            if key:
                verdicts[key] = lb.verdict
    return pl.DataFrame(
        {
            "rank": [s.rank for s in suspects],
            "kind": [s.kind for s in suspects],
            "suspect": [suspect_label(s) for s in suspects],
            "service": [s.service or "" for s in suspects],
            "score": [round(s.score, 3) for s in suspects],
            "time (UTC)": [_utc(s.ts) for s in suspects],
            "label": [verdicts.get(s.change_id or "", verdicts.get(s.id, "")) for s in suspects],
            "explanation": [s.explanation for s in suspects],
        },
        schema_overrides={"time (UTC)": _TS},
    )


def changes_frame(changes: Sequence[Change]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [c.id for c in changes],
            "kind": [c.kind for c in changes],
            "time (UTC)": [_utc(c.ts) for c in changes],
            "services": [", ".join(c.services) for c in changes],
            "author": [c.author or "" for c in changes],
            "what": [change_summary(c) for c in changes],
        },
        schema_overrides={"time (UTC)": _TS},
    )


def patterns_frame(patterns: Sequence[LogPattern]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "new": ["new" if p.new else "" for p in patterns],
            "service": [p.service for p in patterns],
            "level": [p.level for p in patterns],
            "before": [p.before for p in patterns],
            "after": [p.after for p in patterns],
            "first after (s)": [None if p.first_after_s is None else round(p.first_after_s, 1) for p in patterns],
            "template": [p.template for p in patterns],
            "example": [p.example for p in patterns],
        },
        schema_overrides={"first after (s)": pl.Float64},
    )


def change_incidents_frame(rows: Sequence[ChangeIncident]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "incident": [r.incident_id for r in rows],
            "status": [r.status for r in rows],
            "title": [r.title for r in rows],
            "onset (UTC)": [_utc(r.started_at) for r in rows],
            "rank": [r.rank for r in rows],
            "score": [round(r.score, 3) for r in rows],
        },
        schema_overrides={"onset (UTC)": _TS},
    )


def labels_frame(labels: Sequence[Label]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time (UTC)": [_utc(lb.created_at) for lb in labels],
            "change": [lb.change_id or "" for lb in labels],
            "suspect": [lb.suspect_id or "" for lb in labels],
            "verdict": [lb.verdict for lb in labels],
            "author": [lb.author or "" for lb in labels],
            "note": [lb.note or "" for lb in labels],
        },
        schema_overrides={"time (UTC)": _TS},
    )
