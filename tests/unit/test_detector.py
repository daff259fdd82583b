"""Behaviour of the streaming detector: online property, events, scale floors, state."""

from __future__ import annotations

import numpy as np

from server.detector.core import DetectorConfig, DetectorEvent, StreamingDetector, score_series

STEP = 10.0


def _feed(det: StreamingDetector, ts: np.ndarray, x: np.ndarray, series: int = 0) -> list[DetectorEvent]:
    events: list[DetectorEvent] = []
    idx = np.array([series], dtype=np.int64)
    for i in range(x.shape[0]):
        events += det.step(idx, ts[i : i + 1], x[i : i + 1]).events
    return events


def _noisy(n: int, seed: int, level: float = 100.0, sd: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n) * STEP, level + rng.normal(0.0, sd, n)


def test_scores_are_online_a_future_change_does_not_move_earlier_scores() -> None:
    ts, x = _noisy(800, seed=1)
    changed = x.copy()
    changed[600:] += 50.0
    changed[700] = 1e6
    a = score_series(ts, x)
    b = score_series(ts, changed)
    np.testing.assert_array_equal(a[:600], b[:600])
    assert b[600:610].max() > 0.5 > a[600:610].max()  # the change itself alerts
    assert ((a >= 0) & (a <= 1)).all() and ((b >= 0) & (b <= 1)).all()


def test_level_shift_opens_one_anomaly_with_onset_and_closes_on_recovery() -> None:
    ts, x = _noisy(1500, seed=2)
    x[600:900] += 20.0
    events = _feed(StreamingDetector(), ts, x)
    opens = [e for e in events if e.kind == "open"]
    closes = [e for e in events if e.kind == "close"]
    assert len(opens) == 1 and len(closes) == 1
    op = opens[0]
    assert op.direction == "up"
    assert ts[600] - 3 * STEP <= op.onset <= ts[600] + STEP
    assert op.ts - ts[600] <= 5 * STEP
    assert abs(op.baseline - 100.0) < 2.0 and abs(op.observed - 120.0) < 4.0
    assert op.score > 3
    assert closes[0].ts >= ts[900] and closes[0].ts - ts[900] <= 15 * STEP


def test_downward_shift_is_reported_down() -> None:
    ts, x = _noisy(1000, seed=3)
    x[500:] -= 25.0
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
    assert len(opens) == 1 and opens[0].direction == "down"


def test_one_point_blips_never_open() -> None:
    """A blip is one point: above, below, far beyond anything seen (the range rule), or
    followed by a point on the other side. None of them opens an anomaly, while each still
    raises the per-point score."""
    ts, x = _noisy(3000, seed=4)
    for i in range(200, 2000, 150):
        x[i] += 80.0 if (i // 150) % 2 else -80.0
    x[2100] += 10_000.0          # far outside the range seen so far
    x[2400] += 80.0              # a spike ...
    x[2401] -= 80.0              # ... and a dip right after it: two one-point blips
    x[2700] += 30.0              # a moderate blip next to a noise point 3 scales off
    x[2701] += 6.0
    assert _feed(StreamingDetector(), ts, x) == []
    scores = score_series(ts, x)
    assert scores[200] > 0.5 and scores[200] == scores[150:250].max()  # the blip still raises the score
    assert scores[2100] == 1.0


def test_a_shift_is_reported_at_its_second_point_with_its_onset() -> None:
    """Two consecutive points far off on the same side are a shift as far as anyone can
    tell: it is reported then (20 s at 10-s sampling), with the first point as onset."""
    ts, x = _noisy(1500, seed=14)
    x[1000:] += 40.0
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
    assert len(opens) == 1
    op = opens[0]
    assert (op.ts, op.onset, op.direction) == (ts[1001], ts[1000], "up")
    assert op.channel in ("range", "level", "knn", "drift", "seasonal", "shift")
    assert abs(op.baseline - 100.0) < 2.0 and abs(op.observed - 140.0) < 6.0


def test_a_one_point_spike_of_a_coarse_series_opens() -> None:
    """The blip filter is for series sampled every minute or faster: one point of a
    5-minute series already stands for 5 minutes of behaviour."""
    rng = np.random.default_rng(15)
    ts = np.arange(2000) * 300.0
    x = 100.0 + rng.normal(0.0, 2.0, 2000)
    x[1500] += 80.0
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
    assert [(e.ts, e.direction) for e in opens] == [(ts[1500], "up")]
    fine = [e for e in _feed(StreamingDetector(), ts / 30.0, x) if e.kind == "open"]  # the same at 10 s
    assert fine == []


def test_small_sustained_shift_of_a_steady_series_is_reported() -> None:
    """A shift of 2 noise scales (10 % of the level) that stays is confirmed by the CUSUM
    within about 3 minutes at 10-s sampling, with its onset."""
    for seed in (16, 17, 18, 19):
        ts, x = _noisy(2000, seed=seed, sd=5.0)
        x[1500:] += 10.0
        opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
        assert len(opens) == 1 and opens[0].direction == "up" and opens[0].channel == "shift"
        assert opens[0].ts - ts[1500] <= 25 * STEP and abs(opens[0].onset - ts[1500]) <= 10 * STEP


def test_an_anomaly_ends_when_the_series_settles_at_its_new_level() -> None:
    ts, x = _noisy(4000, seed=17)
    x[1000:] += 40.0  # a new normal
    events = _feed(StreamingDetector(DetectorConfig(settle=500)), ts, x)
    assert [e.kind for e in events] == ["open", "close"]
    assert events[1].ts - ts[1000] >= 500 * STEP
    never = _feed(StreamingDetector(DetectorConfig(settle=0)), ts, x)
    assert [e.kind for e in never] == ["open"]  # without it, open until the series recovers


def test_an_anomaly_open_when_the_data_stops_ends_at_the_last_point_seen() -> None:
    """A series that stops reporting for longer than ``settle`` points would take: its open
    anomaly ends when the data stopped (so an incident never spans the gap), and a data gap
    does not switch the blip filter off."""
    ts, x = _noisy(1600, seed=18)
    x[1000:] += 40.0           # a shift that is still on ...
    ts[1200:] += 30 * 86400.0  # ... when the data stops for a month
    x[1300] += 80.0            # a one-point blip after the gap
    events = _feed(StreamingDetector(), ts, x)
    assert [e.kind for e in events] == ["open", "close"]
    assert events[1].onset == ts[1199] and events[1].ts == ts[1200]


def test_near_constant_series_does_not_open_on_tiny_absolute_moves() -> None:
    rng = np.random.default_rng(5)
    ts = np.arange(2000) * STEP
    x = 0.001 + rng.normal(0.0, 1e-9, 2000)
    x[1000:] += 5e-6  # 0.5 % relative move: not a regression
    assert _feed(StreamingDetector(), ts, x) == []
    x[1500:] = 0.01  # tenfold error rate: a regression
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
    assert len(opens) == 1 and opens[0].direction == "up"


def test_integer_counter_noise_does_not_open() -> None:
    rng = np.random.default_rng(6)
    ts = np.arange(3000) * STEP
    x = rng.poisson(3.0, 3000).astype(float)
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open"]
    assert len(opens) <= 1


def test_warmup_blocks_early_opens() -> None:
    ts, x = _noisy(200, seed=7)
    x[10:] += 50.0
    cfg = DetectorConfig(warmup=30)
    opens = [e for e in _feed(StreamingDetector(cfg), ts, x) if e.kind == "open"]
    assert all(e.ts >= ts[30] for e in opens)
    assert score_series(ts, x, cfg)[: cfg.learn].max() < 0.5  # the score cannot alert while it learns


def test_vectorised_step_equals_series_by_series() -> None:
    rng = np.random.default_rng(8)
    k, n = 20, 400
    ts = np.arange(n) * STEP
    data = 50.0 + rng.normal(0, 1, (k, n))
    data[3, 200:] += 10
    data[7, 250:] -= 10
    batch = StreamingDetector(capacity=4)
    batch_scores = np.zeros((k, n))
    batch_events = []
    for i in range(n):
        r = batch.step(np.arange(k), np.full(k, ts[i]), data[:, i])
        batch_scores[:, i] = r.scores
        batch_events += r.events
    for j in range(k):
        np.testing.assert_allclose(score_series(ts, data[j]), batch_scores[j])
    assert {(e.series, e.kind) for e in batch_events} >= {(3, "open"), (7, "open")}


def test_subset_steps_and_state_round_trip() -> None:
    rng = np.random.default_rng(9)
    a = StreamingDetector()
    for i in range(300):
        idx = np.array([0, 2]) if i % 2 else np.array([1])
        a.step(idx, np.full(idx.size, i * STEP), rng.normal(10, 1, idx.size))
    b = StreamingDetector(capacity=1)
    b.set_state(a.get_state())
    idx = np.array([0, 1, 2])
    for i in range(300, 400):
        v = rng.normal(10, 1, 3) + (30 if i > 350 else 0)
        ra = a.step(idx, np.full(3, i * STEP), v)
        rb = b.step(idx, np.full(3, i * STEP), v)
        np.testing.assert_array_equal(ra.scores, rb.scores)
        assert ra.events == rb.events


def _bursty(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a 20-point burst of +8 sd every 100 points: bursts are this series' normal."""
    ts, x = _noisy(n, seed=seed, sd=1.0)
    for start in range(150, n, 100):
        x[start:start + 20] += 8.0
    return ts, x


def test_routine_bursts_stop_opening_anomalies_once_the_score_has_learnt_them() -> None:
    ts, x = _bursty(3000, seed=11)
    events = _feed(StreamingDetector(), ts, x)
    kinds = [e.kind for e in events]
    # anomalies tracked silently report nothing: every close follows its own open
    assert all(k == ("open" if j % 2 == 0 else "close") for j, k in enumerate(kinds))
    gated = [e for e in events if e.kind == "open"]
    ungated = [e for e in _feed(StreamingDetector(DetectorConfig(event_gate=0.0)), ts, x) if e.kind == "open"]
    late = ts[1500]
    assert sum(e.ts >= late for e in ungated) >= 10  # CUSUM alone pages on every burst
    assert sum(e.ts >= late for e in gated) <= 1     # the likelihood gate knows they are routine


def test_an_unusual_shift_in_a_bursty_series_still_opens() -> None:
    ts, x = _bursty(3000, seed=12)
    x[2560:] += 40.0  # far beyond any burst, and it stays
    opens = [e for e in _feed(StreamingDetector(), ts, x) if e.kind == "open" and e.ts >= ts[2500]]
    assert opens and opens[0].direction == "up" and opens[0].ts - ts[2560] <= 5 * STEP


def test_a_series_may_repeat_within_a_step_in_time_order() -> None:
    """Many points of a series in one call (a backfill batch) give the same scores and
    events as one point per call."""
    rng = np.random.default_rng(21)
    k, n = 4, 600
    ts = np.arange(n) * STEP
    data = 50.0 + rng.normal(0, 1, (k, n))
    data[1, 300:] += 12
    one_by_one = StreamingDetector()
    ev_a, sc_a = [], np.zeros((k, n))
    for i in range(n):
        r = one_by_one.step(np.arange(k), np.full(k, ts[i]), data[:, i])
        sc_a[:, i] = r.scores
        ev_a += [(e.series, e.kind, e.ts, e.onset) for e in r.events]
    batched = StreamingDetector()
    sid = np.repeat(np.arange(k), n)  # sorted by (series, ts), as the worker sends it
    r = batched.step(sid, np.tile(ts, k), data.reshape(-1))
    ev_b = [(e.series, e.kind, e.ts, e.onset) for e in r.events]
    assert np.array_equal(r.scores.reshape(k, n), sc_a)
    assert sorted(ev_a) == sorted(ev_b) and ev_a
