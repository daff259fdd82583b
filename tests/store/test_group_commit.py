"""Group commit of metric points in the DuckDB store, on real DuckDB files.

Accepted batches are logged (and synced) at once and appended to DuckDB together. What a
user notices: a read right after ingest sees every accepted point; points reach DuckDB on
their own within ``flush_seconds`` (or at ``flush_rows``); a process that dies without
closing the store (SIGKILL, here a real child process) loses nothing that was accepted,
and a restart never stores a point twice, even when it died between the DuckDB append and
emptying the log, or in the middle of writing a record.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from server.model.points import Points
from server.store.base import StoreError
from server.store.duckdb import DuckDBStore
from server.store.points_log import PointsLog

SERIES = [("checkout", "p95_latency_ms", None), ("checkout", "p95_latency_ms", '{"pod":"b"}'), ("search", "qps", None)]


def _batch(b: int, per_series: int = 100) -> Points:
    n = len(SERIES) * per_series
    code = np.tile(np.arange(len(SERIES), dtype=np.int32), per_series)
    ts = np.repeat(1_764_460_800.0 + 10.0 * (b * per_series + np.arange(per_series)), len(SERIES))
    return Points.build(list(SERIES), code, ts, np.arange(n, dtype=np.float64) + 1000.0 * b)


def _stored(store: DuckDBStore) -> list[tuple[int, int]]:
    """(seq, points) of every stored batch."""
    return [(seq, p.n) for seq, p in store.read_points(since_seq=0, until_seq=1 << 40)]


def test_reads_see_accepted_points_before_the_group_commit(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "rca.duckdb", flush_seconds=60.0)
    try:
        for b in range(3):
            assert store.insert_points(points=_batch(b)) == b
        log = tmp_path / "rca.duckdb.points.log"
        assert log.stat().st_size > 0  # the two batches after the first (new series) wait in the log
        assert _stored(store) == [(0, 300), (1, 300), (2, 300)]  # the read appended them first
        assert log.stat().st_size == 0
        lat = store.get_labelled_series(service="checkout", metric="p95_latency_ms", since=0.0, until=2e9)
        assert sorted(len(ts) for _, ts, _ in lat) == [300, 300]
    finally:
        store.close()


def test_points_reach_duckdb_by_time_and_by_size(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "t.duckdb", flush_seconds=0.1)
    log = tmp_path / "t.duckdb.points.log"
    try:
        store.insert_points(points=_batch(0))
        store.insert_points(points=_batch(1))
        assert log.stat().st_size > 0
        deadline = time.monotonic() + 10.0
        while log.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.stat().st_size == 0, "the flusher did not append the waiting batch"
    finally:
        store.close()
    assert not log.exists()  # a clean close leaves no log behind
    store = DuckDBStore(tmp_path / "r.duckdb", flush_seconds=60.0, flush_rows=500)
    try:
        store.insert_points(points=_batch(0))
        store.insert_points(points=_batch(1))  # 300 waiting
        assert (tmp_path / "r.duckdb.points.log").stat().st_size > 0
        store.insert_points(points=_batch(2))  # 600 >= 500: appended at once
        assert (tmp_path / "r.duckdb.points.log").stat().st_size == 0
    finally:
        store.close()


_CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tests.store.test_group_commit import _batch
from server.store.duckdb import DuckDBStore
store = DuckDBStore({path!r}, flush_seconds=60.0)
for b in range(5):
    store.insert_points(points=_batch(b))
print("accepted", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_loses_no_accepted_point(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _CHILD.format(root=root, path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert "accepted" in done.stdout, done.stderr
    assert done.returncode < 0  # killed, the store never closed
    log = tmp_path / "k.duckdb.points.log"
    assert log.stat().st_size > 0
    saved = log.read_bytes()
    store = DuckDBStore(path)
    try:
        assert _stored(store) == [(b, 300) for b in range(5)]
        assert store.points_log_end() == 5
        assert log.stat().st_size == 0
        store.insert_points(points=_batch(5))
        assert _stored(store)[-1] == (5, 300)
    finally:
        store.close()
    # died after the DuckDB append but before the log was emptied, with a torn record at
    # the end: the restart re-appends nothing twice and stops at the torn record
    log.write_bytes(saved + saved[:50])
    store = DuckDBStore(path)
    try:
        assert _stored(store) == [(b, 300) for b in range(6)]
    finally:
        store.close()


def test_the_log_keeps_records_whole_and_stops_at_damage(tmp_path: Path) -> None:
    log = PointsLog(tmp_path / "x.log", sync=False)
    sid = np.array([0, 1, 2], dtype=np.int32)
    log.append(7, sid, np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.5, np.nan]))
    log.append(8, sid[:1], np.array([4.0]), np.array([2.5]))
    log.close()
    got = log.read()
    assert [(s, i.tolist(), t.tolist()) for s, i, t, _ in got] == [(7, [0, 1, 2], [1.0, 2.0, 3.0]), (8, [0], [4.0])]
    assert got[0][3][:2].tolist() == [0.5, -1.5] and np.isnan(got[0][3][2])
    raw = bytearray((tmp_path / "x.log").read_bytes())
    raw[-3] ^= 0xFF  # a damaged payload in the second record
    (tmp_path / "x.log").write_bytes(bytes(raw))
    assert [s for s, *_ in log.read()] == [7]
    log.clear()
    assert log.read() == []


class _FailingAppends:
    """DuckDB's connection, except that appends to ``points`` fail while ``failing`` is set:
    a full disk or an I/O error cannot be caused on purpose here, so it is injected."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.failing = True

    def execute(self, sql: str, *args: Any) -> Any:
        if self.failing and sql.startswith("INSERT INTO points"):
            raise duckdb.IOException("No space left on device (injected)")
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def test_a_failing_append_keeps_accepted_batches_and_then_refuses_new_ones(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "f.duckdb", flush_seconds=60.0, flush_rows=400)
    try:
        store.insert_points(points=_batch(0))  # new series: committed at once
        real = store._db
        store._db = _FailingAppends(real)  # type: ignore[assignment]
        accepted = [store.insert_points(points=_batch(b)) for b in range(1, 7)]  # 1,800 points: over 4 x 400
        assert accepted == [1, 2, 3, 4, 5, 6]  # each logged, so each acknowledged, though DuckDB refused
        size = (tmp_path / "f.duckdb.points.log").stat().st_size
        with pytest.raises(StoreError, match="No space left"):
            store.insert_points(points=_batch(7))
        assert (tmp_path / "f.duckdb.points.log").stat().st_size == size  # the refused batch was not logged
        store._db.failing = False  # type: ignore[attr-defined]
        store._db = real
        assert store.insert_points(points=_batch(7)) == 7
        assert _stored(store) == [(b, 300) for b in range(8)]
    finally:
        store.close()
