"""Pydantic models of the HTTP contract: they define the OpenAPI document.

Ingest bodies of change events, logs and topology are validated with these models;
metric batches are validated column-wise by :mod:`server.api.validation` against the
same rules (per-point model validation caps ingest far below the target rate).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from server.timeutil import parse_ts


def _ts(v: Any) -> float:
    return parse_ts(v)


Timestamp = Annotated[
    float,
    BeforeValidator(_ts),
    Field(description="ISO 8601 string with a zone, or Unix epoch seconds", json_schema_extra={
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}),
]
NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class MetricPointIn(_In):
    service: NonEmpty
    metric: NonEmpty
    ts: Timestamp
    value: float = Field(description="finite number")
    labels: dict[str, str] | None = None


class MetricBatchIn(_In):
    points: list[MetricPointIn]


class LogIn(_In):
    service: NonEmpty
    ts: Timestamp
    level: str = Field(description="DEBUG, INFO, WARN (or WARNING), ERROR, FATAL; case-insensitive")
    message: str
    attributes: dict[str, Any] | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        u = v.strip().upper()
        if u == "WARNING":
            u = "WARN"
        if u not in ("DEBUG", "INFO", "WARN", "ERROR", "FATAL"):
            raise ValueError("level must be one of DEBUG, INFO, WARN, ERROR, FATAL")
        return u


class LogBatchIn(_In):
    logs: list[LogIn]


class DiffFileIn(_In):
    path: NonEmpty
    added: int = Field(default=0, ge=0)
    removed: int = Field(default=0, ge=0)


class DiffIn(_In):
    files: list[DiffFileIn] = []


class DeploymentIn(_In):
    id: NonEmpty | None = None
    service: NonEmpty
    ts: Timestamp
    version: NonEmpty
    previous_version: str | None = None
    commit: str | None = None
    author: str | None = None
    description: str | None = None
    diff: DiffIn | None = None


class ConfigChangeIn(_In):
    id: NonEmpty | None = None
    service: NonEmpty
    ts: Timestamp
    key: NonEmpty
    old_value: str | None = None
    new_value: str | None = None
    author: str | None = None
    description: str | None = None

    @field_validator("old_value", "new_value", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        # Config values are often numbers or booleans in JSON; keep them as their text.
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return v


class FlagChangeIn(_In):
    id: NonEmpty | None = None
    flag: NonEmpty
    services: list[NonEmpty] = Field(min_length=1)
    ts: Timestamp
    old_state: str | None = None
    new_state: str | None = None
    rollout_percent: float | None = Field(default=None, ge=0, le=100)
    author: str | None = None
    description: str | None = None

    @field_validator("old_state", "new_state", mode="before")
    @classmethod
    def _state(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "on" if v else "off"
        return v


class DeploymentBatchIn(_In):
    deployments: list[DeploymentIn]


class ConfigChangeBatchIn(_In):
    config_changes: list[ConfigChangeIn]


class FlagChangeBatchIn(_In):
    flag_changes: list[FlagChangeIn]


class EdgeIn(_In):
    source: NonEmpty
    target: NonEmpty


class TopologyIn(_In):
    edges: list[EdgeIn]


class LabelIn(_In):
    change_id: str | None = None
    suspect_id: str | None = None
    verdict: Literal["cause", "not_cause"]
    author: str | None = None
    note: str | None = None


# ---- responses --------------------------------------------------------------------------


class Accepted(BaseModel):
    accepted: int
    ids: list[str] | None = Field(default=None, description="ids of the change events (given or assigned)")


class TopSuspectPublic(BaseModel):
    id: str
    kind: str
    change_id: str | None
    score: float


class AlertIn(_In):
    """The generic alert form of ``POST /ingest/alerts`` (the Alertmanager webhook payload
    is accepted as Alertmanager sends it)."""

    id: NonEmpty | None = None
    name: NonEmpty
    services: list[NonEmpty] | None = Field(default=None, description="or give service")
    service: NonEmpty | None = None
    starts_at: Timestamp
    ends_at: Timestamp | None = None
    status: Literal["firing", "resolved"] | None = Field(
        default=None, description="default: resolved when ends_at is given, else firing")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class AlertPublic(BaseModel):
    id: str
    name: str
    status: Literal["firing", "resolved"]
    services: list[str]
    starts_at: str
    ends_at: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    source: str = Field(description="alertmanager or generic")
    fingerprint: str | None = None
    generator_url: str | None = None
    join_reason: str | None = Field(default=None, description="why the alert opened or joined this incident")


class WebhookAccepted(BaseModel):
    accepted: int
    ids: list[str] = Field(description="ids of the change events stored or already known")
    ignored: str | None = Field(default=None, description="why nothing was stored (e.g. not a deployment event)")


class IncidentPublic(BaseModel):
    id: str
    status: Literal["OPEN", "RESOLVED"]
    title: str
    started_at: str
    detected_at: str
    resolved_at: str | None
    services: list[str]
    severity: float
    anomaly_count: int
    top_suspect: TopSuspectPublic | None
    no_convincing_change: bool = Field(
        default=False, description="RCA ran and no candidate change is convincing (extension)")
    alerts: list[AlertPublic] = Field(
        default_factory=list, description="alerts that opened or joined this incident (POST /ingest/alerts)")


class AnomalyPublic(BaseModel):
    id: str
    incident_id: str | None
    service: str
    metric: str
    started_at: str
    detected_at: str
    ended_at: str | None
    direction: Literal["up", "down"]
    score: float
    baseline: float
    observed: float
    join_reason: str | None = None


class SuspectPublic(BaseModel):
    id: str
    incident_id: str
    rank: int
    kind: str
    change_id: str | None
    service: str | None
    ts: str | None
    score: float
    evidence: dict[str, float]
    explanation: str


class LabelPublic(BaseModel):
    id: str
    incident_id: str
    change_id: str
    suspect_id: str | None
    verdict: Literal["cause", "not_cause"]
    author: str | None
    note: str | None
    created_at: str


class ServicePublic(BaseModel):
    name: str
    metrics: list[str]
    last_seen: str | None


class SeriesInfoPublic(BaseModel):
    service: str
    metric: str
    points: int
    first_ts: str
    last_ts: str


class PointPublic(BaseModel):
    ts: str
    value: float


class SeriesPublic(BaseModel):
    service: str
    metric: str
    points: list[PointPublic]


class HealthPublic(BaseModel):
    status: str
    pending: int
    components: dict[str, str]
    watermark: str | None = None
    late_points: int = 0
