"""The detector's per-point score (kNN, seasonal and drift surprise through an anomaly
likelihood): bounded, alerts on real changes, strictly online, survives a state round
trip and a restore into a bigger detector, and does not depend on which other series
share the step."""

from __future__ import annotations

import numpy as np
import pytest

from server.detector.core import DetectorConfig, StreamingDetector, score_series


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + 300.0 * np.arange(n)
    x = 50 + 5 * np.sin(np.arange(n) / 40) + rng.normal(0, 1, n)
    x[1000:] += 25  # a level shift
    return ts, x


def test_scores_are_bounded_quiet_before_and_alert_on_a_shift() -> None:
    ts, x = _data()
    s = score_series(ts, x)
    assert ((s >= 0) & (s <= 1)).all()
    assert s[1000:1030].max() > 0.5  # the shift raises an alert-level score
    assert (s[200:1000] > 0.5).mean() < 0.01  # the noisy sine before it rarely does


def test_scores_are_online() -> None:
    ts, x = _data()
    full = score_series(ts, x)
    cut = score_series(ts[:900], x[:900])  # the future (with its shift) never seen
    assert np.array_equal(full[:900], cut)


def test_a_pattern_seen_before_is_less_surprising_than_a_new_one() -> None:
    """The kNN channel: a repeat of a shape seen within the buffer scores lower than a
    shape never seen, at the same amplitude."""
    rng = np.random.default_rng(3)
    n = 700
    ts = 1.7e9 + 60.0 * np.arange(n)
    base = rng.normal(0, 0.2, n)
    bump = np.array([0, 3, 6, 3, 0], dtype=float)
    seen, new = base.copy(), base.copy()
    for at in (300, 450):  # the bump happened twice already
        seen[at:at + 5] += bump
        new[at:at + 5] += bump
    seen[600:605] += bump          # and again
    new[600:605] += -bump          # versus an unseen dip of the same size
    assert score_series(ts, seen)[600:610].max() < score_series(ts, new)[600:610].max()


def test_state_round_trip_and_restore_into_a_bigger_detector() -> None:
    ts, x = _data()
    a = StreamingDetector()
    for i in range(600):
        a.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
    b = StreamingDetector(capacity=64)
    b.set_state(a.get_state())
    for i in range(600, 1100):  # crosses a lag-sum refresh and the shift
        ra = a.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
        rb = b.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
        assert ra.scores[0] == rb.scores[0]
        assert [(e.kind, e.onset) for e in ra.events] == [(e.kind, e.onset) for e in rb.events]


def test_a_state_with_another_history_layout_is_refused() -> None:
    ts, x = _data(200)
    a = StreamingDetector()
    for i in range(50):
        a.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
    with pytest.raises(ValueError, match="layout"):
        StreamingDetector(DetectorConfig(knn_stride=4)).set_state(a.get_state())
    state = a.get_state()
    del state["ring"]  # a state saved before the score history existed
    with pytest.raises(ValueError):
        StreamingDetector().set_state(state)


def test_series_do_not_share_state_and_order_within_a_step_does_not_matter() -> None:
    rng = np.random.default_rng(5)
    n, k = 400, 6
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = rng.normal(100, 5, (k, n)).cumsum(axis=1) * 0.01 + 100
    x[2, 250:] += 40
    together = StreamingDetector()
    shuffled = StreamingDetector()
    out_t = np.zeros((k, n))
    out_s = np.zeros((k, n))
    for i in range(n):
        out_t[:, i] = together.step(np.arange(k), np.full(k, ts[i]), x[:, i]).scores
        order = rng.permutation(k)
        out_s[order, i] = shuffled.step(order, np.full(k, ts[i]), x[order, i]).scores
    assert np.array_equal(out_t, out_s)
    for j in range(k):
        assert np.array_equal(out_t[j], score_series(ts, x[j]))


def test_missing_values_repeat_the_previous_one() -> None:
    ts, x = _data(400)
    y = x.copy()
    y[300] = np.nan
    s = score_series(ts, y)
    assert np.isfinite(s).all()
    ref = x.copy()
    ref[300] = ref[299]
    assert np.array_equal(s, score_series(ts, ref))


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="power of two"):
        StreamingDetector(DetectorConfig(knn_stride=3))
    with pytest.raises(ValueError):
        StreamingDetector(DetectorConfig(dim=500))


def test_an_empty_detector_saves_and_restores() -> None:
    """A server that has seen no metrics yet still saves its state at shutdown."""
    state = StreamingDetector().get_state()
    restored = StreamingDetector()
    restored.set_state(state)
    assert restored.n_series == 0
    ts, x = _data(200)
    assert score_series(ts, x).shape == (200,)
    assert restored.step(np.array([0]), ts[:1], x[:1]).scores.shape == (1,)


def test_the_hold_off_caps_scores_at_the_configured_yellow_level() -> None:
    ts, x = _data()
    x[1100:1400] += 60.0  # a second, larger shift while the first alert's hold-off may run
    for yellow in (0.999, 0.99):
        cap = float(np.log(1.0000000001 - yellow) / np.log(1.0000000001 - 0.9999999999))
        s = score_series(ts, x, DetectorConfig(yellow=yellow, holdoff=2000, spatial_hold=True))
        first = int(np.flatnonzero(s >= 0.5)[0])
        held = s[first + 1:]  # all within the hold-off
        assert held.max() <= cap + 1e-12 and held.max() > cap - 0.05  # capped, and the cap is reached
