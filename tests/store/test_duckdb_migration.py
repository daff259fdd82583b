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
    assert s.schema_version() == SCHEMA_VERSION == 6
    assert s.next_id(prefix="inc") == "inc-8" and s.next_id(prefix="lbl") == "lbl-4"
    assert s.merged_into(incident_id="inc-5") == "inc-2"
    assert s.store_uid() == "abc123def456"
    s.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT key FROM meta").fetchall() == [("schema_version",)]
    con.close()
