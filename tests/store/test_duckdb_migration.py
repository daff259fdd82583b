"""A data dir written by schema 1 (ids, merges and the store uid under meta string keys)
opens with today's release: the keys move to their own tables and keep working."""

from __future__ import annotations

from pathlib import Path

import duckdb

from server.store.duckdb import _SCHEMA_V1, SCHEMA_VERSION, DuckDBStore


def test_schema_1_meta_keys_migrate(tmp_path: Path) -> None:
    path = tmp_path / "rca.duckdb"
    con = duckdb.connect(str(path))
    for stmt in _SCHEMA_V1:
        con.execute(stmt)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", "1"), ("seq:inc", "7"), ("seq:lbl", "3"), ("merged:inc-5", "inc-2"),
        ("rca.store_uid", "abc123def456")])
    con.close()
    s = DuckDBStore(path)
    assert s.schema_version() == SCHEMA_VERSION == 7
    assert s.next_id(prefix="inc") == "inc-8" and s.next_id(prefix="lbl") == "lbl-4"
    assert s.merged_into(incident_id="inc-5") == "inc-2"
    assert s.store_uid() == "abc123def456"
    s.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT key FROM meta").fetchall() == [("schema_version",)]
    con.close()


def test_wide_metrics_table_migrates_to_series_and_points(tmp_path: Path) -> None:
    """Schema 5 stored service, metric and labels on every point; schema 6 keeps them once
    per series. Stored points read back the same; old points are not part of the ingest
    log (the in-process bus never replays them); new batches continue it from 0."""
    import pyarrow as pa

    path = tmp_path / "rca.duckdb"
    con = duckdb.connect(str(path))
    for stmt in _SCHEMA_V1:
        con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    DuckDBStore(path).close()  # today's tables, then back to the wide metrics table of schema 5
    con = duckdb.connect(str(path))
    con.execute("DROP VIEW metrics")
    con.execute("DROP TABLE points")
    con.execute("DROP TABLE series")
    con.execute(_SCHEMA_V1[1])
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    # a detector checkpoint of the old in-memory bus: its offset counted that bus's messages
    con.execute("INSERT INTO checkpoints VALUES ('detector', 0, 5000, 'state', 1.0)")
    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [
        ("web", "lat", 1.0, 10.0, None), ("web", "lat", 2.0, 12.0, None),
        ("web", "lat", 1.0, 5.0, '{"pod":"a"}'), ("api", "qps", 3.0, 7.0, None)])
    con.close()
    s = DuckDBStore(path)
    assert s.schema_version() == SCHEMA_VERSION
    assert [(i.service, i.metric, i.points, i.labels) for i in s.list_series()] == [
        ("api", "qps", 1, {}), ("web", "lat", 2, {}), ("web", "lat", 1, {"pod": "a"})]
    assert s.get_series(service="web", metric="lat", labels={"pod": "a"})[1].tolist() == [5.0]
    assert s.points_log_end() == 0 and s.read_points(since_seq=0, until_seq=10) == []
    ck = s.load_checkpoint(stage="detector", partition=0)
    assert ck is not None and (ck.offset, ck.state) == (0, b"state")  # covers all before the new log
    s.insert_metrics(table=pa.table({"service": ["web"], "metric": ["lat"], "ts": [3.0], "value": [11.0]}))
    ((seq, pts),) = s.read_points(since_seq=0, until_seq=10)
    assert seq == 0 and pts.keys() == [("web", "lat", None)] and pts.value.tolist() == [11.0]
    assert s.counts()["metrics"] == 5
    s.close()
    s = DuckDBStore(path)  # the catalogue and the log position are rebuilt on open
    assert s.points_log_end() == 1 and s.list_series(service="web")[0].points == 3
    s.close()
