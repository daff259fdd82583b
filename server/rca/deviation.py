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

import functools
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

#: baseline points needed before a series is judged (10 at 60 s resolution is enough)
MIN_BASELINE_POINTS = 8
#: at least this many points after the onset
MIN_AFTER_POINTS = 2
BASELINE_S = 3600.0
AFTER_S = 1200.0
#: robust z a sustained shift must reach to count as a deviation
SIGNIFICANT_Z = 4.0

_ERROR = re.compile(r"^(errors?|err|errs|fail\w*|5xx|4xx|non2xx|exceptions?|faults?|reject\w*|timeouts?|timedout|"
                    r"unavailable|success|availability|panics?|crash\w*|restarts?)$")
_LATENCY = re.compile(r"^(latency|latencies|lat|duration|delay|rt|responsetime|elapsed|wait|p\d{2,3}|"
                      r"percentile|quantile|slow\w*)$")
_TRAFFIC_STRONG = re.compile(r"^(qps|rps|tps|requests?|reqs?|throughput|workload|load|traffic|calls|hits|ops|"
                             r"invocations?|messages?|msgs)$")
_TRAFFIC_WEAK = re.compile(r"^(count|total|rate|sum)$")
_CPU = re.compile(r"^(cpus?|cores?|load\d+|loadavg|throttl\w*|millicores|vcpu)$")
_MEMORY = re.compile(r"^(mem|memory|rss|heap|swap|gc|oom\w*|workingset|resident|pss|malloc)$")
_DISK = re.compile(r"^(disk\w*|fs|filesystem|inodes?|io|iops|iowait|volume|storage|blkio)$")
_NETWORK = re.compile(r"^(net|network|rx|tx|receive\w*|transmit\w*|packets?|sockets?|socket|conn|connections?|"
                      r"bandwidth|tcp|udp|retrans\w*|dropped|drops?)$")
_OTHER_RESOURCE = re.compile(r"^(threads?|fds?|goroutines|handles|pool|utili[sz]ation|usage|saturation)$")


def _tokens(name: str, service: str | None) -> tuple[str, ...]:
    """Lower-case tokens of a metric name (camelCase, ``_``/``-``/``.``/``:``/``/`` split),
    without a leading service name (``cartservice_cpu`` of ``cartservice`` -> ``cpu``)."""
    n = name
    if service:
        for sep in ("_", "-", ".", ":", "/"):
            if n.lower().startswith(service.lower() + sep) and len(n) > len(service) + 1:
                n = n[len(service) + 1:]
                break
    n = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", n)
    n = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", n)
    toks = [t for t in re.split(r"[^A-Za-z0-9]+", n.lower()) if t]
    # "response time", "working set", "load average" read as one word
    out: list[str] = []
    for t in toks:
        if out and (out[-1], t) in (("response", "time"), ("working", "set"), ("load", "average"),
                                    ("load", "avg"), ("disk", "io"), ("time", "out")):
            out[-1] = {"load": "loadavg", "time": "timeout"}.get(out[-1], out[-1] + t)
            continue
        out.append(t)
    return tuple(out)


@functools.lru_cache(maxsize=65536)
def metric_class(name: str, service: str | None = None) -> str:
    """``error`` / ``latency`` / ``resource`` / ``traffic`` / ``other`` from a metric name.

    Names are split into words (``container_cpu_usage_seconds_total``,
    ``CPUUtilization``, ``latency-90``, ``cartservice_workload`` of service
    ``cartservice``) and read with a precedence: errors, latency, throughput words
    (``workload``, ``qps``, ``requests`` ... : consequences, never a root's own deviation),
    resources (CPU, memory, disk, network, threads), then counts and rates."""
    toks = _tokens(name, service)
    if any(_ERROR.match(t) for t in toks) and not any(_NETWORK.match(t) for t in toks):
        return "error"
    if any(_LATENCY.match(t) for t in toks):
        return "latency"
    if any(t in ("seconds", "ms", "milliseconds", "secs") for t in toks) \
            and any(t in ("request", "requests", "http", "grpc", "rpc", "server", "client") for t in toks) \
            and not any(t in ("count", "total", "sum") for t in toks):
        return "latency"
    if _resource_of(toks) is not None or any(_OTHER_RESOURCE.match(t) for t in toks):
        return "resource"
    if any(_TRAFFIC_STRONG.match(t) for t in toks):
        return "traffic"
    if any(_ERROR.match(t) for t in toks):
        return "error"
    if any(_TRAFFIC_WEAK.match(t) for t in toks):
        return "traffic"
    return "other"


def _resource_of(toks: tuple[str, ...]) -> str | None:
    for kind, pat in (("cpu", _CPU), ("memory", _MEMORY), ("network", _NETWORK), ("disk", _DISK)):
        if any(pat.match(t) for t in toks):
            return kind
    return None


@functools.lru_cache(maxsize=65536)
def resource_kind(name: str, service: str | None = None) -> str | None:
    """``cpu`` / ``memory`` / ``disk`` / ``network`` for resource metric names."""
    return _resource_of(_tokens(name, service))


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
    level: float | None = None  # median robust z after the onset, in the direction of the largest

    @property
    def sustained_z(self) -> float:
        """How far the series moved and stayed: the geometric mean of the largest z and the
        median z after the onset (a burst that came and went, however tall, scores little;
        a shift held to the end of the window scores about its height)."""
        if self.level is None:
            return self.z if self.persistence >= 0.5 else self.z * self.persistence
        return float(np.sqrt(self.z * max(self.level, 0.0)))

    @property
    def ratio(self) -> float:
        """Observed level over the baseline (1 = unchanged; inf when the baseline is 0)."""
        if abs(self.baseline) <= 1e-12:
            return float("inf") if abs(self.observed) > 1e-12 else 1.0
        return self.observed / self.baseline


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
    level = float(np.median(zs * direction))
    return Deviation(z=z, direction=direction, first_ts=first, baseline=med, observed=float(np.median(y)),
                     n_before=int(pre.sum()), persistence=persistence, level=level)


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


def _vote(ts: np.ndarray, vals: np.ndarray, lo: float, hi: float, min_strength: float) -> tuple[float, float] | None:
    """One series' vote for the system onset: ``(when it departed from its baseline,
    weight)``. The departure is found from the series' clearest level shift in
    ``[lo, hi]`` by walking back to the last point still within 2 robust σ of the earlier
    level (a slow ramp departs well before its mid-ramp shift). The weight is the share
    of the later points that stay on the shifted side (a burst that came and went counts
    little)."""
    cp = change_point(ts, vals, lo, hi)
    if cp is None or cp[1] < min_strength:
        return None
    t, v = collapse(ts, vals)
    m = (t >= lo) & (t <= hi)
    t, v = t[m], v[m]
    k = int(np.searchsorted(t, cp[0]))
    before = v[:k]
    start = float(np.median(v[k:k + 3]))
    sign = 1.0 if start >= float(np.median(before)) else -1.0
    head = before[: max(4, k // 2)]
    base = float(np.median(head))
    if abs(start - base) < abs(float(np.median(before[-3:])) - base):
        return None  # back towards the earlier level: the end of a burst, not a departure
    scale = robust_scale(head, base)
    smooth = _rolling_median3(v[: k + 1])
    j = k
    while j > 0 and (smooth[j - 1] - base) * sign > 2.0 * scale:
        j -= 1
    after = v[k:]
    mid = 0.5 * (float(np.median(before)) + start)
    same = (after - mid) * sign > 0
    return float(t[j]), float(np.mean(same))


def consensus_onset(series: Mapping[K, tuple[np.ndarray, np.ndarray]], *, lo: float, hi: float,
                    window_s: float = 300.0, min_strength: float = 6.0,
                    first_seen: Mapping[K, float] | None = None) -> tuple[float, float] | None:
    """The system onset in ``[lo, hi]`` as the time most series shifted together and
    stayed shifted: ``(onset, support)``. Each series votes with its clearest single
    level shift, weighted by how much of the rest of the window stays shifted; the
    densest ``window_s`` cluster of votes wins (the earliest on ties) and its 25th
    percentile is the onset (early shifts lead, later ones follow). A burst on one noisy
    neighbour, or a blip, is one weak vote; a fault shifts its service and its callers
    together, for good. ``first_seen`` (e.g. a detector's anomaly starts per series) moves
    the onset earlier for a slow ramp whose level shift is found mid-ramp."""
    votes: list[tuple[float, float, K]] = []
    for key, (ts, vals) in series.items():
        got = _vote(ts, vals, lo, hi, min_strength)
        if got is not None:
            votes.append((got[0], got[1], key))
    if not votes:
        return None
    votes.sort(key=lambda x: x[0])
    t = np.array([x[0] for x in votes])
    w = np.array([x[1] for x in votes])
    ends = np.searchsorted(t, t + window_s, side="right")
    csum = np.concatenate([[0.0], np.cumsum(w)])
    score = csum[ends] - csum[np.arange(len(t))]
    i = int(np.argmax(np.round(score, 9)))  # first maximum = the earliest densest cluster
    members = votes[i:int(ends[i])]
    onset = float(np.percentile([x[0] for x in members], 25))
    if first_seen:
        seen = [first_seen[k] for _, _, k in members if k in first_seen and onset - 900.0 <= first_seen[k] < onset]
        if seen:
            onset = min(seen)
    return onset, float(score[i])
