"""Configuration from environment variables (prefix ``RCA_``, nested with ``__``).

Examples: ``RCA_DATA_DIR=/var/lib/rca``, ``RCA_PORT=8000``,
``RCA_STORE__BACKEND=duckdb``, ``RCA_BUS__BACKEND=memory``,
``RCA_GROUPING__GAP_SECONDS=300``, ``RCA_API__MAX_BODY_BYTES=67108864``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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
    pipeline: PipelineSettings = PipelineSettings()
    grouping: GroupingSettings = GroupingSettings()
    # Overrides of server.detector.core.DetectorConfig fields (e.g. {"h": 12.0}); unknown
    # names are rejected when the pipeline starts. RCA_DETECTOR='{"h": 12}' from the env.
    detector: dict[str, Any] = Field(default_factory=dict)
