"""Configuration from environment variables (prefix ``RCA_``, nested with ``__``).

Examples: ``RCA_DATA_DIR=/var/lib/rca``, ``RCA_PORT=8000``,
``RCA_STORE__BACKEND=duckdb`` (or ``postgres`` with ``RCA_STORE__POSTGRES_DSN``),
``RCA_STORE__TELEMETRY_BACKEND`` (defaults to the state backend; ``clickhouse`` with
``RCA_STORE__CLICKHOUSE_URL`` or a chDB ``RCA_STORE__CLICKHOUSE_PATH``), ``RCA_BUS__BACKEND=memory``,
``RCA_GROUPING__GAP_SECONDS=300``, ``RCA_API__MAX_BODY_BYTES=67108864``,
``RCA_API__CORS_ORIGINS='["http://localhost:3000"]'`` (or a comma-separated list).
``RCA_WEBHOOKS__GITHUB_SECRET=...``, ``RCA_RECEIVERS__SERVICE_LABELS='["service","job"]'``.
``RCA_REDIS__URL=redis://127.0.0.1:56379/0``, ``RCA_LIMITS__BACKEND=redis``,
``RCA_LIMITS__INGEST="50/second;1000/minute"``, ``RCA_CACHE__BACKEND=redis``, ``RCA_METRICS_PORT=9101``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.detector.core import DetectorConfig

StoreBackend = Literal["duckdb", "postgres"]
# ClickHouse holds telemetry only (metrics, logs, the series catalogue)
TelemetryBackend = Literal["duckdb", "postgres", "clickhouse"]


class StoreSettings(BaseModel):
    # The state store (changes, topology, incidents, suspects, labels, models, checkpoints).
    backend: StoreBackend = "duckdb"
    # The telemetry store (metrics, logs, series catalogue); None: the same as ``backend``.
    telemetry_backend: TelemetryBackend | None = None
    # DuckDB memory limit for the embedded store (None lets DuckDB decide).
    memory_limit: str | None = None
    # DuckDB worker threads (None: the CPUs this process may run on, its affinity mask).
    threads: int | None = None
    # DuckDB group commit of metric points: accepted batches are appended to the points
    # table together, at the latest after flush_seconds or once flush_rows points wait
    # (any read of the store, a stage checkpoint and a clean shutdown write them first).
    # One large append costs about half as much per point as one commit per batch. Each
    # batch is first written and synced to the points log (<data dir>/rca.duckdb.points.log)
    # before its 202, so a crash loses none: the next start appends what was waiting.
    # 0 commits every batch before its 202.
    flush_seconds: float = Field(default=0.25, ge=0, le=60)
    flush_rows: int = Field(default=262_144, ge=1)
    # libpq connection string (URL or key=value) for the postgres backend,
    # e.g. postgresql://rca@127.0.0.1:55432/rca (`stack/lib/postgres.sh env` prints it).
    postgres_dsn: str | None = None
    # Connections per process in the pool (API threads and stage workers share it).
    postgres_pool_min: int = Field(default=1, ge=1)
    postgres_pool_max: int = Field(default=8, ge=1)
    # Seconds to wait for a connection (at start-up and from the pool) before a StoreError.
    postgres_timeout_seconds: float = Field(default=10.0, gt=0)
    # ClickHouse telemetry (RCA_STORE__TELEMETRY_BACKEND=clickhouse, docs/clickhouse.md): a server
    # URL for clickhouse-connect (http[s]://user:password@host:8123), or else chDB, the
    # in-process engine, on a data directory (default: <data_dir>/clickhouse). Only one
    # process may open a chDB directory: separate API and worker processes need a server.
    clickhouse_url: str | None = None
    clickhouse_path: Path | None = None
    clickhouse_database: str = Field(default="rca", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    # Retention in days (None: keep forever). Raw points older than clickhouse_raw_days are
    # read from the 1-minute roll-up (kept clickhouse_rollup_1m_days), older than that from
    # the 1-hour roll-up (clickhouse_rollup_1h_days); each at least the one before it.
    clickhouse_raw_days: float | None = Field(default=None, gt=0)
    clickhouse_rollup_1m_days: float | None = Field(default=None, gt=0)
    clickhouse_rollup_1h_days: float | None = Field(default=None, gt=0)
    clickhouse_logs_days: float | None = Field(default=None, gt=0)
    # Connections per process (a chDB connection runs one statement at a time).
    clickhouse_pool_size: int = Field(default=4, ge=1)
    # Server only: many small inserts (one per ingest request) are batched by the server
    # (async_insert, waiting until written, so an acknowledged batch is stored).
    clickhouse_async_insert: bool = True

    @model_validator(mode="after")
    def _rollups_outlive_raw(self) -> StoreSettings:
        order = [("clickhouse_raw_days", self.clickhouse_raw_days),
                 ("clickhouse_rollup_1m_days", self.clickhouse_rollup_1m_days),
                 ("clickhouse_rollup_1h_days", self.clickhouse_rollup_1h_days)]
        for (n1, v1), (n2, v2) in zip(order, order[1:], strict=False):
            if v1 is not None and v2 is not None and v2 < v1:
                raise ValueError(f"{n2} ({v2}) must be at least {n1} ({v1}): a roll-up outlives the finer "
                                 "data it summarises")
        return self


class BusSettings(BaseModel):
    # memory: in-process (embedded default, one process); kafka: any Kafka-compatible broker
    backend: Literal["memory", "kafka"] = "memory"
    # In-process bus: at most this many unprocessed metric batches per partition; ingestion
    # waits (back-pressure) instead of growing memory without limit.
    max_queued_messages: int = 256
    # Partitions of the metrics topic: the unit of detector parallelism (a series always
    # lands on one partition; each partition is owned by one detector worker at a time).
    # Fixed for the life of a deployment (detector checkpoints are per partition).
    partitions: int = 1
    # Topic and consumer-group name prefix (several deployments can share one broker).
    topic_prefix: str = "rca"
    # Kafka: comma-separated host:port list.
    bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka: how long a dead worker keeps its partitions before they move (ms).
    session_timeout_ms: int = 10_000


class ApiSettings(BaseModel):
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="larger request bodies get 413")
    max_batch_items: int = 1_000_000
    # Cardinality limits (a series is service, metric and label set; each costs ~7 KB of
    # detector state). A metric batch that would create series beyond one of them is
    # rejected whole (422 naming the limit); series that exist already always take points.
    max_series_per_service: int = Field(default=10_000, ge=1, description="series of one service")
    max_series_per_metric: int = Field(default=2_000, ge=1, description="label sets of one service's metric")
    max_series: int = Field(default=100_000, ge=1, description="series in the whole store")
    # Backpressure: while more bus messages than this (summed over the stages) wait for
    # processing, ingest answers 503 with Retry-After (nothing of the refused batch is
    # stored) instead of queueing more. A metric batch is one message per partition it touches.
    max_pending_messages: int = Field(default=2_000, ge=1)
    # Slow clients: the whole request head must arrive within header_timeout_seconds, the
    # whole body within body_timeout_seconds; otherwise the connection is closed / 408.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=120.0, gt=0)
    # Host header allow-list (DNS rebinding). Empty: loopback names when bound to a loopback
    # address, any host otherwise. ["*"] allows any.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Browser origins allowed to call the API (CORS), a JSON list or a comma-separated list;
    # none by default (the web app proxies, so it needs none). Cross-origin writes from any
    # other origin are refused with 403.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return v


class AuthSettings(BaseModel):
    # "auto": API keys are required as soon as one active key exists (open until then, on
    # loopback only); "required": always; "off": never (only with allow_open off loopback).
    mode: Literal["auto", "required", "off"] = "auto"
    # Bind a non-loopback address with no API key required (refused by default).
    allow_open: bool = False
    # How long a process trusts its cache of keys (revocations elsewhere take this long).
    cache_seconds: float = Field(default=5.0, ge=0)


class PipelineSettings(BaseModel):
    # A point older than its series' newest detected point is stored but not fed to the
    # detector; it is counted in rca_late_points_total (never silently dropped from storage).
    allowed_lateness_seconds: float = 0.0
    # Run RCA for dirty incidents at least this often (wall clock) during a continuous stream.
    rca_max_delay_seconds: float = 2.0
    # ... and as soon as no new work arrived for this long (debounce on time).
    rca_quiet_seconds: float = 0.05
    # A topology change leaves incidents resolved longer ago than this (event time) alone.
    rca_resolved_horizon_seconds: float = 6 * 3600.0
    # Detector state is checkpointed (with the offsets it covers) at least this often.
    checkpoint_seconds: float = 30.0
    # Metric name hints: which direction of change is a regression.
    up_is_bad: tuple[str, ...] = ("latency", "error", "duration", "time", "p95", "p99", "p50", "fail", "cpu", "mem", "5xx", "4xx", "queue", "lag")
    down_is_bad: tuple[str, ...] = ("qps", "rps", "throughput", "success", "availability", "apdex", "requests", "hit")


class GroupingSettings(BaseModel):
    # Anomalies whose onsets are within this many seconds may join one incident.
    gap_seconds: float = 600.0
    # How many topology hops may separate two services of one incident.
    max_hops: int = 2


class ReceiverSettings(BaseModel):
    # Prometheus remote-write and alerts: the first of these labels present gives the
    # service (the label is then not kept as a label of the series).
    service_labels: tuple[str, ...] = ("service", "job")
    # OTLP: resource attributes (besides service.name) that become labels of every point.
    otlp_resource_labels: tuple[str, ...] = (
        "service.instance.id", "service.version", "deployment.environment", "deployment.environment.name",
        "host.name", "k8s.pod.name", "k8s.namespace.name")


class WebhookSettings(BaseModel):
    # Shared secrets of the change webhooks. When one is set, a request without a valid
    # signature (GitHub X-Hub-Signature-256, LaunchDarkly X-LD-Signature) or token
    # (Argo CD, Authorization: Bearer) gets 401 and nothing is stored.
    github_secret: SecretStr | None = None
    argocd_token: SecretStr | None = None
    launchdarkly_secret: SecretStr | None = None
class RedisSettings(BaseModel):
    # The Redis shared by every API and worker process (rate limits, query cache) when
    # RCA_LIMITS__BACKEND / RCA_CACHE__BACKEND is "redis" (`stack/local.sh env` prints it).
    url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every key (several deployments can share one Redis).
    key_prefix: str = "rca"
    # Seconds a Redis call may take; past it the limiter lets the request through and the
    # cache computes the answer (both logged and counted in rca_shared_state_errors_total).
    timeout_seconds: float = Field(default=0.5, gt=0)


def _check_limits(v: str) -> str:
    if v.strip():
        from limits import parse_many

        try:
            parse_many(v)
        except ValueError as exc:
            raise ValueError(f"{exc}; write limits like '50/second' or '20/second;600/minute'") from exc
    return v.strip()


class LimitSettings(BaseModel):
    # Per-client request rate limits (429 with Retry-After past them). memory: a budget per
    # process; redis: one budget shared by every API process (RCA_REDIS__URL).
    backend: Literal["memory", "redis"] = "memory"
    # Limits in the `limits` notation, several separated by ';' ("20/second;600/minute");
    # empty: no limit. ingest: every /ingest/* endpoint and the telemetry receivers
    # (remote-write, OTLP, alerts); query: the read endpoints (incidents, services,
    # changes, evidence, export...). /health, /metrics, the signed webhooks and the admin
    # endpoints are never limited.
    ingest: str = ""
    query: str = ""

    @field_validator("ingest", "query")
    @classmethod
    def _parse(cls, v: str) -> str:
        return _check_limits(v)


class CacheSettings(BaseModel):
    # Short-TTL cache of the hot query answers (incident list, incident, anomalies, suspects,
    # services, model), dropped by every write that could change them. memory: this
    # process only (used when every stage runs in it, role "all"; off for role "api", whose
    # writers live in other processes); redis: shared by every process (RCA_REDIS__URL); off.
    backend: Literal["memory", "redis", "off"] = "memory"
    ttl_seconds: float = Field(default=5.0, gt=0)
    # memory backend: at most this many answers and bytes are kept (least recently used dropped).
    max_entries: int = Field(default=1024, ge=1)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)


def _detector_settings() -> type[BaseModel]:
    """Every DetectorConfig field as a setting with the same name, type and default."""
    import dataclasses
    import typing

    from pydantic import create_model

    hints = typing.get_type_hints(DetectorConfig)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(DetectorConfig)}
    return create_model("DetectorSettings", **fields)


if TYPE_CHECKING:
    class DetectorSettings(BaseModel):  # the fields of DetectorConfig
        def __getattr__(self, name: str) -> Any: ...
else:
    DetectorSettings = _detector_settings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCA_", env_nested_delimiter="__", extra="ignore")

    # all: API and every stage in this process (embedded default); api: ingest and queries
    # only, the stages run as `rca worker STAGE` processes on a shared bus.
    role: Literal["all", "api"] = "all"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    log_level: str = "info"
    store: StoreSettings = StoreSettings()
    bus: BusSettings = BusSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    pipeline: PipelineSettings = PipelineSettings()
    grouping: GroupingSettings = GroupingSettings()
    receivers: ReceiverSettings = ReceiverSettings()
    webhooks: WebhookSettings = WebhookSettings()
    # Detector parameters (``RCA_DETECTOR__WARMUP=50``...): see server/detector/core.py.
    detector: DetectorSettings = DetectorSettings()
    redis: RedisSettings = RedisSettings()
    limits: LimitSettings = LimitSettings()
    cache: CacheSettings = CacheSettings()
    # `rca worker`: serve Prometheus metrics on this port (None: not served). The API serves
    # them at GET /metrics on its own port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
