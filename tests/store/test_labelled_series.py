"""get_labelled_series on a real DuckDB file: one entry per label set (rollout comparison)."""

from __future__ import annotations

from pathlib import Path

from server.api.validation import validate_metrics
from server.store.duckdb import DuckDBStore


def test_one_entry_per_label_set_sorted_by_time(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        pts = [{"service": "pay", "metric": "lat", "ts": float(t), "value": float(t), "labels": {"pod": p, "version": v}}
               for t in (3, 1, 2) for p, v in (("a", "v1"), ("b", "v2"))]
        pts.append({"service": "pay", "metric": "lat", "ts": 5.0, "value": 9.0})
        pts.append({"service": "pay", "metric": "other", "ts": 5.0, "value": 9.0, "labels": {"pod": "a"}})
        store.insert_metrics(table=validate_metrics(pts))
        got = store.get_labelled_series(service="pay", metric="lat", since=0.0, until=10.0)
        by = {tuple(sorted(lab.items())): (ts.tolist(), v.tolist()) for lab, ts, v in got}
        assert by[(("pod", "a"), ("version", "v1"))] == ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        assert by[(("pod", "b"), ("version", "v2"))][0] == [1.0, 2.0, 3.0]
        assert by[()] == ([5.0], [9.0])  # points sent without labels
        assert len(got) == 3
        late = store.get_labelled_series(service="pay", metric="lat", since=2.5, until=10.0)
        assert {lab.get("pod", ""): ts.tolist() for lab, ts, _ in late} == {"a": [3.0], "b": [3.0], "": [5.0]}
        assert store.get_labelled_series(service="nope", metric="lat", since=0.0, until=10.0) == []
    finally:
        store.close()
