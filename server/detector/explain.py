"""One sentence on why the detector opened an anomaly (pure: no I/O).

The sentence names what moved and which way, against what baseline and how far (relative
change and in the series' own noise scales), since when, and which part of the detector
fired (the ``channel`` of :class:`~server.detector.core.DetectorEvent`)::

    p95_latency_ms rose to 182 from a baseline of 120 (+52%, 7.8x its usual noise) since
    2026-11-30T04:00:20Z: a sustained level shift (CUSUM change point).
"""

from __future__ import annotations

from server.detector.core import DetectorEvent
from server.timeutil import iso

#: what each channel means, as the end of the sentence
CHANNEL_TEXT: dict[str, str] = {
    "shift": "a sustained level shift (CUSUM change point)",
    "range": "outside every value this series has shown so far (range rule)",
    "knn": "its last few points form a shape unlike any in its recent history (kNN novelty, likelihood z {z:.1f})",
    "seasonal": "unlike the same time of day yesterday or last week (seasonal novelty, likelihood z {z:.1f})",
    "drift": "its recent mean has drifted away from its long-run level (drift, likelihood z {z:.1f})",
    "level": "it stayed far from its baseline for several points (level, likelihood z {z:.1f})",
}


def _num(v: float) -> str:
    """A value as people read it: 4 significant digits, no exponent for ordinary sizes."""
    if v == 0 or 1e-4 <= abs(v) < 1e7:
        text = f"{v:.4g}"
        if "e" not in text:
            return text
    return f"{v:.3g}"


def explain(event: DetectorEvent, metric: str, service: str | None = None) -> str:
    """The sentence for an ``open`` event of ``metric`` (of ``service`` when given)."""
    what = f"{service} {metric}" if service else metric
    verb = "rose" if event.direction == "up" else "fell"
    base, obs = event.baseline, event.observed
    rel = f"{(obs - base) / abs(base):+.0%}, " if abs(base) > 1e-12 else ""
    how_far = f"{rel}{event.score:.1f}x its usual noise"
    why = CHANNEL_TEXT.get(event.channel, "its anomaly score reached the alert level").format(z=event.channel_z)
    return (f"{what} {verb} to {_num(obs)} from a baseline of {_num(base)} ({how_far}) "
            f"since {iso(event.onset)}: {why}.")
