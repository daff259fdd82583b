"""`rca eval rca` end to end on a few seeds (real embedded server, HTTP replay)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main


@pytest.mark.slow
def test_eval_prints_accuracy_and_a_learning_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rca.json"
    rc = main(["eval", "rca", "--seeds", "50000-50001", "--org", "biased", "--train-seeds", "61000-61001",
               "--eval-seeds", "62000", "--checkpoints", "0,1", "--json", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "RCA accuracy, no labels" in text and "AC@1" in text and "MRR" in text
    assert "learning curve, org 'biased'" in text
    report = json.loads(out.read_text())
    curve = report["learning_curves"][0]["curve"]
    assert [p["labels"] for p in curve] == [0, 1]
    assert curve[1]["model_version"] >= 1


def test_eval_refuses_tuning_seeds() -> None:
    with pytest.raises(SystemExit, match="tuning seeds"):
        main(["eval", "rca", "--seeds", "1000-1001", "--skip-curve"])


@pytest.mark.slow
def test_eval_reports_root_services_without_a_call_graph_and_as_real_recordings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "root.json"
    rc = main(["eval", "rca", "--skip-accuracy", "--skip-curve", "--root-seeds", "80000-80001",
               "--release-seeds", "81000", "--root-styles", "no-topology,real", "--json", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "with NO call graph posted" in text and "as real recordings come" in text
    assert "NSigma" in text and "time proximity" in text
    report = json.loads(out.read_text())
    for key in ("root_services_no_topology", "root_services_real"):
        assert report[key]["scenarios"] == 2 and {"ours", "nsigma", "alert_only"} <= set(report[key])
    assert "root_services" not in report  # only the styles asked for


def test_eval_refuses_an_unknown_recording_style() -> None:
    with pytest.raises(SystemExit, match="unknown style"):
        main(["eval", "rca", "--skip-accuracy", "--skip-curve", "--root-seeds", "80000", "--release-seeds", "81000",
              "--root-styles", "csv"])
