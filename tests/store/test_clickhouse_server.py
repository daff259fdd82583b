"""The whole server on PostgreSQL state + ClickHouse telemetry (chDB, the real ClickHouse
engine in process; ``RCA_STORE__TELEMETRY_BACKEND=clickhouse``) gives the same incidents,
suspects, labels and services as on DuckDB for replayed simulated regressions, through
the HTTP contract only (the harness of tests/api/test_postgres_backend.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_postgres_backend import _run


@pytest.mark.slow
def test_postgres_state_and_clickhouse_telemetry_give_the_same_results_as_duckdb(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = [(3, "deployment"), (8, "config_change")]
    for var in ("RCA_STORE__BACKEND", "RCA_STORE__TELEMETRY_BACKEND", "RCA_STORE__CLICKHOUSE_URL",
                "RCA_STORE__CLICKHOUSE_PATH"):
        monkeypatch.delenv(var, raising=False)
    duck, duck_extra = _run(tmp_path / "duckdb", seeds)
    monkeypatch.setenv("RCA_STORE__BACKEND", "postgres")
    monkeypatch.setenv("RCA_STORE__POSTGRES_DSN", pg_database)
    monkeypatch.setenv("RCA_STORE__TELEMETRY_BACKEND", "clickhouse")
    ch, ch_extra = _run(tmp_path / "split", seeds)
    assert (tmp_path / "split" / "clickhouse").is_dir(), "telemetry went to chDB under the data dir"
    assert duck_extra.pop("backend") == "duckdb" and ch_extra.pop("backend") == "postgres"
    assert all(run for run in duck), "every scenario should open at least one incident"
    assert all(any(i["top"] for i in run) for run in duck), "and rank suspects"
    assert ch == duck
    assert ch_extra == duck_extra
