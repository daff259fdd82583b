"""The Store protocol every backend implements (DuckDB embedded; others in stack mode).

All methods are synchronous and keyword-only; callers on the event loop run them in a
worker thread. Times are epoch seconds. Driver errors are translated into
:class:`StoreError` at the adapter edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from server.model import Anomaly, Change, Edge, Incident, Label, LogWindow, SeriesInfo, Suspect


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


class Store(Protocol):
    # ---- raw data -----------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        """Columns: service (str), metric (str), ts (float64 epoch s), value (float64),
        labels (canonical JSON str, see :func:`server.model.labels.canonical_labels`, or
        null for none). Returns rows inserted. All-or-nothing: raises
        :class:`CardinalityError` (storing nothing) when the batch would exceed ``limits``."""

    def insert_logs(self, *, table: pa.Table) -> int:
        """Columns: service, ts (float64), level (str, normalised), message, attributes (JSON str or null)."""

    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        """Stores changes whose id is new; returns the ids that were newly stored."""

    def add_edges(self, *, edges: list[Edge]) -> int:
        """Adds topology edges (re-adding is a no-op). Returns the number of new edges."""

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

    def list_services(self) -> list[dict[str, Any]]:
        """[{"name", "metrics": [...], "last_seen": float}] over metrics, logs and changes."""

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow: ...

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int: ...

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
