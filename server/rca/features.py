"""Feature table for the candidate changes of one incident (pure).

Turns an incident's data (anomalies, series, mined logs, topology, other changes) into
one row of evidence values per candidate, plus the sentence behind every value. The same
rows feed the heuristic prior, the learnt model and the training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.model import Anomaly, Change
from server.rca import evidence as ev
from server.rca.drain import ERROR_RANK, LogIndex
from server.rca.topology import Topology

BASE_FEATURES: tuple[str, ...] = (
    "time_proximity",
    "after_onset",
    "change_point_alignment",
    "blast_radius",
    "metric_correlation",
    "error_logs",
    "log_mentions",
    "change_risk",
    "rollout",
    "rollback_recovery",
    "is_rollback",
    "anomaly_magnitude",
)
HISTORY_FEATURES: tuple[str, ...] = ("history", "hist_service_kind", "hist_author", "hist_path")
KIND_FEATURES: tuple[str, ...] = ("kind_deployment", "kind_config_change", "kind_flag_change")
FEATURES: tuple[str, ...] = BASE_FEATURES + HISTORY_FEATURES + KIND_FEATURES
FIDX: dict[str, int] = {n: i for i, n in enumerate(FEATURES)}

SHIFT_BEFORE_S = 900.0
SHIFT_AFTER_S = 600.0
LOG_AFTER_S = 600.0
GRID_S = 30.0

Series = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]


@dataclass(slots=True)
class CandidateRow:
    change: Change
    values: np.ndarray  # len(FEATURES)
    sentences: dict[str, str] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)  # evidence names shown to users


def _window_mean_std(ts: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> tuple[float, float, int]:
    a, b = np.searchsorted(ts, lo, side="left"), np.searchsorted(ts, hi, side="left")
    n = int(b - a)
    if n == 0:
        return 0.0, 0.0, 0
    seg = vals[a:b]
    return float(seg.mean()), float(seg.std()), n


def shift_z(ts: np.ndarray, vals: np.ndarray, t: float, *, before_s: float = SHIFT_BEFORE_S,
            after_s: float = SHIFT_AFTER_S) -> float:
    """Level shift at ``t``: (mean after - mean before) / robust scale of before."""
    mb, sb, nb = _window_mean_std(ts, vals, t - before_s, t)
    ma, _, na = _window_mean_std(ts, vals, t, t + after_s)
    if nb < 3 or na < 3:
        return 0.0
    scale = sb + 0.05 * abs(mb) + 1e-9
    return (ma - mb) / scale


def _binned(ts: np.ndarray, vals: np.ndarray, lo: float, n_bins: int) -> np.ndarray:
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


def _zscore(x: np.ndarray) -> np.ndarray | None:
    if np.isnan(x).any():
        return None
    sd = float(x.std())
    if sd < 1e-12:
        return None
    return (x - x.mean()) / sd


class _SeriesView:
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
                    z = _zscore(_binned(t, v, self.grid_lo, self.n_bins))
            self._z[key] = z
        return self._z[key]


def _reference(view: _SeriesView, anomalies: Sequence[Anomaly]) -> np.ndarray | None:
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
    return _zscore(np.mean(acc, axis=0))


def _recovered_by_series(view: _SeriesView, anomalies: Sequence[Anomaly], after: float, until: float) -> float | None:
    """Time the anomalous series were back near their baselines after ``after`` (None if not)."""
    if not anomalies or until - after < 120.0:
        return None
    ok = 0
    for a in anomalies:
        found = False
        for m, t, v in view.by_service.get(a.service, []):
            if m != a.metric:
                continue
            mean, _, n = _window_mean_std(t, v, after + 120.0, min(after + 720.0, until))
            if n >= 3 and abs(mean - a.baseline) <= 0.35 * abs(a.observed - a.baseline) + 1e-9:
                found = True
        ok += int(found)
    return after + 300.0 if ok >= max(1, int(np.ceil(0.6 * len(anomalies)))) else None


def _subject(c: Change) -> tuple[str, ...]:
    """What a change acts on: only changes of the same subject can revert each other."""
    if c.kind == "flag_change":
        return ("flag", str(c.fields.get("flag")))
    if c.kind == "config_change":
        return ("config", c.service, str(c.fields.get("key")))
    return ("deployment", c.service)


def _kind_onehot(kind: str) -> list[float]:
    return [float(kind == "deployment"), float(kind == "config_change"), float(kind == "flag_change")]


def build_rows(
    *,
    candidates: Sequence[Change],
    all_changes: Sequence[Change],
    onset: float,
    anomalies: Sequence[Anomaly],
    topo: Topology,
    series: Series,
    logs: LogIndex,
    watermark: float,
) -> list[CandidateRow]:
    """Evidence rows for the candidates (history columns left at 0; see learning)."""
    n = len(candidates)
    if n == 0:
        return []
    anomalous = sorted({a.service for a in anomalies})
    onsets_by_svc: dict[str, list[float]] = {}
    for a in anomalies:
        onsets_by_svc.setdefault(a.service, []).append(a.started_at)
    view = _SeriesView(series, onset=onset)
    ref = _reference(view, anomalies)

    # ---- logs, vectorised over candidates
    times = np.array([c.ts for c in candidates], dtype=np.float64)
    log_until = max(logs.until, onset)
    ends = np.minimum(np.maximum(times, onset) + LOG_AFTER_S, log_until)
    ends = np.maximum(ends, times)
    svc_filter = set(anomalous) | {s for c in candidates for s in c.services}
    new, delay = logs.new_patterns(times=times, ends=ends, services=svc_filter)
    group_err = np.array([lvl >= ERROR_RANK for lvl in logs.group_level], dtype=bool)
    anomalous_set = set(anomalous)
    in_anomalous = np.array([s in anomalous_set for s in logs.group_service], dtype=bool)
    svc_groups: dict[str, np.ndarray] = {}
    for g, s in enumerate(logs.group_service):
        svc_groups.setdefault(s, np.zeros(len(logs.group_service), dtype=bool))[g] = True
    no_groups = np.zeros(len(logs.group_service), dtype=bool)

    # ---- changes of the same subject (for rollbacks), in time order
    by_subject: dict[tuple[str, ...], list[Change]] = {}
    for ch in sorted(all_changes, key=lambda c: (c.ts, c.id)):
        by_subject.setdefault(_subject(ch), []).append(ch)
    rows: list[CandidateRow] = []
    for j, c in enumerate(candidates):
        vals = np.zeros(len(FEATURES), dtype=np.float64)
        sent: dict[str, str] = {}
        shown: list[str] = []
        services = list(c.services)

        tp = ev.time_proximity(change_ts=c.ts, onset=onset, kind=c.kind)
        vals[FIDX["time_proximity"]] = tp.value
        vals[FIDX["after_onset"]] = ev.after_onset(change_ts=c.ts, onset=onset)
        sent["time_proximity"] = tp.sentence
        shown.append("time_proximity")

        # change-point alignment: anomaly onsets + shift in raw series at the change
        om = ev.onset_alignment(change_ts=c.ts, kind=c.kind,
                                onsets=[o for s in services for o in onsets_by_svc.get(s, [])])
        best_shift, best_metric, best_svc = 0.0, None, services[0]
        for s in services:
            for m, t, v in view.by_service.get(s, []):
                sh = ev.shift_strength(shift_z(t, v, c.ts + min(ev.RAMP_S.get(c.kind, 180.0), 60.0)))
                if sh > best_shift:
                    best_shift, best_metric, best_svc = sh, m, s
        cpa = ev.change_point_alignment(onset_match=om, shift=best_shift, metric=best_metric, service=best_svc)
        vals[FIDX["change_point_alignment"]] = cpa.value
        sent["change_point_alignment"] = cpa.sentence
        shown.append("change_point_alignment")

        reach = set(services)
        for s in services:
            reach |= topo.upstream(s)
        mags = [ev.anomaly_magnitude(a) for a in anomalies if a.service in reach]
        mag = max(mags) if mags else 0.5 * max((ev.anomaly_magnitude(a) for a in anomalies), default=0.0)
        vals[FIDX["anomaly_magnitude"]] = mag

        br = ev.blast_radius(changed=services, anomalous=anomalous, topo=topo)
        vals[FIDX["blast_radius"]] = br.value
        sent["blast_radius"] = br.sentence
        shown.append("blast_radius")

        best_corr, corr_metric = 0.0, None
        if ref is not None:
            for s in services:
                for m, _, _ in view.by_service.get(s, []):
                    z = view.normalised(s, m)
                    if z is None:
                        continue
                    r = abs(float(np.dot(z, ref)) / len(ref))
                    if r > best_corr or corr_metric is None:
                        best_corr, corr_metric = r, m
        mc = ev.metric_correlation(corr=best_corr, metric=corr_metric, service=services[0])
        vals[FIDX["metric_correlation"]] = mc.value
        sent["metric_correlation"] = mc.sentence
        shown.append("metric_correlation")

        # logs
        col = new[:, j] if new.size else np.zeros(0, dtype=bool)
        if col.size:
            own_groups = no_groups
            for s in services:
                own_groups = own_groups | svc_groups.get(s, no_groups)
            own_mask = col & own_groups
            rel_mask = col & ~own_groups & in_anomalous
        else:
            own_mask = rel_mask = col
        # patterns that start long after the change count less (they follow something else)
        if col.size:
            free = ev.RAMP_S.get(c.kind, 180.0) + 120.0
            wdel = np.exp(-np.maximum(delay[:, j] - free, 0.0) / 600.0)
            n_own, n_rel = float((wdel * own_mask).sum()), float((wdel * rel_mask).sum())
        else:
            n_own, n_rel = 0.0, 0.0
        any_err = bool((group_err & (own_mask | rel_mask)).any()) if col.size else False
        el = ev.error_logs(new_own=n_own, new_related=n_rel, error_level=any_err, service=services[0])
        vals[FIDX["error_logs"]] = el.value
        sent["error_logs"] = el.sentence
        shown.append("error_logs")
        if n_own or n_rel:
            gids = np.flatnonzero(own_mask | rel_mask)
            texts = [logs.templates[logs.group_template[g]] for g in gids] + [logs.group_example[g] for g in gids]
            specific, files = ev.change_terms_split(c)
            mentioned = ev.find_mentions(specific + files, texts)
            lm = ev.log_mentions(mentioned=mentioned, specific=specific)
            vals[FIDX["log_mentions"]] = lm.value
            sent["log_mentions"] = lm.sentence
            if mentioned:
                shown.append("log_mentions")

        # the change itself
        if c.kind == "deployment":
            risk = ev.code_diff(c.diff_files)
            sent["code_diff"] = risk.sentence
            shown.append("code_diff")
            sent["change_risk"] = risk.sentence
        elif c.kind == "config_change":
            risk = ev.config_magnitude(old=c.fields.get("old_value"), new=c.fields.get("new_value"))
            sent["change_risk"] = risk.sentence
            sent["config_change"] = risk.sentence
            shown.append("config_change")
        else:
            risk = ev.Signal(0.5, "flag change")
            sent["change_risk"] = risk.sentence
        vals[FIDX["change_risk"]] = risk.value
        ro = ev.rollout_share(c)
        vals[FIDX["rollout"]] = ro.value
        sent["rollout"] = ro.sentence
        if c.kind == "flag_change":
            shown.append("rollout")

        # rollback / revert
        # only a revert after the incident started can end it
        same = by_subject.get(_subject(c), [])
        revert = next((r for r in same if r.ts > max(c.ts, onset - ev.ONSET_SLACK_S) and r.ts <= watermark
                       and ev.reverts(r, c)), None)
        recovered = None
        if revert is not None:
            recovered = ev.recovery_time(anomalies, after=revert.ts)
            if recovered is None:
                recovered = _recovered_by_series(view, anomalies, revert.ts, watermark)
        rr = ev.rollback_recovery(revert_ts=revert.ts if revert else None, recovered_at=recovered, service=services[0])
        vals[FIDX["rollback_recovery"]] = rr.value
        sent["rollback_recovery"] = rr.sentence
        if revert is not None:
            shown.append("rollback_recovery")
        earlier = [e for e in same if e.ts < c.ts]
        vals[FIDX["is_rollback"]] = float(ev.is_rollback(c, earlier))
        if vals[FIDX["is_rollback"]]:
            sent["is_rollback"] = "this change is itself a rollback"

        vals[FIDX["kind_deployment"]: FIDX["kind_flag_change"] + 1] = _kind_onehot(c.kind)
        rows.append(CandidateRow(change=c, values=vals, sentences=sent, shown=shown))
    return rows


def evidence_values(row: CandidateRow) -> dict[str, float]:
    """The evidence dict shown to users: signal -> value in [0, 1]."""
    out: dict[str, float] = {}
    for name in row.shown:
        if name == "code_diff" or name == "config_change":
            out[name] = round(float(row.values[FIDX["change_risk"]]), 4)
        else:
            out[name] = round(float(row.values[FIDX[name]]), 4)
    return out
