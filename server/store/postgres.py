"""PostgreSQL implementation of both store protocols (state, and telemetry at moderate scale).

psycopg 3 with a ``psycopg_pool`` connection pool; the schema comes from the numbered
files in ``server/store/migrations/postgres`` (applied in order under an advisory lock,
recorded in ``schema_migrations``). Several writer processes may share one database:

- ids come from one sequence per prefix (``id_seq_<prefix>``), never from a read-modify-write;
- writes are upserts (``ON CONFLICT``), batches sorted by key so that two writers lock rows
  in the same order;
- a unit of work is one transaction on one pinned connection (per thread);
- incident merges lock the incident rows they touch (``FOR UPDATE``) and label writes
  lock the labelled incident (``FOR SHARE``), following a merge that committed first, so
  a label written while its incident is merged lands on the survivor.

Metrics go in with binary ``COPY`` (built with NumPy); series reads come out with binary
``COPY`` into NumPy. Every driver error is translated into :class:`StoreError`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from server.model import (
    Alert,
    Anomaly,
    ApiKey,
    AuditEntry,
    Change,
    Edge,
    Incident,
    Label,
    LogWindow,
    SeriesInfo,
    Suspect,
    SuspectRef,
)
from server.store.base import (
    LEVEL_RANK,
    BeforeAfter,
    Checkpoint,
    JournalEntry,
    LogPatternCount,
    SeriesLimits,
    StoreError,
    WindowStats,
    check_prefix,
    require_columns,
    services_summary,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "postgres"
_MIGRATION_LOCK = 0x7263615F6D6967  # pg_advisory_xact_lock key: one migrator at a time
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_METRIC_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("sid", ">i4"), ("l2", ">i4"), ("ts", ">f8"),
                        ("l3", ">i4"), ("v", ">f8")])
_COPY_CHUNK = 500_000
_DB_ERRORS = (psycopg.Error, PoolTimeout)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = re.match(r"^(\d+)_(.+)\.sql$", path.name)
        if m:
            out.append((int(m.group(1)), m.group(2), path.read_text()))
    return sorted(out)


def redact(dsn: str) -> str:
    """The DSN without its password (for messages)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable DSN>"
    parts.pop("password", None)
    return make_conninfo("", **{k: v for k, v in parts.items() if v is not None})


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _fields(*cols: tuple[str, str]) -> np.dtype:
    """The dtype of one binary-COPY tuple of non-null fixed-width columns."""
    spec: list[tuple[str, str]] = [("n", ">i2")]
    for i, (name, typ) in enumerate(cols):
        spec += [(f"_len{i}", ">i4"), (name, typ)]
    return np.dtype(spec)


class PostgresStore:
    """Both stores on one PostgreSQL database. ``dsn`` as libpq takes it (URL or key=value)."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10.0) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._seqs: set[str] = set()
        self._seq_lock = threading.Lock()
        try:
            self._pool = ConnectionPool(dsn, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                                        name="rca-store")
            self._pool.open(wait=True, timeout=timeout)
        except _DB_ERRORS as exc:
            with suppress(Exception):
                self._pool.close()  # stop its reconnecting threads
            raise StoreError(f"cannot connect to PostgreSQL at {redact(dsn)}: {exc}") from exc
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # ---- plumbing --------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in a transaction: the open unit of work's, or a pooled one that
        commits when the block ends (rolls back when it raises)."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            try:
                yield pinned
            except _DB_ERRORS as exc:
                raise StoreError(str(exc)) from exc
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except _DB_ERRORS as exc:
            raise StoreError(str(exc)) from exc

    @contextmanager
    def unit_of_work(self) -> Iterator[PostgresStore]:
        if getattr(self._local, "conn", None) is not None:  # nested: joins the open unit of work
            yield self
            return
        try:
            with self._pool.connection() as conn:
                self._local.conn = conn
                try:
                    yield self
                finally:
                    self._local.conn = None
        except _DB_ERRORS as exc:
            raise StoreError(str(exc)) from exc

    def _q(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._tx() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    @staticmethod
    def _copy_out(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any], dtype: np.dtype) -> np.ndarray:
        """Rows of ``sql`` (non-null fixed-width columns only) as a structured NumPy array."""
        buf = bytearray()
        with conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as cp:
            for chunk in cp:
                buf += chunk
        if len(buf) < len(_COPY_HEADER) + 2:
            return np.empty(0, dtype=dtype)
        ext = struct.unpack(">i", bytes(buf[15:19]))[0]
        start = 19 + ext
        return np.frombuffer(bytes(buf[start:len(buf) - 2]), dtype=dtype)

    def _migrate(self) -> None:
        files = migrations()
        latest = files[-1][0] if files else 0
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,
                            name text NOT NULL, applied_at double precision NOT NULL)""")
            applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            if applied and max(applied) > latest:
                raise StoreError(f"database {redact(self.dsn)} was written by a newer release "
                                 f"(schema {max(applied)} > {latest}); upgrade rca")
            for version, name, sql in files:
                if version in applied:
                    continue
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", [version, name, time.time()])

    def schema_version(self) -> int:
        rows = self._q("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    def ping(self) -> bool:
        self._q("SELECT 1")
        return True

    def close(self) -> None:
        with suppress(Exception):
            self._pool.close()

    # ---- ids, identity, checkpoints ------------------------------------------------------
    def _ensure_sequence(self, prefix: str) -> str:
        name = f"id_seq_{check_prefix(prefix)}"
        if prefix in self._seqs:
            return name
        with self._seq_lock:
            try:  # on its own connection: a unit of work in progress is not disturbed
                with self._pool.connection() as conn:
                    row = conn.execute("SELECT to_regclass(%s)", [name]).fetchone()
                    if row is None or row[0] is None:
                        with suppress(pg_errors.UniqueViolation, pg_errors.DuplicateTable), conn.transaction():
                            conn.execute(f'CREATE SEQUENCE IF NOT EXISTS "{name}"')
            except _DB_ERRORS as exc:
                raise StoreError(str(exc)) from exc
            self._seqs.add(prefix)
        return name

    def next_id(self, *, prefix: str) -> str:
        return self.next_ids(prefix=prefix, n=1)[0]

    def next_ids(self, *, prefix: str, n: int) -> list[str]:
        if n <= 0:
            return []
        name = self._ensure_sequence(prefix)
        rows = self._q("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [name, n])
        return [f"{prefix}-{v}" for v in sorted(int(r[0]) for r in rows)]

    def store_uid(self) -> str:
        with self._tx() as conn:
            conn.execute("INSERT INTO store_identity (uid) VALUES (%s) ON CONFLICT DO NOTHING", [uuid.uuid4().hex[:12]])
            row = conn.execute("SELECT uid FROM store_identity").fetchone()
        assert row is not None
        return str(row[0])

    def save_checkpoint(self, *, stage: str, partition: int, offset: int, state: bytes) -> bool:
        rows = self._q(
            """INSERT INTO checkpoints AS c VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (stage, part) DO UPDATE SET next_offset = EXCLUDED.next_offset,
                 state = EXCLUDED.state, saved_at = EXCLUDED.saved_at
               WHERE c.next_offset <= EXCLUDED.next_offset RETURNING 1""",
            [stage, partition, offset, state, time.time()])
        return bool(rows)

    @staticmethod
    def _checkpoint(r: tuple[Any, ...]) -> Checkpoint:
        return Checkpoint(stage=r[0], partition=int(r[1]), offset=int(r[2]), state=bytes(r[3]),
                          saved_at=float(r[4]))

    def load_checkpoint(self, *, stage: str, partition: int) -> Checkpoint | None:
        rows = self._q("SELECT stage, part, next_offset, state, saved_at FROM checkpoints "
                       "WHERE stage = %s AND part = %s", [stage, partition])
        return self._checkpoint(rows[0]) if rows else None

    def list_checkpoints(self, *, stage: str) -> list[Checkpoint]:
        rows = self._q("SELECT stage, part, next_offset, state, saved_at FROM checkpoints WHERE stage = %s "
                       "ORDER BY part", [stage])
        return [self._checkpoint(r) for r in rows]

    # ---- telemetry ----------------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        # NOT YET labelled: this store keys series by (service, metric) only, so label sets
        # are stored with the points but not catalogued, and ``limits`` are not enforced here.
        n = table.num_rows
        if n == 0:
            return 0
        require_columns(table, ("service", "metric", "ts", "value"), "metrics")
        labels = table.column("labels") if "labels" in table.column_names else pa.nulls(n, pa.string())
        table = pa.table({"service": pc.cast(table.column("service"), pa.string()),
                          "metric": pc.cast(table.column("metric"), pa.string()),
                          "ts": pc.cast(table.column("ts"), pa.float64()),
                          "value": pc.cast(table.column("value"), pa.float64()),
                          "labels": pc.cast(labels, pa.string())})
        agg = table.group_by(["service", "metric"]).aggregate([("ts", "count"), ("ts", "min"), ("ts", "max")])
        with self._tx() as conn:
            ids = conn.execute(
                """INSERT INTO series AS s (service, metric, points, first_ts, last_ts)
                   SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[], %s::float8[])
                   ORDER BY 1, 2
                   ON CONFLICT (service, metric) DO UPDATE SET points = s.points + EXCLUDED.points,
                     first_ts = least(s.first_ts, EXCLUDED.first_ts), last_ts = greatest(s.last_ts, EXCLUDED.last_ts)
                   RETURNING id, service, metric""",
                [agg.column(c).to_pylist() for c in ("service", "metric", "ts_count", "ts_min", "ts_max")],
            ).fetchall()
            id_table = pa.table({"service": [r[1] for r in ids], "metric": [r[2] for r in ids],
                                 "sid": pa.array([r[0] for r in ids], pa.int32())})
            rows = table.join(id_table, keys=["service", "metric"], join_type="inner")
            if rows.num_rows != n:
                raise StoreError(f"metrics batch: {n - rows.num_rows} rows matched no series; nothing stored")
            labelled = rows.filter(pc.is_valid(rows.column("labels")))
            # sorted by (series, ts): index and heap pages fill in order (about 1.5x faster
            # than live tick-major order, and a series' window reads fewer pages)
            plain = rows.filter(pc.is_null(rows.column("labels"))).sort_by([("sid", "ascending"),
                                                                            ("ts", "ascending")])
            with conn.cursor() as cur:
                if plain.num_rows:
                    with cur.copy("COPY metrics (series_id, ts, value) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.write(_COPY_HEADER)
                        for lo in range(0, plain.num_rows, _COPY_CHUNK):
                            part = plain.slice(lo, _COPY_CHUNK)
                            rec = np.empty(part.num_rows, dtype=_METRIC_ROW)
                            rec["n"], rec["l1"], rec["l2"], rec["l3"] = 3, 4, 8, 8
                            rec["sid"] = part.column("sid").to_numpy()
                            rec["ts"] = part.column("ts").to_numpy()
                            rec["v"] = part.column("value").to_numpy()
                            cp.write(rec.tobytes())
                        cp.write(_COPY_TRAILER)
                if labelled.num_rows:
                    with cur.copy("COPY metrics (series_id, ts, value, labels) FROM STDIN") as cp:
                        for row in zip(*(labelled.column(c).to_pylist() for c in ("sid", "ts", "value", "labels")),
                                       strict=True):
                            cp.write_row(row)
        return n

    def insert_logs(self, *, table: pa.Table) -> int:
        n = table.num_rows
        if n == 0:
            return 0
        require_columns(table, ("service", "ts", "level", "message"), "logs")
        levels = table.column("level").to_pylist()
        ranks = [LEVEL_RANK.get(lv, 4) for lv in levels]
        cols = [table.column(c).to_pylist() for c in ("service", "ts")]
        rest = [table.column(c).to_pylist() for c in ("message", "attributes")]
        with self._tx() as conn, conn.cursor() as cur, \
                cur.copy("COPY logs (service, ts, level, level_rank, message, attributes) FROM STDIN") as cp:
            for row in zip(cols[0], cols[1], levels, ranks, rest[0], rest[1], strict=True):
                cp.write_row(row)
        return n

    @staticmethod
    def _series_ids(conn: psycopg.Connection[Any], services: list[str]) -> dict[int, tuple[str, str]]:
        rows = conn.execute("SELECT id, service, metric FROM series WHERE service = ANY(%s)", [services]).fetchall()
        return {int(r[0]): (r[1], r[2]) for r in rows}

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None, labels: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if labels:
            raise StoreError("label matchers are not supported by the PostgreSQL store yet")
        conds: list[str] = ["series_id = (SELECT id FROM series WHERE service = %s AND metric = %s)"]
        params: list[Any] = [service, metric]
        if since is not None:
            conds.append("ts >= %s")
            params.append(float(since))
        if until is not None:
            conds.append("ts <= %s")
            params.append(float(until))
        where = " AND ".join(conds)
        if step:
            st = float(step)
            sql = (f"SELECT floor(ts / {st!r}::float8) * {st!r}::float8 AS b, avg(value) FROM metrics "
                   f"WHERE {where} GROUP BY b ORDER BY b")
        else:
            sql = f"SELECT ts, value FROM metrics WHERE {where} ORDER BY ts"
        with self._tx() as conn:
            rec = self._copy_out(conn, sql, params, _fields(("ts", ">f8"), ("v", ">f8")))
        return rec["ts"].astype(np.float64), rec["v"].astype(np.float64)

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        if not services:
            return {}
        with self._tx() as conn:  # one connection for both statements
            names = self._series_ids(conn, services)
            if not names:
                return {}
            rec = self._copy_out(
                conn,
                "SELECT series_id, ts, value FROM metrics WHERE series_id = ANY(%s) AND ts >= %s AND ts <= %s "
                "ORDER BY series_id, ts",
                [sorted(names), float(since), float(until)], _fields(("sid", ">i4"), ("ts", ">f8"), ("v", ">f8")))
        if rec.size == 0:
            return {}
        sid = rec["sid"].astype(np.int64)
        ts, val = rec["ts"].astype(np.float64), rec["v"].astype(np.float64)
        bounds = np.flatnonzero(np.diff(sid)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [sid.size]])
        parts = {names[int(sid[a])]: (ts[a:b], val[a:b]) for a, b in zip(starts, ends, strict=True)}
        return {k: parts[k] for k in sorted(parts)}

    def get_labelled_series(
        self, *, service: str, metric: str, since: float, until: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        row = self._q("SELECT id FROM series WHERE service = %s AND metric = %s", [service, metric])
        if not row:
            return []
        rows = self._q("SELECT coalesce(labels, ''), ts, value FROM metrics WHERE series_id = %s AND ts >= %s "
                       "AND ts <= %s ORDER BY 1, ts", [int(row[0][0]), float(since), float(until)])
        groups: dict[str, tuple[list[float], list[float]]] = {}
        for lab, t, v in rows:
            ts_l, vs_l = groups.setdefault(str(lab), ([], []))
            ts_l.append(float(t))
            vs_l.append(float(v))
        out: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        for lab, (ts_l, vs_l) in groups.items():
            parsed = json.loads(lab) if lab else {}
            out.append(({str(k): str(v) for k, v in parsed.items()}, np.array(ts_l), np.array(vs_l)))
        return out

    def series_before_after(
        self, *, services: list[str], at: float, before: float, after: float
    ) -> list[BeforeAfter]:
        if not services:
            return []
        rows = self._q(
            """SELECT s.service, s.metric,
                 count(*) FILTER (WHERE m.ts < %(at)s), avg(m.value) FILTER (WHERE m.ts < %(at)s),
                 stddev_pop(m.value) FILTER (WHERE m.ts < %(at)s),
                 count(*) FILTER (WHERE m.ts >= %(at)s), avg(m.value) FILTER (WHERE m.ts >= %(at)s),
                 stddev_pop(m.value) FILTER (WHERE m.ts >= %(at)s)
               FROM metrics m JOIN series s ON s.id = m.series_id
               WHERE s.service = ANY(%(svc)s) AND m.ts >= %(lo)s AND m.ts <= %(hi)s
               GROUP BY 1, 2 ORDER BY s.service COLLATE "C", s.metric COLLATE "C" """,
            {"at": float(at), "svc": services, "lo": float(at - before), "hi": float(at + after)})  # type: ignore[arg-type]
        return [BeforeAfter(r[0], r[1], WindowStats(int(r[2]), _num(r[3]), _num(r[4])),
                            WindowStats(int(r[5]), _num(r[6]), _num(r[7]))) for r in rows]

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]:
        rows = self._q(
            "SELECT service, metric, points, first_ts, last_ts FROM series WHERE points > 0 "
            "AND (%s::text IS NULL OR service = %s) ORDER BY service COLLATE \"C\", metric COLLATE \"C\"",
            [service, service])
        return [SeriesInfo(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in rows]

    def list_services(self) -> list[dict[str, Any]]:
        return services_summary(self.list_series(), self.change_services())

    @staticmethod
    def _log_where(services: list[str] | None, since: float, until: float,
                   min_level: str | None) -> tuple[str, list[Any]]:
        conds: list[str] = ["ts >= %s", "ts <= %s"]
        params: list[Any] = [float(since), float(until)]
        if min_level is not None:
            conds.append("level_rank >= %s")
            params.append(LEVEL_RANK.get(min_level.upper(), 2))
        if services is not None:
            conds.append("service = ANY(%s)")
            params.append(list(services))
        return " AND ".join(conds), params

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow:
        where, params = self._log_where(services, since, until, min_level)
        sql = f"SELECT service, ts, level, message FROM logs WHERE {where} ORDER BY ts"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._q(sql, params)
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        return LogWindow(service=pa.array(cols[0], pa.string()), ts=pa.array(cols[1], pa.float64()),
                         level=pa.array(cols[2], pa.string()), message=pa.array(cols[3], pa.string()))

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int:
        where, params = self._log_where(services, since, until, None)
        return int(self._q(f"SELECT count(*) FROM logs WHERE {where}", params)[0][0])

    def _iter_batches(self, sql: str, params: list[Any], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Rows of ``sql`` through a server-side cursor in one REPEATABLE READ, read-only
        transaction (one snapshot; writers are not blocked), ``batch_rows`` at a time."""
        try:
            with self._pool.connection() as conn:
                conn.commit()  # the pool hands out idle connections; start a fresh transaction
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name=f"rca_iter_{uuid.uuid4().hex}") as cur:
                    cur.itersize = batch_rows
                    cur.execute(sql, params)
                    while rows := cur.fetchmany(batch_rows):
                        cols = list(zip(*rows, strict=True))
                        yield pa.record_batch([pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)],
                                              schema=schema)
                conn.rollback()
        except _DB_ERRORS as exc:
            raise StoreError(str(exc)) from exc

    @staticmethod
    def _iter_where(services: list[str] | None, since: float | None, until: float | None,
                    svc_col: str) -> tuple[str, list[Any]]:
        conds: list[str] = ["TRUE"]
        params: list[Any] = []
        if since is not None:
            conds.append("ts >= %s")
            params.append(float(since))
        if until is not None:
            conds.append("ts <= %s")
            params.append(float(until))
        if services is not None:
            conds.append(f"{svc_col} = ANY(%s)")
            params.append(list(services))
        return " AND ".join(conds), params

    def iter_metrics(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatch]:
        where, params = self._iter_where(services, since, until, "s.service")
        schema = pa.schema([("service", pa.string()), ("metric", pa.string()), ("ts", pa.float64()),
                            ("value", pa.float64()), ("labels", pa.string())])
        return self._iter_batches(f"SELECT s.service, s.metric, m.ts, m.value, m.labels FROM metrics m "
                                  f"JOIN series s ON s.id = m.series_id WHERE {where}", params, schema, batch_rows)

    def iter_logs(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        where, params = self._iter_where(services, since, until, "service")
        schema = pa.schema([("service", pa.string()), ("ts", pa.float64()), ("level", pa.string()),
                            ("message", pa.string()), ("attributes", pa.string())])
        return self._iter_batches(f"SELECT service, ts, level, message, attributes FROM logs WHERE {where}",
                                  params, schema, batch_rows)

    def log_pattern_counts(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> list[LogPatternCount]:
        where, params = self._log_where(services, since, until, min_level)
        sql = (f"SELECT service, level, message, count(*) AS n FROM logs WHERE {where} GROUP BY 1, 2, 3 "
               'ORDER BY n DESC, service COLLATE "C", level COLLATE "C", message COLLATE "C"')
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [LogPatternCount(r[0], r[1], r[2], int(r[3])) for r in self._q(sql, params)]

    # ---- changes and topology -----------------------------------------------------------
    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        if not changes:
            return []
        new: list[str] = []
        with self._tx() as conn, conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO changes (id, kind, services, ts, author, description, fields)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id""",
                [(c.id, c.kind, list(c.services), float(c.ts), c.author, c.description,
                  json.dumps(c.fields, default=str)) for c in changes],
                returning=True)
            while True:
                row = cur.fetchone()
                if row is not None:
                    new.append(row[0])
                if not cur.nextset():
                    break
        return new

    _CHANGE_COLS = "id, kind, services, ts, author, description, fields"

    @staticmethod
    def _change(r: tuple[Any, ...]) -> Change:
        return Change(id=r[0], kind=r[1], services=list(r[2]), ts=float(r[3]), author=r[4],
                      description=r[5], fields=json.loads(r[6]))

    def list_changes(
        self, *, service: str | None = None, since: float | None = None, until: float | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Change]:
        conds: list[str] = ["TRUE"]
        params: list[Any] = []
        for cond, value in (("%s = ANY(services)", service), ("ts >= %s", since), ("ts <= %s", until),
                            ("kind = %s", kind)):
            if value is not None:
                conds.append(cond)
                params.append(value)
        sql = f"SELECT {self._CHANGE_COLS} FROM changes WHERE {' AND '.join(conds)} ORDER BY ts DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._change(r) for r in self._q(sql, params)]

    def get_change(self, *, change_id: str) -> Change | None:
        rows = self._q(f"SELECT {self._CHANGE_COLS} FROM changes WHERE id = %s", [change_id])
        return self._change(rows[0]) if rows else None

    def get_changes(self, *, change_ids: list[str]) -> list[Change]:
        if not change_ids:
            return []
        rows = self._q(f"SELECT {self._CHANGE_COLS} FROM changes WHERE id = ANY(%s) ORDER BY ts, seq",
                       [list(change_ids)])
        return [self._change(r) for r in rows]

    def change_services(self) -> dict[str, float]:
        rows = self._q('SELECT s, max(ts) FROM changes, unnest(services) AS s GROUP BY s ORDER BY s COLLATE "C"')
        return {r[0]: float(r[1]) for r in rows}

    def add_edges(self, *, edges: list[Edge]) -> int:
        if not edges:
            return 0
        with self._tx() as conn:
            cur = conn.execute(
                """INSERT INTO topology SELECT * FROM unnest(%s::text[], %s::text[]) ORDER BY 1, 2
                   ON CONFLICT DO NOTHING""", [[e.source for e in edges], [e.target for e in edges]])
            return max(cur.rowcount, 0)

    def get_topology(self) -> list[Edge]:
        rows = self._q('SELECT source, target FROM topology ORDER BY source COLLATE "C", target COLLATE "C"')
        return [Edge(r[0], r[1]) for r in rows]

    # ---- anomalies and incidents -------------------------------------------------------
    _ANOM_COLS = ("id, incident_id, service, metric, started_at, detected_at, ended_at, direction, score, "
                  "baseline, observed, join_reason, channel, reason")

    def save_anomalies(self, *, anomalies: list[Anomaly]) -> None:
        if not anomalies:
            return
        last = {a.id: a for a in anomalies}  # one row per id (the last wins, as in a sequence of upserts)
        rows = [last[k] for k in sorted(last)]
        cols = [[getattr(a, c.strip()) for a in rows] for c in self._ANOM_COLS.split(",")]
        types = ["text", "text", "text", "text", "float8", "float8", "float8", "text", "float8", "float8",
                 "float8", "text", "text", "text"]
        casts = ", ".join(f"%s::{t}[]" for t in types)
        sets = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in self._ANOM_COLS.split(",")[1:])
        self._q(f"INSERT INTO anomalies ({self._ANOM_COLS}) SELECT * FROM unnest({casts}) "
                f"ON CONFLICT (id) DO UPDATE SET {sets}", cols)

    def list_anomalies(self, *, incident_id: str | None = None, open_only: bool = False) -> list[Anomaly]:
        conds: list[str] = ["TRUE"]
        params: list[Any] = []
        if incident_id is not None:
            conds.append("incident_id = %s")
            params.append(incident_id)
        if open_only:
            conds.append("ended_at IS NULL")
        rows = self._q(f"SELECT {self._ANOM_COLS} FROM anomalies WHERE {' AND '.join(conds)} "
                       "ORDER BY started_at, id COLLATE \"C\"", params)
        return [
            Anomaly(id=r[0], incident_id=r[1], service=r[2], metric=r[3], started_at=r[4], detected_at=r[5],
                    ended_at=r[6], direction=r[7], score=r[8], baseline=r[9], observed=r[10], join_reason=r[11],
                    channel=r[12], reason=r[13])
            for r in rows
        ]

    _INC_COLS = ("id, status, title, started_at, detected_at, resolved_at, services, severity, anomaly_count, "
                 "top_suspect, no_convincing_change, rca_version")

    def save_incidents(self, *, incidents: list[Incident]) -> None:
        if not incidents:
            return
        last = {i.id: i for i in incidents}
        rows = []
        for k in sorted(last):
            i = last[k]
            top = None
            if i.top_suspect is not None:
                t = i.top_suspect
                top = json.dumps({"id": t.id, "kind": t.kind, "change_id": t.change_id, "score": t.score,
                                  "service": t.service})
            rows.append((i.id, i.status, i.title, i.started_at, i.detected_at, i.resolved_at, list(i.services),
                         i.severity, i.anomaly_count, top, bool(i.no_convincing_change), int(i.rca_version or 0)))
        sets = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in self._INC_COLS.split(",")[1:])
        with self._tx() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO incidents ({self._INC_COLS}) VALUES ({', '.join(['%s'] * 12)}) "
                            f"ON CONFLICT (id) DO UPDATE SET {sets}", rows)

    @staticmethod
    def _incident(r: tuple[Any, ...]) -> Incident:
        top = None
        if r[9]:
            d = json.loads(r[9])
            top = SuspectRef(id=d["id"], kind=d["kind"], change_id=d["change_id"], score=float(d["score"]),
                             service=d.get("service"))
        return Incident(id=r[0], status=r[1], title=r[2], started_at=r[3], detected_at=r[4], resolved_at=r[5],
                        services=list(r[6] or []), severity=float(r[7]), anomaly_count=int(r[8]), top_suspect=top,
                        no_convincing_change=bool(r[10]), rca_version=int(r[11] or 0))

    def get_incident(self, *, incident_id: str) -> Incident | None:
        rows = self._q(f"SELECT {self._INC_COLS} FROM incidents WHERE id = %s", [incident_id])
        return self._incident(rows[0]) if rows else None

    def list_incidents(
        self, *, status: str | None = None, service: str | None = None, since: float | None = None,
        limit: int = 100, offset: int = 0, until: float | None = None,
    ) -> list[Incident]:
        conds: list[str] = ["TRUE"]
        params: list[Any] = []
        for cond, value in (("status = %s", status), ("%s = ANY(services)", service),
                            ("started_at >= %s", since), ("started_at <= %s", until)):
            if value is not None:
                conds.append(cond)
                params.append(value)
        sql = (f"SELECT {self._INC_COLS} FROM incidents WHERE {' AND '.join(conds)} "
               f"ORDER BY started_at DESC, id COLLATE \"C\" DESC LIMIT {int(limit)} OFFSET {int(offset)}")
        return [self._incident(r) for r in self._q(sql, params)]

    def _lock_incidents(self, conn: psycopg.Connection[Any], ids: list[str], *, mode: str) -> set[str]:
        """Row locks on the given incidents (in id order, so two writers never deadlock);
        returns the ids that exist."""
        rows = conn.execute(f'SELECT id FROM incidents WHERE id = ANY(%s) ORDER BY id COLLATE "C" FOR {mode}',
                            [sorted(set(ids))]).fetchall()
        return {r[0] for r in rows}

    def delete_incident(self, *, incident_id: str) -> None:
        with self._tx() as conn:
            self._lock_incidents(conn, [incident_id], mode="UPDATE")
            conn.execute("DELETE FROM suspects WHERE incident_id = %s", [incident_id])
            conn.execute("DELETE FROM incidents WHERE id = %s", [incident_id])

    def record_merge(self, *, merged: str, into: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE incident_merges SET into_id = %s WHERE into_id = %s", [into, merged])
            conn.execute("""INSERT INTO incident_merges VALUES (%s, %s, %s) ON CONFLICT (merged_id)
                            DO UPDATE SET into_id = EXCLUDED.into_id, merged_at = EXCLUDED.merged_at""",
                         [merged, into, time.time()])

    def merged_into(self, *, incident_id: str) -> str | None:
        rows = self._q("SELECT into_id FROM incident_merges WHERE merged_id = %s", [incident_id])
        return str(rows[0][0]) if rows else None

    # ---- suspects, labels, models -------------------------------------------------------
    _SUS_COLS = "id, incident_id, rank, kind, change_id, service, ts, score, evidence, explanation"

    def replace_suspects(self, *, incident_id: str, suspects: list[Suspect]) -> None:
        cols: list[list[Any]] = [[], [], [], [], [], [], [], [], [], []]
        for s in suspects:
            for i, v in enumerate((s.id, incident_id, s.rank, s.kind, s.change_id, s.service, s.ts, s.score,
                                   json.dumps(s.evidence), s.explanation)):
                cols[i].append(v)
        types = ["text", "text", "int4", "text", "text", "text", "float8", "float8", "text", "text"]
        with self._tx() as conn:
            conn.execute("DELETE FROM suspects WHERE incident_id = %s", [incident_id])
            if suspects:
                casts = ", ".join(f"%s::{t}[]" for t in types)
                sets = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in self._SUS_COLS.split(",")[1:])
                conn.execute(f"INSERT INTO suspects ({self._SUS_COLS}) SELECT * FROM unnest({casts}) "
                             f"ON CONFLICT (id) DO UPDATE SET {sets}", cols)

    @staticmethod
    def _suspect(r: tuple[Any, ...]) -> Suspect:
        return Suspect(id=r[0], incident_id=r[1], rank=int(r[2]), kind=r[3], change_id=r[4], service=r[5],
                       ts=_num(r[6]), score=float(r[7]), evidence=json.loads(r[8]), explanation=r[9])

    def list_suspects(self, *, incident_id: str) -> list[Suspect]:
        rows = self._q(f"SELECT {self._SUS_COLS} FROM suspects WHERE incident_id = %s ORDER BY rank, id",
                       [incident_id])
        return [self._suspect(r) for r in rows]

    def get_suspect(self, *, suspect_id: str) -> Suspect | None:
        rows = self._q(f"SELECT {self._SUS_COLS} FROM suspects WHERE id = %s", [suspect_id])
        return self._suspect(rows[0]) if rows else None

    def add_label(self, *, label: Label) -> Label:
        with self._tx() as conn:
            inc, seen = label.incident_id, {label.incident_id}
            # Lock the incident so a concurrent merge either sees this label (and moves it)
            # or has committed first (then follow it to the survivor).
            while not self._lock_incidents(conn, [inc], mode="SHARE"):
                row = conn.execute("SELECT into_id FROM incident_merges WHERE merged_id = %s", [inc]).fetchone()
                if row is None or row[0] in seen:
                    break
                inc = str(row[0])
                seen.add(inc)
            stored = dataclasses.replace(label, incident_id=inc)
            conn.execute("INSERT INTO labels (id, incident_id, change_id, suspect_id, verdict, author, note, "
                         "created_at, service) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                         [stored.id, stored.incident_id, stored.change_id, stored.suspect_id, stored.verdict,
                          stored.author, stored.note, stored.created_at, stored.service])
        return stored

    def list_labels(self, *, incident_id: str | None = None) -> list[Label]:
        sql = ("SELECT id, incident_id, change_id, suspect_id, verdict, author, note, created_at, service FROM labels "
               "WHERE (%s::text IS NULL OR incident_id = %s) ORDER BY created_at, id COLLATE \"C\"")
        return [Label(id=r[0], incident_id=r[1], change_id=r[2], suspect_id=r[3], verdict=r[4], author=r[5],
                      note=r[6], created_at=r[7], service=r[8]) for r in self._q(sql, [incident_id, incident_id])]

    def reassign_labels(self, *, incident_id: str, to: str) -> int:
        with self._tx() as conn:
            self._lock_incidents(conn, [incident_id, to], mode="UPDATE")
            cur = conn.execute("UPDATE labels SET incident_id = %s WHERE incident_id = %s", [to, incident_id])
            return max(cur.rowcount, 0)

    def save_model(self, *, version: int, blob: bytes, info: dict[str, Any]) -> None:
        self._q("""INSERT INTO models VALUES (%s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET
                   blob = EXCLUDED.blob, info = EXCLUDED.info, created_at = EXCLUDED.created_at""",
                [version, blob, json.dumps(info, default=str), time.time()])

    def load_latest_model(self) -> tuple[int, bytes, dict[str, Any]] | None:
        rows = self._q("SELECT version, blob, info FROM models ORDER BY version DESC LIMIT 1")
        if not rows:
            return None
        return int(rows[0][0]), bytes(rows[0][1]), json.loads(rows[0][2])

    def list_model_infos(self) -> list[tuple[int, dict[str, Any]]]:
        return [(int(r[0]), json.loads(r[1])) for r in self._q("SELECT version, info FROM models ORDER BY version")]

    def counts(self) -> dict[str, int]:
        out = {}
        for t in ("metrics", "logs", "changes", "topology", "anomalies", "incidents", "suspects", "labels",
                  "incident_merges"):
            out[t] = int(self._q(f"SELECT count(*) FROM {t}")[0][0])
        return out

    # ---- alerts (migration 003) ----------------------------------------------------------
    _ALERT_COLS = ("id, incident_id, name, services, status, starts_at, ends_at, labels, annotations, fingerprint, "
                   "source, generator_url, join_reason")

    @staticmethod
    def _alert_row(a: Alert) -> tuple[Any, ...]:
        return (a.id, a.incident_id, a.name, list(a.services), a.status, float(a.starts_at),
                None if a.ends_at is None else float(a.ends_at),
                json.dumps(a.labels, sort_keys=True), json.dumps(a.annotations, sort_keys=True), a.fingerprint,
                a.source, a.generator_url, a.join_reason)

    @staticmethod
    def _alert(r: tuple[Any, ...]) -> Alert:
        return Alert(id=r[0], incident_id=r[1], name=r[2], services=list(r[3] or []), status=r[4],
                     starts_at=float(r[5]), ends_at=None if r[6] is None else float(r[6]),
                     labels=json.loads(r[7] or "{}"), annotations=json.loads(r[8] or "{}"), fingerprint=r[9],
                     source=r[10] or "generic", generator_url=r[11], join_reason=r[12])

    def _write_alerts(self, conn: psycopg.Connection[Any], alerts: list[Alert]) -> None:
        conn.cursor().executemany(
            f"INSERT INTO alerts ({self._ALERT_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET incident_id = EXCLUDED.incident_id, name = EXCLUDED.name, "
            "services = EXCLUDED.services, status = EXCLUDED.status, starts_at = EXCLUDED.starts_at, "
            "ends_at = EXCLUDED.ends_at, labels = EXCLUDED.labels, annotations = EXCLUDED.annotations, "
            "fingerprint = EXCLUDED.fingerprint, source = EXCLUDED.source, generator_url = EXCLUDED.generator_url, "
            "join_reason = EXCLUDED.join_reason, updated_seq = nextval('alerts_updated_seq')",
            [self._alert_row(a) for a in alerts])

    def upsert_alerts(self, *, alerts: list[Alert]) -> list[str]:
        if not alerts:
            return []
        by_id = {a.id: a for a in alerts}  # the last notification of an alert in a batch wins
        with self._tx() as conn:
            rows = conn.execute(f"SELECT {self._ALERT_COLS} FROM alerts WHERE id = ANY(%s) FOR UPDATE",
                                [list(by_id)]).fetchall()
            old = {r[0]: self._alert(r) for r in rows}
            changed: list[Alert] = []
            for a in by_id.values():
                prev = old.get(a.id)
                if prev is not None:
                    a.incident_id, a.join_reason = prev.incident_id, prev.join_reason  # grouping owns these
                    if self._alert_row(prev) == self._alert_row(a):
                        continue
                changed.append(a)
            if changed:
                self._write_alerts(conn, changed)
        return [a.id for a in changed]

    def save_alerts(self, *, alerts: list[Alert]) -> None:
        """Upsert by id, incident assignment included (the grouping stage)."""
        if alerts:
            with self._tx() as conn:
                self._write_alerts(conn, alerts)

    def list_alerts(self, *, incident_ids: list[str] | None = None, alert_ids: list[str] | None = None,
                    unassigned: bool = False) -> list[Alert]:
        conds, params = ["TRUE"], []
        for cond, value in (("incident_id = ANY(%s)", incident_ids), ("id = ANY(%s)", alert_ids)):
            if value is not None:
                conds.append(cond)
                params.append(list(value))
        if unassigned:
            conds.append("incident_id IS NULL")
        rows = self._q(f"SELECT {self._ALERT_COLS} FROM alerts WHERE {' AND '.join(conds)} ORDER BY starts_at, id",
                       params)
        return [self._alert(r) for r in rows]

    # ---- security: API keys, audit trail, idempotency keys ------------------------------
    def save_api_key(self, *, key: ApiKey) -> None:
        self._q("INSERT INTO api_keys VALUES (%s, %s, %s, %s, %s, %s)",
                [key.id, key.name, key.roles, key.key_hash, key.created_at, key.revoked_at])

    @staticmethod
    def _api_key(r: tuple[Any, ...]) -> ApiKey:
        return ApiKey(id=r[0], name=r[1], roles=list(r[2]), key_hash=r[3], created_at=r[4], revoked_at=r[5])

    def list_api_keys(self) -> list[ApiKey]:
        rows = self._q("SELECT id, name, roles, key_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        return [self._api_key(r) for r in rows]

    def get_api_key(self, *, key_id: str) -> ApiKey | None:
        rows = self._q("SELECT id, name, roles, key_hash, created_at, revoked_at FROM api_keys WHERE id = %s",
                       [key_id])
        return self._api_key(rows[0]) if rows else None

    def revoke_api_key(self, *, key_id: str, at: float) -> bool:
        rows = self._q("UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING 1",
                       [at, key_id])
        return bool(rows)

    def count_active_api_keys(self) -> int:
        return int(self._q("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")[0][0])

    def add_audit(self, *, entry: AuditEntry) -> None:
        self._q("INSERT INTO audit VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                [entry.id, entry.ts, entry.actor, entry.action, entry.target, json.dumps(entry.detail, default=str)])

    def list_audit(self, *, since: float | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        rows = self._q("SELECT id, ts, actor, action, target, detail FROM audit "
                       "WHERE (%s::float8 IS NULL OR ts >= %s) AND (%s::text IS NULL OR action = %s) "
                       "ORDER BY ts DESC, id DESC LIMIT %s", [since, since, action, action, limit])
        return [AuditEntry(id=r[0], ts=r[1], actor=r[2], action=r[3], target=r[4], detail=json.loads(r[5] or "{}"))
                for r in rows]

    # ---- ingest journal ----------------------------------------------------------------
    def append_journal(self, *, log: str, key: bytes, value: bytes) -> int:
        with self._tx() as conn:  # the head row's lock orders concurrent writers: no gaps
            row = conn.execute("""INSERT INTO journal_heads AS h VALUES (%s, 1) ON CONFLICT (log)
                                  DO UPDATE SET next_seq = h.next_seq + 1 RETURNING next_seq""", [log]).fetchone()
            seq = int(row[0]) - 1 if row else 0
            conn.execute("INSERT INTO journal VALUES (%s, %s, %s, %s, %s)", [log, seq, key, value, time.time()])
        return seq

    def read_journal(self, *, log: str, since: int, until: int) -> list[JournalEntry]:
        rows = self._q("SELECT seq, key, value FROM journal WHERE log = %s AND seq >= %s AND seq < %s ORDER BY seq",
                       [log, int(since), int(until)])
        return [JournalEntry(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def journal_end(self, *, log: str) -> int:
        rows = self._q("SELECT next_seq FROM journal_heads WHERE log = %s", [log])
        return int(rows[0][0]) if rows else 0

    def trim_journal(self, *, log: str, before: int) -> int:
        rows = self._q("DELETE FROM journal WHERE log = %s AND seq < %s RETURNING 1", [log, int(before)])
        return len(rows)

    def get_idempotent(self, *, key: str, endpoint: str) -> tuple[int, str] | None:
        rows = self._q("SELECT status, body FROM idempotency WHERE key = %s AND endpoint = %s", [key, endpoint])
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def save_idempotent(self, *, key: str, endpoint: str, status: int, body: str, now: float) -> None:
        self._q("INSERT INTO idempotency VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key, endpoint) DO NOTHING",
                [key, endpoint, status, body, now])
