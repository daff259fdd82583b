"""The Store protocol every backend implements (DuckDB embedded; others in stack mode).

All methods are synchronous and keyword-only; callers on the event loop run them in a
worker thread. Times are epoch seconds. Driver errors are translated into
:class:`StoreError` at the adapter edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from server.model import Anomaly, Change, Edge, Incident, Label, LogWindow, SeriesInfo, Suspect


class StoreError(Exception):
    """A storage backend failed (translated from the driver's own error)."""


class Store(Protocol):
    # ---- raw data -----------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table) -> int:
        """Columns: service (str), metric (str), ts (float64 epoch s), value (float64),
        labels (str JSON or null). Returns rows inserted. All-or-nothing."""

    def insert_logs(self, *, table: pa.Table) -> int:
        """Columns: service, ts (float64), level (str, normalised), message, attributes (JSON str or null)."""

    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        """Stores changes whose id is new; returns the ids that were newly stored."""

    def add_edges(self, *, edges: list[Edge]) -> int:
        """Adds topology edges (re-adding is a no-op). Returns the number of new edges."""

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ts, values) sorted by ts; averaged into ``step``-second buckets when given."""

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        """Every metric of the given services in [since, until], keyed by (service, metric)."""

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]: ...

    def list_services(self) -> list[dict[str, Any]]:
        """[{"name", "metrics": [...], "last_seen": float}] over metrics, logs and changes."""

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

    def list_changes(
        self, *, service: str | None = None, since: float | None = None, until: float | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Change]:
        """Newest first. ``service`` matches any service of a flag change."""

    def get_change(self, *, change_id: str) -> Change | None: ...

    def get_changes(self, *, change_ids: list[str]) -> list[Change]: ...

    def get_topology(self) -> list[Edge]: ...

    # ---- pipeline state -------------------------------------------------------------
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

    def replace_suspects(self, *, incident_id: str, suspects: list[Suspect]) -> None: ...

    def list_suspects(self, *, incident_id: str) -> list[Suspect]:
        """Ranked best first."""

    def add_label(self, *, label: Label) -> None: ...

    def list_labels(self, *, incident_id: str | None = None) -> list[Label]: ...

    def save_model(self, *, version: int, blob: bytes, info: dict[str, Any]) -> None: ...

    def load_latest_model(self) -> tuple[int, bytes, dict[str, Any]] | None: ...

    def next_id(self, *, prefix: str) -> str:
        """A new unique id such as ``inc-12`` (monotonic per prefix, survives restarts)."""

    def next_ids(self, *, prefix: str, n: int) -> list[str]:
        """``n`` new unique ids in one round trip."""

    def delete_incident(self, *, incident_id: str) -> None:
        """Remove an incident and its suspects (after its anomalies were merged elsewhere)."""

    def reassign_labels(self, *, incident_id: str, to: str) -> int:
        """Move the labels of an incident to another (the incident it was merged into);
        returns how many moved."""

    def get_suspect(self, *, suspect_id: str) -> Suspect | None: ...

    def ping(self) -> bool: ...

    def get_meta(self, *, key: str) -> str | None: ...

    def set_meta(self, *, key: str, value: str) -> None: ...

    def close(self) -> None: ...
