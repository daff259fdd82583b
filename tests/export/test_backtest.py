"""Backtests on an exported day: unchanged settings reproduce the export; a detector
setting change alters the incidents and the report says how."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from server.cli import main
from server.export.backtest import BacktestError, apply_overrides, backtest, parse_overrides
from tests.export.conftest import History
from workbench.client import load_polars, read_manifest


def test_unchanged_settings_reproduce_the_export(history: History) -> None:
    r = backtest(history.small_dir, {})
    d = r.diff
    incs = load_polars(history.small_dir)["incidents"]
    until = read_manifest(history.small_dir)["time_range"]["until"]
    # an incident whose onset is in the period but which was only confirmed by later data
    # (outside the export) cannot be reproduced from the export alone
    late = set(incs.filter(pl.col("detected_at") > pl.lit(until).str.to_datetime(time_zone="UTC"))["id"])
    assert d.incidents_before == incs.height > len(late)
    assert not d.gained and {i.id for i in d.lost} == late and len(d.matched) == incs.height - len(late)
    assert d.labelled >= 1
    assert all(c.rank_before == c.rank_after for c in d.rank_changes)
    assert d.ac_before == d.ac_after


def test_a_settings_change_alters_incidents(history: History, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bt.json"
    # group only anomalies of one service that start within 5 s: the seeded incidents,
    # which spread over callers through the topology, split into one incident per service
    assert main(["backtest", "--export", str(history.small_dir), "--set", "grouping.gap_seconds=5",
                 "--set", "grouping.max_hops=0", "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["settings"]["grouping"] == {"gap_seconds": 5, "max_hops": 0}
    assert report["incidents_after"] > report["incidents_before"]
    assert report["gained"] and all(len(i["services"]) == 1 for i in report["gained"])
    assert report["incidents_after"] == len(report["matched"]) + len(report["gained"])
    assert {c["before_incident"] for c in report["rank_changes"]} == {
        i for i in history.seeded.labelled if i in set(load_polars(history.small_dir)["incidents"]["id"])}
    assert "gained" in text and "AC@1" in text and "grouping.gap_seconds=5" in text


def test_overrides_are_checked() -> None:
    base = {"grouping": {"gap_seconds": 600.0, "max_hops": 2}, "detector": {}}
    kw = apply_overrides(base, parse_overrides(["grouping.gap_seconds=300", "detector.persist=4"]))
    assert kw["grouping"]["gap_seconds"] == 300 and kw["detector"] == {"persist": 4}
    for bad, needle in (["grouping.gap=1"], "grouping.gap_seconds"), (["detector.nope=1"], "detector.h"), \
                       (["port=1"], "not a detection"), (["grouping.max_hops=many"], "max_hops"), \
                       (["detector.persist=x"], "int"), (["novalue"], "key=value"):
        with pytest.raises(BacktestError, match=needle):
            apply_overrides(base, parse_overrides(bad))


def test_cli_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--export", str(tmp_path)]) == 2
    assert "not an export directory" in capsys.readouterr().err
