"""Build the configured store from settings only (``RCA_STORE__*``); workers and the API
call the same function, so a backend is never chosen by a branch in a handler."""

from __future__ import annotations

from pathlib import Path

from server.settings import Settings
from server.store.base import Store, TelemetryStore


def _open(backend: str, settings: Settings) -> Store:
    cfg = settings.store
    if backend == "duckdb":
        from server.store.duckdb import DuckDBStore

        return DuckDBStore(Path(settings.data_dir) / "rca.duckdb", memory_limit=cfg.memory_limit, threads=cfg.threads,
                           flush_seconds=cfg.flush_seconds, flush_rows=cfg.flush_rows)
    if backend == "postgres":
        if not cfg.postgres_dsn:
            raise ValueError("RCA_STORE__BACKEND=postgres needs RCA_STORE__POSTGRES_DSN "
                             "(e.g. postgresql://rca@127.0.0.1:55432/rca; `stack/lib/postgres.sh env` prints it)")
        from server.store.postgres import PostgresStore

        return PostgresStore(cfg.postgres_dsn, min_size=cfg.postgres_pool_min,
                             max_size=max(cfg.postgres_pool_min, cfg.postgres_pool_max),
                             timeout=cfg.postgres_timeout_seconds)
    if backend == "clickhouse":
        raise ValueError("ClickHouse holds telemetry only: use RCA_STORE__TELEMETRY_BACKEND=clickhouse with "
                         "RCA_STORE__BACKEND=postgres (or duckdb) for the state")
    raise ValueError(f"unknown store backend {backend!r}")


def open_clickhouse(settings: Settings) -> TelemetryStore:
    """The ClickHouse telemetry store of the settings: a server at ``clickhouse_url``, else
    chDB on ``clickhouse_path`` (default ``<data_dir>/clickhouse``)."""
    from server.store.clickhouse import ClickHouseStore, Retention

    cfg = settings.store
    retention = Retention(raw_days=cfg.clickhouse_raw_days, rollup_1m_days=cfg.clickhouse_rollup_1m_days,
                          rollup_1h_days=cfg.clickhouse_rollup_1h_days, logs_days=cfg.clickhouse_logs_days)
    if cfg.clickhouse_url:
        return ClickHouseStore(url=cfg.clickhouse_url, database=cfg.clickhouse_database, retention=retention,
                               pool_size=cfg.clickhouse_pool_size, async_insert=cfg.clickhouse_async_insert)
    path = cfg.clickhouse_path or Path(settings.data_dir) / "clickhouse"
    return ClickHouseStore(path=path, database=cfg.clickhouse_database, retention=retention,
                           pool_size=cfg.clickhouse_pool_size)


def build_store(settings: Settings) -> Store:
    """The state store of ``RCA_STORE__BACKEND``; when ``RCA_STORE__TELEMETRY_BACKEND``
    names another backend, metrics and logs go there (a :class:`SplitStore`)."""
    state_backend = settings.store.backend
    telemetry_backend = settings.store.telemetry_backend or state_backend
    state = _open(state_backend, settings)
    if telemetry_backend == state_backend:
        return state
    from server.store.split import SplitStore

    try:
        telemetry = open_clickhouse(settings) if telemetry_backend == "clickhouse" else _open(telemetry_backend,
                                                                                               settings)
    except BaseException:
        state.close()
        raise
    return SplitStore(telemetry=telemetry, state=state)
