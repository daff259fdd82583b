"""The detector's compiled step: one fused loop over the series of a step (pure: no I/O).

:func:`step_kernel` advances each listed series by one point: baselines, CUSUM change
points and open/close anomaly events, and the per-point anomaly-likelihood score, all
in one pass over that series' state (compiled with Numba, so the state of a series is
read and written once per point instead of once per NumPy operation). The layout of the
state and the meaning of every field are in :mod:`server.detector.core`, which owns the
arrays; this module only holds the arithmetic.

Everything is strictly online: series never share state, and a point's score and events
depend only on that point and the earlier points of its series.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

DAY = 86400.0
LOG_EPS = math.log(1.0000000001 - 0.9999999999)

# ---- state fields: one column of the (series x field) state matrix per field ----------
FIELDS = (
    # shared clock
    "n", "last_ts", "dt",
    # baseline, CUSUM and events
    "level", "scale", "cp", "cn", "cp_t0", "cn_t0", "cp_sum", "cp_cnt", "cn_sum", "cn_cnt",
    "run", "run_t0", "run_sum", "open", "onset", "base", "bscale", "osum", "ocnt", "rec", "rec_t0",
    # seasonal baseline
    "slevel", "sscale", "samp", "err0", "err1", "t0",
    # score: robust scales, range, likelihood channels (knn, seasonal, drift)
    "off", "lvl", "dsc", "ssc", "mn", "mx", "prev_l", "hold", "surp", "shown",
    "avg0", "mu0", "var0", "avg1", "mu1", "var1", "xf", "ls", "lsc", "avg2", "mu2", "var2", "avg3", "mu3", "var3",
    # alerting path: outlier run (blip filter), pending score alert and its onset, what opened the
    # open anomaly, points since the last alert-level likelihood, rate of confirmed shifts
    "orun", "pend", "pend_t0", "ochan", "calm", "srate", "sdt",
)
(N, LAST_TS, DT,
 LEVEL, SCALE, CP, CN, CP_T0, CN_T0, CP_SUM, CP_CNT, CN_SUM, CN_CNT,
 RUN, RUN_T0, RUN_SUM, OPEN, ONSET, BASE, BSCALE, OSUM, OCNT, REC, REC_T0,
 SLEVEL, SSCALE, SAMP, ERR0, ERR1, T0,
 OFF, LVL, DSC, SSC, MN, MX, PREV_L, HOLD, SURP, SHOWN,
 AVG0, MU0, VAR0, AVG1, MU1, VAR1, XF, LS, LSC, AVG2, MU2, VAR2, AVG3, MU3, VAR3,
 ORUN, PEND, PEND_T0, OCHAN, CALM, SRATE, SDT) = range(len(FIELDS))
NF = len(FIELDS)

# ---- parameters: a float64 vector, filled from DetectorConfig by core.kernel_params ------
PARAMS = (
    "alpha_level", "alpha_scale", "clip", "abs_floor", "rel_floor", "warmup",
    "season_bins", "season_days", "season_gain", "alpha_slevel", "alpha_season", "season_clip",
    "err_points", "k", "h", "h_strong", "z_clip", "z_persist", "persist", "min_rel_change",
    "z_close", "close_rel", "recover_points",
    "buffer", "dim", "knn_stride", "avg_points", "long_points", "learn", "scale_points",
    "var_floor", "score_rel_floor", "spatial_tol", "seasonal_score", "drift_score", "a_fast", "a_slow",
    "red", "yellow", "refresh", "holdoff", "spatial_hold", "level_score", "weekly", "event_gate", "gate_decay",
    "shift_open", "score_open", "open_z", "blip_z", "blip_dt", "settle", "gate_rate", "rate_points",
)
(P_ALPHA_LEVEL, P_ALPHA_SCALE, P_CLIP, P_ABS_FLOOR, P_REL_FLOOR, P_WARMUP,
 P_SEASON_BINS, P_SEASON_DAYS, P_SEASON_GAIN, P_ALPHA_SLEVEL, P_ALPHA_SEASON, P_SEASON_CLIP,
 P_ERR_POINTS, P_K, P_H, P_H_STRONG, P_Z_CLIP, P_Z_PERSIST, P_PERSIST, P_MIN_REL_CHANGE,
 P_Z_CLOSE, P_CLOSE_REL, P_RECOVER_POINTS,
 P_BUFFER, P_DIM, P_KNN_STRIDE, P_AVG_POINTS, P_LONG_POINTS, P_LEARN, P_SCALE_POINTS,
 P_VAR_FLOOR, P_SCORE_REL_FLOOR, P_SPATIAL_TOL, P_SEASONAL_SCORE, P_DRIFT_SCORE, P_A_FAST, P_A_SLOW,
 P_RED, P_YELLOW, P_REFRESH, P_HOLDOFF, P_SPATIAL_HOLD, P_LEVEL_SCORE, P_WEEKLY, P_EVENT_GATE, P_GATE_DECAY,
 P_SHIFT_OPEN, P_SCORE_OPEN, P_OPEN_Z, P_BLIP_Z, P_BLIP_DT, P_SETTLE, P_GATE_RATE, P_RATE_POINTS) = range(len(PARAMS))

#: prefetch distances (points ahead): a series' state row, then its history runs and lag sums
PF_STATE, PF_RING = 4, 2

#: event codes written to ``ev_kind``
EV_NONE, EV_OPEN, EV_CLOSE = 0, 1, 2
#: what opened an anomaly (``ev_chan``): a score channel reaching the alert level (kNN,
#: seasonal, drift, level), the range rule, or a CUSUM-confirmed level shift
CH_NONE, CH_KNN, CH_SEASONAL, CH_DRIFT, CH_LEVEL, CH_RANGE, CH_SHIFT = 0, 1, 2, 3, 4, 5, 6
CHANNELS = ("", "knn", "seasonal", "drift", "level", "range", "shift")

def _jit(inline: bool = False, fastmath: bool | set[str] = False) -> Any:
    """Numba's njit with this module's options (cached on disk, no bounds checks)."""
    return nb.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False, fastmath=fastmath,
                   inline="always" if inline else "never")


def _prefetch_impl(typingctx: Any, arr: Any, i: Any, j: Any) -> Any:
    """``_prefetch(arr, i, j)``: hint the CPU to fetch ``arr[i, j]``'s cache line (LLVM's
    prefetch: read, keep in all cache levels). It changes no result, only when memory is
    read: the kernel is bounded by memory traffic, and the next series' rows are known."""
    sig = types.void(arr, i, j)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]], wraparound=False)  # type: ignore[no-untyped-call]
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),  # type: ignore[no-untyped-call]
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


_prefetch: Any = intrinsic(_prefetch_impl)


@_jit(inline=True)
def _clip(a: float, lo: float, hi: float) -> float:
    return min(max(a, lo), hi)


@_jit(inline=True)
def _log1p(x: float) -> float:
    """log(1 + x) for x >= 0, within a few ulps of ``math.log1p`` (Kahan's: the rounding of
    1 + x is undone by the ratio x / (u - 1)) at the cost of one ``log``; glibc's log1p
    takes three to four times as long, and the kernel takes three per point."""
    u = 1.0 + x
    if u == 1.0:
        return x
    if u == np.inf:
        return u
    return math.log(u) * (x / (u - 1.0))  # type: ignore[no-any-return]


@_jit(inline=True)
def _round_half_even(v: float) -> int:
    r = math.floor(v)
    d = v - r
    if d > 0.5 or (d == 0.5 and r % 2 == 1):
        r += 1
    return int(r)


@_jit()
def group_order(code: np.ndarray, ts: np.ndarray, k: int) -> np.ndarray:
    """The points of a batch grouped by series (``code`` in ``[0, k)``), each series' points
    in their order (a stable counting sort: O(n + k), where a sort by series and time is
    O(n log n)); an empty array when some series' points are not in time order (the caller
    then sorts by time as well)."""
    n = len(code)
    start = np.zeros(k + 1, dtype=np.int64)
    for q in range(n):
        start[code[q] + 1] += 1
    for c in range(k):
        start[c + 1] += start[c]
    order = np.empty(n, dtype=np.int64)
    last = np.full(k, -np.inf)
    for q in range(n):
        c = code[q]
        t = ts[q]
        if t < last[c]:
            return np.empty(0, dtype=np.int64)
        last[c] = t
        order[start[c]] = q
        start[c] += 1
    return order


@_jit()
def take_new(order: np.ndarray, sid: np.ndarray, ts: np.ndarray, xs: np.ndarray,
             last_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The points of a batch taken in ``order`` (each series' points together, in time
    order) without the late ones: a point is kept when it is newer than its series' last
    detected point (``last_ts``) and than the point before it in the batch. Returns the
    kept points' series, timestamps and values, and their newest timestamp (-inf: none);
    ``last_ts`` moves to each series' last kept point. One pass, where the same in NumPy
    takes about fifteen over the batch."""
    n = len(order)
    sid_o = np.empty(n, dtype=np.int64)
    ts_o = np.empty(n)
    x_o = np.empty(n)
    m = 0
    newest = -np.inf
    prev_i = -1
    prev_t = 0.0
    base = 0.0
    for q in range(n):
        r = order[q]
        i = sid[r]
        t = ts[r]
        if i != prev_i:  # a series' first point in the batch: compared with its last detected one
            base = last_ts[i]
            keep = t > base
        else:
            keep = t > prev_t and t > base
        prev_i = i
        prev_t = t
        if keep:
            sid_o[m] = i
            ts_o[m] = t
            x_o[m] = xs[r]
            m += 1
            last_ts[i] = t
            if t > newest:
                newest = t
    return sid_o[:m], ts_o[:m], x_o[:m], newest


@_jit()
def ring_slots(buffer: int, dim: int, stride: int) -> int:
    """Slots per phase of the history ring (a power of two; see :func:`_pos`)."""
    need = -(-(buffer + dim + 1) // stride)
    m = 1
    while m < need:
        m *= 2
    return m


# The history ring of a series keeps its last ``M * stride >= buffer + dim + 1`` values
# (``stride`` and ``M`` powers of two, so positions are bit operations), split by phase
# (time mod stride) so that the values the strided kNN reads at one step --
# x[t-dim-j*stride] for j = 0, 1, ... -- are contiguous: within its phase, time u sits at
# slot M - 1 - (u mod (M*stride)) / stride, newest first, and every phase is held twice
# (slots s and s + M) so a run of up to M values never wraps.  The ring and the lag sums
# are float32 (half the memory traffic, which bounds the speed); the ring holds
# ``x - off`` with ``off`` a per-series reference re-based on the level every ``refresh``
# points, so differences keep their precision whatever the series' level.
@_jit(inline=True)
def _pos(u: int, sh: int, m_slots: int) -> int:
    # stride = 1 << sh: a shift, not a division (an integer division by a value known only
    # at run time costs tens of cycles, and a point computes several positions)
    return (u & ((1 << sh) - 1)) * 2 * m_slots + m_slots - 1 - ((u & ((m_slots << sh) - 1)) >> sh)


@_jit(inline=True)
def _at(ring: np.ndarray, i: int, u: int, sh: int, m_slots: int) -> float:
    return float(ring[i, _pos(u, sh, m_slots)])


@_jit()
def exact_sums(ring: np.ndarray, sums: np.ndarray, i: int, t: int, dim: int, sh: int, m_slots: int) -> None:
    """Recompute the kNN lag sums of series ``i`` from its ring (latest point index ``t``,
    already stored): ``sums[i, j] = sum_{m<dim} (x[t-m] - x[t-m-lag_j])^2``."""
    for j in range(sums.shape[1]):
        lag = dim + (j << sh)
        acc = 0.0
        for m in range(dim):
            d = _at(ring, i, t - m, sh, m_slots) - _at(ring, i, t - m - lag, sh, m_slots)
            acc += d * d
        sums[i, j] = acc


@_jit(fastmath={"nnan", "nsz", "contract"})
def _update_sums(sums: np.ndarray, ring: np.ndarray, i: int, a0: int, c0: int, x: float, xd: float) -> None:
    """sums[i, j] += (x - ring[i, a0+j])^2 - (xd - ring[i, c0+j])^2, clamped at 0, in float64
    arithmetic on float32 storage (vectorised by LLVM).  It takes the 2-D arrays and a row,
    not row views: a view is a reference-counted array in Numba, and its increments and
    decrements (atomic) cost more than the arithmetic."""
    a = np.uint64(a0)
    c = np.uint64(c0)
    for j in range(sums.shape[1]):
        # unsigned column indices: Numba adds no negative-index fix-up to them, which would
        # turn the contiguous loads below into one load per element (no vector loads)
        u = x - np.float64(ring[i, a + np.uint64(j)])
        w = xd - np.float64(ring[i, c + np.uint64(j)])
        v = np.float64(sums[i, j]) + (u * u - w * w)
        sums[i, j] = v if v > 0.0 else 0.0


@_jit(fastmath={"nnan", "nsz"})
def _min_prefix(s: np.ndarray, i: int, m: int) -> float:
    """min(s[i, :m]) (inf when m <= 0), taken in float32 (exact: the minimum of the stored
    values, widened once) so that LLVM vectorises it (no NaN is ever stored in the lag
    sums: see :func:`_update_sums`). A 2-D array and a row, not a row view (see there)."""
    b = np.float32(np.inf)
    for j in range(m):
        v = s[i, j]
        b = v if v < b else b
    return float(b)


@_jit(inline=True)
def _window_dist(ring: np.ndarray, i: int, t: int, xr: float, lag: int, dim: int, sh: int, m_slots: int) -> float:
    """Squared distance between the last ``dim`` values (the newest, ``xr``, not yet in
    the ring) and the window ``lag`` points earlier."""
    acc: float = (xr - _at(ring, i, t - lag, sh, m_slots)) ** 2
    for m in range(1, dim):
        d = _at(ring, i, t - m, sh, m_slots) - _at(ring, i, t - m - lag, sh, m_slots)
        acc += d * d
    return acc


@_jit(inline=True)
def _channel(s: np.ndarray, i: int, f: int, raw: float, a_avg: float, a_long: float, var_floor: float) -> float:
    """One likelihood channel (fields f, f+1, f+2 = short average, long-run mean and
    variance): the z of the updated short average against the long-run distribution as
    it was, then the long-run update."""
    avg = s[i, f] + a_avg * (raw - s[i, f])
    mu = s[i, f + 1]
    var = s[i, f + 2]
    zc = (avg - mu) / math.sqrt(max(var, var_floor))
    d = avg - mu
    s[i, f] = avg
    s[i, f + 1] = mu + a_long * d
    s[i, f + 2] = (1.0 - a_long) * (var + a_long * d * d)
    return zc  # type: ignore[no-any-return]


@_jit()
def step_kernel(
    s: np.ndarray, season: np.ndarray, ring: np.ndarray, sums: np.ndarray, p: np.ndarray,
    idx: np.ndarray, ts: np.ndarray, xs: np.ndarray,
    scores: np.ndarray, ev_kind: np.ndarray, ev_onset: np.ndarray, ev_dir: np.ndarray,
    ev_score: np.ndarray, ev_base: np.ndarray, ev_obs: np.ndarray, ev_chan: np.ndarray, ev_chz: np.ndarray,
) -> int:
    """Advance series ``idx[q]`` by the point ``(ts[q], xs[q])`` for every q; writes the
    score and the event (if any) of each point to the output arrays; returns the number
    of events. Points are taken in order, so a series may repeat (its points in time
    order)."""
    warmup = p[P_WARMUP]
    bins = int(p[P_SEASON_BINS])
    seasonal = bins > 0
    bin_w = DAY / max(bins, 1)
    B = int(p[P_BUFFER])
    D = int(p[P_DIM])
    stride = int(p[P_KNN_STRIDE])
    M = ring_slots(B, D, stride)
    sh = 0  # stride = 1 << sh (a power of two, checked by DetectorConfig)
    while (1 << sh) < stride:
        sh += 1
    n_lags = sums.shape[1]
    clip = p[P_CLIP]
    learn = p[P_LEARN]
    refresh = int(p[P_REFRESH])
    refresh_mask = refresh - 1 if refresh > 0 and refresh & (refresh - 1) == 0 else -1  # a power of two: a mask
    a_avg = 1.0 / p[P_AVG_POINTS]
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    n_events = 0
    # parameters as locals: loaded once per call, not once per series
    c_abs_floor = p[P_ABS_FLOOR]
    c_alpha_level = p[P_ALPHA_LEVEL]
    c_alpha_scale = p[P_ALPHA_SCALE]
    c_alpha_season = p[P_ALPHA_SEASON]
    c_alpha_slevel = p[P_ALPHA_SLEVEL]
    c_a_fast = p[P_A_FAST]
    c_a_slow = p[P_A_SLOW]
    c_close_rel = p[P_CLOSE_REL]
    c_drift_score = p[P_DRIFT_SCORE]
    c_err_points = p[P_ERR_POINTS]
    c_event_gate = p[P_EVENT_GATE]
    c_gate_decay = p[P_GATE_DECAY]
    c_h = p[P_H]
    c_holdoff = p[P_HOLDOFF]
    c_h_strong = p[P_H_STRONG]
    c_k = p[P_K]
    c_level_score = p[P_LEVEL_SCORE]
    c_long_points = p[P_LONG_POINTS]
    c_min_rel_change = p[P_MIN_REL_CHANGE]
    c_persist = p[P_PERSIST]
    c_recover_points = p[P_RECOVER_POINTS]
    c_red = p[P_RED]
    c_rel_floor = p[P_REL_FLOOR]
    c_scale_points = p[P_SCALE_POINTS]
    c_score_rel_floor = p[P_SCORE_REL_FLOOR]
    c_seasonal_score = p[P_SEASONAL_SCORE]
    c_season_clip = p[P_SEASON_CLIP]
    c_season_days = p[P_SEASON_DAYS]
    c_season_gain = p[P_SEASON_GAIN]
    c_spatial_hold = p[P_SPATIAL_HOLD]
    c_spatial_tol = p[P_SPATIAL_TOL]
    c_var_floor = p[P_VAR_FLOOR]
    c_weekly = p[P_WEEKLY]
    c_yellow = p[P_YELLOW]
    c_z_clip = p[P_Z_CLIP]
    c_z_close = p[P_Z_CLOSE]
    c_z_persist = p[P_Z_PERSIST]
    c_shift_open = p[P_SHIFT_OPEN]
    c_score_open = p[P_SCORE_OPEN]
    c_open_z = p[P_OPEN_Z]
    c_blip_z = p[P_BLIP_Z]
    c_blip_dt = p[P_BLIP_DT]
    c_settle = p[P_SETTLE]
    c_gate_rate = p[P_GATE_RATE]
    a_rate = 1.0 / p[P_RATE_POINTS]
    inv_err_points = 1.0 / c_err_points
    inv_scale_points = 1.0 / c_scale_points
    inv_long_points = 1.0 / c_long_points
    yellow_score = math.log(1.0000000001 - c_yellow) / LOG_EPS  # the score of the yellow level (0.3)
    n_q = idx.shape[0]
    for q in range(n_q):
        # prefetch: the state row of the series 4 points ahead, and the history runs and lag
        # sums of the one 2 points ahead (its state row, fetched 2 points ago, says where)
        if q + PF_STATE < n_q:
            j4 = idx[q + PF_STATE]
            for f in range(0, NF, 8):
                _prefetch(s, j4, f)
            _prefetch(s, j4, NF - 1)  # rows are not line-aligned
        if q + PF_RING < n_q:
            j2 = idx[q + PF_RING]
            n2 = int(s[j2, N])
            a0 = _pos(n2 - D, sh, M)
            a1 = _pos(n2 - 2 * D, sh, M)
            for f in range(0, n_lags, 16):
                _prefetch(ring, j2, a0 + f)
                _prefetch(ring, j2, a1 + f)
                _prefetch(sums, j2, f)
            a2 = _pos(n2, sh, M)
            _prefetch(ring, j2, a2)
            _prefetch(ring, j2, a2 + M)
            if seasonal:
                t2 = ts[q + PF_RING]
                _prefetch(season, j2, min(int((t2 - math.floor(t2 / DAY) * DAY) / bin_w), bins - 1))
        i = idx[q]
        t = ts[q]
        n = s[i, N]
        ni = int(n)
        first = n == 0.0
        off = s[i, OFF]
        prev = _at(ring, i, ni - 1, sh, M) + off
        x = xs[q]
        if not math.isfinite(x):  # a missing value repeats the previous one
            x = prev if n > 0 else 0.0
        if first:
            off = x
            s[i, OFF] = x
            s[i, LEVEL] = x
            s[i, SLEVEL] = x
            s[i, T0] = t
            s[i, LAST_TS] = t
        warm = n >= warmup
        a_first = 1.0 / max(n, 1.0)
        a_next = 1.0 / (n + 1.0)
        level = s[i, LEVEL]
        slevel = s[i, SLEVEL]
        t0 = s[i, T0]
        gap = t - s[i, LAST_TS]
        dt_old = s[i, DT]
        dt = dt_old + 0.05 * (gap - dt_old) if dt_old > 0 else gap

        # ---- expected value: plain level, or the seasonal model once it is better --------
        b = 0
        seas = 0.0
        use_season = False
        pred1 = level
        if seasonal:
            sec = t - math.floor(t / DAY) * DAY
            b = min(int(sec / bin_w), bins - 1)
            seas = season[i, b]
            pred1 = slevel + seas
            use_season = (t - t0) >= c_season_days * DAY and s[i, ERR1] < c_season_gain * s[i, ERR0]
        pred = pred1 if use_season else level
        absl = abs(pred)
        floor = max(c_rel_floor * absl, c_abs_floor)
        sc0 = max(s[i, SCALE], floor)
        sc1 = max(s[i, SSCALE], floor)
        sc = sc1 if use_season else sc0
        z = (x - pred) / sc

        # ---- CUSUM with clipped increments; excursion starts and sums -------------------
        zc = _clip(z, -c_z_clip, c_z_clip)
        cp_old = s[i, CP]
        cn_old = s[i, CN]
        cp = max(cp_old + (zc - c_k), 0.0)
        cn = max(cn_old - (zc + c_k), 0.0)
        cp_new = cp > 0 and cp_old <= 0
        cn_new = cn > 0 and cn_old <= 0
        cp_t0 = t if cp_new else s[i, CP_T0]
        cn_t0 = t if cn_new else s[i, CN_T0]
        cp_sum = ((0.0 if cp_new else s[i, CP_SUM]) + x) if cp > 0 else 0.0
        cp_cnt = ((0.0 if cp_new else s[i, CP_CNT]) + 1.0) if cp > 0 else 0.0
        cn_sum = ((0.0 if cn_new else s[i, CN_SUM]) + x) if cn > 0 else 0.0
        cn_cnt = ((0.0 if cn_new else s[i, CN_CNT]) + 1.0) if cn > 0 else 0.0
        # persistence run: +k consecutive points above z_persist, -k below -z_persist
        run_old = s[i, RUN]
        run = 0.0
        if z >= c_z_persist:
            run = max(run_old, 0.0) + 1.0
        elif z <= -c_z_persist:
            run = min(run_old, 0.0) - 1.0
        run_start = abs(run) == 1.0
        run_t0 = t if run_start else s[i, RUN_T0]
        run_sum = (0.0 if run_start else s[i, RUN_SUM]) + x
        persist = c_persist
        conf_up = warm and cp > c_h and (run >= persist or cp > c_h_strong)
        conf_dn = (not conf_up) and warm and cn > c_h and (run <= -persist or cn > c_h_strong)
        conf = conf_up or conf_dn
        # outlier run for the blip filter: +k consecutive points above blip_z scales, -k below
        # (series sampled less often than every blip_dt seconds have no blip filter: one of
        # their points already stands for minutes of behaviour). The sampling interval here
        # is robust to gaps (a gap moves it by at most 5 %), so a data gap never switches
        # the filter off.
        sdt = s[i, SDT]
        sdt_old = sdt
        if gap > 0:
            sdt = gap if sdt <= 0 else sdt + 0.05 * (min(gap, 2.0 * sdt) - sdt)
        s[i, SDT] = sdt
        orun = 0.0
        if sdt <= c_blip_dt:
            if z >= c_blip_z:
                orun = max(s[i, ORUN], 0.0) + 1.0
            elif z <= -c_blip_z:
                orun = min(s[i, ORUN], 0.0) - 1.0

        # ---- baseline updates (robust) -------------------------------------------------
        a_l = max(a_next, c_alpha_level)
        a_s = max(a_first, c_alpha_scale)
        lim0 = clip * sc0 if warm else np.inf
        rc = _clip(x - level, -lim0, lim0)
        new_level = level + a_l * rc
        s[i, SCALE] = s[i, SCALE] + a_s * (1.25 * abs(rc) - s[i, SCALE])
        new_slevel = slevel
        if seasonal:
            lim1 = clip * sc1 if warm else np.inf
            d1 = x - pred1
            r1 = _clip(d1, -lim1, lim1)
            new_slevel = slevel + max(a_next, c_alpha_slevel) * r1
            s[i, SSCALE] = s[i, SSCALE] + a_s * (1.25 * abs(r1) - s[i, SSCALE])
            samp_old = s[i, SAMP]
            big = 10.0 * max(samp_old, max(sc0, sc1))
            a_err = inv_err_points
            s[i, ERR0] = s[i, ERR0] + a_err * (min(abs(x - level), big) - s[i, ERR0])
            s[i, ERR1] = s[i, ERR1] + a_err * (min(abs(d1), big) - s[i, ERR1])
            samp = samp_old + a_s * (abs(x - slevel) - samp_old)
            s[i, SAMP] = samp
            days = (t - t0) * (1.0 / DAY)
            a_se = max(c_alpha_season, 1.0 / (days + 1.0)) * min(1.0, max(dt, 1e-9) / bin_w)
            lim_se = c_season_clip * max(samp, sc1) if warm else np.inf
            season[i, b] = seas + a_se * _clip(d1, -lim_se, lim_se)

        # ---- score, kNN novelty: running lag sums over the strided lags ------------------
        xr = np.float64(np.float32(x - off))  # as stored: the ring holds values relative to off
        xd = _at(ring, i, ni - D, sh, M)
        p0 = _pos(ni - D, sh, M)        # x[t-D-j*stride], j = 0.. : ring[i, p0 + j]
        p1 = _pos(ni - 2 * D, sh, M)    # x[t-2D-j*stride]
        _update_sums(sums, ring, i, p0, p1, xr, xd)
        # lags up to n - D compare with real history only
        best = _min_prefix(sums, i, min(n_lags, ((ni - 2 * D) >> sh) + 1) if ni >= 2 * D else 0)
        lvl = x if first else s[i, LVL]
        lfloor = max(c_score_rel_floor * abs(lvl), 1e-9)
        dsc_old = s[i, DSC]
        dsc = max(dsc_old, lfloor)
        a_sc = max(1.0 / (n + 1.0), inv_scale_points)
        knn = math.sqrt(best / D) / dsc if best < np.inf else 0.0
        raw0 = _log1p(knn)

        # ---- seasonal novelty: distance to the window one day earlier -------------------
        ssc = s[i, SSC]
        raw1 = 0.0
        do_seasonal = c_seasonal_score > 0
        if do_seasonal:
            per = DAY / max(dt_old, 1.0)
            lag_p = min(max(_round_half_even(per), D), B)
            if dt_old > 0 and per <= B and n >= lag_p + D:
                sv = math.sqrt(_window_dist(ring, i, ni, xr, lag_p, D, sh, M) / D)
                if c_weekly > 0:
                    lag_w = 7 * lag_p
                    if lag_w <= B and n >= lag_w + D:
                        sv = min(sv, math.sqrt(_window_dist(ring, i, ni, xr, lag_w, D, sh, M) / D))
                if ssc > 0:
                    ssc_f = max(ssc, 1e-12)
                    raw1 = _log1p(sv / ssc_f)
                    ssc = ssc + a_sc * (min(sv, clip * ssc_f) - ssc)
                else:
                    ssc = sv

        # ---- likelihood of each channel's short average against its long-run spread ------
        a_long = max(1.0 / (n + 1.0), inv_long_points)
        var_floor = c_var_floor
        zs = _channel(s, i, AVG0, raw0, a_avg, a_long, var_floor)
        chan = CH_KNN
        z1 = _channel(s, i, AVG1, raw1, a_avg, a_long, var_floor)
        if do_seasonal and z1 > zs:
            zs = z1
            chan = CH_SEASONAL
        if c_drift_score > 0:
            xf = x if first else s[i, XF] + c_a_fast * (x - s[i, XF])
            ls = x if first else s[i, LS]
            lsc = s[i, LSC]
            lsc_f = max(lsc, lfloor)
            raw2 = _log1p(abs(xf - ls) / lsc_f) if lsc > 0 else 0.0
            z2 = _channel(s, i, AVG2, raw2, a_avg, a_long, var_floor)
            if z2 > zs:
                zs = z2
                chan = CH_DRIFT
            a_ls = max(1.0 / (n + 1.0), c_a_slow)
            dls = _clip(xf - ls, -clip * lsc_f, clip * lsc_f) if lsc > 0 else xf - ls
            s[i, LS] = ls + a_ls * dls
            s[i, LSC] = lsc + a_ls * (1.25 * abs(dls) - lsc)
            s[i, XF] = xf
        if c_level_score > 0:  # residual against the (seasonal) baseline, in its scales
            raw3 = _log1p(abs(z) * 0.25) if warm else 0.0
            z3 = _channel(s, i, AVG3, raw3, a_avg, a_long, var_floor)
            if z3 > zs:
                zs = z3
                chan = CH_LEVEL
        lik = 0.5 if n < learn else 1.0 - 0.5 * math.erfc(zs * inv_sqrt2)
        lik_f = c_yellow if (s[i, PREV_L] > c_red and lik > c_red) else lik
        lik_score = math.log(1.0000000001 - lik) / LOG_EPS
        score = lik_score if lik_f == lik else math.log(1.0000000001 - lik_f) / LOG_EPS
        # spatial anomaly: a value outside the range seen so far (widened) scores 1
        mn, mx = s[i, MN], s[i, MX]
        tol = (mx - mn) * c_spatial_tol
        spatial = n >= learn and mx > mn and (x > mx + tol or x < mn - tol)
        surp = max(1.0 if spatial else lik_score, s[i, SURP] * c_gate_decay)
        s[i, SURP] = surp
        hold = s[i, HOLD]
        if spatial and (hold <= 0 or c_spatial_hold <= 0):
            score = 1.0
            chan = CH_RANGE
        elif hold > 0:  # hold-off after an alert: report at most the yellow level
            score = min(score, yellow_score)
        if hold > 0:
            s[i, HOLD] = hold - 1.0
        elif score >= 0.5:
            s[i, HOLD] = c_holdoff
        score = min(max(score, 0.0), 1.0)
        scores[q] = score
        alert = score >= 0.5

        s[i, PREV_L] = lik
        s[i, MN] = min(mn, x)
        s[i, MX] = max(mx, x)
        dd = 0.0 if first else abs(x - prev)
        if n > 30:
            dd = min(dd, clip * dsc)
        s[i, DSC] = dsc_old + a_sc * (1.25 * dd - dsc_old)
        s[i, LVL] = lvl + max(1.0 / (n + 1.0), inv_scale_points) * (x - lvl)
        s[i, SSC] = ssc

        # ---- alert-level scores open anomalies, behind the blip filter -------------------
        # An alert-level score (any channel, or the range rule) on a point at least open_z
        # scales from the baseline opens an anomaly -- but never on a one-point blip: when
        # that point is the first of its outlier run, the alert is held for one point and
        # opens only if the next point is an outlier on the same side too (a 1-point
        # excursion cancels it; the score's hold-off then keeps the blip from re-alerting).
        calm = 0.0 if (n >= learn and (spatial or lik_score >= 0.5)) else s[i, CALM] + 1.0
        pend = s[i, PEND]
        pend_t0 = s[i, PEND_T0]
        score_open = False
        if c_score_open > 0 and warm and n >= learn and s[i, OPEN] == 0:
            if pend != 0:  # held for one point: did the outlier run go on?
                score_open = abs(orun) >= 2.0
                if not score_open:
                    pend = 0.0
            elif alert and abs(z) >= c_open_z:
                pend = float(chan)
                pend_t0 = t
                score_open = abs(orun) != 1.0
        else:
            pend = 0.0

        # ---- confirmed shifts re-base; open / close anomaly events ----------------------
        ev_kind[q] = EV_NONE
        is_open = s[i, OPEN]
        if conf or is_open != 0 or score_open:
            run_ok = abs(run) >= persist
            if run_ok:
                seg_sum, seg_cnt, onset_est = run_sum, abs(run), run_t0
            elif conf_up:
                seg_sum, seg_cnt, onset_est = cp_sum, cp_cnt, cp_t0
            elif conf_dn:
                seg_sum, seg_cnt, onset_est = cn_sum, cn_cnt, cn_t0
            elif run != 0:  # a score alert: the run of points beyond z_persist it belongs to
                seg_sum, seg_cnt, onset_est = run_sum, abs(run), min(run_t0, pend_t0)
            else:
                seg_sum, seg_cnt, onset_est = x, 1.0, pend_t0
            shift_mean = seg_sum / max(seg_cnt, 1.0)
            if conf:
                new_level = shift_mean
                if use_season:
                    new_slevel = new_slevel + (shift_mean - pred)
            was_open = is_open != 0
            opening_shift = conf and c_shift_open > 0 and not was_open and abs(shift_mean - pred) >= c_min_rel_change * absl
            opening = opening_shift or (score_open and not was_open)
            if opening:
                base, bscale, onset, osum, ocnt = pred, sc, onset_est, seg_sum, seg_cnt
            else:
                base, bscale, onset = s[i, BASE], s[i, BSCALE], s[i, ONSET]
                osum = s[i, OSUM] + (x if was_open else 0.0)
                ocnt = s[i, OCNT] + (1.0 if was_open else 0.0)
            near = abs(x - base) <= max(c_z_close * bscale, c_close_rel * abs(base))
            rec_old = s[i, REC]
            rec_inc = was_open and near
            rec = rec_old + 1.0 if rec_inc else 0.0
            rec_t0 = t if (rec_inc and rec_old == 0) else s[i, REC_T0]
            # closes on recovery, or (settle > 0) once the series has settled at its new level:
            # open for settle points and no alert-level likelihood for as long
            recovered = was_open and rec >= c_recover_points
            # ... or it settles: open settle points without an alert-level likelihood, or no
            # data for longer than settle points would take (it ended when the data stopped)
            went_silent = was_open and c_settle > 0 and sdt_old > 0 and gap > c_settle * sdt_old
            closing = recovered or went_silent or (was_open and c_settle > 0 and calm >= c_settle
                                                   and t - onset >= c_settle * dt)
            obs = osum / max(ocnt, 1.0)
            # The likelihood gate: a confirmed shift is reported (its open event emitted) only
            # once it is also surprising for this series -- its recent likelihood score
            # reached event_gate (not required while the score is still learning). Until
            # then it is tracked silently; if it recovers first, nothing is reported.
            # A series that has rarely shifted (fewer than gate_rate confirmed shifts in the last
            # ~rate_points points) reports its shifts without the gate: its small sustained
            # shifts are news even when the likelihood has not reached the alert level.
            gate_ok = (c_event_gate <= 0 or n < learn or surp >= c_event_gate
                       or s[i, SRATE] < c_gate_rate * a_rate)
            if opening:
                if opening_shift:
                    s[i, OPEN] = 1.0 if conf_up else -1.0
                    s[i, OCHAN] = float(CH_SHIFT)
                else:
                    s[i, OPEN] = 1.0 if z >= 0 else -1.0
                    s[i, OCHAN] = pend
                    gate_ok = True
                s[i, SHOWN] = 0.0
                pend = 0.0
            emit_open = (opening or (was_open and not closing and s[i, SHOWN] == 0)) and gate_ok
            if emit_open:
                s[i, SHOWN] = 1.0
                ev_kind[q] = EV_OPEN
                ev_onset[q] = min(onset, t)
                ev_dir[q] = 1.0 if s[i, OPEN] > 0 else -1.0
                ev_score[q] = abs(obs - base) / bscale
                ev_base[q] = base
                ev_obs[q] = obs
                ev_chan[q] = int(s[i, OCHAN])
                ev_chz[q] = zs
                n_events += 1
            elif closing:
                s[i, OPEN] = 0.0
            if closing and s[i, SHOWN] != 0:
                s[i, SHOWN] = 0.0
                ev_kind[q] = EV_CLOSE
                ev_onset[q] = rec_t0 if recovered else (t - gap if went_silent else t)  # settled: now
                ev_dir[q] = 1.0 if is_open > 0 else -1.0
                ev_score[q] = abs(obs - base) / bscale
                ev_base[q] = base
                ev_obs[q] = x
                ev_chan[q] = int(s[i, OCHAN])
                ev_chz[q] = zs
                n_events += 1
            s[i, ONSET] = onset
            s[i, BASE] = base
            s[i, BSCALE] = bscale
            s[i, OSUM] = osum
            s[i, OCNT] = ocnt
            s[i, REC] = 0.0 if closing else rec
            s[i, REC_T0] = rec_t0
        # how often this series shifts (confirmed shifts per point, EW over rate_points): the
        # likelihood gate is for series that shift routinely
        s[i, SRATE] = s[i, SRATE] + a_rate * ((1.0 if conf else 0.0) - s[i, SRATE])
        if conf:
            cp = cn = cp_sum = cp_cnt = cn_sum = cn_cnt = run = run_sum = 0.0
        s[i, LEVEL] = new_level
        s[i, SLEVEL] = new_slevel
        s[i, CP] = cp
        s[i, CN] = cn
        s[i, CP_T0] = cp_t0
        s[i, CN_T0] = cn_t0
        s[i, CP_SUM] = cp_sum
        s[i, CP_CNT] = cp_cnt
        s[i, CN_SUM] = cn_sum
        s[i, CN_CNT] = cn_cnt
        s[i, RUN] = run
        s[i, RUN_T0] = run_t0
        s[i, RUN_SUM] = run_sum
        s[i, ORUN] = orun
        s[i, PEND] = pend
        s[i, PEND_T0] = pend_t0
        s[i, CALM] = calm

        # ---- clock and ring -------------------------------------------------------------
        s[i, N] = n + 1.0
        s[i, LAST_TS] = t
        s[i, DT] = dt
        pos = _pos(ni, sh, M)
        ring[i, pos] = xr
        ring[i, pos + M] = xr
        if refresh > 0 and (((ni + 1) & refresh_mask) == 0 if refresh_mask >= 0 else (ni + 1) % refresh == 0):
            # re-base the ring on the current level, then recompute the sums exactly
            delta = s[i, LVL] - off
            for j in range(ring.shape[1]):
                ring[i, j] = ring[i, j] - delta
            s[i, OFF] = off + delta
            exact_sums(ring, sums, i, ni, D, sh, M)
    return n_events
