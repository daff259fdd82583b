"""The export's tables: Arrow schemas and record-batch readers over any Store (no I/O
of its own beyond the store's read methods).

Telemetry (metrics, logs) streams from :meth:`Store.iter_metrics` / :meth:`Store.iter_logs`
in bounded batches; the state tables (incidents, anomalies, suspects, evidence, labels,
changes, topology) are read through the ordinary Store methods, incidents in pages.
Times are ``timestamp[us, UTC]`` columns; JSON-valued fields (metric labels, log
attributes, change fields, suspect evidence) are JSON strings, and the evidence is also
given long-form in its own table (one row per suspect and signal).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from server.model import Change, Incident
from server.store.base import Store

#: Version of the export format (file names, columns, manifest keys). Readers check it.
EXPORT_SCHEMA_VERSION = 1

TS = pa.timestamp("us", tz="UTC")
_S, _F, _I, _B = pa.string(), pa.float64(), pa.int32(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "incidents": pa.schema([
        ("id", _S), ("status", _S), ("title", _S), ("started_at", TS), ("detected_at", TS), ("resolved_at", TS),
        ("services", pa.list_(_S)), ("severity", _F), ("anomaly_count", _I), ("top_suspect_id", _S),
        ("top_suspect_kind", _S), ("top_suspect_change_id", _S), ("top_suspect_score", _F),
        ("no_convincing_change", _B), ("rca_version", _I)]),
    "anomalies": pa.schema([
        ("id", _S), ("incident_id", _S), ("service", _S), ("metric", _S), ("started_at", TS),
        ("detected_at", TS), ("ended_at", TS), ("direction", _S), ("score", _F), ("baseline", _F),
        ("observed", _F), ("join_reason", _S)]),
    "suspects": pa.schema([
        ("id", _S), ("incident_id", _S), ("rank", _I), ("kind", _S), ("change_id", _S), ("service", _S),
        ("ts", TS), ("score", _F), ("explanation", _S), ("evidence", _S)]),
    "evidence": pa.schema([
        ("suspect_id", _S), ("incident_id", _S), ("change_id", _S), ("rank", _I), ("signal", _S), ("value", _F)]),
    "labels": pa.schema([
        ("id", _S), ("incident_id", _S), ("change_id", _S), ("suspect_id", _S), ("verdict", _S), ("author", _S),
        ("note", _S), ("created_at", TS)]),
    "changes": pa.schema([
        ("id", _S), ("kind", _S), ("service", _S), ("services", pa.list_(_S)), ("ts", TS), ("author", _S),
        ("description", _S), ("fields", _S)]),
    "topology": pa.schema([("source", _S), ("target", _S)]),
    "metrics": pa.schema([("service", _S), ("metric", _S), ("ts", TS), ("value", _F), ("labels", _S)]),
    "logs": pa.schema([("service", _S), ("ts", TS), ("level", _S), ("message", _S), ("attributes", _S)]),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)
STATE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """What to export: ``since``/``until`` bound each table's own time column (incident
    and anomaly onset, change time, label creation is not filtered: labels follow their
    incidents); ``services`` keeps rows of those services (an incident when any of its
    services matches; a change when any of its services matches)."""

    since: float | None = None
    until: float | None = None
    services: tuple[str, ...] = ()

    def in_range(self, t: float | None) -> bool:
        if t is None:
            return True
        return (self.since is None or t >= self.since) and (self.until is None or t <= self.until)

    def matches(self, services: list[str] | None) -> bool:
        return not self.services or bool(set(self.services) & set(services or []))


@dataclass(slots=True)
class TableSource:
    name: str
    schema: pa.Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]


@dataclass(slots=True)
class _Selection:
    """Incident ids chosen by the filter (shared by the tables that follow incidents)."""

    ids: set[str] = field(default_factory=set)
    ordered: list[str] = field(default_factory=list)


def epoch_to_ts(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Epoch seconds (float64) -> timestamp[us, UTC], vectorised."""
    micros = pc.cast(pc.round(pc.multiply(pc.cast(col, _F), 1e6)), pa.int64())
    return pc.cast(micros, TS)


def _batch(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for f, c in zip(schema, cols, strict=True):
        if f.type == TS:
            arrays.append(epoch_to_ts(pa.array(list(c), type=_F)))
        else:
            arrays.append(pa.array(list(c), type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _chunks(schema: pa.Schema, rows: Iterator[tuple[Any, ...]]) -> Iterator[pa.RecordBatch]:
    buf: list[tuple[Any, ...]] = []
    for r in rows:
        buf.append(r)
        if len(buf) >= STATE_BATCH:
            yield _batch(schema, buf)
            buf = []
    if buf:
        yield _batch(schema, buf)


def _telemetry(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Store batches (float epoch ``ts``) -> the export schema (timestamp ``ts``)."""
    for b in batches:
        arrays = [epoch_to_ts(b.column(f.name)) if f.type == TS else b.column(f.name).cast(f.type)
                  for f in schema]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _incident_row(i: Incident) -> tuple[Any, ...]:
    t = i.top_suspect
    return (i.id, i.status, i.title, i.started_at, i.detected_at, i.resolved_at, list(i.services), i.severity,
            i.anomaly_count, t.id if t else None, t.kind if t else None, t.change_id if t else None,
            t.score if t else None, i.no_convincing_change, i.rca_version)


def _change_row(c: Change) -> tuple[Any, ...]:
    return (c.id, c.kind, c.services[0] if c.services else None, list(c.services), c.ts, c.author,
            c.description, json.dumps(c.fields, default=str, sort_keys=True))


def sources(store: Store, filt: ExportFilter) -> list[TableSource]:
    """One lazily read source per table, in :data:`TABLES` order (incidents first: the
    tables that follow incidents use the incidents it selected)."""
    sel = _Selection()
    svcs = list(filt.services) or None

    def incidents() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for service in (filt.services or (None,)):
                offset = 0
                while True:
                    page = store.list_incidents(service=service, since=filt.since, until=filt.until,
                                                limit=STATE_BATCH, offset=offset)
                    for inc in page:
                        if inc.id not in sel.ids:
                            sel.ids.add(inc.id)
                            sel.ordered.append(inc.id)
                            yield _incident_row(inc)
                    if len(page) < STATE_BATCH:
                        break
                    offset += STATE_BATCH
        return _chunks(SCHEMAS["incidents"], rows())

    def anomalies() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for a in store.list_anomalies():
                keep = (a.incident_id in sel.ids if a.incident_id is not None
                        else filt.in_range(a.started_at) and filt.matches([a.service]))
                if keep:
                    yield (a.id, a.incident_id, a.service, a.metric, a.started_at, a.detected_at, a.ended_at,
                           a.direction, a.score, a.baseline, a.observed, a.join_reason)
        return _chunks(SCHEMAS["anomalies"], rows())

    def suspects() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for inc_id in sel.ordered:
                for s in store.list_suspects(incident_id=inc_id):
                    yield (s.id, s.incident_id, s.rank, s.kind, s.change_id, s.service, s.ts, s.score,
                           s.explanation, json.dumps(s.evidence, sort_keys=True))
        return _chunks(SCHEMAS["suspects"], rows())

    def evidence() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for inc_id in sel.ordered:
                for s in store.list_suspects(incident_id=inc_id):
                    for signal in sorted(s.evidence):
                        yield (s.id, s.incident_id, s.change_id, s.rank, signal, float(s.evidence[signal]))
        return _chunks(SCHEMAS["evidence"], rows())

    def labels() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for lb in store.list_labels():
                if lb.incident_id in sel.ids:
                    yield (lb.id, lb.incident_id, lb.change_id, lb.suspect_id, lb.verdict, lb.author, lb.note,
                           lb.created_at)
        return _chunks(SCHEMAS["labels"], rows())

    def changes() -> Iterator[pa.RecordBatch]:
        def rows() -> Iterator[tuple[Any, ...]]:
            for c in sorted(store.list_changes(since=filt.since, until=filt.until), key=lambda c: (c.ts, c.id)):
                if filt.matches(c.services):
                    yield _change_row(c)
        return _chunks(SCHEMAS["changes"], rows())

    def topology() -> Iterator[pa.RecordBatch]:
        return _chunks(SCHEMAS["topology"], ((e.source, e.target) for e in store.get_topology()))

    def metrics() -> Iterator[pa.RecordBatch]:
        return _telemetry(SCHEMAS["metrics"], store.iter_metrics(services=svcs, since=filt.since, until=filt.until))

    def logs() -> Iterator[pa.RecordBatch]:
        return _telemetry(SCHEMAS["logs"], store.iter_logs(services=svcs, since=filt.since, until=filt.until))

    readers = {"incidents": incidents, "anomalies": anomalies, "suspects": suspects, "evidence": evidence,
               "labels": labels, "changes": changes, "topology": topology, "metrics": metrics, "logs": logs}
    return [TableSource(name, SCHEMAS[name], readers[name]) for name in TABLES]
