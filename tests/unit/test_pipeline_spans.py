"""Change batches mark the incidents near them with one store query per span of close
changes: the spans cover exactly the union of the per-change windows."""

from __future__ import annotations

from server.pipeline import _spans


def test_close_changes_share_a_span_and_far_ones_do_not() -> None:
    assert _spans([], 60.0) == []
    assert _spans([5.0], 60.0) == [(5.0, 5.0)]
    assert _spans([0.0, 30.0, 90.0, 200.0, 1000.0, 1050.0], 60.0) == [(0.0, 90.0), (200.0, 200.0), (1000.0, 1050.0)]


def test_spans_cover_the_union_of_per_change_windows() -> None:
    gap = 100.0  # the window length: a change at t affects onsets in [t - 60, t + 40]
    times = sorted([3.0, 50.0, 140.0, 400.0, 420.0, 900.0])
    union = set()
    for t in times:
        union |= {x for x in range(-200, 1200) if t - 60 <= x <= t + 40}
    covered = set()
    for lo, hi in _spans(times, gap):
        covered |= {x for x in range(-200, 1200) if lo - 60 <= x <= hi + 40}
    assert covered == union
