"""Series helpers shared by the evidence signals (pure).

``Series`` maps ``(service, metric)`` to ``(timestamps, values)``. :class:`SeriesView`
sorts them once per incident and caches their binned, normalised forms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.model import Anomaly

Series = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]

SHIFT_BEFORE_S = 900.0
SHIFT_AFTER_S = 600.0
GRID_S = 30.0


def window_mean_std(ts: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> tuple[float, float, int]:
    a, b = np.searchsorted(ts, lo, side="left"), np.searchsorted(ts, hi, side="left")
    n = int(b - a)
    if n == 0:
        return 0.0, 0.0, 0
    seg = vals[a:b]
    return float(seg.mean()), float(seg.std()), n


def shift_z(ts: np.ndarray, vals: np.ndarray, t: float, *, before_s: float = SHIFT_BEFORE_S,
            after_s: float = SHIFT_AFTER_S) -> float:
    """Level shift at ``t``: (mean after - mean before) / robust scale of before."""
    mb, sb, nb = window_mean_std(ts, vals, t - before_s, t)
    ma, _, na = window_mean_std(ts, vals, t, t + after_s)
    if nb < 3 or na < 3:
        return 0.0
    scale = sb + 0.05 * abs(mb) + 1e-9
    return (ma - mb) / scale


def binned(ts: np.ndarray, vals: np.ndarray, lo: float, n_bins: int) -> np.ndarray:
    idx = ((ts - lo) // GRID_S).astype(np.int64)
    ok = (idx >= 0) & (idx < n_bins)
    s = np.bincount(idx[ok], weights=vals[ok], minlength=n_bins)
    c = np.bincount(idx[ok], minlength=n_bins)
    out = np.full(n_bins, np.nan)
    nz = c > 0
    out[nz] = s[nz] / c[nz]
    # forward/backward fill gaps
    if nz.any():
        first = int(np.argmax(nz))
        out[:first] = out[first]
        for i in range(first + 1, n_bins):
            if not nz[i]:
                out[i] = out[i - 1]
    return out


def zscore(x: np.ndarray) -> np.ndarray | None:
    if np.isnan(x).any():
        return None
    sd = float(x.std())
    if sd < 1e-12:
        return None
    z: np.ndarray = (x - x.mean()) / sd
    return z


class SeriesView:
    """Per-service metric access with cached binned/normalised forms."""

    def __init__(self, series: Series, *, onset: float) -> None:
        self.by_service: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for (svc, metric), (ts, vals) in sorted(series.items()):
            t = np.asarray(ts, dtype=np.float64)
            v = np.asarray(vals, dtype=np.float64)
            if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
                o = np.argsort(t, kind="stable")
                t, v = t[o], v[o]
            self.by_service.setdefault(svc, []).append((metric, t, v))
        self.grid_lo = onset - 1800.0
        self.n_bins = int(2700.0 // GRID_S)
        self._z: dict[tuple[str, str], np.ndarray | None] = {}

    def normalised(self, svc: str, metric: str) -> np.ndarray | None:
        key = (svc, metric)
        if key not in self._z:
            z = None
            for m, t, v in self.by_service.get(svc, []):
                if m == metric:
                    z = zscore(binned(t, v, self.grid_lo, self.n_bins))
            self._z[key] = z
        return self._z[key]


def reference(view: SeriesView, anomalies: Sequence[Anomaly]) -> np.ndarray | None:
    """The incident's reference shape: the mean of its anomalous series, signed by direction."""
    acc: list[np.ndarray] = []
    seen: set[tuple[str, str]] = set()
    for a in anomalies:
        if (a.service, a.metric) in seen:
            continue
        seen.add((a.service, a.metric))
        z = view.normalised(a.service, a.metric)
        if z is not None:
            acc.append(z if a.direction == "up" else -z)
    if not acc:
        return None
    return zscore(np.mean(acc, axis=0))


def recovered_by_series(view: SeriesView, anomalies: Sequence[Anomaly], after: float, until: float) -> float | None:
    """Time the anomalous series were back near their baselines after ``after`` (None if not)."""
    if not anomalies or until - after < 120.0:
        return None
    ok = 0
    for a in anomalies:
        found = False
        for m, t, v in view.by_service.get(a.service, []):
            if m != a.metric:
                continue
            mean, _, n = window_mean_std(t, v, after + 120.0, min(after + 720.0, until))
            if n >= 3 and abs(mean - a.baseline) <= 0.35 * abs(a.observed - a.baseline) + 1e-9:
                found = True
        ok += int(found)
    return after + 300.0 if ok >= max(1, int(np.ceil(0.6 * len(anomalies)))) else None
