"""Plain dataclasses shared by every part of the server (no I/O, no frameworks).

Times are Unix epoch seconds (float, UTC) everywhere inside the server; the API
converts to and from ISO 8601 at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ChangeKind = Literal["deployment", "config_change", "flag_change"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("deployment", "config_change", "flag_change")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
IncidentStatus = Literal["OPEN", "RESOLVED"]
Direction = Literal["up", "down"]
Verdict = Literal["cause", "not_cause"]


@dataclass(slots=True)
class MetricPoint:
    service: str
    metric: str
    ts: float
    value: float
    labels: dict[str, str] | None = None


@dataclass(slots=True)
class LogRecord:
    service: str
    ts: float
    level: str
    message: str
    attributes: dict[str, Any] | None = None


@dataclass(slots=True)
class DiffFile:
    path: str
    added: int = 0
    removed: int = 0


@dataclass(slots=True)
class Change:
    """A deployment, config change or feature-flag change.

    ``services`` holds the one service of a deployment/config change, or every service a
    flag applies to. Kind-specific fields live in ``fields`` exactly as ingested
    (``version``, ``previous_version``, ``commit``, ``diff``, ``key``, ``old_value``,
    ``new_value``, ``flag``, ``old_state``, ``new_state``, ``rollout_percent`` ...).
    """

    id: str
    kind: ChangeKind
    services: list[str]
    ts: float
    author: str | None = None
    description: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.services[0]

    @property
    def diff_files(self) -> list[DiffFile]:
        diff = self.fields.get("diff") or {}
        files = diff.get("files") or [] if isinstance(diff, dict) else []
        return [
            DiffFile(path=str(f.get("path", "")), added=int(f.get("added") or 0), removed=int(f.get("removed") or 0))
            for f in files
            if isinstance(f, dict)
        ]


@dataclass(slots=True)
class Edge:
    source: str  # caller
    target: str  # callee (source depends on target)


@dataclass(slots=True)
class Anomaly:
    id: str
    service: str
    metric: str
    started_at: float  # estimated onset (change point), event time
    detected_at: float  # event time of the point that confirmed it
    direction: Direction
    score: float
    baseline: float
    observed: float
    ended_at: float | None = None
    incident_id: str | None = None
    join_reason: str | None = None
    # labels of the anomalous series (a series is service, metric and label set); None: none
    labels: dict[str, str] | None = None
    # what opened it (knn, seasonal, drift, level, range, shift) and one sentence on why it
    # is anomalous (None: recorded before the detector said)
    channel: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class SuspectRef:
    id: str
    kind: str
    change_id: str | None
    score: float
    service: str | None = None


@dataclass(slots=True)
class Incident:
    id: str
    status: IncidentStatus
    title: str
    started_at: float
    detected_at: float
    services: list[str]
    severity: float
    anomaly_count: int
    resolved_at: float | None = None
    top_suspect: SuspectRef | None = None
    # "no convincing change": True when RCA ran and no candidate is convincing.
    no_convincing_change: bool = False
    rca_version: int = 0


@dataclass(slots=True)
class Suspect:
    id: str
    incident_id: str
    rank: int
    kind: str
    change_id: str | None
    service: str | None
    ts: float | None
    score: float
    evidence: dict[str, float]
    explanation: str


@dataclass(slots=True)
class Label:
    """A human verdict on a change (``change_id``) or, for a root-service suspect, on a
    service (``change_id`` None, ``service`` set)."""

    id: str
    incident_id: str
    change_id: str | None
    verdict: Verdict
    created_at: float
    suspect_id: str | None = None
    author: str | None = None
    note: str | None = None
    service: str | None = None


@dataclass(slots=True)
class SeriesInfo:
    service: str
    metric: str
    points: int
    first_ts: float
    last_ts: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LogWindow:
    """Columnar log records (what the store returns for a time window).

    Each column is a sequence: Python lists, or Arrow arrays as the DuckDB store returns
    them (no per-line Python objects for million-line windows)."""

    service: Sequence[Any]
    ts: Sequence[Any]
    level: Sequence[Any]
    message: Sequence[Any]

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def empty() -> LogWindow:
        return LogWindow(service=[], ts=[], level=[], message=[])


AlertStatus = Literal["firing", "resolved"]


@dataclass(slots=True)
class Alert:
    """An alert from the user's own alerting (Alertmanager or the generic form).

    A firing alert opens or joins an incident on its services at ``starts_at``; the
    incident resolves when all its alerts are resolved and its anomalies have ended."""

    id: str
    name: str
    services: list[str]
    starts_at: float
    status: AlertStatus = "firing"
    ends_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None
    source: str = "generic"  # "alertmanager" or "generic"
    generator_url: str | None = None
    incident_id: str | None = None
    join_reason: str | None = None
Role = Literal["ingest", "read", "label", "admin"]
ROLES: tuple[Role, ...] = ("ingest", "read", "label", "admin")


@dataclass(slots=True)
class ApiKey:
    """An API key as stored: only the SHA-256 of the secret is kept."""

    id: str  # the key's public prefix, e.g. ``rca_k3f9a2``: shown in listings and the audit trail
    name: str
    roles: list[str]
    key_hash: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(slots=True)
class AuditEntry:
    """Who did what: labels, reruns, key creation and revocation."""

    id: str
    ts: float
    actor: str  # the key's name (and id), or "anonymous" when the server runs open
    action: str  # "label", "rerun_rca", "key_create", "key_revoke"
    target: str | None = None  # incident or key id
    detail: dict[str, Any] = field(default_factory=dict)
