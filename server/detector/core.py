"""Streaming, vectorised anomaly detector (pure: no I/O).

One :class:`StreamingDetector` holds the state of many series in column arrays and
advances any subset of them by one point per :meth:`StreamingDetector.step` call, with
NumPy operations across the series (no per-series Python loop on the hot path).
Everything is strictly online: a point's score and events depend only on the points at
or before it.

**Baselines** (per series)

* ``level``: robust exponentially weighted mean (updates clipped at ``clip`` scales so
  spikes barely move it), re-based on confirmed level shifts; ``scale``: EW mean
  absolute residual (x1.25, ~sigma for Gaussian noise), floored by ``abs_floor`` and
  ``rel_floor * |level|`` so near-constant series do not alert on tiny moves.
* A daily seasonal model (``season_bins`` profile + slow level) learnt alongside; it is
  used instead of the plain level once it has ``season_days`` of history and its error
  is below ``season_gain`` times the plain model's (online model selection).

**Change points and events** (what the server uses)

Two-sided CUSUM on the robust z, increments clipped at ``z_clip`` so one blip cannot
confirm a shift.  A shift is *confirmed* when the CUSUM passes ``h`` and the last
``persist`` points were all beyond ``z_persist`` scales, or when the CUSUM passes
``h_strong`` (slow, moderate shifts).  Its onset is the first point of the persistent
run (else the start of the CUSUM excursion).  A confirmed shift opens an anomaly (at most
one open per series) with the pre-shift baseline; it closes after ``recover_points``
consecutive points back within ``z_close`` baseline scales (or ``close_rel``
relative) of that baseline.

**Per-point score** in [0, 1] (what NAB scores)

An ensemble of three surprise channels, each standardised against its own long-run
distribution in that series (EW mean/variance over ~``long_points`` points, the idea of
Numenta's anomaly likelihood) so every series gets its own adaptive threshold:

* level: short EW average of ``log1p(|z| / z_a)``, z against the (seasonal) baseline;
* innovation: the same on the residual of an online AR(1) prediction of the residual
  (sudden jumps in autocorrelated series);
* drift: fast EW mean against a slow level (gradual, long anomalies).

``e = max(channel surprise) / q0`` and the score is ``e / (1 + e)`` (0.5 = alert).  After an
alert the next ``holdoff`` points are damped by ``holdoff_factor`` (one alert per
anomaly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

# --- state layout: one row per field, one column per series -------------------------
_FIELDS = (
    # baseline and CUSUM / events
    "n", "last_ts", "level", "scale", "cp", "cn", "cp_t0", "cn_t0", "cp_sum", "cp_cnt",
    "cn_sum", "cn_cnt", "run", "run_t0", "run_sum", "open", "onset", "base", "bscale",
    "osum", "ocnt", "rec", "rec_t0", "hold",
    # seasonal model
    "slevel", "sscale", "samp", "err0", "err1", "t0", "dt",
    # score channels
    "avg", "lmu", "lvar", "rprev", "rcov", "rvar", "uscale", "aavg", "amu", "avar",
    "xf", "ls", "ss", "smu", "svar",
)
_F = {name: i for i, name in enumerate(_FIELDS)}
(N, LAST_TS, LEVEL, SCALE, CP, CN, CP_T0, CN_T0, CP_SUM, CP_CNT, CN_SUM, CN_CNT, RUN, RUN_T0,
 RUN_SUM, OPEN, ONSET, BASE, BSCALE, OSUM, OCNT, REC, REC_T0, HOLD,
 SLEVEL, SSCALE, SAMP, ERR0, ERR1, T0, DT,
 AVG, LMU, LVAR, RPREV, RCOV, RVAR, USCALE, AAVG, AMU, AVAR,
 XF, LS, SS, SMU, SVAR) = range(len(_FIELDS))
NF = len(_FIELDS)
STATE_VERSION = 2
DAY = 86400.0


@dataclass(frozen=True)
class DetectorConfig:
    # baseline
    alpha_level: float = 0.02      # EW weight of the baseline level per point
    alpha_scale: float = 0.01      # EW weight of the scale per point
    clip: float = 3.0              # residuals clipped at clip*scale when updating level/scale
    abs_floor: float = 1e-9        # absolute floor of the scale
    rel_floor: float = 0.01        # relative floor of the scale (fraction of |level|)
    warmup: int = 30               # points before a series may alert or open
    # daily seasonality
    season_bins: int = 144         # daily profile resolution (0: no seasonal model)
    season_days: float = 2.0       # history needed before the seasonal model may be used
    season_gain: float = 0.8       # used when its error < season_gain * plain model's error
    alpha_slevel: float = 0.0005   # level of the seasonal model, per point
    alpha_season: float = 0.3      # profile update per visit of a bin (1/days at first)
    season_clip: float = 3.0       # profile updates clipped at this many spreads
    err_points: int = 300          # memory of the model-selection errors
    # change points and events
    k: float = 0.5                 # CUSUM drift allowance (in scales)
    h: float = 10.0                # CUSUM decision interval (with persistence)
    h_strong: float = 30.0         # CUSUM decision interval without persistence
    z_clip: float = 4.0            # CUSUM increment clip (one blip adds at most z_clip - k)
    z_persist: float = 2.5         # |z| a point needs to count towards persistence
    persist: int = 3               # consecutive points beyond z_persist to confirm a shift
    min_rel_change: float = 0.02   # an open needs |observed - baseline| >= this * |baseline|
    z_close: float = 2.0           # close: within z_close baseline scales of baseline ...
    close_rel: float = 0.05        # ... or within close_rel * |baseline|
    recover_points: int = 6        # consecutive near-baseline points to close
    # per-point score
    z_a: float = 4.0               # raw surprise is log1p(|z| / z_a)
    alpha_avg: float = 0.2         # short EW average of the raw surprise (~10 points)
    long_points: int = 4000        # memory of each channel's long-run distribution
    sd_floor: float = 0.01         # floor of a channel's long-run sd
    ar_w: float = 1.0              # weight of the AR(1) innovation channel (0: off)
    ar_points: int = 500           # memory of the AR(1) coefficient and innovation scale
    slow_w: float = 1.0            # weight of the drift channel (0: off)
    alpha_xf: float = 0.2          # fast mean of the drift channel
    alpha_ls: float = 0.002        # slow level of the drift channel
    q0: float = 4.5                # standardised surprise giving score 0.5 (an alert)
    holdoff: int = 100             # points damped after an alert
    holdoff_factor: float = 0.5    # damping of the score during hold-off


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


def _ew(old: np.ndarray, new: np.ndarray, alpha: np.ndarray | float, first: np.ndarray, init: float | np.ndarray
        ) -> np.ndarray:
    return np.where(first, init, old + alpha * (new - old))


def _standardise(value: np.ndarray, mu: np.ndarray, var: np.ndarray, a_long: np.ndarray, first: np.ndarray,
                 sd_floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided surprise of ``value`` against its running mean/variance, and the update."""
    q = np.maximum(0.0, (value - mu) / np.maximum(np.sqrt(var), sd_floor))
    d = value - mu
    new_mu = np.where(first, value, mu + a_long * d)
    new_var = np.where(first, 0.0, (1.0 - a_long) * (var + a_long * d * d))
    return q, new_mu, new_var


class StreamingDetector:
    """Per-series streaming detector, vectorised over the series of one step."""

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DetectorConfig()
        cap = max(1, capacity)
        self._s = np.zeros((NF, cap), dtype=np.float64)
        self._season = np.zeros((cap, max(1, self.config.season_bins)), dtype=np.float64)
        self.n_series = 0

    # -- capacity --------------------------------------------------------------------
    def ensure(self, n_series: int) -> None:
        cap = self._s.shape[1]
        if n_series > cap:
            new_cap = max(n_series, cap * 2)
            grown = np.zeros((NF, new_cap), dtype=np.float64)
            grown[:, :cap] = self._s
            self._s = grown
            season = np.zeros((new_cap, self._season.shape[1]), dtype=np.float64)
            season[:cap] = self._season
            self._season = season
        self.n_series = max(self.n_series, n_series)

    def nbytes_per_series(self) -> int:
        return int(self._s.itemsize * NF + self._season.itemsize * self._season.shape[1])

    # -- persistence -----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array([STATE_VERSION], dtype=np.int64),
            "fields": np.array(_FIELDS),
            "state": self._s[:, : self.n_series].copy(),
            "season": self._season[: self.n_series].copy(),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`get_state`; unknown fields are ignored and missing
        ones start at zero, so states survive adding fields."""
        fields = [str(f) for f in state["fields"]]
        data = np.asarray(state["state"], dtype=np.float64)
        n = data.shape[1]
        cap = max(n, self._s.shape[1])
        self._s = np.zeros((NF, cap), dtype=np.float64)
        for i, name in enumerate(fields):
            if name in _F:
                self._s[_F[name], :n] = data[i]
        self._season = np.zeros((cap, max(1, self.config.season_bins)), dtype=np.float64)
        season = np.asarray(state.get("season", np.zeros((n, 0))), dtype=np.float64)
        if season.ndim == 2 and season.shape == (n, self._season.shape[1]):
            self._season[:n] = season
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
        warm = n >= cfg.warmup
        a_first = 1.0 / np.maximum(n, 1.0)
        level = np.where(first, x, s[LEVEL])
        slevel = np.where(first, x, s[SLEVEL])
        t0 = np.where(first, ts, s[T0])
        gap = ts - s[LAST_TS]
        dt = np.where(first, 0.0, np.where(s[DT] > 0, s[DT] + 0.05 * (gap - s[DT]), gap))

        # Expected value: plain level, or the seasonal model once it is better.
        seasonal = cfg.season_bins > 0
        if seasonal:
            bins = ((np.mod(ts, DAY) / DAY) * cfg.season_bins).astype(np.int64) % cfg.season_bins
            seas = self._season[idx, bins]
            pred1 = slevel + seas
            use_season = ((ts - t0) >= cfg.season_days * DAY) & (s[ERR1] < cfg.season_gain * s[ERR0])
            pred = np.where(use_season, pred1, level)
        else:
            pred1 = level
            use_season = np.zeros(idx.size, dtype=bool)
            pred = level
        absl = np.abs(pred)
        floor = np.maximum(cfg.abs_floor, cfg.rel_floor * absl)
        sc0 = np.maximum(s[SCALE], floor)
        sc1 = np.maximum(s[SSCALE], floor)
        sc = np.where(use_season, sc1, sc0)
        r = x - pred
        z = r / sc

        # ---- CUSUM with clipped increments; excursion start and sums ----------------
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
        run = np.where(z >= cfg.z_persist, np.maximum(run_old, 0.0) + 1.0,
                       np.where(z <= -cfg.z_persist, np.minimum(run_old, 0.0) - 1.0, 0.0))
        run_start = np.abs(run) == 1.0
        run_t0 = np.where(run_start, ts, s[RUN_T0])
        run_sum = np.where(run_start, 0.0, s[RUN_SUM]) + x
        conf_up = warm & (cp > cfg.h) & ((run >= cfg.persist) | (cp > cfg.h_strong))
        conf_dn = warm & (cn > cfg.h) & ((run <= -cfg.persist) | (cn > cfg.h_strong)) & ~conf_up
        conf = conf_up | conf_dn

        # ---- per-point score: ensemble of standardised surprise channels -------------
        a_long = np.maximum(a_first, 1.0 / cfg.long_points)
        raw = np.log1p(np.abs(z) / cfg.z_a)
        avg = _ew(s[AVG], raw, cfg.alpha_avg, first, raw)
        q, lmu, lvar = _standardise(avg, s[LMU], s[LVAR], a_long, first, cfg.sd_floor)
        surprise = q
        # AR(1) innovation of the residual (in scales).
        rprev, rcov, rvar, uscale = s[RPREV], s[RCOV], s[RVAR], s[USCALE]
        aavg, amu, avar = s[AAVG], s[AMU], s[AVAR]
        if cfg.ar_w > 0:
            rl = np.clip(z, -2 * cfg.z_clip, 2 * cfg.z_clip)
            phi = np.clip(rcov / np.maximum(rvar, 1e-12), 0.0, 0.98)
            u = z - phi * rprev
            usc = np.maximum(uscale, 0.05)
            a_ar = np.maximum(a_first, 1.0 / cfg.ar_points)
            rcov = np.where(first, 0.0, rcov + a_ar * (rl * rprev - rcov))
            rvar = np.where(first, 0.0, rvar + a_ar * (rprev * rprev - rvar))
            uscale = _ew(uscale, 1.25 * np.minimum(np.abs(u), cfg.clip * usc), a_ar, first, 1.0)
            rprev = rl
            raw_u = np.log1p(np.abs(u) / usc / cfg.z_a)
            aavg = _ew(aavg, raw_u, cfg.alpha_avg, first, raw_u)
            q_ar, amu, avar = _standardise(aavg, amu, avar, a_long, first, cfg.sd_floor)
            surprise = np.maximum(surprise, cfg.ar_w * q_ar)
        # Drift: fast mean against a slow level.
        xf, ls, ss, smu, svar = s[XF], s[LS], s[SS], s[SMU], s[SVAR]
        if cfg.slow_w > 0:
            xf = _ew(xf, x, cfg.alpha_xf, first, x)
            ls = np.where(first, x, ls)
            ssc = np.maximum(ss, floor)
            raw_s = np.log1p(np.abs(xf - ls) / ssc / cfg.z_a)
            q_slow, smu, svar = _standardise(raw_s, smu, svar, a_long, first, cfg.sd_floor)
            a_ls = np.maximum(1.0 / (n + 1.0), cfg.alpha_ls)
            dls = np.clip(xf - ls, -cfg.clip * ssc, cfg.clip * ssc)
            ls = ls + a_ls * dls
            ss = np.where(first, 0.0, ss + a_ls * (1.25 * np.abs(dls) - ss))
            surprise = np.maximum(surprise, cfg.slow_w * q_slow)
        e = surprise / cfg.q0
        hold = s[HOLD]
        damp = np.where(hold > 0, cfg.holdoff_factor, 1.0)
        scores = np.where(warm, damp * e / (1.0 + e), 0.0)
        new_alert = warm & (e >= 1.0) & (hold <= 0)
        hold = np.where(new_alert, float(cfg.holdoff), np.maximum(hold - 1.0, 0.0))

        # ---- baseline updates (robust) ------------------------------------------------
        a_l = np.maximum(cfg.alpha_level, 1.0 / (n + 1.0))
        a_s = np.maximum(cfg.alpha_scale, a_first)
        lim0 = np.where(warm, cfg.clip * sc0, np.inf)
        rc = np.clip(x - level, -lim0, lim0)
        new_level = level + a_l * rc
        new_scale = np.where(first, 0.0, s[SCALE] + a_s * (1.25 * np.abs(rc) - s[SCALE]))
        if seasonal:
            lim1 = np.where(warm, cfg.clip * sc1, np.inf)
            r1 = np.clip(x - pred1, -lim1, lim1)
            new_slevel = slevel + np.maximum(cfg.alpha_slevel, 1.0 / (n + 1.0)) * r1
            new_sscale = np.where(first, 0.0, s[SSCALE] + a_s * (1.25 * np.abs(r1) - s[SSCALE]))
            big = 10.0 * np.maximum(s[SAMP], np.maximum(sc0, sc1))
            a_err = 1.0 / cfg.err_points
            err0 = np.where(first, 0.0, s[ERR0] + a_err * (np.minimum(np.abs(x - level), big) - s[ERR0]))
            err1 = np.where(first, 0.0, s[ERR1] + a_err * (np.minimum(np.abs(x - pred1), big) - s[ERR1]))
            samp = np.where(first, 0.0, s[SAMP] + a_s * (np.abs(x - slevel) - s[SAMP]))
            bin_w = DAY / cfg.season_bins
            days = (ts - t0) / DAY
            a_se = np.maximum(cfg.alpha_season, 1.0 / (days + 1.0)) * np.minimum(1.0, np.maximum(dt, 1e-9) / bin_w)
            lim_se = np.where(warm, cfg.season_clip * np.maximum(samp, sc1), np.inf)
            self._season[idx, bins] = seas + a_se * np.clip(x - pred1, -lim_se, lim_se)
        else:
            new_slevel, new_sscale, samp, err0, err1 = slevel, s[SSCALE], s[SAMP], s[ERR0], s[ERR1]

        # Re-base on confirmed shifts.
        run_ok = np.abs(run) >= cfg.persist
        seg_sum = np.where(run_ok, run_sum, np.where(conf_up, cp_sum, cn_sum))
        seg_cnt = np.where(run_ok, np.abs(run), np.where(conf_up, cp_cnt, cn_cnt))
        shift_mean = seg_sum / np.maximum(seg_cnt, 1.0)
        # Onset: start of the persistent run when it confirmed the shift, else the
        # start of the CUSUM excursion (the classic CUSUM change-point estimate).
        onset_est = np.where(run_ok, run_t0, np.where(conf_up, cp_t0, cn_t0))
        new_level = np.where(conf, shift_mean, new_level)
        new_slevel = np.where(conf & use_season, new_slevel + (shift_mean - pred), new_slevel)

        # ---- anomaly events --------------------------------------------------------------
        is_open = s[OPEN]
        was_open = is_open != 0
        rel_ok = np.abs(shift_mean - pred) >= cfg.min_rel_change * absl
        opening = conf & ~was_open & rel_ok
        opening_dir = np.where(conf_up, 1.0, -1.0)
        base = np.where(opening, pred, s[BASE])
        bscale = np.where(opening, sc, s[BSCALE])
        onset = np.where(opening, onset_est, s[ONSET])
        osum = np.where(opening, seg_sum, s[OSUM] + np.where(was_open, x, 0.0))
        ocnt = np.where(opening, seg_cnt, s[OCNT] + np.where(was_open, 1.0, 0.0))
        near = np.abs(x - base) <= np.maximum(cfg.z_close * bscale, cfg.close_rel * np.abs(base))
        rec_inc = was_open & near
        rec = np.where(rec_inc, s[REC] + 1.0, 0.0)
        rec_t0 = np.where(rec_inc & (s[REC] == 0), ts, s[REC_T0])
        closing = was_open & (rec >= cfg.recover_points)
        new_open = np.where(opening, opening_dir, np.where(closing, 0.0, is_open))
        events = self._events(idx, ts, x, opening, closing, opening_dir, is_open, onset, base, bscale,
                              osum, ocnt, rec_t0)

        # ---- scatter the new state back ------------------------------------------------
        out = s
        out[N] = n + 1.0
        out[LAST_TS] = ts
        out[LEVEL], out[SCALE] = new_level, new_scale
        out[CP] = np.where(conf, 0.0, cp)
        out[CN] = np.where(conf, 0.0, cn)
        out[CP_T0], out[CN_T0] = cp_t0, cn_t0
        out[CP_SUM] = np.where(conf, 0.0, cp_sum)
        out[CP_CNT] = np.where(conf, 0.0, cp_cnt)
        out[CN_SUM] = np.where(conf, 0.0, cn_sum)
        out[CN_CNT] = np.where(conf, 0.0, cn_cnt)
        out[RUN] = np.where(conf, 0.0, run)
        out[RUN_T0] = run_t0
        out[RUN_SUM] = np.where(conf, 0.0, run_sum)
        out[OPEN], out[ONSET], out[BASE], out[BSCALE] = new_open, onset, base, bscale
        out[OSUM], out[OCNT] = osum, ocnt
        out[REC] = np.where(closing, 0.0, rec)
        out[REC_T0] = rec_t0
        out[HOLD] = hold
        out[SLEVEL], out[SSCALE], out[SAMP], out[ERR0], out[ERR1] = new_slevel, new_sscale, samp, err0, err1
        out[T0], out[DT] = t0, dt
        out[AVG], out[LMU], out[LVAR] = avg, lmu, lvar
        out[RPREV], out[RCOV], out[RVAR], out[USCALE] = rprev, rcov, rvar, uscale
        out[AAVG], out[AMU], out[AVAR] = aavg, amu, avar
        out[XF], out[LS], out[SS], out[SMU], out[SVAR] = xf, ls, ss, smu, svar
        self._s[:, idx] = out
        return StepResult(np.clip(scores, 0.0, 1.0), events)

    @staticmethod
    def _events(idx: np.ndarray, ts: np.ndarray, x: np.ndarray, opening: np.ndarray, closing: np.ndarray,
                opening_dir: np.ndarray, is_open: np.ndarray, onset: np.ndarray, base: np.ndarray,
                bscale: np.ndarray, osum: np.ndarray, ocnt: np.ndarray, rec_t0: np.ndarray) -> list[DetectorEvent]:
        events: list[DetectorEvent] = []
        if not (opening.any() or closing.any()):
            return events
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
        return events


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
