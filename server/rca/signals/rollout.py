"""Rollout comparison: new-version pods against old-version pods during a rolling deploy.

When the deployed service reports series labelled by version or pod, the new version's
series are compared with the old version's *over the same minutes* (difference in
differences: whatever hits every pod, such as load or a failing dependency, cancels
out). A release whose new pods degrade while its old pods stay healthy is the culprit;
one whose pods all look alike is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.model import Change
from server.rca import evidence as ev
from server.rca.deviation import metric_class, robust_scale
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData

#: labelled series of deployed services: (service, metric) -> [(labels, ts, values)]
Labelled = dict[tuple[str, str], list[tuple[dict[str, str], np.ndarray, np.ndarray]]]
AFTER_S = 900.0
BEFORE_S = 1800.0
VERSION_KEYS = ("version", "app_version", "service_version", "image", "image_tag", "revision", "release")


def _split(change: Change, sets: Sequence[tuple[dict[str, str], np.ndarray, np.ndarray]]
           ) -> tuple[list[int], list[int]]:
    """Indices of new-version and old-version label sets (by version label, else by pods
    that appeared after the change)."""
    new_v = str(change.fields.get("version") or "")
    prev_v = str(change.fields.get("previous_version") or "")
    new: list[int] = []
    old: list[int] = []
    versioned = [i for i, (lab, _, _) in enumerate(sets) if any(k in lab for k in VERSION_KEYS)]

    def same(a: str, b: str) -> bool:
        return bool(a) and bool(b) and (a == b or a.endswith(b) or b.endswith(a))

    if new_v and versioned:
        seen: set[str] = set()
        for i in versioned:
            lab = sets[i][0]
            vals = {lab[k] for k in VERSION_KEYS if k in lab}
            seen |= vals
            (new if any(same(new_v, v) for v in vals) else old).append(i)
        if new and old:
            return new, old
        if any(same(prev_v, v) for v in seen):
            # the series name versions, just not this one: its pods are not (yet) there, or
            # they belong to another release of the service; nothing to compare
            return [], []
    new, old = [], []
    for i, (lab, ts, _) in enumerate(sets):
        if not lab or len(ts) == 0:
            continue
        (new if float(ts[0]) >= change.ts - 5.0 else old).append(i)
    return new, old


def _pool(sets: Sequence[tuple[dict[str, str], np.ndarray, np.ndarray]], idx: list[int], lo: float,
          hi: float) -> np.ndarray:
    parts = []
    for i in idx:
        _, ts, vals = sets[i]
        m = (ts >= lo) & (ts < hi)
        parts.append(np.asarray(vals, dtype=np.float64)[m])
    return np.concatenate(parts) if parts else np.zeros(0)


def compare_rollout(change: Change, labelled: Labelled) -> tuple[float, str] | None:
    """``(z, metric)``: how much worse (robust z, in the metric's bad direction) the new
    version's series are than the old version's over the same minutes; None when the
    service reports no series that tell versions or pods apart."""
    best: tuple[float, str] | None = None
    for s in change.services:
        for (svc, metric), sets in sorted(labelled.items()):
            if svc != s or len(sets) < 2:
                continue
            cls = metric_class(metric, svc)
            if cls not in ("latency", "error"):
                continue
            new, old = _split(change, sets)
            if not new or not old:
                continue
            lo, hi = change.ts, change.ts + AFTER_S
            x_new = _pool(sets, new, lo, hi)
            x_old = _pool(sets, old, lo, hi)
            x_base = _pool(sets, old, change.ts - BEFORE_S, change.ts)
            if len(x_new) < 3 or len(x_old) + len(x_base) < 5:
                continue
            ref = x_old if len(x_old) >= 3 else x_base
            scale_from = x_base if len(x_base) >= 5 else ref
            med_ref = float(np.median(ref))
            scale = robust_scale(scale_from, float(np.median(scale_from)))
            z = (float(np.median(x_new)) - med_ref) / scale
            if best is None or z > best[0]:
                best = (z, metric)
    return best


class RolloutCompare(ChangeSignal):
    """How much worse the new version's pods are than the old version's during the rollout
    (z = 3 -> ~0.5, z = 8 -> ~0.9); 0 without version- or pod-labelled series."""

    name = "rollout_compare"
    weight = 3.0
    explain_rank = 0
    inputs = ("extra['labelled']",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        res = _rollout(data, cand)
        if res is None:
            return Evidence(0.0)
        z, metric = res
        v = ev.shift_strength(max(z, 0.0))
        svc = cand.services[0]
        if v >= 0.5:
            return Evidence(v, f"new {cand.change.fields.get('version') or 'version'} pods of {svc} are worse than "
                               f"its old pods on {metric} ({z:.1f}σ)", shown_as=self.name)
        return Evidence(v, f"new and old pods of {svc} look alike on {metric}", shown_as=self.name)


class RolloutAlike(ChangeSignal):
    """1 when the rollout could be compared and the new pods look like the old ones (a
    release whose pods all behave alike did not cause the incident)."""

    name = "rollout_alike"
    weight = -2.0
    inputs = ("extra['labelled']",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        res = _rollout(data, cand)
        return Evidence(1.0 if res is not None and res[0] < 2.0 else 0.0)


def _rollout(data: IncidentData, cand: Candidate) -> tuple[float, str] | None:
    if "rollout" not in cand.memo:
        labelled: Labelled = data.extra.get("labelled") or {}
        cand.memo["rollout"] = compare_rollout(cand.change, labelled) \
            if cand.change.kind == "deployment" and labelled else None
    return cand.memo["rollout"]  # type: ignore[no-any-return]


__all__ = ["Labelled", "RolloutAlike", "RolloutCompare", "compare_rollout"]
