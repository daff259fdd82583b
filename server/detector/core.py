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

from server.detector.likelihood import LikelihoodScorer

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
    "xf", "ls", "ss", "smu", "svar", "ly", "lsc", "lavg", "llmu", "llvar", "xmin", "xmax",
)
_F = {name: i for i, name in enumerate(_FIELDS)}
(N, LAST_TS, LEVEL, SCALE, CP, CN, CP_T0, CN_T0, CP_SUM, CP_CNT, CN_SUM, CN_CNT, RUN, RUN_T0,
 RUN_SUM, OPEN, ONSET, BASE, BSCALE, OSUM, OCNT, REC, REC_T0, HOLD,
 SLEVEL, SSCALE, SAMP, ERR0, ERR1, T0, DT,
 AVG, LMU, LVAR, RPREV, RCOV, RVAR, USCALE, AAVG, AMU, AVAR,
 XF, LS, SS, SMU, SVAR, LY, LSC, LAVG, LLMU, LLVAR, XMIN, XMAX) = range(len(_FIELDS))
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
    log_w: float = 1.0             # weight of the log-view channel for non-negative series (0: off)
    q0: float = 4.5                # standardised surprise giving score 0.5 (an alert)
    holdoff: int = 100             # points damped after an alert
    holdoff_factor: float = 0.5    # damping of the score during hold-off
    spatial_tol: float = 0.05      # a value outside the range seen so far, widened by this fraction of it, alerts
    spatial_learn: int = 150       # points before the range rule may fire
    # which per-point score step() returns: "ensemble" (the channels above, cheap; what the
    # server runs by default) or "likelihood" (server.detector.likelihood: kNN novelty,
    # seasonal and drift surprise through Numenta-style anomaly likelihood; ~20x the cost,
    # the better NAB score). Events (open/close) are the same with either.
    score_model: Literal["ensemble", "likelihood"] = "ensemble"


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


def _clip(a: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """np.clip without its dispatch overhead (same values, NaN propagates the same way)."""
    return np.minimum(np.maximum(a, lo), hi)


def _ew(old: np.ndarray, new: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    return old + alpha * (new - old)


def _standardise(value: np.ndarray, mu: np.ndarray, var: np.ndarray, a_long: np.ndarray,
                 sd_floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided surprise of ``value`` against its running mean/variance, and the update
    (on a series' first point ``a_long`` is 1, so the mean starts at the value)."""
    d = value - mu
    q = np.maximum(d / np.maximum(np.sqrt(var), sd_floor), 0.0)
    new_mu = mu + a_long * d
    new_var = (1.0 - a_long) * (var + a_long * d * d)
    return q, new_mu, new_var


class StreamingDetector:
    """Per-series streaming detector, vectorised over the series of one step."""

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DetectorConfig()
        cap = max(1, capacity)
        self._s = np.zeros((NF, cap), dtype=np.float64)
        self._season = np.zeros((cap, max(1, self.config.season_bins)), dtype=np.float64)
        self.n_series = 0
        self._lk = LikelihoodScorer(capacity=cap) if self.config.score_model == "likelihood" else None

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
        if self._lk is not None:
            self._lk.ensure(n_series)

    def nbytes_per_series(self) -> int:
        own = int(self._s.itemsize * NF + self._season.itemsize * self._season.shape[1])
        return own + (self._lk.nbytes_per_series() if self._lk is not None else 0)

    # -- persistence -----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array([STATE_VERSION], dtype=np.int64),
            "fields": np.array(_FIELDS),
            "state": self._s[:, : self.n_series].copy(),
            "season": self._season[: self.n_series].copy(),
            **({f"lk_{k}": v for k, v in self._lk.get_state().items()} if self._lk is not None else {}),
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
        if self._lk is not None:
            lk_state = {k[3:]: v for k, v in state.items() if k.startswith("lk_")}
            self._lk = LikelihoodScorer(capacity=cap)
            if lk_state:
                self._lk.set_state(lk_state)
            self._lk.ensure(n)

    # -- the hot path ----------------------------------------------------------------
    def step(self, idx: np.ndarray, ts: np.ndarray, values: np.ndarray) -> StepResult:
        cfg = self.config
        idx = np.asarray(idx, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        k_pts = idx.size
        if k_pts == 0:
            return StepResult(np.zeros(0), [])
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if hi > self.n_series:
            self.ensure(hi)
        # Contiguous ascending series (the server's usual tick): work on a view in place.
        contiguous = hi - lo == k_pts and (k_pts == 1 or bool((np.diff(idx) == 1).all()))
        s = self._s[:, lo:hi] if contiguous else self._s[:, idx]

        n = s[N]
        first = n == 0
        any_first = bool(first.any())
        if any_first:  # a new series starts at its first value
            f = np.flatnonzero(first)
            for field in (LEVEL, SLEVEL, XF, LS, XMIN, XMAX):
                s[field, f] = x[f]
            s[LY, f] = np.log1p(np.maximum(x[f], 0.0))
            s[T0, f] = ts[f]
            s[LAST_TS, f] = ts[f]
        warm = n >= cfg.warmup
        a_first = 1.0 / np.maximum(n, 1.0)
        a_next = 1.0 / (n + 1.0)
        level, slevel, t0 = s[LEVEL], s[SLEVEL], s[T0]
        gap = ts - s[LAST_TS]
        dt_old = s[DT]
        dt = np.where(dt_old > 0, dt_old + 0.05 * (gap - dt_old), gap)

        # Expected value: plain level, or the seasonal model once it is better.
        seasonal = cfg.season_bins > 0
        if seasonal:
            sec = ts - np.floor(ts / DAY) * DAY  # seconds into the UTC day (np.mod is slow)
            bins = np.minimum((sec / (DAY / cfg.season_bins)).astype(np.int64), cfg.season_bins - 1)
            seas = self._season[idx, bins]
            pred1 = slevel + seas
            use_season = ((ts - t0) >= cfg.season_days * DAY) & (s[ERR1] < cfg.season_gain * s[ERR0])
            pred = np.where(use_season, pred1, level)
        else:
            pred1 = level
            use_season = np.zeros(k_pts, dtype=bool)
            pred = level
        absl = np.abs(pred)
        floor = np.maximum(cfg.rel_floor * absl, cfg.abs_floor)
        sc0 = np.maximum(s[SCALE], floor)
        sc1 = np.maximum(s[SSCALE], floor)
        sc = np.where(use_season, sc1, sc0) if seasonal else sc0
        r = x - pred
        z = r / sc

        # ---- CUSUM with clipped increments; excursion start and sums ----------------
        zc = _clip(z, -cfg.z_clip, cfg.z_clip)
        cp_old, cn_old = s[CP], s[CN]
        cp = np.maximum(cp_old + (zc - cfg.k), 0.0)
        cn = np.maximum(cn_old - (zc + cfg.k), 0.0)
        cp_pos, cn_pos = cp > 0, cn > 0
        cp_new = cp_pos & (cp_old <= 0)
        cn_new = cn_pos & (cn_old <= 0)
        cp_t0 = np.where(cp_new, ts, s[CP_T0])
        cn_t0 = np.where(cn_new, ts, s[CN_T0])
        cp_keep, cn_keep = ~cp_new, ~cn_new
        cp_sum = (s[CP_SUM] * cp_keep + x) * cp_pos
        cp_cnt = (s[CP_CNT] * cp_keep + 1.0) * cp_pos
        cn_sum = (s[CN_SUM] * cn_keep + x) * cn_pos
        cn_cnt = (s[CN_CNT] * cn_keep + 1.0) * cn_pos
        # Persistence run: +k consecutive points above z_persist, -k below -z_persist.
        run_old = s[RUN]
        up_pt, dn_pt = z >= cfg.z_persist, z <= -cfg.z_persist
        run = (np.maximum(run_old, 0.0) + 1.0) * up_pt + (np.minimum(run_old, 0.0) - 1.0) * dn_pt
        run_start = np.abs(run) == 1.0
        run_t0 = np.where(run_start, ts, s[RUN_T0])
        run_sum = s[RUN_SUM] * ~run_start + x
        conf_up = warm & (cp > cfg.h) & ((run >= cfg.persist) | (cp > cfg.h_strong))
        conf_dn = warm & (cn > cfg.h) & ((run <= -cfg.persist) | (cn > cfg.h_strong)) & ~conf_up
        conf = conf_up | conf_dn
        any_conf = bool(conf.any())

        # ---- per-point score: ensemble of standardised surprise channels -------------
        a_l_pre = np.maximum(a_next, cfg.alpha_level)
        a_long = np.maximum(a_first, 1.0 / cfg.long_points)
        raw = np.log1p(np.abs(z) * (1.0 / cfg.z_a))
        avg = _ew(s[AVG], raw, cfg.alpha_avg)
        surprise, lmu, lvar = _standardise(avg, s[LMU], s[LVAR], a_long, cfg.sd_floor)
        # AR(1) innovation of the residual (in scales).
        rprev, rcov, rvar, uscale = s[RPREV], s[RCOV], s[RVAR], s[USCALE]
        aavg, amu, avar = s[AAVG], s[AMU], s[AVAR]
        if cfg.ar_w > 0:
            rl = _clip(z, -2 * cfg.z_clip, 2 * cfg.z_clip)
            phi = _clip(rcov / np.maximum(rvar, 1e-12), 0.0, 0.98)
            u = z - phi * rprev
            usc = np.where(first, 1.0, np.maximum(uscale, 0.05)) if any_first else np.maximum(uscale, 0.05)
            a_ar = np.maximum(a_first, 1.0 / cfg.ar_points)
            rcov = rcov + a_ar * (rl * rprev - rcov)
            rvar = rvar + a_ar * (rprev * rprev - rvar)
            au = np.abs(u)
            new_usc = uscale + a_ar * (1.25 * np.minimum(au, cfg.clip * usc) - uscale)
            uscale = np.where(first, 1.0, new_usc) if any_first else new_usc
            rprev = rl
            raw_u = np.log1p(au / (usc * cfg.z_a))
            aavg = _ew(aavg, raw_u, cfg.alpha_avg)
            q_ar, amu, avar = _standardise(aavg, amu, avar, a_long, cfg.sd_floor)
            surprise = np.maximum(surprise, cfg.ar_w * q_ar)
        # Drift: fast mean against a slow level.
        xf, ls, ss, smu, svar = s[XF], s[LS], s[SS], s[SMU], s[SVAR]
        if cfg.slow_w > 0:
            xf = _ew(xf, x, cfg.alpha_xf)
            ssc = np.maximum(ss, floor)
            dls = xf - ls
            raw_s = np.log1p(np.abs(dls) / (ssc * cfg.z_a))
            q_slow, smu, svar = _standardise(raw_s, smu, svar, a_long, cfg.sd_floor)
            a_ls = np.maximum(a_next, cfg.alpha_ls)
            lim_s = cfg.clip * ssc
            dls = _clip(dls, -lim_s, lim_s)
            ls = ls + a_ls * dls
            ss = ss + a_ls * (1.25 * np.abs(dls) - ss)
            surprise = np.maximum(surprise, cfg.slow_w * q_slow)
        # Log view of non-negative series (counts, bytes): variance-stabilised surprise.
        ly, lsc, lavg, llmu, llvar, xmin = s[LY], s[LSC], s[LAVG], s[LLMU], s[LLVAR], s[XMIN]
        if cfg.log_w > 0:
            xmin = np.minimum(xmin, x)
            y = np.log1p(np.maximum(x, 0.0))
            lsc_f = np.maximum(lsc, 0.01)
            dy = y - ly
            raw_l = np.log1p(np.abs(dy) / (lsc_f * cfg.z_a))
            lavg = _ew(lavg, raw_l, cfg.alpha_avg)
            q_log, llmu, llvar = _standardise(lavg, llmu, llvar, a_long, cfg.sd_floor)
            q_log *= xmin >= 0
            lim_y = np.where(warm, cfg.clip * lsc_f, np.inf)
            dyc = _clip(dy, -lim_y, lim_y)
            ly = ly + a_l_pre * dyc
            lsc = lsc + np.maximum(a_first, cfg.alpha_scale) * (1.25 * np.abs(dyc) - lsc)
            surprise = np.maximum(surprise, cfg.log_w * q_log)
        e = surprise * (1.0 / cfg.q0)
        xmax = s[XMAX]
        if cfg.spatial_tol > 0:
            xlo = xmin if cfg.log_w > 0 else s[XMIN]
            span = np.maximum(xmax - xlo, 1e-12) * cfg.spatial_tol
            outside = (n >= cfg.spatial_learn) & ((x > xmax + span) | (x < xlo - span))
            e = np.where(outside, np.maximum(e, 1e6), e)
            xmax = np.maximum(xmax, x)
            if cfg.log_w <= 0:
                xmin = np.minimum(s[XMIN], x)
        hold = s[HOLD]
        held = hold > 0
        scores = (e / (1.0 + e)) * warm
        if cfg.holdoff_factor != 1.0:
            scores *= 1.0 - (1.0 - cfg.holdoff_factor) * held
        new_alert = warm & (e >= 1.0) & ~held
        hold = np.where(new_alert, float(cfg.holdoff), np.maximum(hold - 1.0, 0.0))

        # ---- baseline updates (robust) ------------------------------------------------
        a_l = np.maximum(a_next, cfg.alpha_level)
        a_s = np.maximum(a_first, cfg.alpha_scale)
        lim0 = np.where(warm, cfg.clip * sc0, np.inf)
        rc = _clip(x - level, -lim0, lim0)
        new_level = level + a_l * rc
        new_scale = s[SCALE] + a_s * (1.25 * np.abs(rc) - s[SCALE])
        if seasonal:
            lim1 = np.where(warm, cfg.clip * sc1, np.inf)
            d1 = x - pred1
            r1 = _clip(d1, -lim1, lim1)
            new_slevel = slevel + np.maximum(a_next, cfg.alpha_slevel) * r1
            new_sscale = s[SSCALE] + a_s * (1.25 * np.abs(r1) - s[SSCALE])
            samp_old = s[SAMP]
            big = 10.0 * np.maximum(samp_old, np.maximum(sc0, sc1))
            a_err = 1.0 / cfg.err_points
            err0 = s[ERR0] + a_err * (np.minimum(np.abs(x - level), big) - s[ERR0])
            err1 = s[ERR1] + a_err * (np.minimum(np.abs(d1), big) - s[ERR1])
            samp = samp_old + a_s * (np.abs(x - slevel) - samp_old)
            bin_w = DAY / cfg.season_bins
            days = (ts - t0) * (1.0 / DAY)
            a_se = np.maximum(cfg.alpha_season, 1.0 / (days + 1.0)) * np.minimum(1.0, np.maximum(dt, 1e-9) / bin_w)
            lim_se = np.where(warm, cfg.season_clip * np.maximum(samp, sc1), np.inf)
            self._season[idx, bins] = seas + a_se * _clip(d1, -lim_se, lim_se)
        else:
            new_slevel, new_sscale, samp, err0, err1 = slevel, s[SSCALE], s[SAMP], s[ERR0], s[ERR1]

        # ---- confirmed shifts: re-base, and open/close anomaly events ----------------------
        events: list[DetectorEvent] = []
        is_open = s[OPEN]
        act = (conf | (is_open != 0)) if any_conf else (is_open != 0)
        if act.any():
            j = np.flatnonzero(act)
            events = self._shift_and_events(
                j, idx, ts, x, s, conf, conf_up, run, run_sum, run_t0, cp_sum, cp_cnt, cn_sum, cn_cnt,
                cp_t0, cn_t0, pred, absl, sc, use_season, new_level, new_slevel)

        # ---- scatter the new state back ------------------------------------------------
        out = s
        out[N] = n + 1.0
        out[LAST_TS] = ts
        out[LEVEL], out[SCALE] = new_level, new_scale
        if any_conf:
            keep = ~conf
            cp, cn, cp_sum, cp_cnt, cn_sum, cn_cnt = (a * keep for a in (cp, cn, cp_sum, cp_cnt, cn_sum, cn_cnt))
            run, run_sum = run * keep, run_sum * keep
        out[CP], out[CN], out[CP_T0], out[CN_T0] = cp, cn, cp_t0, cn_t0
        out[CP_SUM], out[CP_CNT], out[CN_SUM], out[CN_CNT] = cp_sum, cp_cnt, cn_sum, cn_cnt
        out[RUN], out[RUN_T0], out[RUN_SUM] = run, run_t0, run_sum
        out[HOLD] = hold
        out[SLEVEL], out[SSCALE], out[SAMP], out[ERR0], out[ERR1] = new_slevel, new_sscale, samp, err0, err1
        out[DT] = dt
        out[AVG], out[LMU], out[LVAR] = avg, lmu, lvar
        out[RPREV], out[RCOV], out[RVAR], out[USCALE] = rprev, rcov, rvar, uscale
        out[AAVG], out[AMU], out[AVAR] = aavg, amu, avar
        out[XF], out[LS], out[SS], out[SMU], out[SVAR] = xf, ls, ss, smu, svar
        out[LY], out[LSC], out[LAVG], out[LLMU], out[LLVAR], out[XMIN] = ly, lsc, lavg, llmu, llvar, xmin
        out[XMAX] = xmax
        if not contiguous:
            self._s[:, idx] = out
        if self._lk is not None:
            scores = self._lk.step(idx, ts, x)
        np.minimum(np.maximum(scores, 0.0, out=scores), 1.0, out=scores)
        return StepResult(scores, events)

    def _shift_and_events(
        self, j: np.ndarray, idx: np.ndarray, ts: np.ndarray, x: np.ndarray, s: np.ndarray, conf: np.ndarray,
        conf_up: np.ndarray, run: np.ndarray, run_sum: np.ndarray, run_t0: np.ndarray, cp_sum: np.ndarray,
        cp_cnt: np.ndarray, cn_sum: np.ndarray, cn_cnt: np.ndarray, cp_t0: np.ndarray, cn_t0: np.ndarray,
        pred: np.ndarray, absl: np.ndarray, sc: np.ndarray, use_season: np.ndarray, new_level: np.ndarray,
        new_slevel: np.ndarray,
    ) -> list[DetectorEvent]:
        """Re-base confirmed shifts and run the open/close logic on the active series ``j``
        (confirming now or already open); writes their state rows of ``s`` and the
        ``new_level`` / ``new_slevel`` arrays in place."""
        cfg = self.config
        cj, up = conf[j], conf_up[j]
        run_ok = np.abs(run[j]) >= cfg.persist
        seg_sum = np.where(run_ok, run_sum[j], np.where(up, cp_sum[j], cn_sum[j]))
        seg_cnt = np.where(run_ok, np.abs(run[j]), np.where(up, cp_cnt[j], cn_cnt[j]))
        shift_mean = seg_sum / np.maximum(seg_cnt, 1.0)
        # Onset: start of the persistent run when it confirmed the shift, else the
        # start of the CUSUM excursion (the classic CUSUM change-point estimate).
        onset_est = np.where(run_ok, run_t0[j], np.where(up, cp_t0[j], cn_t0[j]))
        pj = pred[j]
        new_level[j] = np.where(cj, shift_mean, new_level[j])
        new_slevel[j] = np.where(cj & use_season[j], new_slevel[j] + (shift_mean - pj), new_slevel[j])

        tj, xj = ts[j], x[j]
        is_open = s[OPEN, j]
        was_open = is_open != 0
        rel_ok = np.abs(shift_mean - pj) >= cfg.min_rel_change * absl[j]
        opening = cj & ~was_open & rel_ok
        opening_dir = np.where(up, 1.0, -1.0)
        base = np.where(opening, pj, s[BASE, j])
        bscale = np.where(opening, sc[j], s[BSCALE, j])
        onset = np.where(opening, onset_est, s[ONSET, j])
        osum = np.where(opening, seg_sum, s[OSUM, j] + np.where(was_open, xj, 0.0))
        ocnt = np.where(opening, seg_cnt, s[OCNT, j] + np.where(was_open, 1.0, 0.0))
        near = np.abs(xj - base) <= np.maximum(cfg.z_close * bscale, cfg.close_rel * np.abs(base))
        rec_inc = was_open & near
        rec_old = s[REC, j]
        rec = np.where(rec_inc, rec_old + 1.0, 0.0)
        rec_t0 = np.where(rec_inc & (rec_old == 0), tj, s[REC_T0, j])
        closing = was_open & (rec >= cfg.recover_points)
        s[OPEN, j] = np.where(opening, opening_dir, np.where(closing, 0.0, is_open))
        s[ONSET, j], s[BASE, j], s[BSCALE, j] = onset, base, bscale
        s[OSUM, j], s[OCNT, j] = osum, ocnt
        s[REC, j] = np.where(closing, 0.0, rec)
        s[REC_T0, j] = rec_t0

        events: list[DetectorEvent] = []
        for m in np.flatnonzero(opening):
            obs = float(osum[m] / max(ocnt[m], 1.0))
            events.append(DetectorEvent(
                series=int(idx[j[m]]), kind="open", ts=float(tj[m]), onset=float(min(onset[m], tj[m])),
                direction="up" if opening_dir[m] > 0 else "down",
                score=float(abs(obs - base[m]) / bscale[m]), baseline=float(base[m]), observed=obs,
            ))
        for m in np.flatnonzero(closing):
            events.append(DetectorEvent(
                series=int(idx[j[m]]), kind="close", ts=float(tj[m]), onset=float(rec_t0[m]),
                direction="up" if is_open[m] > 0 else "down",
                score=float(abs(osum[m] / max(ocnt[m], 1.0) - base[m]) / bscale[m]),
                baseline=float(base[m]), observed=float(xj[m]),
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
