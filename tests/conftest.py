"""Shared fixtures: a real embedded server (uvicorn thread, DuckDB file in tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.embedded import EmbeddedServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        yield srv


@pytest.fixture
def http(server: EmbeddedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# ---- PostgreSQL (real server: Debian's package via stack/lib/postgres.sh) --------------
REPO = Path(__file__).resolve().parent.parent
PG_SCRIPT = REPO / "stack" / "lib" / "postgres.sh"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A running PostgreSQL: ``RCA_STORE__POSTGRES_DSN`` when set (CI's step starts one),
    else the script installs (apt, idempotent) and starts one under .cache/stack/pg for the
    session and stops it afterwards (if it was not already running)."""
    import os
    import subprocess

    given = os.environ.get("RCA_STORE__POSTGRES_DSN")
    if given:
        yield given
        return
    was_running = subprocess.run(["bash", "-c", f"source {PG_SCRIPT} && _pg_pid"], capture_output=True).returncode == 0
    up = subprocess.run(["bash", str(PG_SCRIPT), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"could not start PostgreSQL with {PG_SCRIPT} up:\n{up.stderr}", pytrace=False)
    dsn = subprocess.run(["bash", str(PG_SCRIPT), "dsn"], capture_output=True, text=True, check=True).stdout.strip()
    yield dsn
    if not was_running:
        subprocess.run(["bash", str(PG_SCRIPT), "down"], capture_output=True)


@pytest.fixture
def pg_database(postgres_dsn: str) -> Iterator[str]:
    """The DSN of a new, empty database (dropped after the test)."""
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"rca_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    parts = conninfo_to_dict(postgres_dsn)
    parts["dbname"] = name
    yield make_conninfo("", **parts)
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
