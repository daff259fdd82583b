"""The NAB scorer on hand-made windows (one test per rule of SCORING.md) and on the
published Numenta HTM output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from server.eval import nab
from server.eval.nab_scoring import (
    MAX_TP,
    PROFILES,
    ScoringFile,
    build_table,
    normalise,
    probation_rows,
    raw_score,
    scaled_sigmoid,
    score_corpus,
    sweep,
)

STD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]
NAB_ROOT = Path("/work/shared/datasets/nab")


def _file(n: int, windows: list[tuple[int, int]], detections: list[int], score: float = 1.0) -> ScoringFile:
    s = np.zeros(n)
    s[detections] = score
    return ScoringFile("cat/f.csv", s, tuple(windows))


def _raw(f: ScoringFile, profile=STD, threshold: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    return raw_score(build_table([f]), profile, threshold)


def test_scaled_sigmoid_reference_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.848284, abs=1e-6)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.986614, abs=1e-6)
    assert scaled_sigmoid(3.0001) == -1.0


def test_probationary_period_rows_and_cap() -> None:
    assert probation_rows(4032) == 604
    assert probation_rows(15902) == 750
    assert probation_rows(100) == 15


def test_detections_in_probation_are_ignored() -> None:
    # n=1000 -> P=150; a detection at row 100 is neither TP nor FP; the window is missed.
    f = _file(1000, [(400, 449)], [100])
    assert _raw(f) == pytest.approx(-1.0)


def test_detection_on_first_row_of_window_is_worth_tp_weight() -> None:
    assert _raw(_file(1000, [(400, 449)], [400])) == pytest.approx(1.0)


def test_detection_on_last_row_of_window() -> None:
    f = _file(2000, [(1000, 1402)], [1402])  # w = 403
    assert _raw(f) == pytest.approx(0.0063, abs=5e-5)
    assert _raw(f) == pytest.approx(scaled_sigmoid(-1 / 403) / MAX_TP)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    one = _raw(_file(1000, [(400, 499)], [450]))
    many = _raw(_file(1000, [(400, 499)], [450, 460, 470, 499]))
    assert one == many == pytest.approx(scaled_sigmoid(-50 / 100) / MAX_TP)


def test_missed_window_costs_fn_weight() -> None:
    f = _file(1000, [(400, 449), (700, 749)], [400])
    assert _raw(f, STD) == pytest.approx(1.0 - 1.0)
    assert _raw(f, LOW_FN) == pytest.approx(1.0 - 2.0)


def test_false_positive_before_any_window_costs_full_fp_weight() -> None:
    f = _file(1000, [(400, 449)], [200, 399, 400])
    assert _raw(f, STD) == pytest.approx(1.0 - 2 * 0.11)
    assert _raw(f, LOW_FP) == pytest.approx(1.0 - 2 * 0.22)


def test_false_positive_after_a_window_uses_w_minus_1_and_caps_beyond_3() -> None:
    w = 50
    f = _file(1000, [(400, 449)], [400, 449 + 10])
    y = 10 / (w - 1)
    assert _raw(f, STD) == pytest.approx(1.0 + 0.11 * scaled_sigmoid(y))
    far = _file(1000, [(400, 449)], [400, 449 + 3 * (w - 1) + 1])
    assert _raw(far, STD) == pytest.approx(1.0 - 0.11)


def test_false_positive_uses_the_most_recent_earlier_window() -> None:
    f = _file(2000, [(400, 449), (800, 819)], [400, 800, 830])
    y = (830 - 819) / (20 - 1)
    assert _raw(f) == pytest.approx(2.0 + 0.11 * scaled_sigmoid(y))


def test_threshold_comparison_is_greater_or_equal() -> None:
    f = _file(1000, [(400, 449)], [400], score=0.7)
    assert _raw(f, threshold=0.7) == pytest.approx(1.0)
    assert _raw(f, threshold=0.7000001) == pytest.approx(-1.0)


def test_sweep_matches_brute_force_and_prefers_the_highest_tied_threshold() -> None:
    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        s = np.round(rng.random(800), 2)
        files.append(ScoringFile(f"c/f{i}.csv", s, ((300 + i * 50, 340 + i * 50), (600, 650))))
    table = build_table(files)
    for prof in PROFILES.values():
        thr, raw = sweep(table, prof)
        brute = max([raw_score(table, prof, t) for t in np.unique(table.scores)] + [raw_score(table, prof, 1.1)])
        assert raw == pytest.approx(brute)
        assert raw_score(table, prof, thr) == pytest.approx(raw)
    # Two thresholds give the same best raw score: the higher one wins.
    tie = ScoringFile("c/t.csv", np.r_[np.zeros(400), [0.9], np.zeros(99), [0.8], np.zeros(500)], ((400, 449),))
    thr, raw = sweep(build_table([tie]), STD)
    assert thr == 0.9 and raw == pytest.approx(1.0)


def test_sweep_with_no_useful_detection_detects_nothing() -> None:
    f = ScoringFile("c/n.csv", np.r_[np.zeros(300), np.ones(10), np.zeros(690)], ((800, 849),))
    thr, raw = sweep(build_table([f]), STD)
    assert thr > 1.0 and raw == pytest.approx(-1.0)


def test_normalisation_null_is_zero_and_perfect_is_hundred() -> None:
    files = [_file(1000, [(400, 449), (700, 749)], []), _file(1000, [(500, 599)], [])]
    null = score_corpus([ScoringFile(f.name, np.full(1000, 0.5), f.windows) for f in files])
    assert all(r.score == 0.0 for r in null.values())
    perfect_scores = []
    for f in files:
        s = np.zeros(1000)
        s[[left for left, _ in f.windows]] = 1.0
        perfect_scores.append(ScoringFile(f.name, s, f.windows))
    perfect = score_corpus(perfect_scores)
    assert all(r.score == pytest.approx(100.0) for r in perfect.values())
    assert normalise(-116.0, LOW_FN, 116) == pytest.approx(100 * 116 / 348)


@pytest.fixture(scope="module")
def numenta_files() -> list[ScoringFile]:
    if not (NAB_ROOT / "results" / "numenta").is_dir():
        pytest.skip("NAB data not available")
    corpus = list(nab.iter_corpus(NAB_ROOT))
    scores = nab.load_result_scores(NAB_ROOT / "results" / "numenta", corpus, prefix="numenta_")
    return nab.scoring_files(NAB_ROOT, corpus, scores)


def test_reproduces_published_numenta_scores_at_stored_thresholds(numenta_files: list[ScoringFile]) -> None:
    assert sum(len(f.windows) for f in numenta_files) == 116
    res = score_corpus(numenta_files, nab.stored_thresholds(NAB_ROOT, "numenta"))
    pub = nab.published(NAB_ROOT)["numenta"]
    for name in PROFILES:
        assert res[name].score == pytest.approx(pub[name], abs=1e-8)
    assert round(res["standard"].score, 2) == 70.10
    assert round(res["reward_low_FN_rate"].score, 2) == 74.32
    assert round(res["reward_low_FP_rate"].score, 2) == 63.12


def test_exhaustive_sweep_on_numenta_output(numenta_files: list[ScoringFile]) -> None:
    res = score_corpus(numenta_files)
    assert round(res["standard"].score, 2) == 70.10
    assert round(res["reward_low_FN_rate"].score, 2) == 74.32
    assert round(res["reward_low_FP_rate"].score, 2) == 63.21


def test_null_detector_scores_exactly_zero_on_the_corpus(numenta_files: list[ScoringFile]) -> None:
    null = [ScoringFile(f.name, np.full(f.scores.shape, 0.5), f.windows) for f in numenta_files]
    res = score_corpus(null)
    assert all(r.score == 0.0 for r in res.values())
    assert not math.isnan(res["standard"].raw)
