"""The detector stage keys series by (service, metric, label set); its saved state carries
the label sets, and a state file written before labels existed still loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from server.detector.worker import DetectorStage
from server.model.labels import canonical_labels, matches, parse_matchers


def _table(rows: list[tuple[str, str, dict[str, str] | None, float, float]]) -> pa.Table:
    return pa.table({"service": [r[0] for r in rows], "metric": [r[1] for r in rows],
                     "ts": pa.array([r[3] for r in rows], pa.float64()),
                     "value": pa.array([r[4] for r in rows], pa.float64()),
                     "labels": pa.array([canonical_labels(r[2]) for r in rows], pa.string())})


def test_same_timestamps_on_three_label_sets_are_not_late() -> None:
    st = DetectorStage()
    rows = [("web", "lat", {"pod": p}, 100.0 + i, 1.0) for i in range(100) for p in "abc"]
    st.process(_table(rows))
    assert st.late_points == 0 and st.points == 300
    assert sorted(st.labels) == [canonical_labels({"pod": p}) for p in "abc"]
    # the same timestamps again are late, per series
    st.process(_table(rows[:3]))
    assert st.late_points == 3


def test_state_round_trip_keeps_label_sets(tmp_path: Path) -> None:
    st = DetectorStage()
    st.process(_table([("web", "lat", {"pod": "a"}, 1.0, 1.0), ("web", "lat", None, 1.0, 2.0),
                       ("web", "lat", {"pod": "b"}, 2.0, 3.0)]))
    st.save(tmp_path / "s.npz")
    st2 = DetectorStage()
    assert st2.load(tmp_path / "s.npz")
    assert st2.names == st.names and st2.labels == st.labels
    assert [st2.labels_of(i) for i in range(3)] == [st.labels_of(i) for i in range(3)]
    st2.process(_table([("web", "lat", {"pod": "a"}, 1.0, 1.0), ("web", "lat", {"pod": "c"}, 5.0, 1.0)]))
    assert st2.late_points == 1 and len(st2.names) == 4


def test_state_file_without_labels_loads_as_empty_label_sets(tmp_path: Path) -> None:
    st = DetectorStage()
    st.process(_table([("web", "lat", None, 1.0, 1.0), ("api", "qps", None, 1.0, 1.0)]))
    st.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=True) as z:
        old = {k: z[k] for k in z.files if k != "labels"}  # the file as older releases wrote it
    np.savez(tmp_path / "old.npz", **old)  # type: ignore[arg-type]
    st2 = DetectorStage()
    assert st2.load(tmp_path / "old.npz")
    assert st2.labels == ["", ""] and st2.labels_of(0) is None
    # the old series keep their baselines: a point at the same time is late, a new one is not
    st2.process(_table([("web", "lat", None, 1.0, 1.0), ("api", "qps", None, 2.0, 1.0)]))
    assert st2.late_points == 1 and len(st2.names) == 2


def test_matchers() -> None:
    assert parse_matchers(["pod=a", "path=/x=y", "empty="]) == {"pod": "a", "path": "/x=y", "empty": ""}
    assert matches({"pod": "a"}, {"pod": "a", "zone": ""})
    assert not matches({"pod": "a"}, {"pod": "b"})
    assert not matches({"pod": "a"}, parse_matchers(["pod=a", "pod=b"]))
    assert canonical_labels({}) is None and canonical_labels({"b": "1", "a": "2"}) == '{"a":"2","b":"1"}'


def test_a_batch_detects_alike_whatever_the_order_of_its_points() -> None:
    """Points of a batch go to the kernel grouped by series in time order: by a linear
    grouping when each series' points arrive in time order, by a sort when they do not;
    either way the same events, late points and state as one series at a time."""
    from server.detector import kernel as K
    from server.model.points import Points

    rng = np.random.default_rng(4)
    rows = [("web", "lat", {"pod": p}, 100.0 + 10 * i, 1.0 + 0.01 * rng.standard_normal() + (3.0 if i > 300 else 0))
            for i in range(400) for p in "abc"]
    in_order = Points.from_table(_table(rows))
    assert len(K.group_order(in_order.code, in_order.ts, in_order.k)) == len(rows)
    shuffled_rows = [rows[i] for i in rng.permutation(len(rows))]
    shuffled = Points.from_table(_table(shuffled_rows))
    assert len(K.group_order(shuffled.code, shuffled.ts, shuffled.k)) == 0  # not in time order: sorted instead
    got = []
    for pts in (in_order, shuffled):
        st = DetectorStage()
        events = st.process_points(pts)
        state = st.detector.get_state()["state"]  # one row per field, one column per series
        by_series = {st.labels[i]: state[:, i].tolist() for i in range(len(st.labels))}
        seen = sorted([(e.service, e.labels, e.event.kind, e.event.ts) for e in events], key=lambda e: (e[3], str(e[1])))
        got.append((seen, st.late_points, by_series))
    one = DetectorStage()
    alone = []
    for p in "abc":
        alone += one.process(_table([r for r in rows if r[2] == {"pod": p}]))
    assert got[0] == got[1]
    assert got[0][0] == sorted(
        [(e.service, e.labels, e.event.kind, e.event.ts) for e in alone], key=lambda e: (e[3], str(e[1])))
    assert any(kind == "open" for _, _, kind, _ in got[0][0])


def test_late_points_are_those_not_newer_than_their_series_last_point() -> None:
    """Within a batch (repeated timestamps, points out of order) and against the last
    batch: every late point is counted, the others are detected, and the watermark is
    the newest detected point."""
    st = DetectorStage()
    st.process(_table([("web", "lat", {"pod": "a"}, 100.0, 1.0), ("web", "lat", {"pod": "b"}, 100.0, 1.0)]))
    assert (st.points, st.late_points, st.watermark) == (2, 0, 100.0)
    st.process(_table([
        ("web", "lat", {"pod": "a"}, 90.0, 1.0),    # older than pod a's last point: late
        ("web", "lat", {"pod": "a"}, 110.0, 1.0),
        ("web", "lat", {"pod": "a"}, 110.0, 2.0),   # the same time again: late
        ("web", "lat", {"pod": "a"}, 105.0, 1.0),   # out of order in the batch: detected before 110
        ("web", "lat", {"pod": "b"}, 100.0, 1.0),   # pod b's last point again: late
        ("web", "lat", {"pod": "c"}, 50.0, 1.0),    # a new series: nothing is late for it
    ]))
    assert (st.points, st.late_points, st.watermark) == (5, 3, 110.0)
    last = dict(zip(st.labels, st.last_ts[: len(st.labels)].tolist(), strict=True))
    assert last == {canonical_labels({"pod": "a"}): 110.0, canonical_labels({"pod": "b"}): 100.0,
                    canonical_labels({"pod": "c"}): 50.0}
