"""Streaming, vectorised anomaly detector (pure: no I/O).

One :class:`StreamingDetector` holds the state of many series in column arrays and
advances any subset of them by one point per :meth:`StreamingDetector.step` call, with
NumPy operations across the series (no per-series Python loop).

Per series and per point (all strictly online, only points at or before the current one):

* **Baseline.** ``level`` is a robust exponentially weighted mean (updates clipped at
  ``clip`` scales so spikes barely move it); ``scale`` is an exponentially weighted
  mean absolute residual (x1.25, ~sigma for Gaussian noise), floored by
  ``abs_floor`` and ``rel_floor * |level|`` so near-constant series do not alert on
  tiny absolute moves.  A fast scale tracks variance changes.
* **Change points.** Two-sided CUSUM on the robust z (increments clipped at
  ``z_clip`` so one blip cannot confirm a shift).  A shift is *confirmed* when the
  CUSUM passes ``h`` and the last ``persist`` points were all beyond ``z_persist``,
  or when the CUSUM passes ``h_strong`` (slow, moderate shifts).  On confirmation
  the level re-bases to the mean since the CUSUM excursion started (its start is the
  change-point estimate, ``onset``).
* **Events.** A confirmed shift opens an anomaly (at most one open per series) with
  the pre-shift baseline; it closes after ``recover_points`` consecutive points back
  within ``z_close`` baseline scales (or ``close_rel`` relative) of that baseline.
* **Per-point score** in [0, 1]: ``e / (1 + e)`` with ``e`` the larger of the spike
  evidence ``|z| / z_spike``, the CUSUM evidence ``cusum / h`` and the variance
  evidence; after an alert (``e >= 1``) the next ``holdoff`` points are damped by
  ``holdoff_factor`` so one anomaly yields one alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

# --- state layout: one row per field, one column per series -------------------------
_FIELDS = (
    "n", "last_ts", "level", "scale", "fscale", "cp", "cn", "cp_t0", "cn_t0",
    "cp_sum", "cp_cnt", "cn_sum", "cn_cnt", "run", "open", "onset", "base", "bscale",
    "osum", "ocnt", "rec", "rec_t0", "hold", "run_t0", "run_sum",
)
_F = {name: i for i, name in enumerate(_FIELDS)}
N, LAST_TS, LEVEL, SCALE, FSCALE = (_F[k] for k in ("n", "last_ts", "level", "scale", "fscale"))
CP, CN, CP_T0, CN_T0 = (_F[k] for k in ("cp", "cn", "cp_t0", "cn_t0"))
CP_SUM, CP_CNT, CN_SUM, CN_CNT, RUN = (_F[k] for k in ("cp_sum", "cp_cnt", "cn_sum", "cn_cnt", "run"))
OPEN, ONSET, BASE, BSCALE, OSUM, OCNT = (_F[k] for k in ("open", "onset", "base", "bscale", "osum", "ocnt"))
REC, REC_T0, HOLD, RUN_T0, RUN_SUM = (_F[k] for k in ("rec", "rec_t0", "hold", "run_t0", "run_sum"))
NF = len(_FIELDS)
STATE_VERSION = 1


@dataclass(frozen=True)
class DetectorConfig:
    alpha_level: float = 0.02      # EW weight of the baseline level per point
    alpha_scale: float = 0.01      # EW weight of the (slow) scale per point
    alpha_fscale: float = 0.1      # EW weight of the fast scale (variance changes)
    clip: float = 3.0              # residuals clipped at clip*scale when updating level/scale
    abs_floor: float = 1e-9        # absolute floor of the scale
    rel_floor: float = 0.01        # relative floor of the scale (fraction of |level|)
    warmup: int = 30               # points before a series may alert or open
    k: float = 0.5                 # CUSUM drift allowance (in scales)
    h: float = 5.0                 # CUSUM decision interval (with persistence)
    h_strong: float = 15.0         # CUSUM decision interval without persistence
    z_clip: float = 4.0            # CUSUM increment clip (one blip adds at most z_clip - k)
    z_persist: float = 2.5         # |z| a point needs to count towards persistence
    persist: int = 3               # consecutive points beyond z_persist to confirm a shift
    min_rel_change: float = 0.02   # an open needs |observed - baseline| >= this * |baseline|
    z_spike: float = 6.0           # |z| giving spike evidence 1
    var_ratio: float = 4.0         # fast/slow scale ratio giving variance evidence 1
    z_close: float = 2.0           # close: within z_close baseline scales of baseline ...
    close_rel: float = 0.05        # ... or within close_rel * |baseline|
    recover_points: int = 6        # consecutive near-baseline points to close
    holdoff: int = 50              # points damped after an alert (per-point score only)
    holdoff_factor: float = 0.5    # damping of the per-point score during hold-off


@dataclass(slots=True)
class DetectorEvent:
    series: int
    kind: Literal["open", "close"]
    ts: float
    onset: float
    direction: Literal["up", "down"]
    score: float
    baseline: float
    observed: float


@dataclass(slots=True)
class StepResult:
    scores: np.ndarray
    events: list[DetectorEvent]


class StreamingDetector:
    """Per-series streaming detector, vectorised over the series of one step."""

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DetectorConfig()
        self._s = np.zeros((NF, max(1, capacity)), dtype=np.float64)
        self.n_series = 0

    # -- capacity --------------------------------------------------------------------
    def ensure(self, n_series: int) -> None:
        cap = self._s.shape[1]
        if n_series > cap:
            new_cap = max(n_series, cap * 2)
            grown = np.zeros((NF, new_cap), dtype=np.float64)
            grown[:, :cap] = self._s
            self._s = grown
        self.n_series = max(self.n_series, n_series)

    # -- persistence -----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array([STATE_VERSION], dtype=np.int64),
            "fields": np.array(_FIELDS),
            "state": self._s[:, : self.n_series].copy(),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        fields = [str(f) for f in state["fields"]]
        data = np.asarray(state["state"], dtype=np.float64)
        n = data.shape[1]
        self._s = np.zeros((NF, max(n, self._s.shape[1])), dtype=np.float64)
        for i, name in enumerate(fields):
            if name in _F:
                self._s[_F[name], :n] = data[i]
        self.n_series = n

    # -- the hot path ----------------------------------------------------------------
    def step(self, idx: np.ndarray, ts: np.ndarray, values: np.ndarray) -> StepResult:
        cfg = self.config
        idx = np.asarray(idx, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        if idx.size == 0:
            return StepResult(np.zeros(0), [])
        hi = int(idx.max()) + 1
        if hi > self.n_series:
            self.ensure(hi)
        s = self._s[:, idx]  # gathered copy (NF, k)

        n = s[N]
        first = n == 0
        level = np.where(first, x, s[LEVEL])
        absl = np.abs(level)
        floor = np.maximum(cfg.abs_floor, cfg.rel_floor * absl)
        sc = np.maximum(s[SCALE], floor)
        r = x - level
        z = r / sc
        warm = n >= cfg.warmup

        # CUSUM with clipped increments; track excursion start and sums.
        zc = np.clip(z, -cfg.z_clip, cfg.z_clip)
        cp_old, cn_old = s[CP], s[CN]
        cp = np.maximum(0.0, cp_old + zc - cfg.k)
        cn = np.maximum(0.0, cn_old - zc - cfg.k)
        cp_new = (cp_old <= 0) & (cp > 0)
        cn_new = (cn_old <= 0) & (cn > 0)
        cp_t0 = np.where(cp_new, ts, s[CP_T0])
        cn_t0 = np.where(cn_new, ts, s[CN_T0])
        cp_sum = np.where(cp > 0, np.where(cp_new, 0.0, s[CP_SUM]) + x, 0.0)
        cp_cnt = np.where(cp > 0, np.where(cp_new, 0.0, s[CP_CNT]) + 1.0, 0.0)
        cn_sum = np.where(cn > 0, np.where(cn_new, 0.0, s[CN_SUM]) + x, 0.0)
        cn_cnt = np.where(cn > 0, np.where(cn_new, 0.0, s[CN_CNT]) + 1.0, 0.0)

        # Persistence run: +k consecutive points above z_persist, -k below -z_persist.
        run_old = s[RUN]
        up_pt = z >= cfg.z_persist
        dn_pt = z <= -cfg.z_persist
        run = np.where(up_pt, np.maximum(run_old, 0.0) + 1.0, np.where(dn_pt, np.minimum(run_old, 0.0) - 1.0, 0.0))
        run_t0 = np.where(np.abs(run) == 1.0, ts, s[RUN_T0])
        run_sum = np.where(np.abs(run) == 1.0, 0.0, s[RUN_SUM]) + x

        conf_up = warm & (cp > cfg.h) & ((run >= cfg.persist) | (cp > cfg.h_strong))
        conf_dn = warm & (cn > cfg.h) & ((run <= -cfg.persist) | (cn > cfg.h_strong))
        conf_dn &= ~conf_up
        conf = conf_up | conf_dn

        # Per-point evidence and score (before state reset).
        fsc_old = np.maximum(s[FSCALE], floor)
        e_spike = np.abs(z) / cfg.z_spike
        e_cusum = np.maximum(cp, cn) / cfg.h
        absr = np.abs(r)
        fscale = np.where(first, 0.0, s[FSCALE] + cfg.alpha_fscale * (1.25 * np.minimum(absr, cfg.z_clip * sc) - s[FSCALE]))
        e_var = np.maximum(fscale, floor) / (sc * cfg.var_ratio)
        e = np.maximum(np.maximum(e_spike, e_cusum), e_var)
        del fsc_old
        hold = s[HOLD]
        damp = np.where(hold > 0, cfg.holdoff_factor, 1.0)
        scores = np.where(warm, damp * e / (1.0 + e), 0.0)
        alert = warm & (e >= 1.0)
        hold = np.where(alert & (hold <= 0), float(cfg.holdoff), np.maximum(hold - 1.0, 0.0))

        # Baseline updates (robust); re-base on confirmed shifts.
        a_l = np.maximum(cfg.alpha_level, 1.0 / (n + 1.0))
        a_s = np.maximum(cfg.alpha_scale, 1.0 / np.maximum(n, 1.0))
        lim = np.where(warm, cfg.clip * sc, np.inf)
        rc = np.clip(r, -lim, lim)
        new_level = level + a_l * rc
        new_scale = np.where(first, 0.0, s[SCALE] + a_s * (1.25 * np.abs(rc) - s[SCALE]))
        run_ok = np.abs(run) >= cfg.persist
        seg_sum = np.where(run_ok, run_sum, np.where(conf_up, cp_sum, cn_sum))
        seg_cnt = np.where(run_ok, np.abs(run), np.where(conf_up, cp_cnt, cn_cnt))
        shift_mean = seg_sum / np.maximum(seg_cnt, 1.0)
        # Onset: start of the persistent run when it confirmed the shift, else the
        # start of the CUSUM excursion (the classic CUSUM change-point estimate).
        onset_est = np.where(run_ok, run_t0, np.where(conf_up, cp_t0, cn_t0))
        new_level = np.where(conf, shift_mean, new_level)
        cp = np.where(conf, 0.0, cp)
        cn = np.where(conf, 0.0, cn)
        run = np.where(conf, 0.0, run)
        run_sum = np.where(conf, 0.0, run_sum)

        # Anomaly events.
        events: list[DetectorEvent] = []
        is_open = s[OPEN]
        rel_ok = np.abs(shift_mean - level) >= cfg.min_rel_change * absl
        opening = conf & (is_open == 0) & rel_ok
        opening_dir = np.where(conf_up, 1.0, -1.0)
        base = np.where(opening, level, s[BASE])
        bscale = np.where(opening, sc, s[BSCALE])
        onset = np.where(opening, onset_est, s[ONSET])
        osum = np.where(opening, seg_sum, s[OSUM] + np.where(is_open != 0, x, 0.0))
        ocnt = np.where(opening, seg_cnt, s[OCNT] + np.where(is_open != 0, 1.0, 0.0))
        was_open = is_open != 0
        near = np.abs(x - base) <= np.maximum(cfg.z_close * bscale, cfg.close_rel * np.abs(base))
        rec_inc = was_open & near
        rec = np.where(rec_inc, s[REC] + 1.0, 0.0)
        rec_t0 = np.where(rec_inc & (s[REC] == 0), ts, s[REC_T0])
        closing = was_open & (rec >= cfg.recover_points)
        new_open = np.where(opening, opening_dir, np.where(closing, 0.0, is_open))

        if opening.any() or closing.any():
            for j in np.flatnonzero(opening):
                obs = float(osum[j] / max(ocnt[j], 1.0))
                events.append(DetectorEvent(
                    series=int(idx[j]), kind="open", ts=float(ts[j]), onset=float(min(onset[j], ts[j])),
                    direction="up" if opening_dir[j] > 0 else "down",
                    score=float(abs(obs - base[j]) / bscale[j]), baseline=float(base[j]), observed=obs,
                ))
            for j in np.flatnonzero(closing):
                events.append(DetectorEvent(
                    series=int(idx[j]), kind="close", ts=float(ts[j]), onset=float(rec_t0[j]),
                    direction="up" if is_open[j] > 0 else "down",
                    score=float(abs(osum[j] / max(ocnt[j], 1.0) - base[j]) / bscale[j]),
                    baseline=float(base[j]), observed=float(x[j]),
                ))

        # Scatter the new state back.
        out = s
        out[N] = n + 1.0
        out[LAST_TS] = ts
        out[LEVEL] = new_level
        out[SCALE] = new_scale
        out[FSCALE] = fscale
        out[CP], out[CN], out[CP_T0], out[CN_T0] = cp, cn, cp_t0, cn_t0
        out[CP_SUM] = np.where(conf, 0.0, cp_sum)
        out[CP_CNT] = np.where(conf, 0.0, cp_cnt)
        out[CN_SUM] = np.where(conf, 0.0, cn_sum)
        out[CN_CNT] = np.where(conf, 0.0, cn_cnt)
        out[RUN] = run
        out[RUN_T0] = run_t0
        out[RUN_SUM] = run_sum
        out[OPEN], out[ONSET], out[BASE], out[BSCALE] = new_open, onset, base, bscale
        out[OSUM], out[OCNT] = osum, ocnt
        out[REC] = np.where(closing, 0.0, rec)
        out[REC_T0] = rec_t0
        out[HOLD] = hold
        self._s[:, idx] = out
        return StepResult(np.clip(scores, 0.0, 1.0), events)


def score_series(ts: np.ndarray, values: np.ndarray, config: DetectorConfig | None = None) -> np.ndarray:
    """Online scores for one series (calls StreamingDetector.step point by point)."""
    det = StreamingDetector(config, capacity=1)
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(values.shape[0], dtype=np.float64)
    idx = np.zeros(1, dtype=np.int64)
    for i in range(values.shape[0]):
        out[i] = det.step(idx, ts[i : i + 1], values[i : i + 1]).scores[0]
    return out
