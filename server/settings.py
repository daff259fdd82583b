"""Configuration from environment variables (prefix ``RCA_``, nested with ``__``).

Examples: ``RCA_DATA_DIR=/var/lib/rca``, ``RCA_PORT=8000``,
``RCA_STORE__BACKEND=duckdb``, ``RCA_BUS__BACKEND=memory``,
``RCA_GROUPING__GAP_SECONDS=300``, ``RCA_API__MAX_BODY_BYTES=67108864``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseModel):
    backend: Literal["duckdb"] = "duckdb"
    # DuckDB memory limit for the embedded store (None lets DuckDB decide).
    memory_limit: str | None = None


class BusSettings(BaseModel):
    backend: Literal["memory"] = "memory"
    # Bounded queue: ingestion waits (back-pressure) instead of growing memory without limit.
    max_queued_messages: int = 256


class ApiSettings(BaseModel):
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="larger request bodies get 413")
    max_batch_items: int = 1_000_000
    # Backpressure: while more ingested events than this wait for processing, ingest answers
    # 503 with Retry-After (nothing of the refused batch is stored) instead of queueing more.
    max_pending_events: int = Field(default=5_000_000, ge=1)
    # Slow clients: the whole request head must arrive within header_timeout_seconds, the
    # whole body within body_timeout_seconds; otherwise the connection is closed / 408.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=120.0, gt=0)
    # Host header allow-list (DNS rebinding). Empty: loopback names when bound to a loopback
    # address, any host otherwise. ["*"] allows any.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Browser origins allowed to call the API (CORS); none by default. Cross-origin writes from
    # any other origin are refused with 403.
    cors_origins: list[str] = Field(default_factory=list)


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
    # Metric name hints: which direction of change is a regression.
    up_is_bad: tuple[str, ...] = ("latency", "error", "duration", "time", "p95", "p99", "p50", "fail", "cpu", "mem", "5xx", "4xx", "queue", "lag")
    down_is_bad: tuple[str, ...] = ("qps", "rps", "throughput", "success", "availability", "apdex", "requests", "hit")


class GroupingSettings(BaseModel):
    # Anomalies whose onsets are within this many seconds may join one incident.
    gap_seconds: float = 600.0
    # How many topology hops may separate two services of one incident.
    max_hops: int = 2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCA_", env_nested_delimiter="__", extra="ignore")

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
