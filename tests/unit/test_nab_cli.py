"""`rca eval nab` end to end on a tiny NAB-shaped corpus."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from server.cli import main
from server.eval import nab


def _make_corpus(root: Path) -> None:
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    windows: dict[str, list[list[str]]] = {}
    for cat, name, shift in (("catA", "shifted", True), ("catB", "quiet", False)):
        n = 1200
        x = 50 + rng.normal(0, 1, n)
        if shift:
            x[800:] += 15
        d = root / "data" / cat
        d.mkdir(parents=True)
        stamps = [(t0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]
        with (d / f"{name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value"])
            w.writerows(zip(stamps, np.round(x, 3).tolist(), strict=True))
        windows[f"{cat}/{name}.csv"] = [[stamps[760] + ".000000", stamps[840] + ".000000"]] if shift else []
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_eval_nab_writes_results_and_prints_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nab"
    _make_corpus(root)
    out = tmp_path / "out"
    rc = main(["eval", "nab", "--data", str(root), "--out", str(out), "--per-series", "--workers", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Per profile" in text and "standard" in text and "low FP" in text and "low FN" in text
    assert "catA" in text and "catB" in text
    with (out / "catA" / "shifted.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert len(scores) == 1200 and ((scores >= 0) & (scores <= 1)).all()
    assert scores[800:815].max() > 0.5  # the level shift is detected online
    # The written file scores the same as the in-memory result.
    corpus = list(nab.iter_corpus(root))
    again = nab.load_result_scores(out, corpus)
    assert np.allclose(again[0], scores, atol=1e-9)


def test_eval_nab_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "nab", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "NAB data not found" in capsys.readouterr().err


def test_batched_runner_equals_series_by_series(tmp_path: Path) -> None:
    root = tmp_path / "nab"
    _make_corpus(root)
    corpus = list(nab.iter_corpus(root))
    a = nab.run_detector(corpus, workers=1)
    b = nab.run_detector_batched(corpus)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-12)


def test_eval_nab_fixed_threshold_and_ablation_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nab"
    _make_corpus(root)
    rc = main(["eval", "nab", "--data", str(root), "--out", str(tmp_path / "a"), "--threshold", "0.5",
               "--set", "knn_stride=4", "--set", "level_score=false"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "with knn_stride=4, level_score=false" in text
    assert "threshold 0.500000" in text  # every profile scored at the fixed threshold
    assert "rca (knn_stride=4, level_score=false)" in text
    assert "Alerting path (anomaly opens" in text and "opens in 2,400 points" in text


@pytest.mark.parametrize(("override", "message"), [
    ("no_such_field=1", "expected FIELD=VALUE"),
    ("knn_stride=abc", "not a valid int"),
    ("level_score=maybe", "not a valid bool"),
    ("knn_stride=3", "power of two"),
])
def test_eval_nab_bad_overrides_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 override: str, message: str) -> None:
    root = tmp_path / "nab"
    _make_corpus(root)
    rc = main(["eval", "nab", "--data", str(root), "--out", str(tmp_path / "a"), "--set", override])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # nothing written for a rejected run


def test_eval_nab_reads_iso_and_epoch_timestamps_and_blank_values(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Another NAB-format corpus may write ISO 8601 ('T', offsets) or epoch timestamps and
    leave values blank; windows in NAB's own format still match their rows."""
    root = tmp_path / "nab"
    _make_corpus(root)
    path = root / "data" / "catA" / "shifted.csv"
    rows = path.read_text().splitlines()
    iso = [rows[0]] + [r.replace(" ", "T", 1) for r in rows[1:]]
    iso[50] = iso[50].split(",")[0] + ","  # a blank value
    path.write_text("\n".join(iso) + "\n")
    quiet = root / "data" / "catB" / "quiet.csv"
    q = quiet.read_text().splitlines()
    quiet.write_text("\n".join([q[0]] + [f"{1704067200 + 300 * i},{r.split(',')[1]}" for i, r in enumerate(q[1:])]) + "\n")
    rc = main(["eval", "nab", "--data", str(root), "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert "Per profile" in capsys.readouterr().out


def test_eval_nab_bad_files_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nab"
    _make_corpus(root)
    bad = root / "data" / "catB" / "quiet.csv"
    bad.write_text("time,value\n2024-01-01 00:00:00,1\n")
    assert main(["eval", "nab", "--data", str(root), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "quiet.csv" in err and "expected the columns timestamp and value" in err
    bad.write_text("timestamp,value\nyesterday,1\n")
    assert main(["eval", "nab", "--data", str(root), "--out", str(tmp_path / "o")]) == 2
    assert "unreadable timestamp 'yesterday'" in capsys.readouterr().err
