"""Independent implementation of NAB scoring (pure: arrays in, numbers out).

Written from ``datasets/nab/SCORING.md``: per-row contributions with the scaled
sigmoid, only the earliest detection in a window counts, false positives weighted by
their distance after the previous window (``w - 1`` denominator), a probationary
period of ``min(floor(0.15 n), 750)`` rows, one threshold per (detector, profile)
across the corpus (stored or found by an exhaustive sweep, highest threshold on
ties), and normalisation against the null and perfect detectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def scaled_sigmoid(y: float) -> float:
    """S(y) = -1 for y > 3, else 2*sigma(-5y) - 1."""
    if y > 3.0:
        return -1.0
    return 2.0 * sigmoid(-5.0 * y) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(n: int) -> int:
    return min(math.floor(0.15 * n), 750)


@dataclass(frozen=True)
class ScoringFile:
    """One corpus file: its per-row scores and its windows as inclusive row ranges."""

    name: str
    scores: np.ndarray
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class RowTable:
    """Every scored row (index >= P) of a corpus, with its unit contributions."""

    scores: np.ndarray      # anomaly score per row
    window: np.ndarray      # global window id (>= 0) if the row is inside a window, else -1
    tp_unit: np.ndarray     # S(y)/maxTP for rows inside a window (times tpWeight)
    fp_unit: np.ndarray     # S(y) after the previous window, or -1 (times fpWeight)
    n_windows: int          # counted windows


def row_contributions(n: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row (window index or -1, tp unit, fp unit) for a file of ``n`` rows."""
    win = np.full(n, -1, dtype=np.int64)
    tp = np.zeros(n)
    fp = np.full(n, -1.0)
    rows = np.arange(n)
    prev_end = -1
    prev_w = 0
    for k, (left, right) in enumerate(windows):
        w = right - left + 1
        inside = rows[left : right + 1]
        win[left : right + 1] = k
        y = -(right - inside + 1) / w
        tp[left : right + 1] = (2.0 / (1.0 + np.exp(5.0 * y)) - 1.0) / MAX_TP
        if prev_end >= 0:
            _fill_fp(fp, prev_end, prev_w, left)
        prev_end, prev_w = right, w
    if prev_end >= 0:
        _fill_fp(fp, prev_end, prev_w, n)
    return win, tp, fp


def _fill_fp(fp: np.ndarray, prev_end: int, prev_w: int, stop: int) -> None:
    i = np.arange(prev_end + 1, stop)
    if i.size == 0:
        return
    y = (i - prev_end) / (prev_w - 1) if prev_w > 1 else np.full(i.size, np.inf)
    val = 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 50.0))) - 1.0
    fp[prev_end + 1 : stop] = np.where(y > 3.0, -1.0, val)


def build_table(files: Sequence[ScoringFile]) -> RowTable:
    parts_s, parts_w, parts_tp, parts_fp = [], [], [], []
    offset = 0
    n_windows = 0
    for f in files:
        n = int(f.scores.shape[0])
        p = probation_rows(n)
        win, tp, fp = row_contributions(n, f.windows)
        counted = [k for k, (_, r) in enumerate(f.windows) if r >= p]
        remap = np.full(len(f.windows) + 1, -1, dtype=np.int64)
        for j, k in enumerate(counted):
            remap[k] = offset + j
        gw = np.where(win >= 0, remap[win], -1)
        parts_s.append(np.asarray(f.scores, dtype=np.float64)[p:])
        parts_w.append(gw[p:])
        parts_tp.append(tp[p:])
        parts_fp.append(fp[p:])
        offset += len(counted)
        n_windows += len(counted)
    return RowTable(
        scores=np.concatenate(parts_s) if parts_s else np.zeros(0),
        window=np.concatenate(parts_w) if parts_w else np.zeros(0, dtype=np.int64),
        tp_unit=np.concatenate(parts_tp) if parts_tp else np.zeros(0),
        fp_unit=np.concatenate(parts_fp) if parts_fp else np.zeros(0),
        n_windows=n_windows,
    )


def raw_score(table: RowTable, profile: Profile, threshold: float) -> float:
    """Corpus raw score at one threshold (detection: score >= threshold)."""
    det = table.scores >= threshold
    outside = det & (table.window < 0)
    total = float(profile.fp_weight * table.fp_unit[outside].sum())
    best = np.full(table.n_windows, -profile.fn_weight)
    inside = det & (table.window >= 0)
    if inside.any():
        np.maximum.at(best, table.window[inside], profile.tp_weight * table.tp_unit[inside])
    return total + float(best.sum())


def sweep(table: RowTable, profile: Profile) -> tuple[float, float]:
    """Exhaustive threshold sweep: (best threshold, its raw score); ties -> highest threshold."""
    base = -profile.fn_weight * table.n_windows
    if table.scores.size == 0:
        return 1.1, base
    order = np.argsort(-table.scores, kind="stable")
    s = table.scores[order]
    w = table.window[order]
    delta = np.where(w < 0, profile.fp_weight * table.fp_unit[order], 0.0)
    tp = profile.tp_weight * table.tp_unit[order]
    inside = np.flatnonzero(w >= 0)
    if inside.size:
        wi = w[inside]
        grp = np.argsort(wi, kind="stable")  # rows of each window, in descending-score order
        rows = inside[grp]
        wins = wi[grp]
        vals = tp[rows]
        starts = np.flatnonzero(np.r_[True, wins[1:] != wins[:-1]])
        cummax = np.empty_like(vals)
        for a, b in zip(starts, np.r_[starts[1:], vals.size], strict=True):
            cummax[a:b] = np.maximum.accumulate(vals[a:b])
        prev = np.empty_like(cummax)
        prev[1:] = cummax[:-1]
        prev[starts] = -profile.fn_weight
        delta[rows] = cummax - prev
    running = base + np.cumsum(delta)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    cand_raw = np.r_[base, running[ends]]
    cand_thr = np.r_[1.1, s[ends]]
    best = int(np.argmax(cand_raw))
    return float(cand_thr[best]), float(cand_raw[best])


def normalise(raw: float, profile: Profile, n_windows: int) -> float:
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    score: float


def score_corpus(
    files: Sequence[ScoringFile], thresholds: dict[str, float] | None = None
) -> dict[str, ProfileResult]:
    """Score every profile: at the given thresholds, else at the swept optimum."""
    table = build_table(files)
    out: dict[str, ProfileResult] = {}
    for name, prof in PROFILES.items():
        if thresholds is not None and name in thresholds:
            thr = thresholds[name]
            raw = raw_score(table, prof, thr)
        else:
            thr, raw = sweep(table, prof)
        out[name] = ProfileResult(name, thr, raw, normalise(raw, prof, table.n_windows))
    return out
