"""PostgreSQL-only behaviour: several writer processes, migrations, connection errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from server.model import Anomaly, Incident
from server.settings import Settings
from server.store.base import StoreError
from server.store.factory import build_store
from server.store.postgres import PostgresStore, migrations
from server.store.split import SplitStore

WRITER = Path(__file__).with_name("pg_writer.py")


def test_two_writer_processes_lose_no_incident_or_label(pg_database: str, tmp_path: Path) -> None:
    """Two OS processes create, label and merge incidents in one database at once (and
    both merge the same shared pairs). Afterwards every label either wrote exists once,
    on a live incident; every anomaly belongs to a live incident; every merged id answers
    as a live survivor; no id was handed out twice."""
    store = PostgresStore(pg_database)
    shared: list[list[str]] = []
    for k in range(10):  # pairs both writers merge (a redelivery seen by two workers)
        a, b = store.next_ids(prefix="inc", n=2)
        store.save_incidents(incidents=[Incident(id=x, status="OPEN", title=x, started_at=-100.0 - k,
                                                 detected_at=-99.0, services=["shared"], severity=0.1,
                                                 anomaly_count=1) for x in (a, b)])
        store.save_anomalies(anomalies=[Anomaly(id=f"an-shared-{x}", service="shared", metric="m",
                                                started_at=-100.0, detected_at=-99.0, direction="up", score=1.0,
                                                baseline=1.0, observed=2.0, incident_id=x) for x in (a, b)])
        shared.append([b, a])
    procs = []
    for name, seed in (("w1", 1), ("w2", 2)):
        out = tmp_path / f"{name}.json"
        procs.append((out, subprocess.Popen(
            [sys.executable, str(WRITER), pg_database, name, str(seed), "40", json.dumps(shared), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results = []
    for out, p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.read_text()))

    created = [i for r in results for i in r["created"]]
    assert len(created) == len(set(created)) == 160  # ids from one sequence across processes
    written = [lb for r in results for lb in r["labels"]]
    assert len(written) == len(set(written))
    labels = store.list_labels()
    assert sorted(lb.id for lb in labels) == sorted(written)  # nothing lost, nothing doubled
    live = {i.id for i in store.list_incidents(limit=100_000)}
    merged = {b for r in results for b, _ in r["merged"]} | {b for b, _ in shared}
    assert live == (set(created) | {x for pair in shared for x in pair}) - merged
    assert all(lb.incident_id in live for lb in labels), "a label points at a merged (deleted) incident"
    anomalies = store.list_anomalies()
    assert len(anomalies) == 160 + 20 and all(a.incident_id in live for a in anomalies)
    for m in merged:
        assert store.merged_into(incident_id=m) in live
    assert all(i.id not in merged for i in store.list_incidents(limit=100_000))
    store.close()


def test_migrations_apply_once_and_a_newer_schema_is_refused(pg_database: str) -> None:
    s1 = PostgresStore(pg_database)
    s2 = PostgresStore(pg_database)  # a second process opening the same database
    latest = migrations()[-1][0]
    assert s1.schema_version() == s2.schema_version() == latest
    s1.close()
    s2.close()
    with psycopg.connect(pg_database, autocommit=True) as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer release"):
        PostgresStore(pg_database)


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as err:
        PostgresStore("postgresql://rca:s3cret@127.0.0.1:1/rca", timeout=1.0)
    assert "s3cret" not in str(err.value)


def test_build_store_from_settings(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build_store(Settings(data_dir=tmp_path, store={"backend": "postgres", "postgres_dsn": pg_database}))
    assert isinstance(s, PostgresStore) and s.ping()
    s.close()
    split = build_store(Settings(data_dir=tmp_path, store={"backend": "postgres", "postgres_dsn": pg_database,
                                                           "telemetry_backend": "duckdb"}))
    assert isinstance(split, SplitStore) and split.ping()
    split.close()
    monkeypatch.delenv("RCA_STORE__POSTGRES_DSN", raising=False)  # CI exports one for the other tests
    with pytest.raises(ValueError, match="RCA_STORE__POSTGRES_DSN"):
        build_store(Settings(data_dir=tmp_path, store={"backend": "postgres"}))
