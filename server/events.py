"""Typed, versioned, serialisable events: the only thing stages pass to each other.

Every event is a frozen dataclass with a ``TYPE`` tag and a schema version ``V``. On the
wire an event is ``<4-byte big-endian header length><JSON header><body>``: the header
holds ``{"type", "v", ...fields}``; the body holds bulk bytes (a metric batch as an
Arrow IPC stream) and is empty for every other event.

Compatibility rule: a field added later gets a default, so a newer worker reads an older
message (the missing field takes its default) and an older worker reads a newer one
(unknown fields are ignored). A field is never renamed or re-typed within a type; a
breaking change is a new ``type``.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
import pyarrow as pa

from server.model.points import Points

if TYPE_CHECKING:
    from server.bus.base import Delivery

__all__ = [
    "AlertsChanged", "AnomalyEvent", "AnomalyEvents", "ChangesAdded", "Event", "IncidentsNeedRca", "LabelAdded",
    "LogsAdded", "MetricBatch", "MetricPoints", "ModelRetrained", "RerunRequested", "TopologyChanged", "decode",
    "encode",
]

_HEADER = struct.Struct(">I")


class EventError(ValueError):
    """A message is not a readable event (corrupt bytes or an unknown type)."""


@dataclass(frozen=True, slots=True)
class MetricBatch:
    """Stored metric points for one partition (columns service, metric, ts, value)."""

    TYPE: ClassVar[str] = "metric_batch"
    V: ClassVar[int] = 1
    ipc: bytes = b""
    count: int = 0

    @classmethod
    def from_table(cls, table: pa.Table) -> MetricBatch:
        sink = pa.BufferOutputStream()
        cols = ["service", "metric", "ts", "value"]
        if "labels" in table.column_names:  # a series is (service, metric, label set)
            cols.append("labels")
        small = table.select(cols)
        with pa.ipc.new_stream(sink, small.schema) as w:
            w.write_table(small)
        return cls(ipc=sink.getvalue().to_pybytes(), count=table.num_rows)

    def table(self) -> pa.Table:
        return pa.ipc.open_stream(pa.py_buffer(self.ipc)).read_all()


@dataclass(frozen=True, slots=True)
class MetricPoints:
    """Stored metric points for one partition, as their distinct series plus per-point
    series codes, timestamps and values (:class:`server.model.points.Points`). The body is
    two Arrow IPC streams, the series (``series_bytes`` long) then the points. ``seq`` is
    the batch's ingest sequence in the store (-1: none), which is also its offset in the
    metrics log of the in-process bus. Replaces :class:`MetricBatch` (still read)."""

    TYPE: ClassVar[str] = "metric_points"
    V: ClassVar[int] = 1
    ipc: bytes = b""
    series_bytes: int = 0
    count: int = 0
    seq: int = -1
    #: the points themselves, in this process only (never encoded): an event the in-process
    #: bus hands over as is skips the Arrow IPC round trip
    mem: Points | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_points(cls, points: Points, seq: int = -1) -> MetricPoints:
        series, pts = points.to_ipc()
        return cls(ipc=series + pts, series_bytes=len(series), count=points.n, seq=seq)

    @classmethod
    def in_memory(cls, points: Points, seq: int = -1) -> MetricPoints:
        """The event for a consumer in this process: the points, not their encoding (it
        cannot be encoded)."""
        return cls(count=points.n, seq=seq, mem=points)

    def points(self) -> Points:
        if self.mem is not None:
            return self.mem
        body = memoryview(self.ipc)
        return Points.from_ipc(body[:self.series_bytes], body[self.series_bytes:])


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """One detector event for one series: an anomaly opened or closed."""

    service: str
    metric: str
    kind: Literal["open", "close"]
    ts: float
    onset: float
    direction: str
    score: float
    baseline: float
    observed: float
    labels: str | None = None  # canonical label text of the series (None: no labels)
    channel: str | None = None  # what opened it (knn, seasonal, drift, level, range, shift); None: not said
    reason: str | None = None  # open events: one sentence on why it is anomalous


@dataclass(frozen=True, slots=True)
class AnomalyEvents:
    """What one metric batch produced (possibly nothing: it still carries the watermark)."""

    TYPE: ClassVar[str] = "anomaly_events"
    V: ClassVar[int] = 1
    events: tuple[AnomalyEvent, ...] = ()
    watermark: float | None = None
    partition: int = 0
    source_offset: int = -1


@dataclass(frozen=True, slots=True)
class ChangesAdded:
    TYPE: ClassVar[str] = "changes_added"
    V: ClassVar[int] = 1
    ids: tuple[str, ...] = ()
    ts: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class LogsAdded:
    TYPE: ClassVar[str] = "logs_added"
    V: ClassVar[int] = 1
    min_ts: float = 0.0
    max_ts: float = 0.0
    count: int = 0
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopologyChanged:
    """New call edges (source calls target) that were stored."""

    TYPE: ClassVar[str] = "topology_changed"
    V: ClassVar[int] = 1
    edges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class LabelAdded:
    TYPE: ClassVar[str] = "label_added"
    V: ClassVar[int] = 1
    label_id: str = ""
    incident_id: str = ""


@dataclass(frozen=True, slots=True)
class RerunRequested:
    TYPE: ClassVar[str] = "rerun_requested"
    V: ClassVar[int] = 1
    incident_id: str = ""


@dataclass(frozen=True, slots=True)
class AlertsChanged:
    """Alerts the API stored that are new or changed (firing, resolved, re-labelled): the
    grouping worker opens, joins or resolves incidents for them."""

    TYPE: ClassVar[str] = "alerts_changed"
    V: ClassVar[int] = 1
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentsNeedRca:
    """Incidents whose data changed; ``watermark`` is the event time the data reached."""

    TYPE: ClassVar[str] = "incidents_need_rca"
    V: ClassVar[int] = 1
    incident_ids: tuple[str, ...] = ()
    watermark: float | None = None
    all_open: bool = False


@dataclass(frozen=True, slots=True)
class ModelRetrained:
    TYPE: ClassVar[str] = "model_retrained"
    V: ClassVar[int] = 1
    version: int = 0


Event = (MetricBatch | MetricPoints | AnomalyEvents | ChangesAdded | LogsAdded | TopologyChanged | LabelAdded
         | RerunRequested | AlertsChanged | IncidentsNeedRca | ModelRetrained)

_TYPES: dict[str, type[Any]] = {
    c.TYPE: c for c in (MetricBatch, MetricPoints, AnomalyEvents, ChangesAdded, LogsAdded, TopologyChanged, LabelAdded,
                        RerunRequested, AlertsChanged, IncidentsNeedRca, ModelRetrained)
}
_ANOMALY_FIELDS = frozenset(f.name for f in dataclasses.fields(AnomalyEvent))


def encode(event: Event) -> bytes:
    """Serialise an event (header JSON plus, for a metric batch, the Arrow IPC body)."""
    body = b""
    header: dict[str, Any] = {"type": event.TYPE, "v": event.V}
    if getattr(event, "mem", None) is not None:
        raise EventError("an in-memory metric event cannot be encoded (encode MetricPoints.from_points)")
    for f in dataclasses.fields(event):
        if f.name == "mem":
            continue
        value = getattr(event, f.name)
        if f.name == "ipc":
            body = value
            continue
        if f.name == "events":
            value = [dataclasses.asdict(e) for e in value]
        header[f.name] = value
    raw = orjson.dumps(header)
    return _HEADER.pack(len(raw)) + raw + body


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def decode(data: bytes) -> Event:
    """Parse a message written by :func:`encode` of this or any other schema version."""
    if len(data) < _HEADER.size:
        raise EventError("message shorter than its header")
    (n,) = _HEADER.unpack_from(data)
    try:
        header = orjson.loads(data[_HEADER.size:_HEADER.size + n])
    except orjson.JSONDecodeError as exc:
        raise EventError(f"unreadable event header: {exc}") from exc
    cls = _TYPES.get(str(header.get("type")))
    if cls is None:
        raise EventError(f"unknown event type {header.get('type')!r}")
    known = {f.name for f in dataclasses.fields(cls)} - {"mem"}
    kwargs: dict[str, Any] = {}
    for k, v in header.items():
        if k not in known:
            continue  # a newer writer's field: ignored
        if k == "events":
            kwargs[k] = tuple(AnomalyEvent(**{a: b for a, b in e.items() if a in _ANOMALY_FIELDS}) for e in v)
        else:
            kwargs[k] = _tuples(v)
    if "ipc" in known:
        kwargs["ipc"] = bytes(data[_HEADER.size + n:])
    event: Event = cls(**kwargs)
    return event


def delivered(delivery: Delivery) -> Event:
    """The event of a bus delivery: the object its publisher made when the bus handed it
    over in this process (``Delivery.event``), else ``value`` decoded."""
    ev = delivery.event
    return ev if ev is not None else decode(delivery.value)  # type: ignore[no-any-return]


def header_version(data: bytes) -> int:
    """Schema version a message was written with."""
    (n,) = _HEADER.unpack_from(data)
    return int(orjson.loads(data[_HEADER.size:_HEADER.size + n]).get("v", 1))

