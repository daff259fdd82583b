"""The store protocols every backend implements, split by what they hold.

- :class:`TelemetryStore`: raw metrics and logs, the series catalogue, range, bucketed
  and before/after reads, log pattern counts (DuckDB embedded; PostgreSQL for moderate
  scale; ClickHouse for large fleets, :mod:`server.store.clickhouse`).
- :class:`StateStore`: changes, topology, anomalies, incidents (and their merges),
  suspects, labels, ranking models, id sequences and stage checkpoints with the offsets
  they cover (DuckDB embedded; PostgreSQL in stack mode). Writes that belong together
  run in one :meth:`StateStore.unit_of_work` (one transaction).
- :class:`Store`: both at once (what the embedded server and most callers hold).

All methods are synchronous and keyword-only; callers on the event loop run them in a
worker thread. Times are epoch seconds. Driver errors are translated into
:class:`StoreError` at the adapter edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
)
from server.model.points import Points


class StoreError(Exception):
    """A storage backend failed (translated from the driver's own error)."""


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """Cardinality limits checked by :meth:`Store.insert_metrics` (``None``: no limit).

    ``per_service``: series (metric x label set) of one service; ``per_metric``: label sets
    of one (service, metric); ``total``: series in the whole store."""

    per_service: int | None = None
    per_metric: int | None = None
    total: int | None = None


class CardinalityError(Exception):
    """A metric batch would create more series than a :class:`SeriesLimits` allows; nothing
    of the batch was stored. ``limit`` names the setting, ``scope`` the service or
    service/metric, ``existing`` and ``new`` the series counts, ``maximum`` the limit."""

    def __init__(self, *, limit: str, scope: str, existing: int, new: int, maximum: int) -> None:
        self.limit, self.scope, self.existing, self.new, self.maximum = limit, scope, existing, new, maximum
        super().__init__(
            f"{scope} would have {existing + new} series ({existing} stored + {new} new in this batch), "
            f"over the limit of {maximum} ({limit}); nothing of this batch was stored")


LEVEL_RANK = {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3, "FATAL": 4}
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def check_prefix(prefix: str) -> str:
    """Id prefixes name sequences: lower-case letters, digits and ``_`` only."""
    if not _PREFIX_RE.match(prefix):
        raise StoreError(f"bad id prefix {prefix!r}: use lower-case letters, digits and '_'")
    return prefix


@dataclass(frozen=True)
class Checkpoint:
    """A stage's state for one partition, with the offset it covers: every message of the
    partition before ``offset`` is reflected in ``state`` (so a restarted or newly
    assigned worker resumes consuming at ``offset``)."""

    stage: str
    partition: int
    offset: int
    state: bytes
    saved_at: float


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One record of an ingest journal (see :meth:`StateStore.append_journal`)."""

    seq: int
    key: bytes
    value: bytes


@dataclass(frozen=True)
class WindowStats:
    """Count, mean and (population) standard deviation of a series in one window."""

    n: int
    mean: float | None
    std: float | None


@dataclass(frozen=True)
class BeforeAfter:
    """One series around a time ``at``: ``before`` is [at - before, at), ``after`` [at, at + after]."""

    service: str
    metric: str
    before: WindowStats
    after: WindowStats


@dataclass(frozen=True)
class LogPatternCount:
    """How often one message (a log pattern, after the ingest normalisation) occurred."""

    service: str
    level: str
    message: str
    count: int


class TelemetryStore(Protocol):
    """Metrics, logs and the series catalogue."""

    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        """Columns: service (str), metric (str), ts (float64 epoch s), value (float64),
        labels (canonical JSON str, see :func:`server.model.labels.canonical_labels`, or
        null for none). Returns rows inserted. All-or-nothing: raises
        :class:`CardinalityError` (storing nothing) when the batch would exceed ``limits``."""

    def insert_logs(self, *, table: pa.Table) -> int:
        """Columns: service, ts (float64), level (str, normalised), message, attributes (JSON str or null)."""

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None, labels: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ts, values) sorted by ts; averaged into ``step``-second buckets when given.

        ``labels`` are matchers (:func:`server.model.labels.matches`) selecting label sets;
        without them every label set of the metric is selected. When more than one label
        set is selected, their values are averaged per timestamp (or per bucket)."""

    def get_labelled_series(
        self, *, service: str, metric: str, since: float, until: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """One entry per label set of the metric with points in [since, until]:
        (labels, ts sorted, values), ordered by the canonical label text."""

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        """Every metric of the given services in [since, until], keyed by (service, metric);
        the label sets of a metric are averaged per timestamp (service-level view)."""

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]:
        """One row per series (service, metric, label set), sorted."""

    def series_before_after(
        self, *, services: list[str], at: float, before: float, after: float
    ) -> list[BeforeAfter]:
        """Per series of the given services: stats in [at - before, at) and [at, at + after],
        sorted by (service, metric); series with no point in either window are left out."""

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow: ...

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int: ...

    def iter_metrics(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatch]:
        """Raw points (service, metric, ts, value, labels) as Arrow record batches of at most
        ``batch_rows`` rows, in storage order, read from one consistent snapshot without
        materialising the whole result (exports of any size in bounded memory)."""

    def iter_logs(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        """Raw log records (service, ts, level, message, attributes) as record batches, like
        :meth:`iter_metrics`."""

    def log_pattern_counts(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> list[LogPatternCount]:
        """Distinct (service, level, message) in the window with their counts, most frequent first."""

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class StateStore(Protocol):
    """Changes, topology, pipeline state, labels, models, ids and checkpoints."""

    def unit_of_work(self) -> AbstractContextManager[StateStore]:
        """A transaction for writes that belong together::

            with store.unit_of_work() as tx:
                tx.save_anomalies(anomalies=moved)
                tx.reassign_labels(incident_id=other, to=target)
                tx.delete_incident(incident_id=other)
                tx.record_merge(merged=other, into=target)

        Every write through ``tx`` commits together when the block ends, or none does when
        it raises. Reads through ``tx`` see the block's own writes."""

    # ---- changes and topology ---------------------------------------------------------
    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        """Stores changes whose id is new; returns the ids that were newly stored."""

    def list_changes(
        self, *, service: str | None = None, since: float | None = None, until: float | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Change]:
        """Newest first. ``service`` matches any service of a flag change."""

    def get_change(self, *, change_id: str) -> Change | None: ...

    def get_changes(self, *, change_ids: list[str]) -> list[Change]: ...

    def change_services(self) -> dict[str, float]:
        """Every service named by a change, with the time of its newest change."""

    def add_edges(self, *, edges: list[Edge]) -> int:
        """Adds topology edges (re-adding is a no-op). Returns the number of new edges."""

    def get_topology(self) -> list[Edge]: ...

    # ---- anomalies and incidents ------------------------------------------------------
    def save_anomalies(self, *, anomalies: list[Anomaly]) -> None:
        """Upsert by id."""

    def list_anomalies(self, *, incident_id: str | None = None, open_only: bool = False) -> list[Anomaly]: ...

    def save_incidents(self, *, incidents: list[Incident]) -> None:
        """Upsert by id."""

    def get_incident(self, *, incident_id: str) -> Incident | None: ...

    def list_incidents(
        self, *, status: str | None = None, service: str | None = None, since: float | None = None,
        limit: int = 100, offset: int = 0, until: float | None = None,
    ) -> list[Incident]:
        """Newest (by started_at) first; ``since``/``until`` bound started_at."""

    def delete_incident(self, *, incident_id: str) -> None:
        """Remove an incident and its suspects (after its anomalies were merged elsewhere)."""

    def record_merge(self, *, merged: str, into: str) -> None:
        """Remember that incident ``merged`` was merged into ``into`` (so its id keeps
        answering as the survivor); earlier merges into ``merged`` now point at ``into``."""

    def merged_into(self, *, incident_id: str) -> str | None:
        """The incident a merged incident was merged into (None if it never was)."""

    # ---- suspects, labels, models -----------------------------------------------------
    def replace_suspects(self, *, incident_id: str, suspects: list[Suspect]) -> None: ...

    def list_suspects(self, *, incident_id: str) -> list[Suspect]:
        """Ranked best first."""

    def get_suspect(self, *, suspect_id: str) -> Suspect | None: ...

    def add_label(self, *, label: Label) -> Label:
        """Stores a label (re-adding its id is a no-op). A label given to a merged incident
        lands on the incident it was merged into, also when the merge commits concurrently;
        returns the label as stored."""

    def list_labels(self, *, incident_id: str | None = None) -> list[Label]: ...

    def reassign_labels(self, *, incident_id: str, to: str) -> int:
        """Move the labels of an incident to another (the incident it was merged into);
        returns how many moved."""

    def save_model(self, *, version: int, blob: bytes, info: dict[str, Any]) -> None: ...

    def load_latest_model(self) -> tuple[int, bytes, dict[str, Any]] | None: ...

    def list_model_infos(self) -> list[tuple[int, dict[str, Any]]]:
        """``(version, info)`` of every saved model version, oldest first (no blobs)."""

    # ---- ids, identity, checkpoints ---------------------------------------------------
    def next_id(self, *, prefix: str) -> str:
        """A new unique id such as ``inc-12`` (increasing per prefix, survives restarts,
        unique across processes sharing the store)."""

    def next_ids(self, *, prefix: str, n: int) -> list[str]:
        """``n`` new unique ids in one round trip."""

    def store_uid(self) -> str:
        """A random id of this store, made once on first use (keys training records so
        a model imported from another store never mixes up incidents with equal ids)."""

    def save_checkpoint(self, *, stage: str, partition: int, offset: int, state: bytes) -> bool:
        """Store a stage's state for a partition covering every message before ``offset``.
        A checkpoint older than the stored one (a lower offset, e.g. from a worker that
        lost the partition in a rebalance) is refused: returns False."""

    def load_checkpoint(self, *, stage: str, partition: int) -> Checkpoint | None: ...

    def list_checkpoints(self, *, stage: str) -> list[Checkpoint]:
        """Every partition's checkpoint of a stage, by partition."""

    # ---- security ---------------------------------------------------------------------
    def save_api_key(self, *, key: ApiKey) -> None: ...

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, active and revoked, oldest first (hashes only, never secrets)."""

    def get_api_key(self, *, key_id: str) -> ApiKey | None: ...

    def revoke_api_key(self, *, key_id: str, at: float) -> bool:
        """True when an active key was revoked now."""

    def count_active_api_keys(self) -> int: ...

    def add_audit(self, *, entry: AuditEntry) -> None: ...

    def list_audit(self, *, since: float | None = None, action: str | None = None,
                   limit: int = 100) -> list[AuditEntry]:
        """Newest first."""

    # ---- ingest journal -------------------------------------------------------------------
    def append_journal(self, *, log: str, key: bytes, value: bytes) -> int:
        """Append a record to the durable log ``log`` and return its sequence number
        (consecutive from 0 per log, no gaps). Call it inside the unit of work that stores
        what the record describes: both are kept, or neither."""

    def read_journal(self, *, log: str, since: int, until: int) -> list[JournalEntry]:
        """Records with ``since <= seq < until``, in order (trimmed ones are gone)."""

    def journal_end(self, *, log: str) -> int:
        """The next sequence number of ``log`` (0 when nothing was ever appended)."""

    def trim_journal(self, *, log: str, before: int) -> int:
        """Forget records below ``before`` (every reader is past them); returns how many."""

    def get_idempotent(self, *, key: str, endpoint: str) -> tuple[int, str] | None:
        """The stored (status, body) of a batch already accepted under this idempotency key."""

    def save_idempotent(self, *, key: str, endpoint: str, status: int, body: str, now: float) -> None: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...

    # ---- alerts ---------------------------------------------------------------------
    def upsert_alerts(self, *, alerts: list[Alert]) -> list[str]:
        """Store new alerts and updates of known ones (status, end, labels...), keeping
        the incident an alert was already assigned to. Returns the ids of the alerts that
        are new or changed (a repeated identical notification changes nothing)."""

    def save_alerts(self, *, alerts: list[Alert]) -> None:
        """Upsert by id, incident assignment and join reason included (grouping)."""

    def list_alerts(self, *, incident_ids: list[str] | None = None, alert_ids: list[str] | None = None,
                    unassigned: bool = False) -> list[Alert]:
        """Oldest first (by starts_at)."""


@runtime_checkable
class PointLog(Protocol):
    """A telemetry store that numbers metric batches as it stores them (an optional
    capability; DuckDB has it): the stored batches are the metrics topic's durable log
    for the in-process bus, read back after a restart."""

    def insert_points(self, *, points: Points, limits: SeriesLimits | None = None) -> int:
        """Store a batch (all or nothing, like ``insert_metrics``); returns its sequence number."""

    def points_log_end(self) -> int:
        """The next batch's sequence number (0 for an empty store)."""

    def read_points(self, *, since_seq: int, until_seq: int) -> list[tuple[int, Points]]:
        """Stored batches with ``since_seq <= seq < until_seq``, in order."""


class Store(TelemetryStore, StateStore, Protocol):
    """Both stores (one backend for both, or :class:`server.store.split.SplitStore`)."""

    def list_services(self) -> list[dict[str, Any]]:
        """[{"name", "metrics": [...], "last_seen": float}] over metrics and changes."""


def require_columns(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    """StoreError (nothing stored) when a batch lacks one of ``columns`` or has a null in one."""
    for col in columns:
        if col not in table.column_names:
            raise StoreError(f"{what} batch has no {col!r} column; nothing stored")
        if table.column(col).null_count:
            raise StoreError(f"{what} batch has a null {col!r}; nothing stored")


def series_arrays(tbl: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """A series read (first column timestamps, second values) as two float64 arrays."""
    if tbl.num_rows == 0:
        return np.empty(0), np.empty(0)
    return tbl.column(0).to_numpy().astype(np.float64), tbl.column(1).to_numpy().astype(np.float64)


def services_summary(series: list[SeriesInfo], change_last: dict[str, float]) -> list[dict[str, Any]]:
    """``list_services`` from the series catalogue and each service's newest change."""
    out: dict[str, dict[str, Any]] = {}
    for info in series:
        d = out.setdefault(info.service, {"name": info.service, "metrics": [], "last_seen": None})
        if not d["metrics"] or d["metrics"][-1] != info.metric:  # one row per label set: each metric once
            d["metrics"].append(info.metric)
        d["last_seen"] = max(d["last_seen"] or info.last_ts, info.last_ts)
    for svc, last in change_last.items():
        d = out.setdefault(svc, {"name": svc, "metrics": [], "last_seen": None})
        d["last_seen"] = max(d["last_seen"] or last, last)
    return [out[k] for k in sorted(out)]
