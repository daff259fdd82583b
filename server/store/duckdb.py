"""DuckDB implementation of both store protocols (telemetry and state): one file under
the data dir, the embedded default.

Raw metrics are stored as a ``series`` table (one row per series: service, metric,
label set, with a dense integer id) and a ``points`` table (series id, ts, value and the
ingest sequence of the batch), appended column-wise from Arrow: no string is stored
per point. The ``metrics`` view joins them back into the wide form. The series
catalogue lives in memory (rebuilt on open), so listings never scan the raw table and a
batch's series are interned with one dict lookup each. Logs are appended column-wise
too. One connection guarded by a lock (DuckDB connections are not thread-safe, and
one process owns the file); a unit of work holds the lock for its whole transaction.
Every driver error is translated into :class:`StoreError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

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
from server.model.labels import canonical_labels, matches, parse_labels
from server.model.points import Points, SeriesKey, series_stats
from server.store.base import (
    LEVEL_RANK,
    BeforeAfter,
    CardinalityError,
    Checkpoint,
    JournalEntry,
    LogPatternCount,
    SeriesLimits,
    StoreError,
    WindowStats,
    check_prefix,
    series_arrays,
    services_summary,
)
from server.store.points_log import PointsLog

SCHEMA_VERSION = 7


_SCHEMA_V1 = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS metrics (service VARCHAR NOT NULL, metric VARCHAR NOT NULL,
        ts DOUBLE NOT NULL, value DOUBLE NOT NULL, labels VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS logs (service VARCHAR NOT NULL, ts DOUBLE NOT NULL,
        level VARCHAR NOT NULL, level_rank TINYINT NOT NULL, message VARCHAR NOT NULL, attributes VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS changes (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
        services VARCHAR[] NOT NULL, ts DOUBLE NOT NULL, author VARCHAR, description VARCHAR,
        fields VARCHAR NOT NULL, seq BIGINT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS topology (source VARCHAR, target VARCHAR, PRIMARY KEY (source, target))",
    """CREATE TABLE IF NOT EXISTS anomalies (id VARCHAR PRIMARY KEY, incident_id VARCHAR,
        service VARCHAR, metric VARCHAR, started_at DOUBLE, detected_at DOUBLE, ended_at DOUBLE,
        direction VARCHAR, score DOUBLE, baseline DOUBLE, observed DOUBLE, join_reason VARCHAR,
        labels VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS incidents (id VARCHAR PRIMARY KEY, status VARCHAR, title VARCHAR,
        started_at DOUBLE, detected_at DOUBLE, resolved_at DOUBLE, services VARCHAR[], severity DOUBLE,
        anomaly_count INTEGER, top_suspect VARCHAR, no_convincing_change BOOLEAN, rca_version INTEGER)""",
    """CREATE TABLE IF NOT EXISTS suspects (id VARCHAR PRIMARY KEY, incident_id VARCHAR, rank INTEGER,
        kind VARCHAR, change_id VARCHAR, service VARCHAR, ts DOUBLE, score DOUBLE, evidence VARCHAR,
        explanation VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS labels (id VARCHAR PRIMARY KEY, incident_id VARCHAR, change_id VARCHAR,
        suspect_id VARCHAR, verdict VARCHAR, author VARCHAR, note VARCHAR, created_at DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS models (version INTEGER PRIMARY KEY, blob BLOB, info VARCHAR,
        created_at DOUBLE)""",
]

_S, _F64, _I = pa.string(), pa.float64(), pa.int32()
_ANOM_SCHEMA = pa.schema([("id", _S), ("incident_id", _S), ("service", _S), ("metric", _S), ("started_at", _F64),
                          ("detected_at", _F64), ("ended_at", _F64), ("direction", _S), ("score", _F64),
                          ("baseline", _F64), ("observed", _F64), ("join_reason", _S),
                          ("labels", _S), ("channel", _S), ("reason", _S)])
_INC_SCHEMA = pa.schema([("id", _S), ("status", _S), ("title", _S), ("started_at", _F64), ("detected_at", _F64),
                         ("resolved_at", _F64), ("services", pa.list_(_S)), ("severity", _F64),
                         ("anomaly_count", _I), ("top_suspect", _S), ("no_convincing_change", pa.bool_()),
                         ("rca_version", _I)])
_SUS_SCHEMA = pa.schema([("id", _S), ("incident_id", _S), ("rank", _I), ("kind", _S), ("change_id", _S),
                         ("service", _S), ("ts", _F64), ("score", _F64), ("evidence", _S), ("explanation", _S)])
_CHANGE_SCHEMA = pa.schema([("id", _S), ("kind", _S), ("services", pa.list_(_S)), ("ts", _F64), ("author", _S),
                            ("description", _S), ("fields", _S), ("seq", pa.int64())])

_ALERT_SCHEMA = pa.schema([("id", _S), ("incident_id", _S), ("name", _S), ("services", pa.list_(_S)), ("status", _S),
                           ("starts_at", _F64), ("ends_at", _F64), ("labels", _S), ("annotations", _S),
                           ("fingerprint", _S), ("source", _S), ("generator_url", _S), ("join_reason", _S),
                           ("updated_seq", pa.int64())])

_SCHEMA_V2 = [
    "CREATE TABLE IF NOT EXISTS id_counters (prefix VARCHAR PRIMARY KEY, value BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS incident_merges (merged_id VARCHAR PRIMARY KEY, into_id VARCHAR NOT NULL,
        merged_at DOUBLE NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS store_identity (uid VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS checkpoints (stage VARCHAR NOT NULL, part INTEGER NOT NULL,
        next_offset BIGINT NOT NULL, state BLOB NOT NULL, saved_at DOUBLE NOT NULL, PRIMARY KEY (stage, part))""",
]

# Migrations from version N to N+1; a newer release opens an older data dir by applying them.
# 1 -> 2: the meta table's string keys become tables (id counters, merges, the store uid).
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        *_SCHEMA_V2,
        """INSERT INTO id_counters SELECT substr(key, 5), CAST(value AS BIGINT) FROM meta
           WHERE key LIKE 'seq:%'""",
        """INSERT INTO incident_merges SELECT substr(key, 8), value, 0.0 FROM meta WHERE key LIKE 'merged:%'""",
        "INSERT INTO store_identity SELECT value FROM meta WHERE key = 'rca.store_uid'",
        "DELETE FROM meta WHERE key LIKE 'seq:%' OR key LIKE 'merged:%' OR key = 'rca.store_uid'",
    ],
    # 2 -> 3: API keys (hashed), the audit trail, and idempotency keys of ingest batches
    2: [
        """CREATE TABLE IF NOT EXISTS api_keys (id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL,
            roles VARCHAR[] NOT NULL, key_hash VARCHAR NOT NULL, created_at DOUBLE NOT NULL, revoked_at DOUBLE)""",
        """CREATE TABLE IF NOT EXISTS audit (id VARCHAR PRIMARY KEY, ts DOUBLE NOT NULL, actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL, target VARCHAR, detail VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS idempotency (key VARCHAR PRIMARY KEY, endpoint VARCHAR NOT NULL,
            status INTEGER NOT NULL, body VARCHAR NOT NULL, created_at DOUBLE NOT NULL)""",
    ],
    # 3 -> 4: an anomaly records the label set of its series
    3: ["ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS labels VARCHAR"],
    # 5 -> 6: metric points keyed by a dense series id (no strings per point) and the
    # ingest sequence of their batch (the metrics log the in-process bus replays)
    # and the journal of the events the API stored (replayed the same way)
    5: [
        "__points__",
        """CREATE TABLE IF NOT EXISTS journal (log VARCHAR NOT NULL, seq BIGINT NOT NULL, key BLOB NOT NULL,
            value BLOB NOT NULL, added_at DOUBLE NOT NULL, PRIMARY KEY (log, seq))""",
        "CREATE TABLE IF NOT EXISTS journal_heads (log VARCHAR PRIMARY KEY, next_seq BIGINT NOT NULL)",
        # the in-process bus's offsets restart with the new logs: the state saved so far
        # covers everything before their first batch
        "UPDATE checkpoints SET next_offset = 0 WHERE stage IN ('detector', 'grouping')",
    ],
    # 4 -> 5: alerts from the user's own alerting (POST /ingest/alerts)
    4: [
        """CREATE TABLE IF NOT EXISTS alerts (id VARCHAR PRIMARY KEY, incident_id VARCHAR, name VARCHAR NOT NULL,
            services VARCHAR[] NOT NULL, status VARCHAR NOT NULL, starts_at DOUBLE NOT NULL, ends_at DOUBLE,
            labels VARCHAR, annotations VARCHAR, fingerprint VARCHAR, source VARCHAR, generator_url VARCHAR,
            join_reason VARCHAR, updated_seq BIGINT)""",
    ],
    # 6 -> 7: an anomaly records what opened it and one sentence on why it is anomalous
    6: ["ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS channel VARCHAR",
        "ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS reason VARCHAR"],
}


def _migrate_points(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 5 -> 6: the wide ``metrics`` table becomes ``series`` + ``points`` (and a
    ``metrics`` view over them). Does nothing when that was done already."""
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'metrics'").fetchone()
    if kind is not None and kind[0] != "BASE TABLE":
        return
    con.execute("""CREATE TABLE series (sid INTEGER PRIMARY KEY, service VARCHAR NOT NULL, metric VARCHAR NOT NULL,
                   labels VARCHAR)""")
    con.execute("""INSERT INTO series SELECT (row_number() OVER (ORDER BY service, metric, labels) - 1)::INTEGER,
                   service, metric, labels FROM (SELECT DISTINCT service, metric, labels FROM metrics)""")
    con.execute("""CREATE TABLE points AS SELECT s.sid, m.ts, m.value, -1::BIGINT AS seq FROM metrics m
                   JOIN series s ON s.service = m.service AND s.metric = m.metric
                   AND s.labels IS NOT DISTINCT FROM m.labels""")
    con.execute("DROP TABLE metrics")
    con.execute("""CREATE VIEW metrics AS SELECT s.service, s.metric, p.ts, p.value, s.labels, p.seq
                   FROM points p JOIN series s USING (sid)""")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask). DuckDB's default counts every CPU
    of the machine, so a server pinned to one core ran two DuckDB threads on it: ingest
    was about 1.6x slower than with one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


log = logging.getLogger("rca.store.duckdb")

_APPEND_POINTS = "INSERT INTO points SELECT sid, ts, value, seq FROM rows_"


def _points_rows(seq: int, sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> pa.Table:
    """Rows of the points table for one stored batch (``seq`` its ingest sequence)."""
    return pa.table({"sid": pa.array(sid, pa.int32()), "ts": pa.array(ts, pa.float64()),
                     "value": pa.array(value, pa.float64()), "seq": pa.array(np.full(len(sid), seq, np.int64))})


def _where(*filters: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause from ``(condition with one ?, value)`` pairs; a None value drops its
    condition. Returns the clause (``TRUE`` when empty) and its parameters, in order."""
    used = [(cond, value) for cond, value in filters if value is not None]
    return " AND ".join(c for c, _ in used) or "TRUE", [v for _, v in used]


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


class DuckDBStore:
    """The embedded store. ``path`` is the database file (created if missing)."""

    def __init__(self, path: Path | str, *, memory_limit: str | None = None, threads: int | None = None,
                 flush_seconds: float = 0.25, flush_rows: int = 262_144) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._in_uow = False  # a unit of work is open (only ever by the thread holding the lock)
        # group commit of metric points (see _con): batches waiting to be appended together
        self._flush_seconds = float(flush_seconds)
        self._flush_rows = int(flush_rows)
        self._waiting: list[pa.Table] = []
        self._waiting_rows = 0
        self._waiting_since = 0.0
        self._closing = threading.Event()  # set by close(): the flusher thread ends
        self._flusher: threading.Thread | None = None
        self._log = PointsLog(self.path.with_name(self.path.name + ".points.log"))
        try:
            config: dict[str, Any] = {}
            if memory_limit:
                config["memory_limit"] = memory_limit
            config["threads"] = threads or usable_cpus()
            # No row-group merges at checkpoints: a group commit ends in a partial row group,
            # and merging those with their neighbours rewrote about half of every append
            # (checkpoints cost 50-110 ns per point, and the file grew to 13-18 bytes per point
            # instead of 9; bench/store_append.py). Emptied row groups are still dropped.
            config["max_vacuum_tasks"] = 0
            self._db = duckdb.connect(str(self.path), config=config)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open DuckDB file {self.path}: {exc}") from exc
        self._migrate()
        self._replay_log()
        self._after: list[Any] = []  # catalogue updates waiting for the open unit of work to commit
        self._sid: dict[SeriesKey, int] = {}  # key -> dense series id (the points table's sid)
        self._keys: list[SeriesKey] = []  # sid -> key
        # per series id: points stored, first and last timestamp
        self._count = np.zeros(1024, dtype=np.int64)
        self._first = np.full(1024, np.inf)
        self._last = np.full(1024, -np.inf)
        self._batch_cache: tuple[pa.Table, np.ndarray] | None = None  # the last batch's series and their ids
        self._label_sets: dict[tuple[str, str], list[str | None]] = {}  # (service, metric) -> label texts
        self._per_service: dict[str, int] = {}
        self._parsed: dict[str | None, dict[str, str]] = {None: {}}
        rows = self._q("""SELECT s.sid, s.service, s.metric, s.labels, count(p.sid), min(p.ts), max(p.ts)
                          FROM series s LEFT JOIN points p USING (sid) GROUP BY ALL ORDER BY s.sid""")
        for r in rows:
            sid = int(r[0])
            self._add_series((r[1], r[2], r[3] or None), sid)
            self._count[sid] = int(r[4])
            self._first[sid] = float(r[5]) if r[5] is not None else np.inf
            self._last[sid] = float(r[6]) if r[6] is not None else -np.inf
        last = self._q("SELECT max(seq) FROM points")[0][0]
        self._next_seq = int(last) + 1 if last is not None and last >= 0 else 0

    def _add_series(self, key: SeriesKey, sid: int) -> None:
        """The series catalogue lives in memory (rebuilt from the tables on open), so
        ingest never pays for an upsert of per-series counters. Ids are dense: ``sid`` is
        the next one."""
        assert sid == len(self._keys)
        self._sid[key] = sid
        self._keys.append(key)
        if sid >= len(self._count):
            grow = max(2 * len(self._count), sid + 1)
            self._count = np.concatenate([self._count, np.zeros(grow - len(self._count), np.int64)])
            self._first = np.concatenate([self._first, np.full(grow - len(self._first), np.inf)])
            self._last = np.concatenate([self._last, np.full(grow - len(self._last), -np.inf)])
        self._label_sets.setdefault((key[0], key[1]), []).append(key[2])
        self._per_service[key[0]] = self._per_service.get(key[0], 0) + 1
        if key[2] not in self._parsed:
            self._parsed[key[2]] = parse_labels(key[2])

    def _on_commit(self, fn: Any) -> None:
        """Run ``fn`` once what was just written is committed (at once outside a unit of work)."""
        if self._in_uow:
            self._after.append(fn)
        else:
            fn()

    def _check_limits(self, new: list[SeriesKey], limits: SeriesLimits) -> None:
        """Raise CardinalityError when adding ``new`` series would pass a limit."""
        if limits.total is not None and len(self._keys) + len(new) > limits.total:
            raise CardinalityError(limit="max_series", scope="the store", existing=len(self._keys),
                                   new=len(new), maximum=limits.total)
        if limits.per_metric is not None:
            per_metric: dict[tuple[str, str], int] = {}
            for svc, met, _ in new:
                per_metric[(svc, met)] = per_metric.get((svc, met), 0) + 1
            for (svc, met), k in sorted(per_metric.items()):
                have = len(self._label_sets.get((svc, met), ()))
                if have + k > limits.per_metric:
                    raise CardinalityError(limit="max_series_per_metric", scope=f"metric {svc}/{met}",
                                           existing=have, new=k, maximum=limits.per_metric)
        if limits.per_service is not None:
            per_service: dict[str, int] = {}
            for svc, _, _ in new:
                per_service[svc] = per_service.get(svc, 0) + 1
            for svc, k in sorted(per_service.items()):
                have = self._per_service.get(svc, 0)
                if have + k > limits.per_service:
                    raise CardinalityError(limit="max_series_per_service", scope=f"service {svc}",
                                           existing=have, new=k, maximum=limits.per_service)

    def _selected_label_sets(self, service: str, metric: str,
                             labels: Mapping[str, str] | None) -> tuple[list[str | None], bool]:
        """The label texts of (service, metric) that ``labels`` matchers select, and whether
        that is every label set of the metric."""
        with self._lock:
            every = list(self._label_sets.get((service, metric), ()))
        if not labels:
            return every, True
        chosen = [t for t in every if matches(self._parsed.get(t) or parse_labels(t), labels)]
        return chosen, len(chosen) == len(every)

    # ---- plumbing --------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._in_uow:  # part of the unit of work's transaction
                try:
                    yield self._con
                except duckdb.Error as exc:
                    raise StoreError(str(exc)) from exc
                return
            try:
                self._con.execute("BEGIN TRANSACTION")
                yield self._con
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                self._con.execute("ROLLBACK")
                raise StoreError(str(exc)) from exc
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    @contextmanager
    def unit_of_work(self) -> Iterator[DuckDBStore]:
        with self._lock:
            if self._in_uow:  # nested: joins the open unit of work
                yield self
                return
            try:
                self._con.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
            self._in_uow = True
            try:
                yield self
            except BaseException:
                self._in_uow = False
                self._after.clear()
                with suppress(duckdb.Error):
                    self._con.execute("ROLLBACK")
                raise
            self._in_uow = False
            after, self._after = self._after, []
            try:
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                with suppress(duckdb.Error):
                    self._con.execute("ROLLBACK")
                raise StoreError(str(exc)) from exc
            for fn in after:
                fn()

    def _q(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._con.execute(sql, params or []).fetchall()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc

    def _migrate(self) -> None:
        self._migrate_versions()
        with self._tx() as con:
            # service labels (root-service suspects); additive, so any schema version gets it
            con.execute("ALTER TABLE labels ADD COLUMN IF NOT EXISTS service VARCHAR")

    def _migrate_versions(self) -> None:
        with self._tx() as con:
            con.execute(_SCHEMA_V1[0])
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:  # a new data dir: version 1, then every migration
                for stmt in _SCHEMA_V1[1:]:
                    con.execute(stmt)
                con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
                version = 1
            else:
                version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"data dir was written by a newer release (schema {version} > {SCHEMA_VERSION}); upgrade rca"
                )
            while version < SCHEMA_VERSION:
                for stmt in _MIGRATIONS[version]:
                    if stmt == "__points__":
                        _migrate_points(con)
                    else:
                        con.execute(stmt)
                version += 1
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])

    def schema_version(self) -> int:
        row = self._q("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0][0])

    def ping(self) -> bool:
        self._q("SELECT 1")
        return True

    def close(self) -> None:
        self._closing.set()
        if self._flusher is not None:
            self._flusher.join(10.0)
        with self._lock:
            try:
                self.flush()
            except StoreError as exc:
                log.error("closing the store: %d accepted points could not be written: %s", self._waiting_rows, exc)
            else:
                self._log.close()
                with suppress(OSError):
                    self._log.path.unlink()
            with suppress(duckdb.Error):
                self._db.execute("CHECKPOINT")
            self._db.close()

    # ---- group commit of metric points -----------------------------------------------------
    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The connection, once the points waiting for their group commit are written:
        every statement but that append goes through here, so a read sees every accepted
        point, and a stage checkpoint never refers to points that are not stored."""
        if self._waiting:
            self.flush()
        return self._db

    def flush(self) -> None:
        """Append the waiting batches in one statement (outside any transaction: a unit of
        work begins through ``_con``, which flushes first). On an error they stay waiting."""
        with self._lock:
            if not self._waiting:
                return
            rows_ = self._waiting[0] if len(self._waiting) == 1 else pa.concat_tables(self._waiting)  # noqa: F841
            try:
                self._db.execute(_APPEND_POINTS)
            except duckdb.Error as exc:
                raise StoreError(f"writing {self._waiting_rows} accepted points: {exc}") from exc
            self._waiting = []
            self._waiting_rows = 0
            try:
                self._log.clear()
            except OSError as exc:  # harmless: a replay skips what the points table holds
                log.warning("could not empty %s: %s", self._log.path, exc)

    def _replay_log(self) -> None:
        """Append the accepted batches that were still waiting for their group commit when
        the process stopped without closing the store (a crash), then empty the log."""
        records = self._log.read()
        if records:
            row = self._db.execute("SELECT max(seq) FROM points").fetchone()
            last = -1 if row is None or row[0] is None else int(row[0])
            fresh = [r for r in records if r[0] > last]
            if fresh:
                rows_ = pa.concat_tables([_points_rows(*r) for r in fresh])
                try:
                    self._db.execute(_APPEND_POINTS)
                except duckdb.Error as exc:
                    raise StoreError(f"re-appending the accepted points in {self._log.path}: {exc}") from exc
                log.warning("re-appended %d accepted points (%d batches) from %s", rows_.num_rows, len(fresh),
                            self._log.path)
        try:
            self._log.clear()
        except OSError as exc:
            raise StoreError(f"cannot write {self._log.path}: {exc}") from exc

    def _wait_points(self, seq: int, sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        """Log a batch, then queue it for the group commit (the lock is held); appended to
        DuckDB at once when the queue reaches ``flush_rows``, else by the flusher thread
        within ``flush_seconds``. Once logged, the batch is accepted: a failed append only
        leaves it queued (retried); a queue that DuckDB keeps refusing refuses new batches."""
        if self._waiting_rows >= 4 * self._flush_rows:
            self.flush()  # raises StoreError while DuckDB refuses: nothing of this batch is kept
        try:
            self._log.append(seq, sid, ts, value)
        except OSError as exc:
            raise StoreError(f"cannot write {self._log.path}: {exc}") from exc
        batch = _points_rows(seq, sid, ts, value)
        if not self._waiting:
            self._waiting_since = time.monotonic()
        self._waiting.append(batch)
        self._waiting_rows += batch.num_rows
        if self._waiting_rows >= self._flush_rows:
            try:
                self.flush()
            except StoreError as exc:
                log.error("group commit failed (retried): %s", exc)
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="rca-duckdb-flush", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        timeout = self._flush_seconds
        while not self._closing.wait(timeout):
            with self._lock:
                if not self._waiting:
                    timeout = self._flush_seconds
                    continue
                age = time.monotonic() - self._waiting_since
                if age < self._flush_seconds:
                    timeout = self._flush_seconds - age
                    continue
                timeout = self._flush_seconds
                try:
                    self.flush()
                except StoreError as exc:
                    log.error("group commit failed (retried): %s", exc)

    def _insert_rows(self, con: duckdb.DuckDBPyConnection, sql_table: str, schema: pa.Schema,
                     rows: list[tuple[Any, ...]], *, replace: bool = False) -> None:
        """Insert many rows in one columnar statement (executemany goes row by row)."""
        cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
        batch = pa.table({f.name: pa.array(list(c), type=f.type) for f, c in zip(schema, cols, strict=True)})
        names = ", ".join(f.name for f in schema)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.register("_rows", batch)
        try:
            con.execute(f"{verb} INTO {sql_table} ({names}) SELECT {names} FROM _rows")
        finally:
            con.unregister("_rows")

    # ---- ids, identity, checkpoints ------------------------------------------------------
    def next_id(self, *, prefix: str) -> str:
        return self.next_ids(prefix=prefix, n=1)[0]

    def next_ids(self, *, prefix: str, n: int) -> list[str]:
        check_prefix(prefix)
        if n <= 0:
            return []
        with self._tx() as con:
            row = con.execute(
                """INSERT INTO id_counters VALUES (?, ?) ON CONFLICT (prefix)
                   DO UPDATE SET value = id_counters.value + EXCLUDED.value RETURNING value""", [prefix, n]
            ).fetchone()
        last = int(row[0]) if row else n
        return [f"{prefix}-{i}" for i in range(last - n + 1, last + 1)]

    def store_uid(self) -> str:
        with self._tx() as con:
            row = con.execute("SELECT uid FROM store_identity LIMIT 1").fetchone()
            if row is not None:
                return str(row[0])
            uid = uuid.uuid4().hex[:12]
            con.execute("INSERT INTO store_identity VALUES (?)", [uid])
            return uid

    def save_checkpoint(self, *, stage: str, partition: int, offset: int, state: bytes) -> bool:
        with self._tx() as con:
            row = con.execute("SELECT next_offset FROM checkpoints WHERE stage = ? AND part = ?",
                              [stage, partition]).fetchone()
            if row is not None and int(row[0]) > offset:
                return False
            con.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                        [stage, partition, offset, state, time.time()])
        return True

    @staticmethod
    def _checkpoint(r: tuple[Any, ...]) -> Checkpoint:
        return Checkpoint(stage=r[0], partition=int(r[1]), offset=int(r[2]), state=bytes(r[3]),
                          saved_at=float(r[4]))

    def load_checkpoint(self, *, stage: str, partition: int) -> Checkpoint | None:
        rows = self._q("SELECT stage, part, next_offset, state, saved_at FROM checkpoints WHERE stage = ? "
                       "AND part = ?", [stage, partition])
        return self._checkpoint(rows[0]) if rows else None

    def list_checkpoints(self, *, stage: str) -> list[Checkpoint]:
        rows = self._q("SELECT stage, part, next_offset, state, saved_at FROM checkpoints WHERE stage = ? "
                       "ORDER BY part", [stage])
        return [self._checkpoint(r) for r in rows]

    # ---- raw data ---------------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        if table.num_rows == 0:
            return 0
        self.insert_points(points=Points.from_table(table), limits=limits)
        return table.num_rows

    def insert_points(self, *, points: Points, limits: SeriesLimits | None = None) -> int:
        """Store a batch under the cardinality limits (all or nothing); returns its ingest
        sequence number (consecutive from 0: the offset of the batch in the metrics log
        that the in-process bus reads back after a restart)."""
        with self._lock:
            sids, new = self._series_ids(points)
            if new and limits is not None:
                self._check_limits([k for k, _ in new], limits)
            seq = self._next_seq
            per_point = sids[points.code].astype(np.int32)
            if not new and self._flush_seconds > 0 and not self._in_uow:
                self._wait_points(seq, per_point, points.ts, points.value)  # logged; DuckDB gets it with others
            else:
                rows_ = _points_rows(seq, per_point, points.ts, points.value)  # noqa: F841 (read by DuckDB)
                insert = _APPEND_POINTS
                if new:
                    fresh = pa.table({"sid": pa.array([s for _, s in new], pa.int32()),  # noqa: F841 (read by DuckDB)
                                      "service": pa.array([k[0] for k, _ in new], pa.string()),
                                      "metric": pa.array([k[1] for k, _ in new], pa.string()),
                                      "labels": pa.array([k[2] for k, _ in new], pa.string())})
                    with self._tx() as con:
                        con.execute("INSERT INTO series SELECT sid, service, metric, labels FROM fresh")
                        con.execute(insert)
                else:  # one statement: its own transaction, or part of the open unit of work
                    try:
                        self._con.execute(insert)
                    except duckdb.Error as exc:
                        raise StoreError(str(exc)) from exc
            count, lo, hi = series_stats(points.code, points.ts, points.k)

            def commit() -> None:
                for key, sid in new:
                    self._add_series(key, sid)
                self._next_seq = seq + 1
                self._count[sids] += count  # the series of a batch are distinct: no repeated index
                self._first[sids] = np.minimum(self._first[sids], lo)
                self._last[sids] = np.maximum(self._last[sids], hi)
                self._batch_cache = (points.series, sids)

            self._on_commit(commit)
        return seq

    def _series_ids(self, points: Points) -> tuple[np.ndarray, list[tuple[SeriesKey, int]]]:
        """The id of each series of a batch, and the (key, id) of those not stored yet. A
        batch with the same series as the last one (a scrape, a replay) costs one compare."""
        cached = self._batch_cache
        if cached is not None and cached[0].num_rows == points.k and cached[0].equals(points.series):
            return cached[1], []
        sids = np.empty(points.k, dtype=np.int64)
        new: list[tuple[SeriesKey, int]] = []
        sid_of = self._sid
        next_sid = len(self._keys)
        for j, key in enumerate(points.keys()):
            sid = sid_of.get(key)
            if sid is None:
                sid = next_sid + len(new)
                new.append((key, sid))
            sids[j] = sid
        return sids, new

    def points_log_end(self) -> int:
        """The next ingest sequence number (0 for an empty store)."""
        with self._lock:
            return self._next_seq

    def read_points(self, *, since_seq: int, until_seq: int) -> list[tuple[int, Points]]:
        """Stored batches with ingest sequence in [since_seq, until_seq), in order, each as
        it was ingested (point order kept)."""
        with self._lock:
            try:
                tbl = self._con.sql("SELECT seq, sid, ts, value FROM points WHERE seq >= ? AND seq < ? "
                                    "ORDER BY seq, rowid", params=[int(since_seq), int(until_seq)]).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
            keys_of = list(self._keys)
        out: list[tuple[int, Points]] = []
        if tbl.num_rows == 0:
            return out
        seq = tbl.column(0).to_numpy()
        sid = tbl.column(1).to_numpy().astype(np.int64)
        ts = tbl.column(2).to_numpy().astype(np.float64)
        val = tbl.column(3).to_numpy().astype(np.float64)
        cuts = np.flatnonzero(np.diff(seq)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(seq)], strict=True):
            uniq, code = np.unique(sid[lo:hi], return_inverse=True)
            keys = [keys_of[u] for u in uniq.tolist()]
            out.append((int(seq[lo]), Points.build(keys, code.astype(np.int32), ts[lo:hi], val[lo:hi])))
        return out

    def insert_logs(self, *, table: pa.Table) -> int:
        n = table.num_rows
        if n == 0:
            return 0
        with self._tx() as con:
            con.register("_logs", table)
            try:
                con.execute(
                    """INSERT INTO logs SELECT service, ts, level,
                         CASE level WHEN 'DEBUG' THEN 0 WHEN 'INFO' THEN 1 WHEN 'WARN' THEN 2
                                    WHEN 'ERROR' THEN 3 ELSE 4 END, message, attributes FROM _logs"""
                )
            finally:
                con.unregister("_logs")
        return n

    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        if not changes:
            return []
        with self._tx() as con:
            ids = [c.id for c in changes]
            existing = {
                r[0] for r in con.execute("SELECT id FROM changes WHERE id IN (SELECT unnest(?))", [ids]).fetchall()
            }
            row = con.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchall()[0]
            seq = int(row[0]) if row else 0
            new: list[str] = []
            rows = []
            for c in changes:
                if c.id in existing:
                    continue
                existing.add(c.id)
                seq += 1
                new.append(c.id)
                rows.append((c.id, c.kind, c.services, c.ts, c.author, c.description,
                             json.dumps(c.fields, default=str), seq))
            if rows:
                self._insert_rows(con, "changes", _CHANGE_SCHEMA, rows)
        return new

    def add_edges(self, *, edges: list[Edge]) -> int:
        if not edges:
            return 0
        with self._tx() as con:
            before = con.execute("SELECT count(*) FROM topology").fetchone()
            con.executemany(
                "INSERT INTO topology VALUES (?, ?) ON CONFLICT DO NOTHING", [(e.source, e.target) for e in edges]
            )
            after = con.execute("SELECT count(*) FROM topology").fetchone()
        return int(after[0]) - int(before[0]) if before and after else 0

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None, labels: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        chosen, _ = self._selected_label_sets(service, metric, labels)
        with self._lock:
            sids = [self._sid[(service, metric, t)] for t in chosen if (service, metric, t) in self._sid]
        if not sids:
            return np.empty(0), np.empty(0)
        where, params = _where(("ts >= ?", since), ("ts <= ?", until))
        where += f" AND sid IN ({', '.join(str(int(x)) for x in sids)})"
        if step:
            sql = ("SELECT floor(ts / ?::DOUBLE) * ?::DOUBLE AS b, avg(value) FROM points "
                   f"WHERE {where} GROUP BY b ORDER BY b")
            params = [float(step), float(step), *params]
        elif len(sids) > 1:  # several label sets: their average per timestamp
            sql = f"SELECT ts, avg(value) FROM points WHERE {where} GROUP BY ts ORDER BY ts"
        else:
            sql = f"SELECT ts, value FROM points WHERE {where} ORDER BY ts"
        with self._lock:
            try:
                tbl = self._con.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
        return series_arrays(tbl)

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        if not services:
            return {}
        wanted = set(services)
        with self._lock:
            several = any(len(v) > 1 for k, v in self._label_sets.items() if k[0] in wanted)
        # a metric with several label sets is averaged per timestamp (the service-level view)
        sql = ("SELECT service, metric, ts, avg(value) FROM metrics WHERE service IN (SELECT unnest(?)) "
               "AND ts >= ? AND ts <= ? GROUP BY service, metric, ts ORDER BY service, metric, ts") if several else (
               "SELECT service, metric, ts, value FROM metrics WHERE service IN (SELECT unnest(?)) "
               "AND ts >= ? AND ts <= ? ORDER BY service, metric, ts")
        with self._lock:
            try:
                tbl = self._con.sql(sql, params=[services, since, until]).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
        out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if tbl.num_rows == 0:
            return out
        svc = tbl.column(0).to_pylist()
        met = tbl.column(1).to_pylist()
        ts = tbl.column(2).to_numpy()
        val = tbl.column(3).to_numpy()
        start = 0
        n = len(svc)
        for i in range(1, n + 1):
            if i == n or svc[i] != svc[start] or met[i] != met[start]:
                out[(svc[start], met[start])] = (ts[start:i].astype(np.float64), val[start:i].astype(np.float64))
                start = i
        return out

    def get_labelled_series(
        self, *, service: str, metric: str, since: float, until: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        with self._lock:
            try:
                tbl = self._con.sql(
                    """SELECT coalesce(labels, '') AS l, ts, value FROM metrics
                       WHERE service = ? AND metric = ? AND ts >= ? AND ts <= ? ORDER BY l, ts""",
                    params=[service, metric, since, until],
                ).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
        if tbl.num_rows == 0:
            return []
        labs = tbl.column(0).combine_chunks()
        ts = tbl.column(1).to_numpy().astype(np.float64)
        val = tbl.column(2).to_numpy().astype(np.float64)
        enc = labs.dictionary_encode()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        cuts = np.flatnonzero(np.diff(codes)) + 1
        out = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(codes)], strict=True):
            text = names[codes[lo]] or None
            out.append((dict(self._parsed.get(text) or parse_labels(text)), ts[lo:hi], val[lo:hi]))
        return out

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]:
        with self._lock:
            items = sorted((k for k in self._sid if service is None or k[0] == service),
                           key=lambda k: (k[0], k[1], k[2] or ""))
            ids = [self._sid[k] for k in items]
            count, first, last = self._count[ids].tolist(), self._first[ids].tolist(), self._last[ids].tolist()
            parsed = self._parsed
            return [SeriesInfo(k[0], k[1], c, f, la, labels=dict(parsed[k[2]]))
                    for k, c, f, la in zip(items, count, first, last, strict=True)]

    def list_services(self) -> list[dict[str, Any]]:
        return services_summary(self.list_series(), self.change_services())

    def change_services(self) -> dict[str, float]:
        rows = self._q("SELECT s, max(ts) FROM (SELECT unnest(services) AS s, ts FROM changes) GROUP BY 1 "
                       "ORDER BY 1")
        return {r[0]: float(r[1]) for r in rows}

    def series_before_after(
        self, *, services: list[str], at: float, before: float, after: float
    ) -> list[BeforeAfter]:
        if not services:
            return []
        rows = self._q(
            """SELECT service, metric,
                 count(*) FILTER (WHERE ts < ?), avg(value) FILTER (WHERE ts < ?),
                 stddev_pop(value) FILTER (WHERE ts < ?),
                 count(*) FILTER (WHERE ts >= ?), avg(value) FILTER (WHERE ts >= ?),
                 stddev_pop(value) FILTER (WHERE ts >= ?)
               FROM metrics WHERE service IN (SELECT unnest(?)) AND ts >= ? AND ts <= ?
               GROUP BY 1, 2 ORDER BY 1, 2""",
            [at, at, at, at, at, at, services, at - before, at + after])
        return [BeforeAfter(r[0], r[1], WindowStats(int(r[2]), _num(r[3]), _num(r[4])),
                            WindowStats(int(r[5]), _num(r[6]), _num(r[7]))) for r in rows]

    def log_pattern_counts(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> list[LogPatternCount]:
        where, params = _where(("ts >= ?", since), ("ts <= ?", until),
                               ("level_rank >= ?", LEVEL_RANK.get(min_level.upper(), 2)),
                               ("service IN (SELECT unnest(?))", services))
        sql = (f"SELECT service, level, message, count(*) AS n FROM logs WHERE {where} GROUP BY 1, 2, 3 "
               "ORDER BY n DESC, 1, 2, 3")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [LogPatternCount(r[0], r[1], r[2], int(r[3])) for r in self._q(sql, params)]

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow:
        where, params = _where(("ts >= ?", since), ("ts <= ?", until),
                               ("level_rank >= ?", LEVEL_RANK.get(min_level.upper(), 2)),
                               ("service IN (SELECT unnest(?))", services))
        sql = f"SELECT service, ts, level, message FROM logs WHERE {where} ORDER BY ts"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            try:
                tbl = self._con.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
        return LogWindow(  # Arrow columns: the RCA's log mining is vectorised over them
            service=tbl.column(0).combine_chunks(), ts=tbl.column(1).combine_chunks(),
            level=tbl.column(2).combine_chunks(), message=tbl.column(3).combine_chunks(),
        )

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int:
        where, params = _where(("ts >= ?", since), ("ts <= ?", until),
                               ("service IN (SELECT unnest(?))", services))
        return int(self._q(f"SELECT count(*) FROM logs WHERE {where}", params)[0][0])

    def _iter_batches(self, sql: str, params: list[Any], batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Stream a query's result as record batches from a cursor of its own (a duplicate
        connection: one MVCC snapshot, and the store's lock is not held while the caller
        consumes the batches, so ingest goes on during a long export)."""
        with self._lock:
            try:
                cur = self._con.cursor()
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
        try:
            try:
                reader = cur.sql(sql, params=params).to_arrow_reader(int(batch_rows))
            except duckdb.Error as exc:
                raise StoreError(str(exc)) from exc
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except duckdb.Error as exc:
                    raise StoreError(str(exc)) from exc
                if batch.num_rows:
                    yield batch
        finally:
            with suppress(duckdb.Error):
                cur.close()

    def iter_metrics(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatch]:
        where, params = _where(("ts >= ?", since), ("ts <= ?", until), ("service IN (SELECT unnest(?))", services))
        return self._iter_batches(f"SELECT service, metric, ts, value, labels FROM metrics WHERE {where}",
                                  params, batch_rows)

    def iter_logs(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        where, params = _where(("ts >= ?", since), ("ts <= ?", until), ("service IN (SELECT unnest(?))", services))
        return self._iter_batches(f"SELECT service, ts, level, message, attributes FROM logs WHERE {where}",
                                  params, batch_rows)

    @staticmethod
    def _change(r: tuple[Any, ...]) -> Change:
        return Change(id=r[0], kind=r[1], services=list(r[2]), ts=float(r[3]), author=r[4],
                      description=r[5], fields=json.loads(r[6]))

    _CHANGE_COLS = "id, kind, services, ts, author, description, fields"

    def list_changes(
        self, *, service: str | None = None, since: float | None = None, until: float | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Change]:
        where, params = _where(("list_contains(services, ?)", service), ("ts >= ?", since), ("ts <= ?", until),
                               ("kind = ?", kind))
        sql = f"SELECT {self._CHANGE_COLS} FROM changes WHERE {where} ORDER BY ts DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._change(r) for r in self._q(sql, params)]

    def get_change(self, *, change_id: str) -> Change | None:
        rows = self._q(f"SELECT {self._CHANGE_COLS} FROM changes WHERE id = ?", [change_id])
        return self._change(rows[0]) if rows else None

    def get_changes(self, *, change_ids: list[str]) -> list[Change]:
        if not change_ids:
            return []
        rows = self._q(f"SELECT {self._CHANGE_COLS} FROM changes WHERE id IN (SELECT unnest(?)) ORDER BY ts",
                       [change_ids])
        return [self._change(r) for r in rows]

    def get_topology(self) -> list[Edge]:
        return [Edge(r[0], r[1]) for r in self._q("SELECT source, target FROM topology ORDER BY 1, 2")]

    # ---- pipeline state -------------------------------------------------------------------
    _ANOM_COLS = ("id, incident_id, service, metric, started_at, detected_at, ended_at, direction, score, "
                  "baseline, observed, join_reason, labels, channel, reason")

    def save_anomalies(self, *, anomalies: list[Anomaly]) -> None:
        if not anomalies:
            return
        rows = [(a.id, a.incident_id, a.service, a.metric, a.started_at, a.detected_at, a.ended_at, a.direction,
                 a.score, a.baseline, a.observed, a.join_reason, canonical_labels(a.labels), a.channel, a.reason)
                for a in anomalies]
        with self._tx() as con:
            self._insert_rows(con, "anomalies", _ANOM_SCHEMA, rows, replace=True)

    def list_anomalies(self, *, incident_id: str | None = None, open_only: bool = False) -> list[Anomaly]:
        where, params = _where(("incident_id = ?", incident_id))
        if open_only:
            where += " AND ended_at IS NULL"
        rows = self._q(f"SELECT {self._ANOM_COLS} FROM anomalies WHERE {where} "
                       "ORDER BY started_at, id", params)
        return [
            Anomaly(id=r[0], incident_id=r[1], service=r[2], metric=r[3], started_at=r[4], detected_at=r[5],
                    ended_at=r[6], direction=r[7], score=r[8], baseline=r[9], observed=r[10], join_reason=r[11],
                    labels=parse_labels(r[12]) or None, channel=r[13], reason=r[14])
            for r in rows
        ]

    _INC_COLS = ("id, status, title, started_at, detected_at, resolved_at, services, severity, anomaly_count, "
                 "top_suspect, no_convincing_change, rca_version")

    def save_incidents(self, *, incidents: list[Incident]) -> None:
        if not incidents:
            return
        rows = []
        for i in incidents:
            top = None
            if i.top_suspect is not None:
                t = i.top_suspect
                top = json.dumps({"id": t.id, "kind": t.kind, "change_id": t.change_id, "score": t.score,
                                  "service": t.service})
            rows.append((i.id, i.status, i.title, i.started_at, i.detected_at, i.resolved_at, i.services,
                         i.severity, i.anomaly_count, top, i.no_convincing_change, i.rca_version))
        with self._tx() as con:
            self._insert_rows(con, "incidents", _INC_SCHEMA, rows, replace=True)

    def reassign_labels(self, *, incident_id: str, to: str) -> int:
        with self._tx() as con:
            rows = con.execute("SELECT count(*) FROM labels WHERE incident_id = ?", [incident_id]).fetchall()
            n = int(rows[0][0]) if rows else 0
            if n:
                con.execute("UPDATE labels SET incident_id = ? WHERE incident_id = ?", [to, incident_id])
        return n

    def record_merge(self, *, merged: str, into: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE incident_merges SET into_id = ? WHERE into_id = ?", [into, merged])
            con.execute("INSERT OR REPLACE INTO incident_merges VALUES (?, ?, ?)", [merged, into, time.time()])

    def merged_into(self, *, incident_id: str) -> str | None:
        rows = self._q("SELECT into_id FROM incident_merges WHERE merged_id = ?", [incident_id])
        return str(rows[0][0]) if rows else None

    def delete_incident(self, *, incident_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM incidents WHERE id = ?", [incident_id])
            con.execute("DELETE FROM suspects WHERE incident_id = ?", [incident_id])

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
        rows = self._q(f"SELECT {self._INC_COLS} FROM incidents WHERE id = ?", [incident_id])
        return self._incident(rows[0]) if rows else None

    def list_incidents(
        self, *, status: str | None = None, service: str | None = None, since: float | None = None,
        limit: int = 100, offset: int = 0, until: float | None = None,
    ) -> list[Incident]:
        where, params = _where(("status = ?", status), ("list_contains(services, ?)", service),
                               ("started_at >= ?", since), ("started_at <= ?", until))
        sql = (f"SELECT {self._INC_COLS} FROM incidents WHERE {where} "
               f"ORDER BY started_at DESC, id DESC LIMIT {int(limit)} OFFSET {int(offset)}")
        return [self._incident(r) for r in self._q(sql, params)]

    def replace_suspects(self, *, incident_id: str, suspects: list[Suspect]) -> None:
        rows = [(s.id, incident_id, s.rank, s.kind, s.change_id, s.service, s.ts, s.score,
                 json.dumps(s.evidence), s.explanation) for s in suspects]
        with self._tx() as con:
            con.execute("DELETE FROM suspects WHERE incident_id = ?", [incident_id])
            if rows:
                self._insert_rows(con, "suspects", _SUS_SCHEMA, rows)

    def list_suspects(self, *, incident_id: str) -> list[Suspect]:
        rows = self._q("SELECT id, incident_id, rank, kind, change_id, service, ts, score, evidence, explanation "
                       "FROM suspects WHERE incident_id = ? ORDER BY rank", [incident_id])
        return [Suspect(id=r[0], incident_id=r[1], rank=int(r[2]), kind=r[3], change_id=r[4], service=r[5],
                        ts=_num(r[6]), score=float(r[7]), evidence=json.loads(r[8]), explanation=r[9])
                for r in rows]

    def get_suspect(self, *, suspect_id: str) -> Suspect | None:
        rows = self._q("SELECT incident_id FROM suspects WHERE id = ?", [suspect_id])
        if not rows:
            return None
        return next((s for s in self.list_suspects(incident_id=rows[0][0]) if s.id == suspect_id), None)

    def add_label(self, *, label: Label) -> Label:
        with self._tx() as con:
            inc, seen = label.incident_id, {label.incident_id}
            while not con.execute("SELECT 1 FROM incidents WHERE id = ?", [inc]).fetchall():
                row = con.execute("SELECT into_id FROM incident_merges WHERE merged_id = ?", [inc]).fetchone()
                if row is None or row[0] in seen:
                    break
                inc = str(row[0])
                seen.add(inc)
            stored = dataclasses.replace(label, incident_id=inc)
            con.execute("INSERT INTO labels (id, incident_id, change_id, suspect_id, verdict, author, note, "
                        "created_at, service) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [stored.id, stored.incident_id, stored.change_id, stored.suspect_id, stored.verdict,
                         stored.author, stored.note, stored.created_at, stored.service])
        return stored

    def list_labels(self, *, incident_id: str | None = None) -> list[Label]:
        where, params = _where(("incident_id = ?", incident_id))
        sql = ("SELECT id, incident_id, change_id, suspect_id, verdict, author, note, created_at, service FROM labels "
               f"WHERE {where} ORDER BY created_at, id")
        return [Label(id=r[0], incident_id=r[1], change_id=r[2], suspect_id=r[3], verdict=r[4], author=r[5],
                      note=r[6], created_at=r[7], service=r[8]) for r in self._q(sql, params)]

    def save_model(self, *, version: int, blob: bytes, info: dict[str, Any]) -> None:
        self._q("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
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
        for t in ("points", "logs", "changes", "topology", "anomalies", "incidents", "suspects", "labels",
                  "incident_merges"):
            out["metrics" if t == "points" else t] = int(self._q(f"SELECT count(*) FROM {t}")[0][0])
        return out

    # ---- alerts (schema 4) ------------------------------------------------------------------
    _ALERT_COLS = ("id, incident_id, name, services, status, starts_at, ends_at, labels, annotations, fingerprint, "
                   "source, generator_url, join_reason")

    @staticmethod
    def _alert_row(a: Alert) -> tuple[Any, ...]:
        return (a.id, a.incident_id, a.name, a.services, a.status, a.starts_at, a.ends_at,
                json.dumps(a.labels, sort_keys=True), json.dumps(a.annotations, sort_keys=True), a.fingerprint,
                a.source, a.generator_url, a.join_reason)

    @staticmethod
    def _alert(r: tuple[Any, ...]) -> Alert:
        return Alert(id=r[0], incident_id=r[1], name=r[2], services=list(r[3] or []), status=r[4],
                     starts_at=float(r[5]), ends_at=_num(r[6]), labels=json.loads(r[7] or "{}"),
                     annotations=json.loads(r[8] or "{}"), fingerprint=r[9], source=r[10] or "generic",
                     generator_url=r[11], join_reason=r[12])

    def upsert_alerts(self, *, alerts: list[Alert]) -> list[str]:
        if not alerts:
            return []
        by_id = {a.id: a for a in alerts}  # the last notification of an alert in a batch wins
        with self._tx() as con:
            rows = con.execute(f"SELECT {self._ALERT_COLS} FROM alerts WHERE id IN (SELECT unnest(?))",
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
                con.execute("DELETE FROM alerts WHERE id IN (SELECT unnest(?))", [[a.id for a in changed]])
                self._insert_alerts(con, changed)
        return [a.id for a in changed]

    def _insert_alerts(self, con: duckdb.DuckDBPyConnection, alerts: list[Alert]) -> None:
        row = con.execute("SELECT coalesce(max(updated_seq), 0) FROM alerts").fetchall()[0]
        seq = int(row[0]) if row else 0
        rows = [(*self._alert_row(a), seq + i + 1) for i, a in enumerate(alerts)]
        self._insert_rows(con, "alerts", _ALERT_SCHEMA, rows, replace=True)

    def save_alerts(self, *, alerts: list[Alert]) -> None:
        """Upsert by id, incident assignment included (the grouping stage)."""
        if alerts:
            with self._tx() as con:
                self._insert_alerts(con, alerts)

    def list_alerts(self, *, incident_ids: list[str] | None = None, alert_ids: list[str] | None = None,
                    unassigned: bool = False) -> list[Alert]:
        where, params = _where(("incident_id IN (SELECT unnest(?))", incident_ids),
                               ("id IN (SELECT unnest(?))", alert_ids))
        if unassigned:
            where += " AND incident_id IS NULL"
        rows = self._q(f"SELECT {self._ALERT_COLS} FROM alerts WHERE {where} ORDER BY starts_at, id", params)
        return [self._alert(r) for r in rows]
    # ---- security: API keys, audit trail, idempotency keys ------------------------------
    def save_api_key(self, *, key: ApiKey) -> None:
        self._q("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
                [key.id, key.name, key.roles, key.key_hash, key.created_at, key.revoked_at])

    @staticmethod
    def _api_key(r: tuple[Any, ...]) -> ApiKey:
        return ApiKey(id=r[0], name=r[1], roles=list(r[2]), key_hash=r[3], created_at=r[4], revoked_at=r[5])

    def list_api_keys(self) -> list[ApiKey]:
        rows = self._q("SELECT id, name, roles, key_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        return [self._api_key(r) for r in rows]

    def get_api_key(self, *, key_id: str) -> ApiKey | None:
        rows = self._q("SELECT id, name, roles, key_hash, created_at, revoked_at FROM api_keys WHERE id = ?", [key_id])
        return self._api_key(rows[0]) if rows else None

    def revoke_api_key(self, *, key_id: str, at: float) -> bool:
        with self._lock:
            rows = self._q("SELECT revoked_at FROM api_keys WHERE id = ?", [key_id])
            if not rows or rows[0][0] is not None:
                return False
            self._q("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [at, key_id])
            return True

    def count_active_api_keys(self) -> int:
        return int(self._q("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")[0][0])

    def add_audit(self, *, entry: AuditEntry) -> None:
        self._q("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
                [entry.id, entry.ts, entry.actor, entry.action, entry.target, json.dumps(entry.detail, default=str)])

    def list_audit(self, *, since: float | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        where, params = _where(("ts >= ?", since), ("action = ?", action))
        rows = self._q(f"SELECT id, ts, actor, action, target, detail FROM audit WHERE {where} "
                       "ORDER BY ts DESC, id DESC LIMIT ?", [*params, limit])
        return [AuditEntry(id=r[0], ts=r[1], actor=r[2], action=r[3], target=r[4], detail=json.loads(r[5] or "{}"))
                for r in rows]

    # ---- ingest journal ----------------------------------------------------------------
    def append_journal(self, *, log: str, key: bytes, value: bytes) -> int:
        with self._tx() as con:
            row = con.execute("""INSERT INTO journal_heads VALUES (?, 1) ON CONFLICT (log)
                                 DO UPDATE SET next_seq = journal_heads.next_seq + 1 RETURNING next_seq""",
                              [log]).fetchone()
            seq = int(row[0]) - 1 if row else 0
            con.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?)", [log, seq, key, value, time.time()])
        return seq

    def read_journal(self, *, log: str, since: int, until: int) -> list[JournalEntry]:
        rows = self._q("SELECT seq, key, value FROM journal WHERE log = ? AND seq >= ? AND seq < ? ORDER BY seq",
                       [log, int(since), int(until)])
        return [JournalEntry(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def journal_end(self, *, log: str) -> int:
        rows = self._q("SELECT next_seq FROM journal_heads WHERE log = ?", [log])
        return int(rows[0][0]) if rows else 0

    def trim_journal(self, *, log: str, before: int) -> int:
        with self._tx() as con:
            row = con.execute("DELETE FROM journal WHERE log = ? AND seq < ? RETURNING 1", [log, int(before)])
            return len(row.fetchall())

    def get_idempotent(self, *, key: str, endpoint: str) -> tuple[int, str] | None:
        rows = self._q("SELECT status, body FROM idempotency WHERE key = ? AND endpoint = ?", [key, endpoint])
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def save_idempotent(self, *, key: str, endpoint: str, status: int, body: str, now: float) -> None:
        self._q("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)", [key, endpoint, status, body, now])
