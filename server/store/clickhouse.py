"""ClickHouse implementation of the telemetry store protocol (metrics, logs, the series
catalogue) for large fleets; the state store stays in PostgreSQL (or DuckDB), paired by
:class:`server.store.split.SplitStore`.

One class, two connection modes, the same SQL:

- **server**: ``clickhouse-connect`` over HTTP(S) to a ClickHouse server
  (``RCA_STORE__CLICKHOUSE_URL``, e.g. ``http://rca:secret@ch-1:8123``);
- **chdb**: the same client library backed by chDB, the in-process ClickHouse engine,
  on a data directory (``RCA_STORE__CLICKHOUSE_PATH``): tests and a single node that
  wants ClickHouse without a server. chDB runs one engine per process and locks its
  directory: **only one process may open a chDB path** (see docs/clickhouse.md).

Tables (database ``RCA_STORE__CLICKHOUSE_DATABASE``, default ``rca``):

- ``metrics``: raw points, MergeTree partitioned by day, ordered by
  (service, metric, labels, ts) so a series' window is one contiguous range;
  LowCardinality service/metric, DoubleDelta timestamps, Gorilla values, ZSTD on top;
- ``metrics_1m`` / ``metrics_1h``: roll-ups (count, sum, sum of squares per bucket),
  AggregatingMergeTree filled by materialized views at insert time;
- ``series``: the series catalogue (points, first and last time per label set), filled
  by a materialized view, so listings never scan raw points;
- ``logs``: MergeTree by day, ordered by (service, ts);
- ``meta``: schema version and the retention applied.

Retention: each table gets a TTL from the settings (``None`` keeps forever). Reads of a
window older than the raw retention are answered from the 1-minute roll-up, older than
that from the 1-hour roll-up, transparently (a rolled-up point is its bucket's mean at
the bucket start). Every read is one SQL statement computed by ClickHouse; Python only
shapes the (small) result. Driver errors become :class:`StoreError`.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from server.model import LogWindow, SeriesInfo
from server.model.labels import matches, parse_labels
from server.store.base import (
    LEVEL_RANK,
    BeforeAfter,
    CardinalityError,
    LogPatternCount,
    SeriesLimits,
    StoreError,
    WindowStats,
    require_columns,
    series_arrays,
)

SCHEMA_VERSION = 1
_DB_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# DateTime64(3) covers 1900-01-01 .. 2299-12-31; outside it ClickHouse would clamp silently
_TS_MIN, _TS_MAX = -2_208_988_800.0, 10_413_791_999.0
_MINUTE_MS, _HOUR_MS = 60_000, 3_600_000
SeriesKey = tuple[str, str, str]  # service, metric, canonical label text ('' for none)


@dataclass(frozen=True)
class Retention:
    """How long each table keeps its rows, in days (``None``: forever).

    Raw points are kept ``raw_days``; their 1-minute roll-up ``rollup_1m_days`` (at
    least ``raw_days``), the 1-hour roll-up ``rollup_1h_days`` (at least the 1-minute
    one); logs ``logs_days``."""

    raw_days: float | None = None
    rollup_1m_days: float | None = None
    rollup_1h_days: float | None = None
    logs_days: float | None = None

    def __post_init__(self) -> None:
        order = [("raw_days", self.raw_days), ("rollup_1m_days", self.rollup_1m_days),
                 ("rollup_1h_days", self.rollup_1h_days)]
        for name, v in order + [("logs_days", self.logs_days)]:
            if v is not None and not v > 0:
                raise ValueError(f"retention {name} must be > 0 days (or None to keep forever), got {v}")
        for (n1, v1), (n2, v2) in zip(order, order[1:], strict=False):
            if v1 is not None and v2 is not None and v2 < v1:
                raise ValueError(f"retention {n2} ({v2}) must be at least {n1} ({v1}): a roll-up outlives "
                                 "the finer data it summarises")


def redact_url(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _lo_ms(x: float) -> int:
    """The first millisecond at or after ``x`` seconds (1 µs tolerance for float noise)."""
    return math.ceil(x * 1000.0 - 1e-3)


def _hi_ms(x: float) -> int:
    """The last millisecond at or before ``x`` seconds."""
    return math.floor(x * 1000.0 + 1e-3)


def _ttl(column: str, days: float | None) -> str:
    return "" if days is None else f"TTL toDateTime({column}) + INTERVAL {round(days * 86400)} SECOND"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


class _Params:
    """Named query parameters (``{name:Type}``, bound by the server) built up as SQL is."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, typ: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{typ}}}"


class ClickHouseStore:
    """The telemetry store on ClickHouse: ``url`` for a server, else a chDB ``path``."""

    def __init__(self, *, url: str | None = None, path: Path | str | None = None, database: str = "rca",
                 retention: Retention | None = None, pool_size: int = 4, timeout: float = 30.0,
                 async_insert: bool = True) -> None:
        if (url is None) == (path is None):
            raise ValueError("ClickHouseStore needs exactly one of url (a ClickHouse server) or path (chDB)")
        if not _DB_RE.match(database):
            raise ValueError(f"bad ClickHouse database name {database!r}: letters, digits and '_' only")
        self.url, self.db = url, database
        self.path = None if path is None else Path(path)
        self.retention = retention or Retention()
        self._timeout = timeout
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._closed = False
        # A server batches many small inserts (one per API request) into one part with
        # async_insert, and answers once the batch is written (wait_for_async_insert=1), so an
        # acknowledged batch is stored. Not on chDB: its client inserts from a file (no gain measured).
        self._insert_settings: dict[str, Any] | None = (
            {"async_insert": 1, "wait_for_async_insert": 1} if async_insert and url is not None else None)
        self._known: set[SeriesKey] = set()  # series this process has seen stored (never forgotten)
        self._known_lock = threading.Lock()
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # ---- plumbing --------------------------------------------------------------------
    @property
    def where(self) -> str:
        """Where the data lives, for messages (no password)."""
        return f"ClickHouse at {redact_url(self.url)}" if self.url else f"chDB at {self.path}"

    def _connect(self) -> Any:
        try:
            import clickhouse_connect
            from clickhouse_connect.driver.exceptions import ClickHouseError

            if self.url is None:
                import chdb  # noqa: F401  (clickhouse-connect's chdb interface needs it)
        except ImportError as exc:
            raise StoreError(f"the ClickHouse telemetry store needs the clickhouse extra: "
                             f"pip install 'rca-workbench[clickhouse]' ({exc})") from exc
        try:
            if self.url is not None:
                return clickhouse_connect.get_client(dsn=self.url, autogenerate_session_id=False,
                                                     connect_timeout=self._timeout,
                                                     send_receive_timeout=max(self._timeout, 300.0))
            return clickhouse_connect.get_client(interface="chdb", path=str(self.path))
        except (ClickHouseError, OSError, RuntimeError) as exc:
            hint = (" (chDB: only one process may open a data path; is another rca process using it?)"
                    if self.url is None else "")
            raise StoreError(f"cannot connect to {self.where}: {exc}{hint}") from exc

    def _new_client(self) -> Any:
        client = self._connect()
        with self._all_lock:
            self._all.append(client)
        return client

    def _drop_client(self, client: Any) -> None:
        with self._all_lock:
            if client in self._all:
                self._all.remove(client)
        with suppress(Exception):
            client.close()

    @contextmanager
    def _client(self) -> Iterator[Any]:
        """A pooled client (a chDB client runs one statement at a time; HTTP clients are
        cheap), with driver errors translated."""
        from clickhouse_connect.driver.exceptions import ClickHouseError

        if self._closed:
            raise StoreError(f"the telemetry store ({self.where}) is closed")
        if not self._slots.acquire(timeout=self._timeout):
            raise StoreError(f"no free ClickHouse connection within {self._timeout} s")
        try:
            try:
                client = self._pool.get_nowait()
            except queue.Empty:
                client = self._new_client()
            try:
                yield client
            except (ClickHouseError, OSError) as exc:
                raise StoreError(f"{self.where}: {exc}") from exc
            finally:
                self._pool.put(client)
        finally:
            self._slots.release()

    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._client() as c:
            return c.command(sql, parameters=dict(params or {}))

    def _arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._client() as c:
            return c.query_arrow(sql, parameters=dict(params or {}))

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._client() as c:
            return [tuple(r) for r in c.query(sql, parameters=dict(params or {})).result_rows]

    def _t(self, name: str) -> str:
        return f"{self.db}.{name}"

    def _migrate(self) -> None:
        r = self.retention
        self._command(f"CREATE DATABASE IF NOT EXISTS {self.db}")
        self._command(f"""CREATE TABLE IF NOT EXISTS {self._t('meta')} (key String, value String,
            updated DateTime64(6, 'UTC')) ENGINE = ReplacingMergeTree(updated) ORDER BY key""")
        rows = self._rows(f"SELECT value FROM {self._t('meta')} FINAL WHERE key = 'schema_version'")
        version = int(rows[0][0]) if rows else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.where} was written by a newer release (schema {version} > {SCHEMA_VERSION}); "
                             "upgrade rca")
        rollup_cols = """service LowCardinality(String), metric LowCardinality(String),
            labels String CODEC(ZSTD(1)), ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
            n SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
            s SimpleAggregateFunction(sum, Float64) CODEC(Gorilla, ZSTD(1)),
            ss SimpleAggregateFunction(sum, Float64) CODEC(Gorilla, ZSTD(1))"""
        statements = [
            f"""CREATE TABLE IF NOT EXISTS {self._t('metrics')} (
                service LowCardinality(String), metric LowCardinality(String),
                labels String CODEC(ZSTD(1)),
                ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
                value Float64 CODEC(Gorilla, ZSTD(1)))
              ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (service, metric, labels, ts)
              {_ttl('ts', r.raw_days)}""",
            f"""CREATE TABLE IF NOT EXISTS {self._t('metrics_1m')} ({rollup_cols})
              ENGINE = AggregatingMergeTree PARTITION BY toStartOfWeek(ts) ORDER BY (service, metric, labels, ts)
              {_ttl('ts', r.rollup_1m_days)}""",
            f"""CREATE TABLE IF NOT EXISTS {self._t('metrics_1h')} ({rollup_cols})
              ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (service, metric, labels, ts)
              {_ttl('ts', r.rollup_1h_days)}""",
            f"""CREATE TABLE IF NOT EXISTS {self._t('series')} (
                service LowCardinality(String), metric LowCardinality(String), labels String,
                points SimpleAggregateFunction(sum, UInt64),
                first_ts SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
                last_ts SimpleAggregateFunction(max, DateTime64(3, 'UTC')))
              ENGINE = AggregatingMergeTree ORDER BY (service, metric, labels)""",
            f"""CREATE TABLE IF NOT EXISTS {self._t('logs')} (
                service LowCardinality(String),
                ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
                level LowCardinality(String), level_rank UInt8,
                message String CODEC(ZSTD(3)), attributes Nullable(String) CODEC(ZSTD(3)))
              ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (service, ts)
              {_ttl('ts', r.logs_days)}""",
        ]
        for name, bucket in (("metrics_1m", "toStartOfMinute(ts)"), ("metrics_1h", "toStartOfHour(ts)")):
            statements.append(
                f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {self._t(name + '_mv')} TO {self._t(name)} AS
                    SELECT service, metric, labels, {bucket} AS ts, count() AS n, sum(value) AS s,
                           sum(value * value) AS ss
                    FROM {self._t('metrics')} GROUP BY service, metric, labels, ts""")
        statements.append(
            f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {self._t('series_mv')} TO {self._t('series')} AS
                SELECT service, metric, labels, count() AS points, min(ts) AS first_ts, max(ts) AS last_ts
                FROM {self._t('metrics')} GROUP BY service, metric, labels""")
        for stmt in statements:
            self._command(stmt)
        self._apply_retention()
        if version < SCHEMA_VERSION:
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    def _set_meta(self, key: str, value: str) -> None:
        self._command(f"INSERT INTO {self._t('meta')} SELECT {{k:String}}, {{v:String}}, now64(6)",
                      {"k": key, "v": value})

    def _apply_retention(self) -> None:
        """Tables created earlier with another retention get the configured TTL (a
        change of the setting is applied once, by ALTER ... MODIFY/REMOVE TTL)."""
        r = self.retention
        rows = dict(self._rows(f"SELECT key, value FROM {self._t('meta')} FINAL WHERE key LIKE 'ttl.%'"))
        for table, days in (("metrics", r.raw_days), ("metrics_1m", r.rollup_1m_days),
                            ("metrics_1h", r.rollup_1h_days), ("logs", r.logs_days)):
            want = "" if days is None else str(round(days * 86400))
            have = rows.get(f"ttl.{table}")
            if have is None:  # first open: the CREATE above carried it
                self._set_meta(f"ttl.{table}", want)
                continue
            if have == want:
                continue
            if days is None:
                self._command(f"ALTER TABLE {self._t(table)} REMOVE TTL")
            else:
                self._command(f"ALTER TABLE {self._t(table)} MODIFY {_ttl('ts', days)}")
            self._set_meta(f"ttl.{table}", want)

    def schema_version(self) -> int:
        rows = self._rows(f"SELECT value FROM {self._t('meta')} FINAL WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def ping(self) -> bool:
        self._rows("SELECT 1")
        return True

    def close(self) -> None:
        """Closes every client (with chDB, the engine stops with the last one, releasing
        the data directory for another store or process)."""
        self._closed = True
        with self._all_lock:
            clients, self._all = self._all, []
        for c in clients:
            with suppress(Exception):
                c.close()
        while True:
            try:
                self._pool.get_nowait()
            except queue.Empty:
                break

    def disk_usage(self) -> dict[str, tuple[int, int]]:
        """Per table: (bytes on disk, rows) of its active parts."""
        rows = self._rows("SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts WHERE active "
                          "AND database = {db:String} GROUP BY table ORDER BY table", {"db": self.db})
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def optimize(self) -> None:
        """Merge every table's parts now (also applies expired TTLs); for tests and benches."""
        for table in ("metrics", "metrics_1m", "metrics_1h", "series", "logs"):
            self._command(f"OPTIMIZE TABLE {self._t(table)} FINAL")

    # ---- where a window's points come from (raw, then roll-ups) -------------------------
    def _tier_bounds(self, now: float | None = None) -> tuple[int | None, int | None]:
        """(raw_from, m1_from) in ms: raw points are read at or after ``raw_from`` (None:
        all raw), the 1-minute roll-up in [m1_from, raw_from), the 1-hour one before
        ``m1_from``. Each bound sits one bucket after the TTL cut-off of the finer table
        (rounded up to the coarser bucket, so a coarse bucket never overlaps finer data
        and the finer table still has every point after the bound)."""
        r = self.retention
        if r.raw_days is None:
            return None, None
        t = time.time() if now is None else now
        raw_from = (math.ceil((t - r.raw_days * 86400) * 1000 / _MINUTE_MS) + 1) * _MINUTE_MS
        if r.rollup_1m_days is None:
            return raw_from, None
        m1_from = (math.ceil((t - r.rollup_1m_days * 86400) * 1000 / _HOUR_MS) + 1) * _HOUR_MS
        return raw_from, min(m1_from, raw_from)

    def _points(self, p: _Params, conds: list[str], lo: float | None, hi: float | None) -> tuple[str, bool]:
        """What to read FROM for the points in [lo, hi] matching ``conds`` (SQL on service,
        metric, labels), and whether that is raw points only. Raw only (the usual case, and
        always without retention): the raw table with its WHERE clause (columns service,
        metric, labels, ts, value), so a read is one plain statement on the table's key.
        Else a subquery over the tiers with columns service, metric, labels, t (Float64
        epoch s), n (points), s (sum of values), ss (sum of squares)."""
        lo_ms = None if lo is None else _lo_ms(lo)
        hi_ms = None if hi is None else _hi_ms(hi)
        raw_from, m1_from = self._tier_bounds()
        where = " AND ".join(conds) or "1"
        parts: list[str] = []

        def seg(start: int | None, end_excl: int | None, *, raw: bool) -> tuple[str, str] | None:
            s, e = start, end_excl
            if lo_ms is not None:
                s = lo_ms if s is None else max(s, lo_ms)
            e_incl = None if e is None else e - 1
            if hi_ms is not None:
                e_incl = hi_ms if e_incl is None else min(e_incl, hi_ms)
            if s is not None and e_incl is not None and s > e_incl:
                return None
            if raw:
                lo_sql = "" if s is None else f" AND ts >= fromUnixTimestamp64Milli({p.add(s, 'Int64')}, 'UTC')"
                hi_sql = "" if e_incl is None else f" AND ts <= fromUnixTimestamp64Milli({p.add(e_incl, 'Int64')}, 'UTC')"
            else:  # a bucket is in the window when its start is
                lo_sql = "" if s is None else f" AND ts >= toDateTime({p.add(-(-s // 1000), 'Int64')}, 'UTC')"
                hi_sql = "" if e_incl is None else f" AND ts <= toDateTime({p.add(e_incl // 1000, 'Int64')}, 'UTC')"
            return lo_sql, hi_sql

        raw = seg(raw_from, None, raw=True)
        if raw_from is None or (lo_ms is not None and lo_ms >= raw_from):  # raw points only
            return f"{self._t('metrics')} WHERE {where}{raw[0] + raw[1] if raw else ' AND 0'}", True
        if raw is not None:
            parts.append("SELECT service, metric, labels, toUnixTimestamp64Milli(ts) / 1000 AS t, toUInt64(1) AS n, "
                         f"value AS s, value * value AS ss FROM {self._t('metrics')} WHERE {where}{raw[0]}{raw[1]}")
        for table, start, end in (("metrics_1m", m1_from, raw_from), ("metrics_1h", None, m1_from)):
            if end is None:  # no 1-hour tier without a 1-minute retention
                continue
            b = seg(start, end, raw=False)
            if b is not None:
                parts.append(f"SELECT service, metric, labels, toFloat64(toUnixTimestamp(ts)) AS t, sum(n) AS n, "
                             f"sum(s) AS s, sum(ss) AS ss FROM {self._t(table)} WHERE {where}{b[0]}{b[1]} "
                             "GROUP BY service, metric, labels, ts")
        if not parts:  # an empty window
            return f"{self._t('metrics')} WHERE 0", True
        return f"({' UNION ALL '.join(parts)})", False

    # ---- writes ----------------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        n = table.num_rows
        if n == 0:
            return 0
        require_columns(table, ("service", "metric", "ts", "value"), "metrics")
        ts = pc.cast(table.column("ts"), pa.float64())
        lo, hi = pc.min_max(ts).values()
        if not (lo.as_py() >= _TS_MIN and hi.as_py() <= _TS_MAX):  # also false for NaN
            raise StoreError(f"metrics batch has a ts outside 1900..2299 ({lo.as_py()}..{hi.as_py()}); nothing stored")
        labels = table.column("labels") if "labels" in table.column_names else pa.nulls(n, pa.string())
        batch = pa.table({
            "service": pc.cast(table.column("service"), pa.string()),
            "metric": pc.cast(table.column("metric"), pa.string()),
            "labels": pc.fill_null(pc.cast(labels, pa.string()), ""),
            "ts": pc.cast(pc.round(pc.multiply(ts, 1000.0)), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "value": pc.cast(table.column("value"), pa.float64()),
        })
        batch_keys: set[SeriesKey] = set()
        if limits is not None:  # (the catalogue is in ClickHouse; this process only caches known series)
            keys = batch.group_by(["service", "metric", "labels"]).aggregate([])
            batch_keys = set(zip(*(keys.column(c).to_pylist() for c in ("service", "metric", "labels")),
                                 strict=True))
            with self._known_lock:
                unknown = batch_keys - self._known
            if unknown:
                self._check_limits(unknown, limits)
        with self._client() as c:
            c.insert_arrow("metrics", batch, database=self.db, settings=self._insert_settings)
        if batch_keys:
            with self._known_lock:
                self._known |= batch_keys
        return n

    def _check_limits(self, unknown: set[SeriesKey], limits: SeriesLimits) -> None:
        """Raise CardinalityError when the series of ``unknown`` that the catalogue does not
        have yet would pass a limit (checked against the catalogue in ClickHouse, so other
        writers' series count; two writers racing may each pass by one batch)."""
        services = sorted({k[0] for k in unknown})
        p = _Params()
        rows = self._rows(f"SELECT service, metric, labels FROM {self._t('series')} "
                          f"WHERE service IN {p.add(services, 'Array(String)')} GROUP BY service, metric, labels",
                          p.values)
        existing = {(str(r[0]), str(r[1]), str(r[2])) for r in rows}
        with self._known_lock:
            self._known |= existing
        new = sorted(unknown - existing)
        if not new:
            return
        if limits.total is not None:
            total = int(self._rows(f"SELECT count() FROM (SELECT 1 FROM {self._t('series')} "
                                   "GROUP BY service, metric, labels)")[0][0])
            if total + len(new) > limits.total:
                raise CardinalityError(limit="max_series", scope="the store", existing=total, new=len(new),
                                       maximum=limits.total)
        if limits.per_metric is not None:
            per_metric: dict[tuple[str, str], int] = {}
            for svc, met, _ in new:
                per_metric[(svc, met)] = per_metric.get((svc, met), 0) + 1
            for (svc, met), k in sorted(per_metric.items()):
                have = sum(1 for e in existing if e[0] == svc and e[1] == met)
                if have + k > limits.per_metric:
                    raise CardinalityError(limit="max_series_per_metric", scope=f"metric {svc}/{met}",
                                           existing=have, new=k, maximum=limits.per_metric)
        if limits.per_service is not None:
            per_service: dict[str, int] = {}
            for svc, _, _ in new:
                per_service[svc] = per_service.get(svc, 0) + 1
            for svc, k in sorted(per_service.items()):
                have = sum(1 for e in existing if e[0] == svc)
                if have + k > limits.per_service:
                    raise CardinalityError(limit="max_series_per_service", scope=f"service {svc}",
                                           existing=have, new=k, maximum=limits.per_service)

    def insert_logs(self, *, table: pa.Table) -> int:
        n = table.num_rows
        if n == 0:
            return 0
        require_columns(table, ("service", "ts", "level", "message"), "logs")
        ts = pc.cast(table.column("ts"), pa.float64())
        lo, hi = pc.min_max(ts).values()
        if not (lo.as_py() >= _TS_MIN and hi.as_py() <= _TS_MAX):
            raise StoreError(f"logs batch has a ts outside 1900..2299 ({lo.as_py()}..{hi.as_py()}); nothing stored")
        levels = pc.cast(table.column("level"), pa.string())
        ranks = [LEVEL_RANK.get(lv, 4) for lv in levels.to_pylist()]
        attrs = table.column("attributes") if "attributes" in table.column_names else pa.nulls(n, pa.string())
        batch = pa.table({
            "service": pc.cast(table.column("service"), pa.string()),
            "ts": pc.cast(pc.round(pc.multiply(ts, 1000.0)), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "level": levels,
            "level_rank": pa.array(ranks, pa.uint8()),
            "message": pc.cast(table.column("message"), pa.string()),
            "attributes": pc.cast(attrs, pa.string()),
        })
        with self._client() as c:
            c.insert_arrow("logs", batch, database=self.db)
        return n

    # ---- metric reads ------------------------------------------------------------------
    def _label_sets(self, services: list[str], metric: str | None = None) -> list[tuple[str, str, str]]:
        p = _Params()
        cond = f"service IN {p.add(services, 'Array(String)')}"
        if metric is not None:
            cond += f" AND metric = {p.add(metric, 'String')}"
        rows = self._rows(f"SELECT service, metric, labels FROM {self._t('series')} WHERE {cond} "
                          "GROUP BY service, metric, labels ORDER BY service, metric, labels", p.values)
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None, labels: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        p = _Params()
        conds = [f"service = {p.add(service, 'String')}", f"metric = {p.add(metric, 'String')}"]
        if labels:
            every = [k[2] for k in self._label_sets([service], metric)]
            chosen = [t for t in every if matches(parse_labels(t), labels)]
            if not chosen:
                return np.empty(0), np.empty(0)
            if len(chosen) < len(every):
                conds.append(f"labels IN {p.add(chosen, 'Array(String)')}")
        src, raw = self._points(p, conds, since, until)
        st = p.add(float(step), "Float64") if step else ""
        if raw and step:
            sql = (f"SELECT floor(toUnixTimestamp64Milli(ts) / 1000 / {st}) * {st} AS b, avg(value) FROM {src} "
                   "GROUP BY b ORDER BY b")
        elif raw:  # several label sets: their average per timestamp
            sql = f"SELECT toUnixTimestamp64Milli(ts) / 1000, avg(value) FROM {src} GROUP BY ts ORDER BY ts"
        elif step:
            sql = f"SELECT floor(t / {st}) * {st} AS b, sum(s) / sum(n) AS v FROM {src} GROUP BY b ORDER BY b"
        else:
            sql = f"SELECT t, sum(s) / sum(n) AS v FROM {src} GROUP BY t ORDER BY t"
        tbl = self._arrow(sql, p.values)
        return series_arrays(tbl)

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        if not services:
            return {}
        p = _Params()
        src, raw = self._points(p, [f"service IN {p.add(list(services), 'Array(String)')}"], since, until)
        # the label sets of a metric are averaged per timestamp (the service-level view)
        tbl = self._arrow(
            f"SELECT service, metric, toUnixTimestamp64Milli(ts) / 1000, avg(value) FROM {src} "
            "GROUP BY service, metric, ts ORDER BY service, metric, ts" if raw else
            f"SELECT service, metric, t, sum(s) / sum(n) AS v FROM {src} GROUP BY service, metric, t "
            "ORDER BY service, metric, t", p.values)
        out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if tbl.num_rows == 0:
            return out
        svc = tbl.column(0).to_pylist()
        met = tbl.column(1).to_pylist()
        ts = tbl.column(2).to_numpy().astype(np.float64)
        val = tbl.column(3).to_numpy().astype(np.float64)
        start, n = 0, len(svc)
        for i in range(1, n + 1):
            if i == n or svc[i] != svc[start] or met[i] != met[start]:
                out[(svc[start], met[start])] = (ts[start:i], val[start:i])
                start = i
        return out

    def get_labelled_series(
        self, *, service: str, metric: str, since: float, until: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        p = _Params()
        src, raw = self._points(p, [f"service = {p.add(service, 'String')}", f"metric = {p.add(metric, 'String')}"],
                                since, until)
        tbl = self._arrow(
            f"SELECT labels, toUnixTimestamp64Milli(ts) / 1000, avg(value) FROM {src} GROUP BY labels, ts "
            "ORDER BY labels, ts" if raw else
            f"SELECT labels, t, sum(s) / sum(n) AS v FROM {src} GROUP BY labels, t ORDER BY labels, t", p.values)
        if tbl.num_rows == 0:
            return []
        labs = tbl.column(0).combine_chunks().dictionary_encode()
        codes = labs.indices.to_numpy(zero_copy_only=False)
        names = labs.dictionary.to_pylist()
        ts = tbl.column(1).to_numpy().astype(np.float64)
        val = tbl.column(2).to_numpy().astype(np.float64)
        cuts = np.flatnonzero(np.diff(codes)) + 1
        return [(parse_labels(names[codes[lo]] or None), ts[lo:hi], val[lo:hi])
                for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(codes)], strict=True)]

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]:
        p = _Params()
        where = "1" if service is None else f"service = {p.add(service, 'String')}"
        rows = self._rows(f"""SELECT service, metric, labels, sum(points), toUnixTimestamp64Milli(min(first_ts)),
                                     toUnixTimestamp64Milli(max(last_ts))
                              FROM {self._t('series')} WHERE {where} GROUP BY service, metric, labels
                              HAVING sum(points) > 0 ORDER BY service, metric, labels""", p.values)
        return [SeriesInfo(str(r[0]), str(r[1]), int(r[3]), int(r[4]) / 1000, int(r[5]) / 1000,
                           labels=parse_labels(r[2] or None)) for r in rows]

    def series_before_after(
        self, *, services: list[str], at: float, before: float, after: float
    ) -> list[BeforeAfter]:
        if not services:
            return []
        p = _Params()
        src, raw_only = self._points(p, [f"service IN {p.add(list(services), 'Array(String)')}"],
                                     at - before, at + after)
        if raw_only:  # every point is raw: numerically stable per-window statistics
            a = f"fromUnixTimestamp64Milli({p.add(_lo_ms(at), 'Int64')}, 'UTC')"
            sql = f"""SELECT service, metric, countIf(ts < {a}), avgIf(value, ts < {a}),
                             stddevPopStableIf(value, ts < {a}), countIf(ts >= {a}), avgIf(value, ts >= {a}),
                             stddevPopStableIf(value, ts >= {a})
                      FROM {src} GROUP BY service, metric ORDER BY service, metric"""
            out = []
            for r in self._rows(sql, p.values):
                nb, na = int(r[2]), int(r[5])
                out.append(BeforeAfter(str(r[0]), str(r[1]),
                                       WindowStats(nb, _num(r[3]) if nb else None, _num(r[4]) if nb else None),
                                       WindowStats(na, _num(r[6]) if na else None, _num(r[7]) if na else None)))
            return out
        a = p.add(float(at), "Float64")
        sql = f"""SELECT service, metric, sumIf(n, t < {a}), sumIf(s, t < {a}), sumIf(ss, t < {a}),
                         sumIf(n, t >= {a}), sumIf(s, t >= {a}), sumIf(ss, t >= {a})
                  FROM {src} GROUP BY service, metric ORDER BY service, metric"""

        def stats(n: Any, s: Any, ss: Any) -> WindowStats:
            k = int(n)
            if k == 0:
                return WindowStats(0, None, None)
            mean = float(s) / k
            return WindowStats(k, mean, math.sqrt(max(float(ss) / k - mean * mean, 0.0)))

        return [BeforeAfter(str(r[0]), str(r[1]), stats(r[2], r[3], r[4]), stats(r[5], r[6], r[7]))
                for r in self._rows(sql, p.values)]

    # ---- logs --------------------------------------------------------------------------
    def _time_where(self, p: _Params, services: list[str] | None, since: float | None, until: float | None,
                   min_level: str | None) -> str:
        conds: list[str] = []
        if since is not None:
            conds.append(f"ts >= fromUnixTimestamp64Milli({p.add(_lo_ms(since), 'Int64')}, 'UTC')")
        if until is not None:
            conds.append(f"ts <= fromUnixTimestamp64Milli({p.add(_hi_ms(until), 'Int64')}, 'UTC')")
        if min_level is not None:
            conds.append(f"level_rank >= {p.add(LEVEL_RANK.get(min_level.upper(), 2), 'UInt8')}")
        if services is not None:
            conds.append(f"service IN {p.add(list(services), 'Array(String)')}")
        return " AND ".join(conds) or "1"

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow:
        p = _Params()
        where = self._time_where(p, services, since, until, min_level)
        sql = (f"SELECT service, toUnixTimestamp64Milli(ts) / 1000 AS t, level, message FROM {self._t('logs')} "
               f"WHERE {where} ORDER BY ts, service, message")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        tbl = self._arrow(sql, p.values)

        def col(i: int, typ: pa.DataType) -> pa.Array:
            arr = tbl.column(i).combine_chunks() if tbl.num_rows else pa.array([], typ)
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            return arr.cast(typ)

        return LogWindow(service=col(0, pa.string()), ts=col(1, pa.float64()), level=col(2, pa.string()),
                         message=col(3, pa.string()))

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int:
        p = _Params()
        where = self._time_where(p, services, since, until, None)
        return int(self._rows(f"SELECT count() FROM {self._t('logs')} WHERE {where}", p.values)[0][0])

    def log_pattern_counts(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> list[LogPatternCount]:
        p = _Params()
        where = self._time_where(p, services, since, until, min_level)
        sql = (f"SELECT service, level, message, count() AS c FROM {self._t('logs')} WHERE {where} "
               "GROUP BY service, level, message ORDER BY c DESC, service, level, message")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [LogPatternCount(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in self._rows(sql, p.values)]

    # ---- streaming exports -------------------------------------------------------------
    def _iter_batches(self, sql: str, params: dict[str, Any], schema: pa.Schema,
                      batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Rows of ``sql`` as record batches of at most ``batch_rows`` rows, on a client of
        its own (one snapshot of the table's parts; writers go on meanwhile)."""
        from clickhouse_connect.driver.exceptions import ClickHouseError

        if self._closed:
            raise StoreError(f"the telemetry store ({self.where}) is closed")
        client = self._new_client()
        step = max(1, int(batch_rows))
        try:
            with client.query_arrow_stream(sql, parameters=params,
                                           settings={"max_block_size": min(step, 65_536)}) as stream:
                for chunk in stream:
                    for part in (chunk.to_batches() if isinstance(chunk, pa.Table) else [chunk]):
                        part = pa.RecordBatch.from_arrays(
                            [_plain(part.column(i), f.type) for i, f in enumerate(schema)], schema=schema)
                        for lo in range(0, part.num_rows, step):
                            yield part.slice(lo, step)
        except (ClickHouseError, OSError) as exc:
            raise StoreError(f"{self.where}: {exc}") from exc
        finally:
            self._drop_client(client)

    def iter_metrics(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatch]:
        p = _Params()
        where = self._time_where(p, services, since, until, None)
        schema = pa.schema([("service", pa.string()), ("metric", pa.string()), ("ts", pa.float64()),
                            ("value", pa.float64()), ("labels", pa.string())])
        return self._iter_batches(f"SELECT service, metric, toUnixTimestamp64Milli(ts) / 1000 AS t_s, value, "
                                  f"nullIf(labels, '') AS labels FROM {self._t('metrics')} WHERE {where} "
                                  # the table's sorting key: read in order, streaming (no full sort)
                                  "ORDER BY service, metric, labels, ts",
                                  p.values, schema, batch_rows)

    def iter_logs(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        p = _Params()
        where = self._time_where(p, services, since, until, None)
        schema = pa.schema([("service", pa.string()), ("ts", pa.float64()), ("level", pa.string()),
                            ("message", pa.string()), ("attributes", pa.string())])
        return self._iter_batches(f"SELECT service, toUnixTimestamp64Milli(ts) / 1000 AS t_s, level, message, "
                                  f"attributes FROM {self._t('logs')} WHERE {where} ORDER BY service, ts",
                                  p.values, schema, batch_rows)


def _plain(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """A result column as the protocol's plain Arrow type (no dictionary, no large string)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(typ)
