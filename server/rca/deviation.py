"""Per-series deviation against each metric's own baseline (pure, robust statistics).

Built for real recordings: any metric name (classified by name patterns), missing
series, irregular or coarse sampling (10 points of baseline at 60 s are enough), points
of several label sets at one timestamp (averaged), one-point blips (a 3-point rolling
median), baselines whose MAD is 0 (floors on the scale).

* :func:`metric_class` sorts metric names into ``resource`` / ``latency`` / ``error`` /
  ``traffic`` / ``other``.
* :func:`deviation` compares a series after the onset with its own baseline before it
  (median and MAD, BARO-style robust scaling): the largest sustained robust z-score, when
  it first crossed a threshold, and its direction.
* :func:`nsigma` is the NSigma baseline's score (mean and standard deviation, raw max).
* :func:`estimate_onset` finds the system's onset from the series themselves (for
  incidents opened by an external alert, with no anomaly of our own).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: baseline points needed before a series is judged (10 at 60 s resolution is enough)
MIN_BASELINE_POINTS = 8
#: at least this many points after the onset
MIN_AFTER_POINTS = 2
BASELINE_S = 3600.0
AFTER_S = 1200.0
#: robust z a sustained shift must reach to count as a deviation
SIGNIFICANT_Z = 4.0

_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("error", re.compile(r"err|fail|5xx|4xx|exception|fault|reject|timeout|drop", re.I)),
    ("latency", re.compile(r"latency|duration|delay|response_?time|\brt\b|_rt$|p\d\d|elapsed|wait", re.I)),
    ("resource", re.compile(r"cpu|mem|rss|heap|disk|fs_|filesystem|inode|net|rx|tx|io|socket|thread|gc|"
                            r"load|swap|bandwidth|packet|conn", re.I)),
    ("traffic", re.compile(r"qps|rps|tps|request|throughput|count|calls|hits|ops|rate", re.I)),
)


def metric_class(name: str) -> str:
    """``error`` / ``latency`` / ``resource`` / ``traffic`` / ``other`` from a metric name."""
    for cls, pat in _CLASSES:
        if pat.search(name):
            return cls
    return "other"


def resource_kind(name: str) -> str | None:
    """``cpu`` / ``memory`` / ``disk`` / ``network`` for resource metric names."""
    n = name.lower()
    if "cpu" in n or "load" in n:
        return "cpu"
    if "mem" in n or "rss" in n or "heap" in n or "swap" in n or "gc" in n:
        return "memory"
    if "disk" in n or "fs" in n or "inode" in n or re.search(r"\bio\b|_io|io_", n):
        return "disk"
    if "net" in n or "rx" in n or "tx" in n or "packet" in n or "socket" in n or "conn" in n or "bandwidth" in n:
        return "network"
    return None


def collapse(ts: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, finite, one value per timestamp (several label sets at one time averaged)."""
    t = np.asarray(ts, dtype=np.float64)
    v = np.asarray(vals, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if len(t) == 0:
        return t, v
    if len(t) > 1 and not bool(np.all(t[1:] > t[:-1])):
        u, inv = np.unique(t, return_inverse=True)
        s = np.bincount(inv, weights=v, minlength=len(u))
        c = np.bincount(inv, minlength=len(u))
        return u, s / c
    return t, v


def robust_scale(x: np.ndarray, med: float) -> float:
    """1.4826 MAD with floors (a tenth of the std, 1 % of the level) so flat baselines
    do not turn noise into huge scores."""
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    return max(mad, 0.1 * float(np.std(x)), 0.01 * abs(med), 1e-9)


def _rolling_median3(x: np.ndarray) -> np.ndarray:
    if len(x) < 3:
        return x
    stack = np.vstack([x[:-2], x[1:-1], x[2:]])
    mid = np.median(stack, axis=0)
    return np.concatenate([[float(np.median(x[:2]))], mid, [float(np.median(x[-2:]))]])


@dataclass(frozen=True, slots=True)
class Deviation:
    z: float  # largest sustained robust z after the onset (absolute value)
    direction: int  # +1 up, -1 down
    first_ts: float | None  # first time the sustained z crossed the threshold
    baseline: float
    observed: float  # median after the onset
    n_before: int
    persistence: float = 1.0  # share of points from the first crossing on that stay beyond the threshold

    @property
    def sustained_z(self) -> float:
        """``z`` discounted for a deviation that came and went (persistence below one half)."""
        return self.z if self.persistence >= 0.5 else self.z * self.persistence


def deviation(ts: np.ndarray, vals: np.ndarray, onset: float, *, baseline_s: float = BASELINE_S,
              after_s: float = AFTER_S, guard_s: float = 0.0) -> Deviation | None:
    """Robust deviation of one series after ``onset`` against its own baseline before it.

    None when the series has fewer than :data:`MIN_BASELINE_POINTS` points before the
    onset or :data:`MIN_AFTER_POINTS` after it.
    """
    t, v = collapse(ts, vals)
    pre = (t >= onset - baseline_s) & (t < onset - guard_s)
    post = (t >= onset) & (t <= onset + after_s)
    if int(pre.sum()) < MIN_BASELINE_POINTS or int(post.sum()) < MIN_AFTER_POINTS:
        return None
    x = v[pre]
    med = float(np.median(x))
    scale = robust_scale(x, med)
    y = v[post]
    zs = (_rolling_median3(y) - med) / scale
    i = int(np.argmax(np.abs(zs)))
    z = float(abs(zs[i]))
    direction = 1 if zs[i] >= 0 else -1
    thr = max(SIGNIFICANT_Z, 0.3 * z)
    cross = np.flatnonzero(np.abs(zs) >= thr)
    first = float(t[post][cross[0]]) if len(cross) and z >= SIGNIFICANT_Z else None
    persistence = float(np.mean(np.abs(zs[cross[0]:]) >= thr)) if len(cross) else 0.0
    return Deviation(z=z, direction=direction, first_ts=first, baseline=med, observed=float(np.median(y)),
                     n_before=int(pre.sum()), persistence=persistence)


def nsigma(ts: np.ndarray, vals: np.ndarray, onset: float, *, baseline_s: float = BASELINE_S,
           after_s: float = AFTER_S) -> float | None:
    """NSigma baseline: max |x - mean| / std after the onset (mean and std of the baseline)."""
    t, v = collapse(ts, vals)
    pre = (t >= onset - baseline_s) & (t < onset)
    post = (t >= onset) & (t <= onset + after_s)
    if int(pre.sum()) < MIN_BASELINE_POINTS or int(post.sum()) < MIN_AFTER_POINTS:
        return None
    x = v[pre]
    sd = max(float(np.std(x)), 1e-9)
    return float(np.max(np.abs(v[post] - float(np.mean(x))))) / sd


def change_point(ts: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> tuple[float, float] | None:
    """The most likely single level shift in ``[lo, hi]``: ``(time, strength)``, the
    strength a standardised mean-shift statistic (noise from first differences, robust)."""
    t, v = collapse(ts, vals)
    m = (t >= lo) & (t <= hi)
    t, v = t[m], v[m]
    n = len(v)
    if n < 2 * 4:
        return None
    d = np.diff(v)
    noise = max(1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0), 0.01 * abs(float(np.median(v))),
                1e-9)
    c = np.cumsum(v)
    k = np.arange(4, n - 3)
    left = c[k - 1] / k
    right = (c[-1] - c[k - 1]) / (n - k)
    stat = np.abs(right - left) * np.sqrt(k * (n - k) / n) / noise
    j = int(np.argmax(stat))
    return float(t[k[j]]), float(stat[j])


def estimate_onset(series: Iterable[tuple[np.ndarray, np.ndarray]], *, around: float, before_s: float = 1800.0,
                   after_s: float = 300.0, min_strength: float = 6.0) -> float | None:
    """The system onset near ``around`` (e.g. an alert's start): the 25th percentile of the
    change points of the series that shifted clearly (early shifts lead, later ones follow)."""
    found = []
    for ts, vals in series:
        cp = change_point(ts, vals, around - before_s, around + after_s)
        if cp is not None and cp[1] >= min_strength:
            found.append(cp[0])
    if not found:
        return None
    return float(np.percentile(found, 25))
