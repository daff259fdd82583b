"""Configuration from environment variables (prefix ``RCA_``, nested with ``__``).

Examples: ``RCA_DATA_DIR=/var/lib/rca``, ``RCA_PORT=8000``,
``RCA_STORE__BACKEND=duckdb``, ``RCA_BUS__BACKEND=memory``,
``RCA_GROUPING__GAP_SECONDS=300``, ``RCA_API__MAX_BODY_BYTES=67108864``,
``RCA_WEBHOOKS__GITHUB_SECRET=...``, ``RCA_RECEIVERS__SERVICE_LABELS='["service","job"]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseModel):
    backend: Literal["duckdb"] = "duckdb"
    # DuckDB memory limit for the embedded store (None lets DuckDB decide).
    memory_limit: str | None = None
    # DuckDB worker threads (None: the CPUs this process may run on, its affinity mask).
    threads: int | None = None


class BusSettings(BaseModel):
    backend: Literal["memory"] = "memory"
    # Bounded queue: ingestion waits (back-pressure) instead of growing memory without limit.
    max_queued_messages: int = 256


class ApiSettings(BaseModel):
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="larger request bodies get 413")
    max_batch_items: int = 1_000_000


class PipelineSettings(BaseModel):
    # A point older than its series' newest detected point is stored but not fed to the
    # detector; it is counted in rca_late_points_total (never silently dropped from storage).
    allowed_lateness_seconds: float = 0.0
    # Run RCA for dirty incidents at least this often (wall clock) during a continuous stream.
    rca_max_delay_seconds: float = 2.0
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCA_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    log_level: str = "info"
    store: StoreSettings = StoreSettings()
    bus: BusSettings = BusSettings()
    api: ApiSettings = ApiSettings()
    pipeline: PipelineSettings = PipelineSettings()
    grouping: GroupingSettings = GroupingSettings()
    receivers: ReceiverSettings = ReceiverSettings()
    webhooks: WebhookSettings = WebhookSettings()
