"""Typed response models of the HTTP contract (``/work/shared/contract/API.md``).

Pure: plain dataclasses built from decoded JSON with ``from_json``. Timestamps become
timezone-aware UTC :class:`~datetime.datetime` values. Fields the contract does not
name are kept in ``extra`` so a newer server never breaks an older client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = Any


def parse_dt(value: object) -> datetime:
    """An ISO 8601 string (``Z`` or offset) or epoch seconds to an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        s = value.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def parse_opt_dt(value: object) -> datetime | None:
    return None if value is None else parse_dt(value)


def to_iso(value: datetime | float | int | str) -> str | float:
    """A request timestamp: datetimes become ISO 8601 UTC strings, numbers/strings pass."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, int | float):
        return float(value)
    return value


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def _f(value: object, default: float = 0.0) -> float:
    return default if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SuspectRef:
    id: str
    kind: str
    change_id: str | None
    score: float
    service: str | None = None  # a root-service suspect's service

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SuspectRef:
        return cls(id=str(d["id"]), kind=str(d.get("kind", "")), change_id=d.get("change_id"),
                   score=_f(d.get("score")), service=d.get("service"))


_INCIDENT_KEYS = frozenset({"id", "status", "title", "started_at", "detected_at", "resolved_at", "services",
                            "severity", "anomaly_count", "top_suspect"})


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    status: str
    title: str
    started_at: datetime
    detected_at: datetime
    resolved_at: datetime | None
    services: list[str]
    severity: float
    anomaly_count: int
    top_suspect: SuspectRef | None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status.upper() == "OPEN"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Incident:
        top = d.get("top_suspect")
        return cls(
            id=str(d["id"]), status=str(d.get("status", "OPEN")), title=str(d.get("title", "")),
            started_at=parse_dt(d["started_at"]),
            detected_at=parse_dt(d.get("detected_at") or d["started_at"]),
            resolved_at=parse_opt_dt(d.get("resolved_at")),
            services=[str(s) for s in d.get("services") or []],
            severity=_f(d.get("severity")), anomaly_count=int(d.get("anomaly_count") or 0),
            top_suspect=SuspectRef.from_json(top) if isinstance(top, Mapping) else None,
            extra=_extra(d, _INCIDENT_KEYS),
        )


_ANOMALY_KEYS = frozenset({"id", "incident_id", "service", "metric", "started_at", "ended_at", "direction",
                           "score", "baseline", "observed", "channel", "reason"})


@dataclass(frozen=True, slots=True)
class Anomaly:
    id: str
    incident_id: str | None
    service: str
    metric: str
    started_at: datetime
    ended_at: datetime | None
    direction: str
    score: float
    baseline: float
    observed: float
    # one sentence on why it is anomalous, and what opened it (shift, range, knn, seasonal,
    # drift, level); None from an older server or for an anomaly stored before the detector said
    reason: str | None = None
    channel: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Anomaly:
        return cls(
            id=str(d["id"]), incident_id=d.get("incident_id"), service=str(d["service"]),
            metric=str(d["metric"]), started_at=parse_dt(d["started_at"]),
            ended_at=parse_opt_dt(d.get("ended_at")), direction=str(d.get("direction", "up")),
            score=_f(d.get("score")), baseline=_f(d.get("baseline")), observed=_f(d.get("observed")),
            reason=str(d["reason"]) if d.get("reason") else None,
            channel=str(d["channel"]) if d.get("channel") else None,
            extra=_extra(d, _ANOMALY_KEYS),
        )

    @property
    def labels(self) -> dict[str, str]:
        """The label set of the anomalous series (``{}`` for an unlabelled series or an older server)."""
        lbl = self.extra.get("labels")
        return {str(k): str(v) for k, v in lbl.items()} if isinstance(lbl, Mapping) else {}

    @property
    def join_reason(self) -> str | None:
        r = self.extra.get("join_reason")
        return str(r) if r else None


_SUSPECT_KEYS = frozenset({"id", "incident_id", "rank", "kind", "change_id", "service", "ts", "score",
                           "evidence", "explanation"})


@dataclass(frozen=True, slots=True)
class Suspect:
    id: str
    incident_id: str
    rank: int
    kind: str
    change_id: str | None
    service: str | None
    ts: datetime | None
    score: float
    evidence: dict[str, float]
    explanation: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Suspect:
        ev = d.get("evidence") or {}
        return cls(
            id=str(d["id"]), incident_id=str(d.get("incident_id", "")), rank=int(d.get("rank") or 0),
            kind=str(d.get("kind", "")), change_id=d.get("change_id"), service=d.get("service"),
            ts=parse_opt_dt(d.get("ts")), score=_f(d.get("score")),
            evidence={str(k): _f(v) for k, v in ev.items()} if isinstance(ev, Mapping) else {},
            explanation=str(d.get("explanation") or ""), extra=_extra(d, _SUSPECT_KEYS),
        )


_LABEL_KEYS = frozenset({"id", "incident_id", "change_id", "suspect_id", "verdict", "author", "note",
                         "created_at"})


@dataclass(frozen=True, slots=True)
class Label:
    incident_id: str
    change_id: str | None
    verdict: str
    id: str | None = None
    suspect_id: str | None = None
    author: str | None = None
    note: str | None = None
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Label:
        return cls(
            id=None if d.get("id") is None else str(d["id"]), incident_id=str(d.get("incident_id", "")),
            change_id=d.get("change_id"), suspect_id=d.get("suspect_id"), verdict=str(d.get("verdict", "")),
            author=d.get("author"), note=d.get("note"), created_at=parse_opt_dt(d.get("created_at")),
            extra=_extra(d, _LABEL_KEYS),
        )


_CHANGE_KEYS = frozenset({"kind", "id", "service", "services", "ts", "author", "description"})


@dataclass(frozen=True, slots=True)
class Change:
    """A deployment, config change or flag change; kind-specific fields are in ``fields``
    (``version``, ``previous_version``, ``commit``, ``diff``, ``key``, ``old_value``,
    ``new_value``, ``flag``, ``old_state``, ``new_state``, ``rollout_percent`` ...)."""

    kind: str
    id: str
    services: list[str]
    ts: datetime
    author: str | None = None
    description: str | None = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def service(self) -> str:
        return self.services[0] if self.services else ""

    @property
    def diff_files(self) -> list[dict[str, Any]]:
        diff = self.fields.get("diff")
        files = diff.get("files") if isinstance(diff, Mapping) else None
        return [dict(f) for f in files or [] if isinstance(f, Mapping)]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Change:
        services = d.get("services")
        if not services:
            services = [d["service"]] if d.get("service") else []
        return cls(
            kind=str(d.get("kind", "")), id=str(d["id"]), services=[str(s) for s in services],
            ts=parse_dt(d["ts"]), author=d.get("author"), description=d.get("description"),
            fields=_extra(d, _CHANGE_KEYS),
        )


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    metrics: list[str]
    last_seen: datetime | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Service:
        return cls(name=str(d["name"]), metrics=[str(m) for m in d.get("metrics") or []],
                   last_seen=parse_opt_dt(d.get("last_seen")))


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    service: str
    metric: str
    points: int
    first_ts: datetime | None
    last_ts: datetime | None
    labels: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SeriesInfo:
        lbl = d.get("labels")
        return cls(service=str(d["service"]), metric=str(d["metric"]), points=int(d.get("points") or 0),
                   first_ts=parse_opt_dt(d.get("first_ts")), last_ts=parse_opt_dt(d.get("last_ts")),
                   labels={str(k): str(v) for k, v in lbl.items()} if isinstance(lbl, Mapping) else {})


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    service: str
    metric: str
    points: list[SeriesPoint]

    @property
    def timestamps(self) -> list[float]:
        return [p.ts.timestamp() for p in self.points]

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Series:
        pts = [SeriesPoint(ts=parse_dt(p["ts"]), value=_f(p.get("value"), float("nan")))
               for p in d.get("points") or []]
        return cls(service=str(d.get("service", "")), metric=str(d.get("metric", "")), points=pts)


@dataclass(frozen=True, slots=True)
class Health:
    status: str
    pending: int
    components: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Health:
        comps = d.get("components")
        return cls(status=str(d.get("status", "")), pending=int(d.get("pending") or 0),
                   components=dict(comps) if isinstance(comps, Mapping) else {},
                   extra=_extra(d, frozenset({"status", "pending", "components"})))


@dataclass(frozen=True, slots=True)
class LogPattern:
    service: str
    template: str
    level: str
    before: int
    after: int
    new: bool
    first_after_s: float | None
    example: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogPattern:
        first = d.get("first_after_s")
        return cls(service=str(d["service"]), template=str(d["template"]), level=str(d.get("level", "")),
                   before=int(d.get("before") or 0), after=int(d.get("after") or 0), new=bool(d.get("new")),
                   first_after_s=None if first is None else float(first), example=str(d.get("example") or ""))


@dataclass(frozen=True, slots=True)
class LogPatterns:
    """``GET /incidents/{id}/log_patterns`` (extension): patterns around a change or the onset."""

    incident_id: str
    change_id: str | None
    at: datetime
    before_s: float
    after_s: float
    services: list[str]
    lines: int
    patterns: list[LogPattern]
    sample_step: int = 1

    @property
    def new_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.new]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogPatterns:
        return cls(incident_id=str(d["incident_id"]), change_id=d.get("change_id"), at=parse_dt(d["at"]),
                   before_s=_f(d.get("before_s")), after_s=_f(d.get("after_s")),
                   services=[str(s) for s in d.get("services") or []], lines=int(d.get("lines") or 0),
                   patterns=[LogPattern.from_json(p) for p in d.get("patterns") or []],
                   sample_step=int(d.get("sample_step") or 1))


@dataclass(frozen=True, slots=True)
class ChangeIncident:
    """``GET /changes/{id}/incidents`` (extension): an incident in which the change is a suspect."""

    incident_id: str
    title: str
    status: str
    started_at: datetime
    severity: float
    suspect_id: str
    rank: int
    score: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChangeIncident:
        return cls(incident_id=str(d["incident_id"]), title=str(d.get("title", "")),
                   status=str(d.get("status", "")), started_at=parse_dt(d["started_at"]),
                   severity=_f(d.get("severity")), suspect_id=str(d.get("suspect_id", "")),
                   rank=int(d.get("rank") or 0), score=_f(d.get("score")))


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """``GET /model/versions`` (extension): one trained ranking-model version."""

    version: int
    labels_used: int
    labelled_incidents: int
    trained_at: datetime | None
    blend_weight: float
    heldout: dict[str, float] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelVersion:
        ho = d.get("heldout")
        return cls(version=int(d["version"]), labels_used=int(d.get("labels_used") or 0),
                   labelled_incidents=int(d.get("labelled_incidents") or 0),
                   trained_at=parse_opt_dt(d.get("trained_at")), blend_weight=_f(d.get("blend_weight")),
                   heldout={str(k): _f(v) for k, v in ho.items()} if isinstance(ho, Mapping) else None)
