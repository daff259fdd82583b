"""The ClickHouse telemetry store beyond the conformance suite: retention and roll-ups read
transparently, retention changes, the settings that select it, and what a user sees when
chDB's directory is taken or a server is unreachable. Runs on chDB (the real ClickHouse
engine in process); no ClickHouse server can run on this machine, so the server mode is
exercised only up to its connection error (clickhouse-connect is the same client in both
modes)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from server.settings import Settings
from server.store.base import StoreError
from server.store.clickhouse import ClickHouseStore, Retention

DAY = 86400.0


@pytest.fixture
def opened() -> Iterator[list[ClickHouseStore]]:
    stores: list[ClickHouseStore] = []
    yield stores
    for s in stores:
        s.close()


def _series(now: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two label sets, one point every 10 s over the last 5 days."""
    ts = np.arange(math.floor((now - 5 * DAY) / 10) * 10, now - 5, 10.0)
    vals = {"a": 100 + 10 * np.sin(ts / 600.0), "b": 50 + (ts % 7)}
    return ts, vals


def _table(ts: np.ndarray, vals: dict[str, np.ndarray]) -> pa.Table:
    parts = []
    for pod, v in vals.items():
        parts.append(pa.table({"service": ["web"] * ts.size, "metric": ["lat"] * ts.size, "ts": ts, "value": v,
                               "labels": [f'{{"pod":"{pod}"}}'] * ts.size}))
    return pa.concat_tables(parts)


def test_old_points_are_read_from_rollups_transparently(tmp_path: Path, opened: list[ClickHouseStore]) -> None:
    now = time.time()
    s = ClickHouseStore(path=tmp_path / "ch", retention=Retention(raw_days=1, rollup_1m_days=3, rollup_1h_days=30))
    opened.append(s)
    ts, vals = _series(now)
    s.insert_metrics(table=_table(ts, vals))
    # raw points older than the raw retention are not kept (the TTL applies at insert too)
    oldest_raw = s._rows("SELECT toUnixTimestamp64Milli(min(ts)) / 1000 FROM rca.metrics")[0][0]
    assert oldest_raw >= now - DAY - 60
    # the catalogue counts every point ingested
    assert [(i.labels, i.points) for i in s.list_series(service="web")] == [({"pod": "a"}, ts.size),
                                                                            ({"pod": "b"}, ts.size)]

    # recent window: the raw 10-s points
    got_t, got_v = s.get_series(service="web", metric="lat", labels={"pod": "a"}, since=now - 7200, until=now)
    want = ts >= now - 7200
    assert np.array_equal(got_t, ts[want]) and np.array_equal(got_v, vals["a"][want])

    # two days ago (past the raw retention): one point per minute, the minute's mean
    t_m, v_m = s.get_series(service="web", metric="lat", labels={"pod": "a"}, since=now - 2 * DAY,
                            until=now - 2 * DAY + 3600)
    assert np.all(np.diff(t_m) == 60.0) and 59 <= t_m.size <= 61
    minute = np.floor(ts / 60) * 60
    for t, v in zip(t_m, v_m, strict=True):
        assert v == pytest.approx(vals["a"][minute == t].mean(), rel=1e-12)

    # four days ago (past the 1-minute roll-up): one point per hour, the hour's mean
    t_h, v_h = s.get_series(service="web", metric="lat", labels={"pod": "b"}, since=now - 4.5 * DAY,
                            until=now - 4 * DAY)
    assert np.all(np.diff(t_h) == 3600.0) and 11 <= t_h.size <= 13
    hour = np.floor(ts / 3600) * 3600
    for t, v in zip(t_h, v_h, strict=True):
        assert v == pytest.approx(vals["b"][hour == t].mean(), rel=1e-12)

    # a window across the raw cut-off: minutes, then raw points, in order, never both
    t_x, _ = s.get_series(service="web", metric="lat", labels={"pod": "a"}, since=now - DAY - 1800,
                          until=now - DAY + 1800)
    assert np.all(np.diff(t_x) > 0)
    steps = set(np.diff(t_x).tolist())
    assert steps <= {10.0, 20.0, 30.0, 40.0, 50.0, 60.0} and 10.0 in steps and 60.0 in steps

    # hourly buckets over the whole 5 days: every point counted once, in exactly one tier,
    # so each bucket is the exact mean of the raw points of its hour (both pods averaged)
    t_b, v_b = s.get_series(service="web", metric="lat", step=3600.0)
    both = np.concatenate([vals["a"], vals["b"]])
    hours = np.concatenate([hour, hour])
    assert t_b.tolist() == sorted(set(hour.tolist()))
    for t, v in zip(t_b, v_b, strict=True):
        assert v == pytest.approx(both[hours == t].mean(), rel=1e-9)

    # the RCA reads: every series of a service around an old onset, and before/after stats
    at = math.floor((now - 2 * DAY) / 3600) * 3600
    many = s.get_series_many(services=["web"], since=at - 3600, until=at + 1800)
    assert list(many) == [("web", "lat")] and many[("web", "lat")][0].size == 91  # minutes, both ends in
    (ba,) = s.series_before_after(services=["web"], at=at, before=3600, after=1800)
    # a rolled-up point stands at its bucket's start: the minute starting at at + 1800 is in
    pre, post = (minute >= at - 3600) & (minute < at), (minute >= at) & (minute <= at + 1800)
    assert ba.before.n == 2 * pre.sum() and ba.after.n == 2 * post.sum()
    pre_v = np.concatenate([vals["a"][pre], vals["b"][pre]])
    assert ba.before.mean == pytest.approx(pre_v.mean(), rel=1e-12)
    assert ba.before.std == pytest.approx(pre_v.std(), rel=1e-6)
    labelled = s.get_labelled_series(service="web", metric="lat", since=at - 3600, until=at)
    assert [lab for lab, _, _ in labelled] == [{"pod": "a"}, {"pod": "b"}]
    assert labelled[1][2][0] == pytest.approx(vals["b"][minute == at - 3600].mean(), rel=1e-12)


def test_retention_change_is_applied_on_open(tmp_path: Path, opened: list[ClickHouseStore]) -> None:
    s = ClickHouseStore(path=tmp_path / "ch")
    s.close()
    s = ClickHouseStore(path=tmp_path / "ch", retention=Retention(raw_days=7, logs_days=2))
    opened.append(s)
    ddl = s._rows("SELECT name, create_table_query FROM system.tables WHERE database = 'rca' ORDER BY name")
    by_name = {str(r[0]): str(r[1]) for r in ddl}
    assert "TTL toDateTime(ts) + toIntervalSecond(604800)" in by_name["metrics"]
    assert "TTL toDateTime(ts) + toIntervalSecond(172800)" in by_name["logs"]
    assert "TTL" not in by_name["metrics_1m"]
    s.close()
    s = ClickHouseStore(path=tmp_path / "ch")  # back to keeping everything
    opened.append(s)
    ddl = s._rows("SELECT create_table_query FROM system.tables WHERE database = 'rca' AND name = 'metrics'")
    assert "TTL" not in str(ddl[0][0])


def test_bad_batches_store_nothing(tmp_path: Path, opened: list[ClickHouseStore]) -> None:
    s = ClickHouseStore(path=tmp_path / "ch")
    opened.append(s)
    far = pa.table({"service": ["a", "a"], "metric": ["m", "m"], "ts": [1.0, 1e12], "value": [1.0, 2.0]})
    with pytest.raises(StoreError, match="outside 1900..2299"):
        s.insert_metrics(table=far)
    nan = pa.table({"service": ["a"], "metric": ["m"], "ts": [float("nan")], "value": [1.0]})
    with pytest.raises(StoreError):
        s.insert_metrics(table=nan)
    assert s.list_series() == []


def test_settings_pair_postgres_state_with_clickhouse_telemetry(tmp_path: Path, pg_database: str) -> None:
    from server.store.factory import build_store
    from server.store.postgres import PostgresStore
    from server.store.split import SplitStore

    store = build_store(Settings(data_dir=tmp_path, store={
        "backend": "postgres", "postgres_dsn": pg_database, "telemetry_backend": "clickhouse",
        "clickhouse_raw_days": 30, "clickhouse_rollup_1m_days": 90}))
    try:
        assert isinstance(store, SplitStore) and isinstance(store.state, PostgresStore)
        assert isinstance(store.telemetry, ClickHouseStore) and store.telemetry.path == tmp_path / "clickhouse"
        assert store.telemetry.retention == Retention(raw_days=30, rollup_1m_days=90)
        store.insert_metrics(table=pa.table({"service": ["a"], "metric": ["m"], "ts": [1.0], "value": [2.0]}))
        assert store.list_services() == [{"name": "a", "metrics": ["m"], "last_seen": 1.0}]
        assert store.ping()
    finally:
        store.close()
    with pytest.raises(ValueError, match="'duckdb' or 'postgres'"):  # ClickHouse is no state store
        Settings(data_dir=tmp_path, store={"backend": "clickhouse"})
    with pytest.raises(ValueError, match="at least clickhouse_raw_days"):
        Settings(store={"clickhouse_raw_days": 10, "clickhouse_rollup_1m_days": 1})


def test_a_second_process_cannot_open_a_chdb_directory(tmp_path: Path, opened: list[ClickHouseStore]) -> None:
    """chDB is one engine per process with a lock on its directory: separate API and worker
    processes cannot share it (they need a ClickHouse server); the error says so."""
    s = ClickHouseStore(path=tmp_path / "ch")
    opened.append(s)
    code = ("from server.store.clickhouse import ClickHouseStore\n"
            "from server.store.base import StoreError\n"
            f"try:\n    ClickHouseStore(path={str(tmp_path / 'ch')!r})\n"
            "except StoreError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert "only one process may open a data path" in out.stdout, out.stdout + out.stderr


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError) as err:
        ClickHouseStore(url="http://rca:s3cret@127.0.0.1:9/", timeout=2.0)
    assert "cannot connect to ClickHouse at http://rca:***@127.0.0.1:9/" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_stack_env_keeps_postgres_telemetry_unless_a_server_is_given() -> None:
    """`stack/local.sh env` (separate processes) cannot use chDB; `env-single` (one process) does."""
    import os

    script = Path(__file__).resolve().parents[2] / "stack" / "local.sh"
    env = {k: v for k, v in os.environ.items() if k != "RCA_CLICKHOUSE_URL"}

    def settings(*args: str, **extra: str) -> dict[str, str]:
        out = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                             env={**env, **extra}, check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    multi = settings("env")
    assert multi["RCA_STORE__BACKEND"] == "postgres" and multi["RCA_STORE__TELEMETRY_BACKEND"] == "postgres"
    server = settings("env", RCA_CLICKHOUSE_URL="http://rca:pw@ch:8123")
    assert server["RCA_STORE__TELEMETRY_BACKEND"] == "clickhouse"
    assert server["RCA_STORE__CLICKHOUSE_URL"] == "http://rca:pw@ch:8123"
    single = settings("env-single")
    assert single["RCA_STORE__TELEMETRY_BACKEND"] == "clickhouse" and "RCA_STORE__POSTGRES_DSN" in single
    assert single["RCA_STORE__CLICKHOUSE_PATH"].endswith(".cache/stack/chdb")
    s = Settings(store={k.removeprefix("RCA_STORE__").lower(): v for k, v in single.items()
                        if k.startswith("RCA_STORE__")})
    assert s.store.telemetry_backend == "clickhouse" and s.store.backend == "postgres"
