"""Pure pieces of the TUI: sparklines with change markers, bars, durations, list diffs."""

from __future__ import annotations

from datetime import UTC, datetime

from workbench.client import Incident
from workbench.tui.listdiff import diff_incidents
from workbench.tui.render import bar, bucketize, fmt_delta, marker_line, sparkline


def test_sparkline_shows_a_level_shift_and_gaps() -> None:
    ts = [float(t) for t in range(0, 100, 10)]
    vals = [1.0] * 5 + [9.0] * 5
    cols = bucketize(ts, vals, 0.0, 100.0, 20)
    line = sparkline(cols)
    assert len(line) == 20
    assert line[0] == "▁" and line[18] == "█" and line[1] == " "  # odd columns have no point


def test_markers_line_up_with_the_sparkline_columns() -> None:
    line = marker_line(0.0, 100.0, 10, onset=50.0, marks=[(20.0, "1"), (95.0, "2"), (500.0, "3")])
    assert line == "  1  ^   2"
    assert marker_line(0.0, 100.0, 10, onset=20.0, marks=[(20.0, "1")])[2] == "*"  # collision


def test_bars_and_durations() -> None:
    assert bar(0.0, 4) == "····" and bar(1.0, 4) == "████" and bar(0.5, 4) == "██··"
    assert bar(float("nan"), 3) == "···" and bar(7.0, 2) == "██"
    assert [fmt_delta(s) for s in (-140, 45, 3900, -90000)] == ["-2m20s", "+45s", "+1h05m", "-1d01h"]


def _inc(i: int, status: str = "OPEN", sev: float = 0.5) -> Incident:
    t = datetime(2026, 11, 30, 4, i, tzinfo=UTC)
    return Incident(id=f"inc-{i}", status=status, title="t", started_at=t, detected_at=t, resolved_at=None,
                    services=["a"], severity=sev, anomaly_count=1, top_suspect=None)


def test_list_diff_builds_rows_only_for_what_changed() -> None:
    old = {i.id: i for i in (_inc(1), _inc(2), _inc(3))}
    same = diff_incidents(old, list(old.values()), full=True, sort_mode="time")
    assert same.changes == 0 and same.order == ["inc-3", "inc-2", "inc-1"]
    delta = diff_incidents(old, [_inc(4, sev=0.9), _inc(2, status="RESOLVED")], full=True, sort_mode="severity")
    assert [k for k, _ in delta.upserts] == ["inc-4", "inc-2"] and sorted(delta.removes) == ["inc-1", "inc-3"]
    assert delta.new_ids == ["inc-4"] and delta.order == ["inc-4", "inc-2"]
    head = diff_incidents(old, [_inc(5)], full=False, sort_mode="time")  # newest page only: nothing removed
    assert head.removes == [] and head.order[0] == "inc-5" and len(head.incidents) == 4
