"""The two per-point score models of the one detector: events are identical, the
likelihood model is strictly online and its state survives a round trip."""

from __future__ import annotations

import numpy as np

from server.detector.core import DetectorConfig, StreamingDetector


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + 300.0 * np.arange(n)
    x = 50 + 5 * np.sin(np.arange(n) / 40) + rng.normal(0, 1, n)
    x[1000:] += 25  # a level shift
    return ts, x


def _run(model: str, ts: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[tuple[str, float]]]:
    det = StreamingDetector(DetectorConfig(score_model=model))  # type: ignore[arg-type]
    scores, events = [], []
    for i in range(len(ts)):
        r = det.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
        scores.append(r.scores[0])
        events += [(e.kind, e.onset) for e in r.events]
    return np.array(scores), events


def test_events_do_not_depend_on_the_score_model() -> None:
    ts, x = _data()
    s_ens, ev_ens = _run("ensemble", ts, x)
    s_lk, ev_lk = _run("likelihood", ts, x)
    assert ev_ens == ev_lk and ev_ens and ev_ens[0][0] == "open"
    assert ((s_lk >= 0) & (s_lk <= 1)).all()
    assert s_lk[1000:1030].max() > 0.5  # the shift raises an alert-level score
    assert not np.array_equal(s_ens, s_lk)


def test_likelihood_scores_are_online() -> None:
    ts, x = _data()
    full, _ = _run("likelihood", ts, x)
    cut, _ = _run("likelihood", ts[:900], x[:900])  # the future (with its shift) never seen
    assert np.array_equal(full[:900], cut)


def test_likelihood_state_round_trip() -> None:
    ts, x = _data()
    a = StreamingDetector(DetectorConfig(score_model="likelihood"))
    for i in range(600):
        a.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
    b = StreamingDetector(DetectorConfig(score_model="likelihood"))
    b.set_state(a.get_state())
    for i in range(600, 700):
        ra = a.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
        rb = b.step(np.array([0]), ts[i:i + 1], x[i:i + 1])
        assert ra.scores[0] == rb.scores[0]
