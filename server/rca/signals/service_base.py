"""Root-service signals: one object per signal, like change signals, for service candidates.

:class:`ServiceData` holds the incident's per-series deviations (computed once, against
each metric's own baseline), the set of clearly deviating services, the topology, the
mined logs and, once changes are ranked, each service's best change probability.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from server.model import Anomaly
from server.rca.deviation import AFTER_S, SIGNIFICANT_Z, Deviation, deviation, metric_class
from server.rca.drain import ERROR_RANK, LogIndex
from server.rca.series import Series
from server.rca.signals.base import Evidence
from server.rca.topology import Topology

LOG_AFTER_S = 900.0


@dataclass(slots=True)
class ServiceCandidate:
    index: int
    service: str
    memo: dict[str, Any] = field(default_factory=dict)


class ServiceSignal:
    """Base of all root-service signals (see :class:`server.rca.signals.base.ChangeSignal`)."""

    name: ClassVar[str]
    weight: ClassVar[float] = 0.0
    explain_rank: ClassVar[int | None] = None
    inputs: ClassVar[tuple[str, ...]] = ()

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        raise NotImplementedError


class ServiceData:
    """Everything root-service signals read about one incident, prepared lazily once."""

    def __init__(self, *, services: Sequence[str], onset: float, anomalies: Sequence[Anomaly], topo: Topology,
                 series: Series, logs: LogIndex, incident_services: Sequence[str],
                 until: float | None = None) -> None:
        self.services = list(services)
        self.onset = onset
        #: deviations are measured from the onset to at least here (an alert's start + 15 min)
        self.until = until if until is not None else onset + AFTER_S
        self.anomalies = list(anomalies)
        self.topo = topo
        self.series = series
        self.logs = logs
        self.incident_services = set(incident_services)
        #: service -> best cause probability of a change on it (set after changes are ranked)
        self.change_support: dict[str, tuple[float, str]] = {}

    @cached_property
    def deviations(self) -> dict[str, list[tuple[str, str, Deviation]]]:
        """service -> [(metric, class, deviation)] for every judgeable series."""
        out: dict[str, list[tuple[str, str, Deviation]]] = {}
        for (svc, metric), (ts, vals) in sorted(self.series.items()):
            d = deviation(ts, vals, self.onset, after_s=max(AFTER_S, self.until - self.onset))
            if d is not None:
                out.setdefault(svc, []).append((metric, metric_class(metric, svc), d))
        return out

    def best(self, service: str, classes: set[str] | None = None,
             skip: set[str] = frozenset({"traffic"})) -> tuple[str, str, Deviation] | None:  # type: ignore[assignment]
        rows = [r for r in self.deviations.get(service, [])
                if (classes is None or r[1] in classes) and r[1] not in skip]
        return max(rows, key=lambda r: r[2].sustained_z) if rows else None

    @cached_property
    def max_z(self) -> float:
        zs = [b[2].sustained_z for s in self.services if (b := self.best(s)) is not None]
        return max(zs, default=0.0)

    @cached_property
    def deviating(self) -> set[str]:
        """Services with a clear sustained deviation of a non-traffic metric, or an anomaly."""
        # anomalies count only for services whose series cannot be judged (too short)
        out = {a.service for a in self.anomalies if a.service not in self.deviations}
        for s in self.services:
            if any(d.sustained_z >= max(SIGNIFICANT_Z, 0.15 * self.max_z)
                   for _, cls, d in self.deviations.get(s, []) if cls != "traffic"):
                out.add(s)
        return out

    @cached_property
    def propagating(self) -> set[str]:
        """Services whose latency or errors deviate clearly (what travels up a call graph:
        a neighbour's CPU or network burst alone does not make its callers slow)."""
        out = {a.service for a in self.anomalies if metric_class(a.metric, a.service) in ("latency", "error")
               and a.service not in self.deviations}
        for s in self.services:
            b = self.best(s, classes={"latency", "error"})
            if b is not None and b[2].sustained_z >= max(SIGNIFICANT_Z, 0.15 * self.max_z):
                out.add(s)
        return out

    def significant(self, d: Deviation) -> bool:
        return d.sustained_z >= max(SIGNIFICANT_Z, 0.15 * self.max_z)

    @cached_property
    def rises(self) -> dict[str, dict[str, float]]:
        """service -> {"latency": log of the largest sustained latency ratio, "error": the
        largest sustained rise of an error metric} over its clearly deviating series; error
        rises are absolute for ratios (values in [0, 1]) and relative otherwise."""
        out: dict[str, dict[str, float]] = {}
        for s, rows in self.deviations.items():
            for _, cls, d in rows:
                if cls not in ("latency", "error") or d.direction <= 0 or not self.significant(d):
                    continue
                if cls == "latency":
                    r = d.ratio
                    v = math.log(r) if 0.0 < r < float("inf") else 0.0
                elif 0.0 <= d.baseline <= 1.0 and 0.0 <= d.observed <= 1.0:
                    v = d.observed - d.baseline
                else:
                    v = math.log(max(d.observed, 1e-12) / max(d.baseline, 1e-12)) / 10.0 if d.baseline > 0 else 0.1
                if v > 0.0:
                    cur = out.setdefault(s, {})
                    cur[cls] = max(cur.get(cls, 0.0), v)
        return out

    @cached_property
    def coverage(self) -> dict[str, float]:
        """metric class -> share of the judgeable services that report a metric of it (real
        recordings often report errors for a few services only)."""
        judged = [rows for rows in self.deviations.values() if rows]
        if not judged:
            return {}
        out: dict[str, float] = {}
        for cls in ("latency", "error", "resource", "traffic"):
            out[cls] = sum(1 for rows in judged if any(c == cls for _, c, _ in rows)) / len(judged)
        return out

    @cached_property
    def first_times(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.services:
            ts = [d.first_ts for _, cls, d in self.deviations.get(s, [])
                  if cls != "traffic" and d.first_ts is not None
                  and d.sustained_z >= max(SIGNIFICANT_Z, 0.15 * self.max_z)]
            if ts:
                out[s] = min(ts)
        for a in self.anomalies:
            if a.service not in self.deviations:
                out[a.service] = min(out.get(a.service, a.started_at), a.started_at)
        return out

    @cached_property
    def step(self) -> float:
        steps = []
        for ts, _ in list(self.series.values())[:50]:
            t = np.unique(np.asarray(ts, dtype=np.float64))
            if len(t) > 2:
                steps.append(float(np.median(np.diff(t))))
        return float(np.median(steps)) if steps else 10.0

    @cached_property
    def has_topology(self) -> bool:
        return bool(self.topo.callees)

    # ---- logs -----------------------------------------------------------------------
    @cached_property
    def new_groups(self) -> np.ndarray:
        """Log groups whose pattern is new or surging after the onset."""
        if not self.logs.group_ts:
            return np.zeros(0, dtype=bool)
        end = max(min(self.logs.until, self.onset + LOG_AFTER_S), self.onset + 1.0)
        new, _ = self.logs.new_patterns(times=np.array([self.onset]), ends=np.array([end]))
        return new[:, 0] if new.size else np.zeros(len(self.logs.group_ts), dtype=bool)

    @cached_property
    def blame(self) -> dict[str, tuple[int, list[str]]]:
        """service -> (new WARN+ patterns on *other* services naming it, the naming services)."""
        out: dict[str, tuple[int, list[str]]] = {}
        logs = self.logs
        groups = np.flatnonzero(self.new_groups)
        if not len(groups):
            return out
        pats = {s: re.compile(r"(?<![A-Za-z0-9_\-])" + re.escape(s.lower()) + r"(?![A-Za-z0-9_\-])")
                for s in self.services}
        for g in groups:
            text = (logs.templates[logs.group_template[g]] + "\n" + logs.group_example[g]).lower()
            for s, pat in pats.items():
                if logs.group_service[g] != s and pat.search(text):
                    n, who = out.get(s, (0, []))
                    if logs.group_service[g] not in who:
                        who = [*who, logs.group_service[g]]
                    out[s] = (n + 1, who)
        return out

    @cached_property
    def own_errors(self) -> dict[str, tuple[int, bool]]:
        """service -> (new WARN+ patterns on it after the onset, any of them ERROR)."""
        out: dict[str, tuple[int, bool]] = {}
        logs = self.logs
        for g in np.flatnonzero(self.new_groups):
            s = logs.group_service[g]
            n, err = out.get(s, (0, False))
            out[s] = (n + 1, err or logs.group_level[g] >= ERROR_RANK)
        return out
