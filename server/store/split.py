"""A :class:`Store` made of a telemetry store and a state store on different backends
(e.g. metrics and logs in ClickHouse, incidents in PostgreSQL). Each call goes to the
store that holds its data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

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
from server.store.base import (
    BeforeAfter,
    Checkpoint,
    JournalEntry,
    LogPatternCount,
    SeriesLimits,
    StateStore,
    TelemetryStore,
    services_summary,
)


class SplitStore:
    def __init__(self, *, telemetry: TelemetryStore, state: StateStore) -> None:
        self.telemetry = telemetry
        self.state = state

    # ---- both ------------------------------------------------------------------------
    def list_services(self) -> list[dict[str, Any]]:
        return services_summary(self.telemetry.list_series(), self.state.change_services())

    def ping(self) -> bool:
        return self.telemetry.ping() and self.state.ping()

    def close(self) -> None:
        try:
            self.telemetry.close()
        finally:
            self.state.close()

    # ---- telemetry -------------------------------------------------------------------
    def insert_metrics(self, *, table: pa.Table, limits: SeriesLimits | None = None) -> int:
        if limits is None:
            return self.telemetry.insert_metrics(table=table)
        return self.telemetry.insert_metrics(table=table, limits=limits)

    def insert_logs(self, *, table: pa.Table) -> int:
        return self.telemetry.insert_logs(table=table)

    def get_series(
        self, *, service: str, metric: str, since: float | None = None, until: float | None = None,
        step: float | None = None, labels: Mapping[str, str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if labels is None:
            return self.telemetry.get_series(service=service, metric=metric, since=since, until=until, step=step)
        return self.telemetry.get_series(service=service, metric=metric, since=since, until=until, step=step,
                                         labels=labels)

    def get_labelled_series(
        self, *, service: str, metric: str, since: float, until: float
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        return self.telemetry.get_labelled_series(service=service, metric=metric, since=since, until=until)

    def get_series_many(
        self, *, services: list[str], since: float, until: float
    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        return self.telemetry.get_series_many(services=services, since=since, until=until)

    def series_before_after(
        self, *, services: list[str], at: float, before: float, after: float
    ) -> list[BeforeAfter]:
        return self.telemetry.series_before_after(services=services, at=at, before=before, after=after)

    def list_series(self, *, service: str | None = None) -> list[SeriesInfo]:
        return self.telemetry.list_series(service=service)

    def get_logs(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> LogWindow:
        return self.telemetry.get_logs(services=services, since=since, until=until, min_level=min_level,
                                       limit=limit)

    def count_logs(self, *, services: list[str] | None, since: float, until: float) -> int:
        return self.telemetry.count_logs(services=services, since=since, until=until)

    def iter_metrics(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatch]:
        return self.telemetry.iter_metrics(services=services, since=since, until=until, batch_rows=batch_rows)

    def iter_logs(
        self, *, services: list[str] | None = None, since: float | None = None, until: float | None = None,
        batch_rows: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        return self.telemetry.iter_logs(services=services, since=since, until=until, batch_rows=batch_rows)

    def log_pattern_counts(
        self, *, services: list[str] | None, since: float, until: float, min_level: str = "WARN",
        limit: int | None = None,
    ) -> list[LogPatternCount]:
        return self.telemetry.log_pattern_counts(services=services, since=since, until=until,
                                                 min_level=min_level, limit=limit)

    # ---- state -----------------------------------------------------------------------
    def unit_of_work(self) -> AbstractContextManager[StateStore]:
        return self.state.unit_of_work()

    def upsert_changes(self, *, changes: list[Change]) -> list[str]:
        return self.state.upsert_changes(changes=changes)

    def list_changes(
        self, *, service: str | None = None, since: float | None = None, until: float | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Change]:
        return self.state.list_changes(service=service, since=since, until=until, kind=kind, limit=limit)

    def get_change(self, *, change_id: str) -> Change | None:
        return self.state.get_change(change_id=change_id)

    def get_changes(self, *, change_ids: list[str]) -> list[Change]:
        return self.state.get_changes(change_ids=change_ids)

    def change_services(self) -> dict[str, float]:
        return self.state.change_services()

    def add_edges(self, *, edges: list[Edge]) -> int:
        return self.state.add_edges(edges=edges)

    def get_topology(self) -> list[Edge]:
        return self.state.get_topology()

    def save_anomalies(self, *, anomalies: list[Anomaly]) -> None:
        self.state.save_anomalies(anomalies=anomalies)

    def list_anomalies(self, *, incident_id: str | None = None, open_only: bool = False) -> list[Anomaly]:
        return self.state.list_anomalies(incident_id=incident_id, open_only=open_only)

    def save_incidents(self, *, incidents: list[Incident]) -> None:
        self.state.save_incidents(incidents=incidents)

    def get_incident(self, *, incident_id: str) -> Incident | None:
        return self.state.get_incident(incident_id=incident_id)

    def list_incidents(
        self, *, status: str | None = None, service: str | None = None, since: float | None = None,
        limit: int = 100, offset: int = 0, until: float | None = None,
    ) -> list[Incident]:
        return self.state.list_incidents(status=status, service=service, since=since, limit=limit, offset=offset,
                                         until=until)

    def delete_incident(self, *, incident_id: str) -> None:
        self.state.delete_incident(incident_id=incident_id)

    def record_merge(self, *, merged: str, into: str) -> None:
        self.state.record_merge(merged=merged, into=into)

    def merged_into(self, *, incident_id: str) -> str | None:
        return self.state.merged_into(incident_id=incident_id)

    def replace_suspects(self, *, incident_id: str, suspects: list[Suspect]) -> None:
        self.state.replace_suspects(incident_id=incident_id, suspects=suspects)

    def list_suspects(self, *, incident_id: str) -> list[Suspect]:
        return self.state.list_suspects(incident_id=incident_id)

    def get_suspect(self, *, suspect_id: str) -> Suspect | None:
        return self.state.get_suspect(suspect_id=suspect_id)

    def add_label(self, *, label: Label) -> Label:
        return self.state.add_label(label=label)

    def list_labels(self, *, incident_id: str | None = None) -> list[Label]:
        return self.state.list_labels(incident_id=incident_id)

    def reassign_labels(self, *, incident_id: str, to: str) -> int:
        return self.state.reassign_labels(incident_id=incident_id, to=to)

    def save_model(self, *, version: int, blob: bytes, info: dict[str, Any]) -> None:
        self.state.save_model(version=version, blob=blob, info=info)

    def load_latest_model(self) -> tuple[int, bytes, dict[str, Any]] | None:
        return self.state.load_latest_model()

    def list_model_infos(self) -> list[tuple[int, dict[str, Any]]]:
        return self.state.list_model_infos()

    def next_id(self, *, prefix: str) -> str:
        return self.state.next_id(prefix=prefix)

    def next_ids(self, *, prefix: str, n: int) -> list[str]:
        return self.state.next_ids(prefix=prefix, n=n)

    def store_uid(self) -> str:
        return self.state.store_uid()

    def save_checkpoint(self, *, stage: str, partition: int, offset: int, state: bytes) -> bool:
        return self.state.save_checkpoint(stage=stage, partition=partition, offset=offset, state=state)

    def load_checkpoint(self, *, stage: str, partition: int) -> Checkpoint | None:
        return self.state.load_checkpoint(stage=stage, partition=partition)

    def list_checkpoints(self, *, stage: str) -> list[Checkpoint]:
        return self.state.list_checkpoints(stage=stage)

    # ---- security (state) --------------------------------------------------------------
    def save_api_key(self, *, key: ApiKey) -> None:
        self.state.save_api_key(key=key)

    def list_api_keys(self) -> list[ApiKey]:
        return self.state.list_api_keys()

    def get_api_key(self, *, key_id: str) -> ApiKey | None:
        return self.state.get_api_key(key_id=key_id)

    def revoke_api_key(self, *, key_id: str, at: float) -> bool:
        return self.state.revoke_api_key(key_id=key_id, at=at)

    def count_active_api_keys(self) -> int:
        return self.state.count_active_api_keys()

    def add_audit(self, *, entry: AuditEntry) -> None:
        self.state.add_audit(entry=entry)

    def list_audit(self, *, since: float | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return self.state.list_audit(since=since, action=action, limit=limit)

    # alerts are state (grouping assigns them to incidents)
    def upsert_alerts(self, *, alerts: list[Alert]) -> list[str]:
        return self.state.upsert_alerts(alerts=alerts)

    def save_alerts(self, *, alerts: list[Alert]) -> None:
        self.state.save_alerts(alerts=alerts)

    def list_alerts(self, *, incident_ids: list[str] | None = None, alert_ids: list[str] | None = None,
                    unassigned: bool = False) -> list[Alert]:
        return self.state.list_alerts(incident_ids=incident_ids, alert_ids=alert_ids, unassigned=unassigned)

    def append_journal(self, *, log: str, key: bytes, value: bytes) -> int:
        return self.state.append_journal(log=log, key=key, value=value)

    def read_journal(self, *, log: str, since: int, until: int) -> list[JournalEntry]:
        return self.state.read_journal(log=log, since=since, until=until)

    def journal_end(self, *, log: str) -> int:
        return self.state.journal_end(log=log)

    def trim_journal(self, *, log: str, before: int) -> int:
        return self.state.trim_journal(log=log, before=before)

    def get_idempotent(self, *, key: str, endpoint: str) -> tuple[int, str] | None:
        return self.state.get_idempotent(key=key, endpoint=endpoint)

    def save_idempotent(self, *, key: str, endpoint: str, status: int, body: str, now: float) -> None:
        self.state.save_idempotent(key=key, endpoint=endpoint, status=status, body=body, now=now)
