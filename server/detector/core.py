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
    "osum", "ocnt", "rec", "rec_t0", "hold", "run_t0", "run_sum", "avg", "lmu", "lvar", "hmax", "slevel", "sscale", "t0", "dt", "samp", "pmu", "pvar", "xprev", "err0", "err1", "hcnt", "rprev", "rcov", "rvar", "uscale", "xf", "ls", "ss", "smu", "svar", "aavg", "amu", "avar",
)
_F = {name: i for i, name in enumerate(_FIELDS)}
N, LAST_TS, LEVEL, SCALE, FSCALE = (_F[k] for k in ("n", "last_ts", "level", "scale", "fscale"))
CP, CN, CP_T0, CN_T0 = (_F[k] for k in ("cp", "cn", "cp_t0", "cn_t0"))
CP_SUM, CP_CNT, CN_SUM, CN_CNT, RUN = (_F[k] for k in ("cp_sum", "cp_cnt", "cn_sum", "cn_cnt", "run"))
OPEN, ONSET, BASE, BSCALE, OSUM, OCNT = (_F[k] for k in ("open", "onset", "base", "bscale", "osum", "ocnt"))
REC, REC_T0, HOLD, RUN_T0, RUN_SUM = (_F[k] for k in ("rec", "rec_t0", "hold", "run_t0", "run_sum"))
AVG, LMU, LVAR, HMAX = (_F[k] for k in ("avg", "lmu", "lvar", "hmax"))
SLEVEL, SSCALE, T0, DT, SAMP = (_F[k] for k in ("slevel", "sscale", "t0", "dt", "samp"))
PMU, PVAR, XPREV, ERR0, ERR1, HCNT = (_F[k] for k in ("pmu", "pvar", "xprev", "err0", "err1", "hcnt"))
RPREV, RCOV, RVAR, USCALE = (_F[k] for k in ("rprev", "rcov", "rvar", "uscale"))
XF, LS, SS, SMU, SVAR = (_F[k] for k in ("xf", "ls", "ss", "smu", "svar"))
AAVG, AMU, AVAR = (_F[k] for k in ("aavg", "amu", "avar"))
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
    h: float = 10.0                 # CUSUM decision interval (with persistence)
    h_strong: float = 30.0         # CUSUM decision interval without persistence
    z_clip: float = 4.0            # CUSUM increment clip (one blip adds at most z_clip - k)
    z_persist: float = 2.5         # |z| a point needs to count towards persistence
    persist: int = 3               # consecutive points beyond z_persist to confirm a shift
    min_rel_change: float = 0.02   # an open needs |observed - baseline| >= this * |baseline|
    z_spike: float = 6.0           # |z| giving spike evidence 1
    var_ratio: float = 4.0         # fast/slow scale ratio giving variance evidence 1
    z_close: float = 2.0           # close: within z_close baseline scales of baseline ...
    close_rel: float = 0.05        # ... or within close_rel * |baseline|
    recover_points: int = 6        # consecutive near-baseline points to close
    holdoff: int = 100             # points damped after an alert (per-point score only)
    holdoff_factor: float = 0.5    # damping of the per-point score during hold-off
    mode: int = 1                  # experimental
    raw_kind: int = 1
    season_bins: int = 144          # daily profile resolution (0: no seasonal model)
    season_days: float = 2.0       # history needed before the seasonal model may be used
    season_gain: float = 0.8       # seasonal model used when its scale < gain * plain scale
    alpha_slevel: float = 0.0005    # level of the seasonal model
    alpha_season: float = 0.3      # profile update per bin visit
    season_clip: float = 3.0
    err_points: int = 300
    log_c: float = 0.0
    ar_sep: bool = True
    slow_w: float = 1.0
    alpha_xf: float = 0.2
    alpha_ls: float = 0.002
    diff_w: float = 0.0
    ar_w: float = 1.0
    level_w: float = 1.0
    ar_points: int = 500
    point_w: float = 0.0
    rec_points: int = 0
    rec_margin: float = 1.0
    esc_points: int = 0            # escalation filter memory (0: off)
    esc_factor: float = 0.5
    z_a: float = 4.0               # |z| giving raw anomaly 1
    alpha_avg: float = 0.2         # short average of the raw anomaly
    long_points: int = 2000        # memory of the long-run distribution of the average
    q0: float = 4.5                # standardised surprise giving score 0.5
    sd_floor: float = 0.01         # floor of the long-run sd of the average


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
        self._season = np.zeros((max(1, capacity), max(1, self.config.season_bins)), dtype=np.float64)
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

    # -- persistence -----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array([STATE_VERSION], dtype=np.int64),
            "fields": np.array(_FIELDS),
            "state": self._s[:, : self.n_series].copy(),
            "season": self._season[: self.n_series].copy(),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        fields = [str(f) for f in state["fields"]]
        data = np.asarray(state["state"], dtype=np.float64)
        n = data.shape[1]
        self._s = np.zeros((NF, max(n, self._s.shape[1])), dtype=np.float64)
        for i, name in enumerate(fields):
            if name in _F:
                self._s[_F[name], :n] = data[i]
        season = np.asarray(state.get("season", np.zeros((n, 1))), dtype=np.float64)
        self._season = np.zeros((self._s.shape[1], max(1, self.config.season_bins)), dtype=np.float64)
        if season.shape[1] == self._season.shape[1]:
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
        level = np.where(first, x, s[LEVEL])
        slevel = np.where(first, x, s[SLEVEL])
        t0 = np.where(first, ts, s[T0])
        dt = np.where(first, 0.0, np.where(s[DT] > 0, s[DT] + 0.05 * ((ts - s[LAST_TS]) - s[DT]), ts - s[LAST_TS]))
        use_season = np.zeros(idx.size, dtype=bool)
        if cfg.season_bins > 0:
            bins = ((np.mod(ts, 86400.0) / 86400.0) * cfg.season_bins).astype(np.int64) % cfg.season_bins
            seas = self._season[idx, bins]
            pred1 = slevel + seas
            use_season = ((ts - t0) >= cfg.season_days * 86400.0) & (s[ERR1] < cfg.season_gain * s[ERR0])
            pred = np.where(use_season, pred1, level)
        else:
            pred = level
        absl = np.abs(pred)
        floor = np.maximum(cfg.abs_floor, cfg.rel_floor * absl)
        sc0 = np.maximum(s[SCALE], floor)
        sc = np.where(use_season, np.maximum(s[SSCALE], floor), sc0)
        r = x - pred
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
        avg, lmu, lvar = s[AVG], s[LMU], s[LVAR]
        if cfg.mode == 1:
            zz = np.abs(z)
            if cfg.ar_w > 0:
                rl = np.clip(r / sc, -cfg.z_clip * 2, cfg.z_clip * 2)  # residual in scales (bounded)
                rp = s[RPREV]
                phi = np.clip(s[RCOV] / np.maximum(s[RVAR], 1e-12), 0.0, 0.98)
                u = (r / sc) - phi * rp
                usc = np.maximum(s[USCALE], 0.05)
                zu = np.abs(u) / usc
                if not cfg.ar_sep:
                    zz = np.maximum(cfg.level_w * zz, cfg.ar_w * zu)
                a_ar = np.maximum(1.0 / np.maximum(n, 1.0), 1.0 / cfg.ar_points)
                rcov = np.where(first, 0.0, s[RCOV] + a_ar * (rl * rp - s[RCOV]))
                rvar = np.where(first, 0.0, s[RVAR] + a_ar * (rp * rp - s[RVAR]))
                uscale = np.where(first, 1.0, s[USCALE] + a_ar * (1.25 * np.minimum(np.abs(u), cfg.clip * usc) - s[USCALE]))
                rprev = rl
            else:
                rcov, rvar, uscale, rprev = s[RCOV], s[RVAR], s[USCALE], s[RPREV]
            if cfg.diff_w > 0:
                zz = np.maximum(zz, cfg.diff_w * np.abs(x - np.where(first, x, s[XPREV])) / sc)
            if cfg.slow_w > 0:
                xf = np.where(first, x, s[XF] + cfg.alpha_xf * (x - s[XF]))
                ls = np.where(first, x, s[LS])
                ssc = np.maximum(s[SS], floor)
                zs = np.abs(xf - ls) / ssc
                a_s = np.log1p(zs / cfg.z_a)
                smu, svar = s[SMU], s[SVAR]
                q_slow = np.maximum(0.0, (a_s - smu) / np.maximum(np.sqrt(svar), cfg.sd_floor))
                a_lg = np.maximum(1.0 / np.maximum(n, 1.0), 1.0 / cfg.long_points)
                ds_ = a_s - smu
                smu = np.where(first, a_s, smu + a_lg * ds_)
                svar = np.where(first, 0.0, (1 - a_lg) * (svar + a_lg * ds_ * ds_))
                a_ls = np.maximum(1.0 / (n + 1.0), cfg.alpha_ls)
                dls = np.clip(xf - ls, -cfg.clip * ssc, cfg.clip * ssc)
                ls = ls + a_ls * dls
                ss = np.where(first, 0.0, s[SS] + a_ls * (1.25 * np.abs(dls) - s[SS]))
            else:
                xf, ls, ss, smu, svar = s[XF], s[LS], s[SS], s[SMU], s[SVAR]
                q_slow = np.zeros(idx.size)
            a_raw = np.minimum(1.0, zz / cfg.z_a) if cfg.raw_kind == 0 else np.log1p(zz / cfg.z_a)
            avg = np.where(first, a_raw, avg + cfg.alpha_avg * (a_raw - avg))
            g = np.log(avg + cfg.log_c) if cfg.log_c > 0 else avg
            sd = np.maximum(np.sqrt(lvar), cfg.sd_floor)
            q = np.maximum(0.0, (g - lmu) / sd)
            if cfg.rec_points > 0:
                m_prev = s[HMAX]
                e = q / np.maximum(m_prev * cfg.rec_margin, cfg.q0)
                m_new = np.maximum(np.where(warm, q, 0.0), m_prev * np.exp(-1.0 / cfg.rec_points))
            else:
                e = np.maximum(q, cfg.slow_w * q_slow) / cfg.q0
            if cfg.ar_sep and cfg.ar_w > 0:
                a_a = np.log1p(zu / cfg.z_a)
                aavg = np.where(first, a_a, s[AAVG] + cfg.alpha_avg * (a_a - s[AAVG]))
                amu, avar = s[AMU], s[AVAR]
                q_ar = np.maximum(0.0, (aavg - amu) / np.maximum(np.sqrt(avar), cfg.sd_floor))
                e = np.maximum(e, cfg.ar_w * q_ar / cfg.q0)
                a_lg2 = np.maximum(1.0 / np.maximum(n, 1.0), 1.0 / cfg.long_points)
                da = aavg - amu
                amu = np.where(first, aavg, amu + a_lg2 * da)
                avar = np.where(first, 0.0, (1 - a_lg2) * (avar + a_lg2 * da * da))
            else:
                aavg, amu, avar = s[AAVG], s[AMU], s[AVAR]
            a_long = np.maximum(1.0 / np.maximum(n, 1.0), 1.0 / cfg.long_points)
            if cfg.point_w > 0:
                pmu, pvar = s[PMU], s[PVAR]
                qp = np.maximum(0.0, (a_raw - pmu) / np.maximum(np.sqrt(pvar), cfg.sd_floor))
                e = np.maximum(e, cfg.point_w * qp / cfg.q0)
                dp = a_raw - pmu
                pmu = np.where(first, a_raw, pmu + a_long * dp)
                pvar = np.where(first, 0.0, (1 - a_long) * (pvar + a_long * dp * dp))
            else:
                pmu, pvar = s[PMU], s[PVAR]
            d = g - lmu
            lmu = np.where(first, g, lmu + a_long * d)
            lvar = np.where(first, 0.0, (1 - a_long) * (lvar + a_long * d * d))
        hold = s[HOLD]
        damp = np.where(hold > 0, cfg.holdoff_factor, 1.0)
        scores = np.where(warm, damp * e / (1.0 + e), 0.0)
        hmax = s[HMAX]
        if cfg.mode == 1 and cfg.rec_points > 0:
            hmax = m_new
        hcnt = s[HCNT]
        if cfg.esc_points > 0:
            base_sc = np.where(warm, e / (1.0 + e), 0.0)
            rec = base_sc > hmax
            scores = np.where(rec, base_sc, cfg.esc_factor * base_sc)
            hmax = np.where(rec, base_sc, np.where(hcnt <= 1, 0.0, hmax))
            hcnt = np.where(rec, float(cfg.esc_points), np.maximum(hcnt - 1.0, 0.0))
        alert = warm & (e >= 1.0)
        hold = np.where(alert & (hold <= 0), float(cfg.holdoff), np.maximum(hold - 1.0, 0.0))

        # Baseline updates (robust); re-base on confirmed shifts.
        a_l = np.maximum(cfg.alpha_level, 1.0 / (n + 1.0))
        a_s = np.maximum(cfg.alpha_scale, 1.0 / np.maximum(n, 1.0))
        lim0 = np.where(warm, cfg.clip * sc0, np.inf)
        rc = np.clip(x - level, -lim0, lim0)
        new_level = level + a_l * rc
        new_scale = np.where(first, 0.0, s[SCALE] + a_s * (1.25 * np.abs(rc) - s[SCALE]))
        if cfg.season_bins > 0:
            sc1 = np.maximum(s[SSCALE], floor)
            lim1 = np.where(warm, cfg.clip * sc1, np.inf)
            r1 = np.clip(x - pred1, -lim1, lim1)
            new_slevel = slevel + np.maximum(cfg.alpha_slevel, 1.0 / (n + 1.0)) * r1
            new_sscale = np.where(first, 0.0, s[SSCALE] + a_s * (1.25 * np.abs(r1) - s[SSCALE]))
            bin_w = 86400.0 / cfg.season_bins
            days = (ts - t0) / 86400.0
            a_se = np.maximum(cfg.alpha_season, 1.0 / (days + 1.0)) * np.minimum(1.0, np.maximum(dt, 1e-9) / bin_w)
            big = 10.0 * np.maximum(s[SAMP], np.maximum(sc0, sc1))
            a_err = 1.0 / cfg.err_points
            err0 = np.where(first, 0.0, s[ERR0] + a_err * (np.minimum(np.abs(x - level), big) - s[ERR0]))
            err1 = np.where(first, 0.0, s[ERR1] + a_err * (np.minimum(np.abs(x - pred1), big) - s[ERR1]))
            dev = np.abs(x - slevel)
            samp = np.where(first, 0.0, s[SAMP] + a_s * (dev - s[SAMP]))
            lim_se = np.where(warm, cfg.season_clip * np.maximum(samp, sc1), np.inf)
            self._season[idx, bins] = seas + a_se * np.clip(x - pred1, -lim_se, lim_se)
        else:
            new_slevel, new_sscale, samp = slevel, s[SSCALE], s[SAMP]
            err0, err1 = s[ERR0], s[ERR1]
        run_ok = np.abs(run) >= cfg.persist
        seg_sum = np.where(run_ok, run_sum, np.where(conf_up, cp_sum, cn_sum))
        seg_cnt = np.where(run_ok, np.abs(run), np.where(conf_up, cp_cnt, cn_cnt))
        shift_mean = seg_sum / np.maximum(seg_cnt, 1.0)
        # Onset: start of the persistent run when it confirmed the shift, else the
        # start of the CUSUM excursion (the classic CUSUM change-point estimate).
        onset_est = np.where(run_ok, run_t0, np.where(conf_up, cp_t0, cn_t0))
        new_level = np.where(conf, shift_mean, new_level)
        new_slevel = np.where(conf & use_season, new_slevel + (shift_mean - pred), new_slevel)
        cp = np.where(conf, 0.0, cp)
        cn = np.where(conf, 0.0, cn)
        run = np.where(conf, 0.0, run)
        run_sum = np.where(conf, 0.0, run_sum)

        # Anomaly events.
        events: list[DetectorEvent] = []
        is_open = s[OPEN]
        rel_ok = np.abs(shift_mean - pred) >= cfg.min_rel_change * absl
        opening = conf & (is_open == 0) & rel_ok
        opening_dir = np.where(conf_up, 1.0, -1.0)
        base = np.where(opening, pred, s[BASE])
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
        out[AVG], out[LMU], out[LVAR] = avg, lmu, lvar
        out[HMAX] = hmax
        out[PMU], out[PVAR], out[XPREV] = pmu, pvar, x
        out[ERR0], out[ERR1], out[HCNT] = err0, err1, hcnt
        if cfg.mode == 1:
            out[RPREV], out[RCOV], out[RVAR], out[USCALE] = rprev, rcov, rvar, uscale
            out[XF], out[LS], out[SS], out[SMU], out[SVAR] = xf, ls, ss, smu, svar
            out[AAVG], out[AMU], out[AVAR] = aavg, amu, avar
        out[SLEVEL], out[SSCALE], out[T0], out[DT], out[SAMP] = new_slevel, new_sscale, t0, dt, samp
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
