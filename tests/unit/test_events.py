"""Events survive the wire, and a newer reader reads an older message (and vice versa)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from server.events import (
    _HEADER,
    AnomalyEvent,
    AnomalyEvents,
    ChangesAdded,
    EventError,
    IncidentsNeedRca,
    LabelAdded,
    LogsAdded,
    MetricBatch,
    ModelRetrained,
    RerunRequested,
    TopologyChanged,
    decode,
    encode,
    header_version,
)


def test_every_event_round_trips() -> None:
    table = pa.table({"service": ["a", "b"], "metric": ["m", "m"], "ts": [1.0, 2.0], "value": [3.0, 4.0],
                      "labels": [None, None]})
    batch = MetricBatch.from_table(table)
    back = decode(encode(batch))
    assert isinstance(back, MetricBatch) and back.count == 2
    # the label set travels with each point: a series is (service, metric, label set)
    assert back.table().equals(table.select(["service", "metric", "ts", "value", "labels"]))
    events = [
        AnomalyEvents(events=(AnomalyEvent("a", "m", "open", 5.0, 4.0, "up", 0.9, 1.0, 2.0),
                              AnomalyEvent("a", "m", "open", 6.0, 4.0, "up", 0.9, 1.0, 2.0, channel="shift",
                                           reason="m rose to 2 from a baseline of 1 ...")), watermark=5.0,
                      partition=3, source_offset=17),
        ChangesAdded(ids=("dep-1", "cfg-2"), ts=(1.0, 2.0)),
        LogsAdded(min_ts=1.0, max_ts=9.0, count=4, services=("a",)),
        TopologyChanged(edges=(("a", "b"), ("b", "c"))),
        LabelAdded(label_id="lbl-1", incident_id="inc-2"),
        RerunRequested(incident_id="inc-2"),
        IncidentsNeedRca(incident_ids=("inc-1",), watermark=7.5, all_open=True),
        ModelRetrained(version=3),
    ]
    for ev in events:
        assert decode(encode(ev)) == ev
        assert header_version(encode(ev)) == ev.V


def _raw(header: dict[str, object], body: bytes = b"") -> bytes:
    h = orjson.dumps(header)
    return _HEADER.pack(len(h)) + h + body


def test_older_and_newer_messages_are_read() -> None:
    # an older writer did not have `all_open`: its default applies
    old = decode(_raw({"type": "incidents_need_rca", "v": 0, "incident_ids": ["inc-1"]}))
    assert old == IncidentsNeedRca(incident_ids=("inc-1",))
    # a newer writer added a field this reader does not know: ignored
    new = decode(_raw({"type": "label_added", "v": 2, "label_id": "l", "incident_id": "i", "weight": 0.5}))
    assert new == LabelAdded(label_id="l", incident_id="i")
    nested = decode(_raw({"type": "anomaly_events", "v": 2, "events": [
        {"service": "a", "metric": "m", "kind": "close", "ts": 2.0, "onset": 1.0, "direction": "down",
         "score": 0.5, "baseline": 1.0, "observed": 0.5, "pod": "x"}]}))
    assert isinstance(nested, AnomalyEvents) and nested.events[0].kind == "close"


def test_unreadable_messages_raise_a_clear_error() -> None:
    with pytest.raises(EventError, match="unknown event type"):
        decode(_raw({"type": "bogus", "v": 1}))
    with pytest.raises(EventError):
        decode(b"\x00")
