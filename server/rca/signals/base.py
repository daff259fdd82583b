"""What every evidence signal is: one object with its inputs, value, prior weight and sentence.

A change signal reads what it needs from :class:`IncidentData` (the incident's data,
prepared once and cached lazily, so a signal's inputs are only computed when some signal
asks for them) and returns an :class:`Evidence` for one :class:`Candidate`. The feature
table, the heuristic prior, the evidence shown to users and the explanation are all
derived from the registry (:mod:`server.rca.signals`): adding a signal is one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from server.model import Anomaly, Change
from server.rca.drain import ERROR_RANK, LogIndex
from server.rca.series import Series, SeriesView, reference
from server.rca.topology import Topology

LOG_AFTER_S = 600.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """One signal's verdict on one candidate.

    ``value`` in ``[0, 1]`` is the feature; ``sentence`` (if any) says why; ``shown_as``
    is the key under which users see it in the suspect's evidence (``None`` = hidden).
    """

    value: float
    sentence: str | None = None
    shown_as: str | None = None


class ChangeSignal:
    """Base of all change signals. Subclasses set the class attributes and ``compute``."""

    #: feature name (a column of the feature table)
    name: ClassVar[str]
    #: prior log-odds per unit of evidence (cold start), see docs/ranking.md
    weight: ClassVar[float] = 0.0
    #: position in the explanation (lower = preferred on ties); None = never explained
    explain_rank: ClassVar[int | None] = None
    #: always named in the explanation when its value is above 0 (a human's best clue)
    always_explain: ClassVar[bool] = False
    #: what the signal reads, for documentation (attribute names of IncidentData)
    inputs: ClassVar[tuple[str, ...]] = ()

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        raise NotImplementedError

    def explainable(self, change: Change) -> bool:
        return self.explain_rank is not None


@dataclass(slots=True)
class Candidate:
    """One candidate change and a memo for intermediates shared by several signals."""

    index: int
    change: Change
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def services(self) -> list[str]:
        return list(self.change.services)


def change_subject_key(c: Change) -> tuple[str, ...]:
    """What a change acts on: only changes of the same subject can revert each other."""
    if c.kind == "flag_change":
        return ("flag", str(c.fields.get("flag")))
    if c.kind == "config_change":
        return ("config", c.service, str(c.fields.get("key")))
    return ("deployment", c.service)


class IncidentData:
    """Everything change signals read about one incident, prepared lazily once."""

    def __init__(self, *, candidates: Sequence[Change], all_changes: Sequence[Change], onset: float,
                 anomalies: Sequence[Anomaly], topo: Topology, series: Series, logs: LogIndex,
                 watermark: float, extra: dict[str, Any] | None = None) -> None:
        self.candidates = list(candidates)
        self.all_changes = list(all_changes)
        self.onset = onset
        self.anomalies = list(anomalies)
        self.topo = topo
        self.series = series
        self.logs = logs
        self.watermark = watermark
        #: inputs computed outside the change table (e.g. root-service scores), by name
        self.extra: dict[str, Any] = dict(extra or {})

    @cached_property
    def anomalous(self) -> list[str]:
        return sorted({a.service for a in self.anomalies})

    @cached_property
    def onsets_by_service(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for a in self.anomalies:
            out.setdefault(a.service, []).append(a.started_at)
        return out

    @cached_property
    def view(self) -> SeriesView:
        return SeriesView(self.series, onset=self.onset)

    @cached_property
    def reference(self) -> np.ndarray | None:
        return reference(self.view, self.anomalies)

    @cached_property
    def by_subject(self) -> dict[tuple[str, ...], list[Change]]:
        out: dict[tuple[str, ...], list[Change]] = {}
        for ch in sorted(self.all_changes, key=lambda c: (c.ts, c.id)):
            out.setdefault(change_subject_key(ch), []).append(ch)
        return out

    # ---- logs, vectorised over candidates ------------------------------------------------
    @cached_property
    def new_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """``(new, delay)``: [groups, candidates] new-pattern flags and delays after each change."""
        cands = self.candidates
        times = np.array([c.ts for c in cands], dtype=np.float64)
        log_until = max(self.logs.until, self.onset)
        ends = np.minimum(np.maximum(times, self.onset) + LOG_AFTER_S, log_until)
        ends = np.maximum(ends, times)
        svc_filter = set(self.anomalous) | {s for c in cands for s in c.services}
        return self.logs.new_patterns(times=times, ends=ends, services=svc_filter)

    @cached_property
    def group_masks(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """``(error-level groups, groups on anomalous services, groups per service, none)``."""
        logs = self.logs
        group_err = np.array([lvl >= ERROR_RANK for lvl in logs.group_level], dtype=bool)
        anomalous_set = set(self.anomalous)
        in_anomalous = np.array([s in anomalous_set for s in logs.group_service], dtype=bool)
        svc_groups: dict[str, np.ndarray] = {}
        for g, s in enumerate(logs.group_service):
            svc_groups.setdefault(s, np.zeros(len(logs.group_service), dtype=bool))[g] = True
        return group_err, in_anomalous, svc_groups, np.zeros(len(logs.group_service), dtype=bool)

    def log_masks(self, cand: Candidate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(own, related, delay)``: new patterns after the change on its own services and on
        other anomalous services, and each group's delay after the change."""
        hit = cand.memo.get("log_masks")
        if hit is None:
            new, delay = self.new_patterns
            j = cand.index
            col = new[:, j] if new.size else np.zeros(0, dtype=bool)
            if col.size:
                _, in_anomalous, svc_groups, no_groups = self.group_masks
                own_groups = no_groups
                for s in cand.services:
                    own_groups = own_groups | svc_groups.get(s, no_groups)
                own_mask = col & own_groups
                rel_mask = col & ~own_groups & in_anomalous
                d = delay[:, j]
            else:
                own_mask = rel_mask = col
                d = np.zeros(0)
            hit = (own_mask, rel_mask, d)
            cand.memo["log_masks"] = hit
        return hit  # type: ignore[no-any-return]
