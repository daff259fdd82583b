"""Behaviour of the kNN-surprise + anomaly-likelihood scorer: online, bounded, state round-trip."""

from __future__ import annotations

import numpy as np

from server.detector.likelihood import LikelihoodConfig, LikelihoodScorer, score_series

STEP = 300.0


def _daily(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.arange(n) * STEP
    x = 50.0 + 20.0 * np.sin(2 * np.pi * ts / 86400.0) + rng.normal(0.0, 1.0, n)
    return ts, x


def test_scores_are_online_a_future_change_does_not_move_earlier_scores() -> None:
    ts, x = _daily(1500, seed=1)
    changed = x.copy()
    changed[1100:] += 40.0
    changed[1300] = 1e9
    a = score_series(ts, x)
    b = score_series(ts, changed)
    np.testing.assert_array_equal(a[:1100], b[:1100])
    assert b[1100:].max() > a[1100:].max()


def test_scores_are_in_unit_interval_and_spike_scores_high() -> None:
    ts, x = _daily(1500, seed=2)
    x[1200] += 500.0
    x[900] = np.nan
    sc = score_series(ts, x)
    assert np.isfinite(sc).all()
    assert ((sc >= 0.0) & (sc <= 1.0)).all()
    assert sc[1200] >= 0.99
    assert np.quantile(sc[300:1150], 0.99) < 0.5


def test_flat_series_does_not_alert() -> None:
    ts = np.arange(1000) * STEP
    sc = score_series(ts, np.full(1000, 7.0))
    assert sc.max() < 0.5


def test_seasonal_channel_flags_wrong_time_of_day() -> None:
    # a daily square wave whose "high" part goes missing one day: values seen before,
    # but not at that time of day
    n = 288 * 8
    ts = np.arange(n) * STEP
    rng = np.random.default_rng(3)
    x = np.where((ts % 86400.0) < 43200.0, 80.0, 20.0) + rng.normal(0.0, 0.5, n)
    x[288 * 6 : 288 * 6 + 144] = 20.0 + rng.normal(0.0, 0.5, 144)
    sc = score_series(ts, x)
    assert sc[288 * 6 : 288 * 7].max() >= 0.5
    assert sc[288 * 2 : 288 * 6].max() < 0.5


def test_vectorised_matches_one_series_at_a_time_and_subsets_of_series() -> None:
    series = [_daily(700, seed=s) for s in range(4)]
    single = [score_series(ts, x) for ts, x in series]
    det = LikelihoodScorer(capacity=2)  # grows on demand
    out = np.zeros((4, 700))
    for i in range(700):
        idx = np.array([0, 2, 3, 1]) if i % 2 else np.array([1, 3, 0, 2])
        out[idx, i] = det.step(idx, np.array([series[k][0][i] for k in idx]),
                               np.array([series[k][1][i] for k in idx]))
    for k in range(4):
        np.testing.assert_allclose(out[k], single[k], rtol=0, atol=1e-12)


def test_state_round_trip_continues_identically() -> None:
    ts, x = _daily(2600, seed=4)  # crosses an exact recompute of the lag sums
    cfg = LikelihoodConfig(refresh=1000)
    full = score_series(ts, x, cfg)
    det = LikelihoodScorer(cfg, capacity=1)
    idx = np.zeros(1, dtype=np.int64)
    for i in range(1300):
        det.step(idx, ts[i : i + 1], x[i : i + 1])
    state = det.get_state()
    restored = LikelihoodScorer(cfg, capacity=8)
    restored.set_state(state)
    rest = [restored.step(idx, ts[i : i + 1], x[i : i + 1])[0] for i in range(1300, 2600)]
    np.testing.assert_array_equal(np.array(rest), full[1300:])
    assert det.nbytes_per_series() < 10 * 1024


def test_exact_refresh_keeps_scores_close_to_running_sums() -> None:
    ts, x = _daily(3000, seed=5)
    x = x * 1e6
    a = score_series(ts, x, LikelihoodConfig(refresh=0))
    b = score_series(ts, x, LikelihoodConfig(refresh=500))
    np.testing.assert_allclose(a, b, atol=1e-6)
