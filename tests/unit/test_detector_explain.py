"""Each anomaly says why it is anomalous: what moved which way, against what baseline,
how far, since when, and which part of the detector fired."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from server.detector.core import DetectorEvent
from server.detector.explain import CHANNEL_TEXT, explain
from server.detector.worker import DetectorStage
from server.timeutil import iso


def _event(channel: str, **kw: float | str) -> DetectorEvent:
    base: dict[str, object] = dict(series=0, kind="open", ts=1_796_011_240.0, onset=1_796_011_220.0,
                                   direction="up", score=7.4, baseline=58.0, observed=181.0, channel=channel,
                                   channel_z=6.3)
    base.update(kw)
    return DetectorEvent(**base)  # type: ignore[arg-type]


def test_the_sentence_names_metric_direction_baseline_distance_onset_and_channel() -> None:
    text = explain(_event("shift"), "p95_latency_ms")
    assert text == ("p95_latency_ms rose to 181 from a baseline of 58 (+212%, 7.4x its usual noise) since "
                    "2026-11-30T04:00:20Z: a sustained level shift (CUSUM change point).")
    down = explain(_event("knn", direction="down", observed=0.0012, baseline=0.004), "error_rate", "payments")
    assert down.startswith("payments error_rate fell to 0.0012 from a baseline of 0.004 (-70%, ")
    assert "shape unlike any in its recent history" in down and "likelihood z 6.3" in down
    for channel in CHANNEL_TEXT:
        assert explain(_event(channel), "m").count(".") >= 1 and "\n" not in explain(_event(channel), "m")


def test_a_zero_baseline_has_no_relative_change() -> None:
    text = explain(_event("range", baseline=0.0, observed=3.0), "queue_depth")
    assert "from a baseline of 0 (7.4x its usual noise)" in text


def test_the_detector_stage_explains_every_open_it_reports() -> None:
    rng = np.random.default_rng(3)
    n = 800
    ts = 1_796_000_000.0 + 10.0 * np.arange(n)
    lat = 120.0 + rng.normal(0.0, 4.0, n)
    lat[600:] += 80.0
    stage = DetectorStage()
    table = pa.table({"service": ["payments"] * n, "metric": ["p95_latency_ms"] * n, "ts": ts, "value": lat})
    events = stage.process(table)
    opens = [e for e in events if e.event.kind == "open"]
    assert len(opens) == 1
    op = opens[0]
    assert op.reason is not None and op.reason.startswith("p95_latency_ms rose to ")
    assert f"since {iso(ts[600])}" in op.reason and op.event.channel in CHANNEL_TEXT
    assert all(e.reason is None for e in events if e.event.kind == "close")
