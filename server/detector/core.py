"""Streaming anomaly detector for many series at once (pure: no I/O).

One :class:`StreamingDetector` holds the state of many series in column arrays and
advances any subset of them by one point per :meth:`StreamingDetector.step` call.  The
arithmetic is one compiled loop over the series of the step (:mod:`server.detector.kernel`,
Numba), so a series' state is touched once per point.  Everything is strictly online: a
point's score and events depend only on the points at or before it in its own series.

**Baselines** (per series)

* ``level``: robust exponentially weighted mean (updates clipped at ``clip`` scales so
  spikes barely move it), re-based on confirmed level shifts; ``scale``: EW mean
  absolute residual (x1.25, ~sigma for Gaussian noise), floored by ``abs_floor`` and
  ``rel_floor * |level|`` so near-constant series do not alert on tiny moves.
* A daily seasonal model (``season_bins`` profile + slow level) learnt alongside; it is
  used instead of the plain level once it has ``season_days`` of history and its error
  is below ``season_gain`` times the plain model's (online model selection).

**Change points and events** (what the server turns into anomalies and incidents)

Two-sided CUSUM on the robust z, increments clipped at ``z_clip`` so one blip cannot
confirm a shift.  A shift is *confirmed* when the CUSUM passes ``h`` and the last
``persist`` points were all beyond ``z_persist`` scales, or when the CUSUM passes
``h_strong`` (slow, moderate shifts).  Its onset is the first point of the persistent
run (else the start of the CUSUM excursion).  A confirmed shift opens an anomaly (at most
one open per series) with the pre-shift baseline; it closes after ``recover_points``
consecutive points back within ``z_close`` baseline scales (or ``close_rel``
relative) of that baseline.  An anomaly is *reported* (its open event emitted, with its
onset) only once it is also surprising for that series: its recent per-point score
(below) reached ``event_gate``.  Until then it is tracked silently, and nothing is
reported if it recovers first, so routine bursts of a bursty series page nobody.

**Per-point score** in [0, 1] (what NAB scores; 0.5 is the alert level)

Four raw surprises, each in units the series sets itself, through a Numenta-style
anomaly likelihood (short average against its own long-run mean/variance, Gaussian tail):

* kNN novelty: distance from the last ``dim`` values to the nearest earlier window at
  lags ``dim, dim + knn_stride, ...`` up to ``buffer`` (running lag sums: O(buffer /
  knn_stride) per point), in units of the typical step between values;
* seasonal novelty: distance to the window one day (or, if closer, one week) earlier,
  when that lag fits the buffer;
* drift: a fast EW mean (~20 points) against a slow robust level (~500 points);
* level: the residual against the events' robust (seasonal) baseline.

The score comes from the highest channel.  A red (likelihood ``red``) right after a red
is reported at ``yellow``; after an alert the next ``holdoff`` points score at most
yellow; the first ``learn`` points cannot alert; a value outside the range seen so far,
widened by ``spatial_tol`` of it, scores 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from server.detector import kernel as K

STATE_VERSION = 3


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
    h_strong: float = 20.0         # CUSUM decision interval without persistence
    z_clip: float = 4.0            # CUSUM increment clip (one blip adds at most z_clip - k)
    z_persist: float = 2.5         # |z| a point needs to count towards persistence
    persist: int = 3               # consecutive points beyond z_persist to confirm a shift
    min_rel_change: float = 0.02   # an open needs |observed - baseline| >= this * |baseline|
    z_close: float = 2.0           # close: within z_close baseline scales of baseline ...
    close_rel: float = 0.05        # ... or within close_rel * |baseline|
    recover_points: int = 6        # consecutive near-baseline points to close
    event_gate: float = 0.5        # an anomaly is reported only once the series' recent score reaches this (0: off)
    gate_decay: float = 0.97       # per-point decay of that recent score (~33 points of memory)
    # per-point score (anomaly likelihood of kNN, seasonal and drift surprises)
    buffer: int = 400              # history searched by the kNN (>= 288: a day of 5-minute points)
    dim: int = 5                   # points per compared window
    knn_stride: int = 8            # the kNN compares windows at lags dim, dim + stride, ... <= buffer (a power of 2)
    avg_points: float = 30.0       # short EW average of each raw surprise (Numenta: 10-point mean)
    long_points: int = 8000        # memory of each channel's long-run mean / variance
    learn: int = 150               # points before the likelihood and the range rule may alert
    scale_points: int = 1000       # memory of the score's robust scales
    var_floor: float = 1e-6        # floor of a channel's long-run variance
    score_rel_floor: float = 1e-3  # floor of the step scale, relative to |level|
    spatial_tol: float = 0.05      # a value outside the range seen so far, widened by this fraction, scores 1
    seasonal_score: bool = True    # seasonal channel (window one day earlier)
    drift_score: bool = True       # drift channel (fast mean against a slow level)
    a_fast: float = 0.05           # EW weight of the drift channel's fast mean (~20 points)
    a_slow: float = 0.002          # EW weight of its slow level (~500 points)
    red: float = 0.99999           # likelihood of an alert (score 0.5)
    yellow: float = 0.999          # a red right after a red is reported at this likelihood
    refresh: int = 2048            # exact recompute of the running lag sums every this many points
    holdoff: int = 100             # after an alert-level score, the next this many points score at most yellow
    spatial_hold: bool = False     # the hold-off also covers the range rule
    weekly: bool = True            # the seasonal channel also compares with a week earlier, when that fits the buffer
    level_score: bool = True       # level channel: residual against the events' robust (seasonal) baseline
    # alerting path: what opens an anomaly (see "Events" in the module docstring)
    shift_open: bool = True        # a confirmed CUSUM shift opens an anomaly (behind the likelihood gate)
    score_open: bool = True        # an alert-level score opens an anomaly (behind the blip filter)
    open_z: float = 5.0            # ... on a point at least this many baseline scales off
    blip_z: float = 3.5            # blip filter: the next point must be this many scales off, on the same side
    blip_dt: float = 60.0          # the blip filter acts on series sampled at least this often (seconds)
    settle: int = 1000             # an anomaly also ends once open this long without an alert-level likelihood (0: never)
    gate_rate: float = 0.5         # the gate applies once a series has had this many confirmed shifts ...
    rate_points: int = 2000        # ... per this many points (EW): rarely-shifting series report shifts ungated

    @property
    def n_lags(self) -> int:
        """Number of lags the kNN compares."""
        return (self.buffer - self.dim) // self.knn_stride + 1

    def params(self) -> np.ndarray:
        """The kernel's parameter vector (``kernel.PARAMS`` order)."""
        values = asdict(self)
        return np.array([float(values[name]) for name in K.PARAMS], dtype=np.float64)

    def validate(self) -> None:
        if not 1 <= self.dim < self.buffer:
            raise ValueError("the detector needs 1 <= dim < buffer")
        if self.knn_stride < 1 or self.knn_stride & (self.knn_stride - 1):
            raise ValueError("knn_stride must be a power of two")


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
    channel: str = ""        # what opened it: knn / seasonal / drift / level / range / shift
    channel_z: float = 0.0   # the score channel's likelihood z at the event


@dataclass(slots=True)
class StepResult:
    scores: np.ndarray
    events: list[DetectorEvent]


def _blank_state(cap: int) -> np.ndarray:
    state = np.zeros((cap, K.NF), dtype=np.float64)  # series-major: a series' fields are adjacent
    state[:, K.MN] = np.inf
    state[:, K.MX] = -np.inf
    return state


class StreamingDetector:
    """Per-series streaming detector; one :meth:`step` advances many series by a point."""

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = cfg = config or DetectorConfig()
        cfg.validate()
        self._params = cfg.params()
        self._slots = K.ring_slots(cfg.buffer, cfg.dim, cfg.knn_stride)
        self._ring_len = self._slots * cfg.knn_stride
        cap = max(1, capacity)
        self._s = _blank_state(cap)
        self._season = np.zeros((cap, max(1, cfg.season_bins)), dtype=np.float64)
        self._ring = np.zeros((cap, 2 * self._ring_len), dtype=np.float32)  # layout: kernel._pos
        self._sums = np.zeros((cap, cfg.n_lags), dtype=np.float32)
        self.n_series = 0

    # -- capacity --------------------------------------------------------------------
    def ensure(self, n_series: int) -> None:
        cap = self._s.shape[0]
        if n_series > cap:
            new_cap = max(n_series, cap * 2)
            grown = _blank_state(new_cap)
            grown[:cap] = self._s
            self._s = grown
            self._season = _grow_rows(self._season, new_cap)
            self._ring = _grow_rows(self._ring, new_cap)
            self._sums = _grow_rows(self._sums, new_cap)
        self.n_series = max(self.n_series, n_series)

    def nbytes_per_series(self) -> int:
        return int(sum(a.itemsize * a.shape[1] for a in (self._s, self._season, self._ring, self._sums)))

    # -- persistence -----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        n = self.n_series
        return {
            "version": np.array([STATE_VERSION], dtype=np.int64),
            "fields": np.array(K.FIELDS),
            "state": self._s[:n].T.copy(),  # one row per field
            "season": self._season[:n].copy(),
            "ring": self._ring[:n].reshape(n, self.config.knn_stride, 2, self._slots)[:, :, 0].reshape(
                n, self._ring_len),
            "sums": self._sums[:n].copy(),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`get_state`.  Unknown fields are ignored and missing
        ones start fresh; a state saved with another ``buffer`` / ``dim`` / ``knn_stride``
        (or before the score history existed) raises ``ValueError``."""
        fields = [str(f) for f in state["fields"]]
        data = np.asarray(state["state"], dtype=np.float64)
        n = data.shape[1]
        ring = np.asarray(state.get("ring", np.zeros((0, 0))), dtype=np.float32)
        sums = np.asarray(state.get("sums", np.zeros((0, 0))), dtype=np.float32)
        if ring.shape != (n, self._ring_len) or sums.shape != (n, self.config.n_lags):
            raise ValueError("detector state was saved with a different score history layout")
        cap = max(n, self._s.shape[0])
        self._s = _blank_state(cap)
        for i, name in enumerate(fields):
            if name in K.FIELDS:
                self._s[:n, K.FIELDS.index(name)] = data[i]
        self._season = np.zeros((cap, max(1, self.config.season_bins)), dtype=np.float64)
        season = np.asarray(state.get("season", np.zeros((n, 0))), dtype=np.float64)
        if season.ndim == 2 and season.shape == (n, self._season.shape[1]):
            self._season[:n] = season
        self._ring = np.zeros((cap, 2 * self._ring_len), dtype=np.float32)
        doubled = self._ring[:n].reshape(n, self.config.knn_stride, 2, self._slots)
        doubled[:, :, 0] = doubled[:, :, 1] = ring.reshape(n, self.config.knn_stride, self._slots)
        self._sums = np.zeros((cap, self.config.n_lags), dtype=np.float32)
        self._sums[:n] = sums
        self.n_series = n

    # -- the hot path ----------------------------------------------------------------
    def step(self, idx: np.ndarray, ts: np.ndarray, values: np.ndarray) -> StepResult:
        """Advance series ``idx`` by the points ``(ts, values)``, in the order given: a
        series may appear more than once (its points then in time order).  Returns each
        point's score and the open/close events, in point order."""
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        ts = np.ascontiguousarray(ts, dtype=np.float64)
        x = np.ascontiguousarray(values, dtype=np.float64)
        k = idx.size
        if k == 0:
            return StepResult(np.zeros(0), [])
        if int(idx.min()) < 0:
            raise ValueError("series ids must be >= 0")
        hi = int(idx.max()) + 1
        if hi > self.n_series:
            self.ensure(hi)
        scores = np.empty(k)
        kind = np.empty(k, dtype=np.int8)
        onset, direction, severity, base, observed, chz = (np.empty(k) for _ in range(6))
        chan = np.zeros(k, dtype=np.int8)
        n_events = K.step_kernel(self._s, self._season, self._ring, self._sums, self._params, idx, ts, x,
                                 scores, kind, onset, direction, severity, base, observed, chan, chz)
        events: list[DetectorEvent] = []
        if n_events:
            for q in np.flatnonzero(kind).tolist():
                events.append(DetectorEvent(
                    series=int(idx[q]), kind="open" if kind[q] == K.EV_OPEN else "close", ts=float(ts[q]),
                    onset=float(onset[q]), direction="up" if direction[q] > 0 else "down",
                    score=float(severity[q]), baseline=float(base[q]), observed=float(observed[q]),
                    channel=K.CHANNELS[int(chan[q])], channel_z=float(chz[q]),
                ))
        return StepResult(scores, events)


def warm_up(config: DetectorConfig | None = None) -> None:
    """Compile the kernel now (about 5 s the first time; later processes load it from
    Numba's on-disk cache in well under a second) instead of on the first real point."""
    StreamingDetector(config, capacity=1).step(np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1))
    K.group_order(np.zeros(1, dtype=np.int32), np.zeros(1), 1)
    K.take_new(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1),
               np.full(1, -np.inf))


def _grow_rows(a: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, a.shape[1]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def score_series(ts: np.ndarray, values: np.ndarray, config: DetectorConfig | None = None) -> np.ndarray:
    """Online scores for one series (all its points in one StreamingDetector.step call,
    taken in order, so each score still sees only the points before it)."""
    values = np.asarray(values, dtype=np.float64)
    idx = np.zeros(values.shape[0], dtype=np.int64)
    return StreamingDetector(config, capacity=1).step(idx, ts, values).scores
