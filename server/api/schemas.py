"""Pydantic models of the HTTP contract: they define the OpenAPI document.

Ingest bodies of change events, logs and topology are validated with these models;
metric batches are validated column-wise by :mod:`server.api.validation` against the
same rules (per-point model validation caps ingest far below the target rate).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from server.timeutil import TS_RANGE_TEXT, parse_event_ts


def _ts(v: Any) -> float:
    return parse_event_ts(v)


Timestamp = Annotated[
    float,
    BeforeValidator(_ts),
    Field(description=f"ISO 8601 string with a zone, or Unix epoch seconds; from {TS_RANGE_TEXT}",
          json_schema_extra={
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}),
]
NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]
Short = Annotated[str, Field(max_length=512)]
Text = Annotated[str, Field(max_length=16_384)]
MAX_LOG_MESSAGE = 65_536
MAX_ATTRIBUTES_BYTES = 65_536
MAX_ATTRIBUTES_DEPTH = 16


def _depth(v: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping as soon as it passes ``limit``."""
    stack = [(v, 1)]
    deepest = 0
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(x, dict):
            stack.extend((y, d + 1) for y in x.values())
        elif isinstance(x, list):
            stack.extend((y, d + 1) for y in x)
    return deepest


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
    message: str = Field(max_length=MAX_LOG_MESSAGE)
    attributes: dict[str, Any] | None = Field(
        default=None, description=f"at most {MAX_ATTRIBUTES_DEPTH} levels deep and {MAX_ATTRIBUTES_BYTES} bytes as JSON")

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        if _depth(v, MAX_ATTRIBUTES_DEPTH) > MAX_ATTRIBUTES_DEPTH:
            raise ValueError(f"attributes are nested deeper than {MAX_ATTRIBUTES_DEPTH} levels")
        import orjson

        if len(orjson.dumps(v)) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes as JSON")
        return v

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
    files: list[DiffFileIn] = Field(default=[], max_length=10_000)


class DeploymentIn(_In):
    id: NonEmpty | None = None
    service: NonEmpty
    ts: Timestamp
    version: NonEmpty
    previous_version: Short | None = None
    commit: Short | None = None
    author: Short | None = None
    description: Text | None = None
    diff: DiffIn | None = None


class ConfigChangeIn(_In):
    id: NonEmpty | None = None
    service: NonEmpty
    ts: Timestamp
    key: NonEmpty
    old_value: Text | None = None
    new_value: Text | None = None
    author: Short | None = None
    description: Text | None = None

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
    old_state: Short | None = None
    new_state: Short | None = None
    rollout_percent: float | None = Field(default=None, ge=0, le=100)
    author: Short | None = None
    description: Text | None = None

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
    change_id: Short | None = None
    suspect_id: Short | None = None
    service: Short | None = Field(default=None, description="names a root-service suspect (instead of a change)")
    verdict: Literal["cause", "not_cause"]
    author: Short | None = None
    note: Text | None = None


# ---- responses --------------------------------------------------------------------------


class Accepted(BaseModel):
    accepted: int
    ids: list[str] | None = Field(default=None, description="ids of the change events (given or assigned)")


class TopSuspectPublic(BaseModel):
    id: str
    kind: str
    change_id: str | None
    score: float
    service: str | None = None


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
    labels: dict[str, str] = Field(
        default_factory=dict, description="label set of the anomalous series ({} when it has none) (extension)")
    channel: Literal["shift", "range", "knn", "seasonal", "drift", "level"] | None = Field(
        default=None, description="what opened the anomaly: a CUSUM level shift, the range rule, or a score channel "
                                  "(kNN, seasonal, drift or level novelty); null for anomalies stored before "
                                  "detectors said (extension)")
    reason: str | None = Field(
        default=None, description="one sentence on why it is anomalous: what moved which way, against what "
                                  "baseline, how far, since when, and which channel fired (extension)")


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
    change_id: str | None
    service: str | None = None
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
    labels: dict[str, str] = Field(default_factory=dict, description="label set of this series ({}: none)")


class PointPublic(BaseModel):
    ts: str
    value: float


class SeriesPublic(BaseModel):
    service: str
    metric: str
    points: list[PointPublic]
    label_sets: int = Field(default=1, description="how many label sets were averaged into these points (extension)")


class RerunAccepted(BaseModel):
    accepted: int
    incident_id: str = Field(description="the incident whose suspects are recomputed (after merges)")


class DiffFilePublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str
    added: int = 0
    removed: int = 0


class DiffPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    files: list[DiffFilePublic] = []


class ChangePublic(BaseModel):
    """One change event. Which fields appear depends on ``kind`` (absent ones are left out,
    never sent as ``null``): deployments and config changes have ``service``, flag changes
    ``services``."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["deployment", "config_change", "flag_change"]
    id: str
    service: str | None = Field(default=None, description="deployment and config_change")
    services: list[str] | None = Field(default=None, description="flag_change")
    ts: str
    version: str | None = Field(default=None, description="deployment")
    previous_version: str | None = Field(default=None, description="deployment")
    commit: str | None = Field(default=None, description="deployment")
    diff: DiffPublic | None = Field(default=None, description="deployment")
    key: str | None = Field(default=None, description="config_change")
    old_value: str | None = Field(default=None, description="config_change")
    new_value: str | None = Field(default=None, description="config_change")
    flag: str | None = Field(default=None, description="flag_change")
    old_state: str | None = Field(default=None, description="flag_change")
    new_state: str | None = Field(default=None, description="flag_change")
    rollout_percent: int | float | None = Field(default=None, description="flag_change")
    author: str | None = None
    description: str | None = None


class ModelInfoPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int = Field(description="0 while only the heuristic prior ranks")
    labels_used: int
    labelled_incidents: int
    trained_at: float | None = Field(description="epoch seconds of the last training")
    blend_weight: float = Field(description="weight of the learnt model against the prior, in [0, 1]")
    heldout: dict[str, float] | None = Field(description="held-out AC@1, AC@3, MRR of the learnt model")
    features: list[str]
    kind: str
    coefficients: dict[str, float] | None = Field(default=None, description="only once a model is learnt")


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """Every error body: ``detail`` is a message, or a list naming each bad item and field."""

    detail: str | list[ValidationErrorItem]

class StagePublic(BaseModel):
    """Progress of one pipeline stage: messages published to its topic but not yet fully
    processed (``lag``), over ``partitions`` partitions, by ``workers`` live workers."""

    lag: int
    partitions: int
    workers: int
    errors: int = 0
    #: live worker -> the partitions it owns (detector)
    assignments: dict[str, list[int]] = {}


class HealthPublic(BaseModel):
    status: str
    pending: int
    components: dict[str, str]
    watermark: str | None = None
    late_points: int = 0
    stages: dict[str, StagePublic] = {}
