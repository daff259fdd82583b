"""Pairing incidents of two runs and scoring the labelled causes (pure)."""

from __future__ import annotations

from server.export.compare import Run, RunIncident, accuracy, carry_causes, compare, match_incidents


def inc(i: str, t: float, *svcs: str) -> RunIncident:
    return RunIncident(i, t, svcs)


def test_pairs_closest_onsets_sharing_a_service_one_to_one() -> None:
    before = [inc("a", 1000, "pay"), inc("b", 5000, "cart")]
    after = [inc("x", 1100, "pay", "web"), inc("y", 1050, "pay"), inc("z", 5000, "search")]
    assert match_incidents(before, after, tolerance_s=900) == [("a", "y")]
    assert match_incidents(before, after, tolerance_s=10) == []


def test_gained_lost_rank_changes_and_accuracy() -> None:
    before = Run([inc("a", 1000, "pay"), inc("b", 5000, "cart"), inc("c", 9000, "db")],
                 {"a": ["d1", "d2"], "b": ["d3", "d4"], "c": ["d9"]})
    after = Run([inc("x", 1010, "pay"), inc("y", 5020, "cart"), inc("n", 7000, "web")],
                {"x": ["d2", "d1"], "y": ["d3"], "n": []})
    d = compare(before, after, {"a": "d1", "b": "d3", "c": "d9"})
    assert [i.id for i in d.gained] == ["n"] and [i.id for i in d.lost] == ["c"]
    assert [(c.before_incident, c.after_incident, c.rank_before, c.rank_after) for c in d.rank_changes] == [
        ("a", "x", 1, 2), ("b", "y", 1, 1), ("c", None, 1, None)]
    assert d.ac_before[1] == 1.0 and d.ac_after[1] == round(1 / 3, 4) and d.ac_after[3] == round(2 / 3, 4)
    assert carry_causes({"a": "d1", "c": "d9"}, d.matched) == {"x": "d1"}


def test_accuracy_counts_missing_as_miss() -> None:
    assert accuracy([1, None, 4], ks=(1, 5)) == {1: round(1 / 3, 4), 5: round(2 / 3, 4)}
    assert accuracy([]) == {1: 0.0, 3: 0.0, 5: 0.0}
