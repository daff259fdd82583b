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
