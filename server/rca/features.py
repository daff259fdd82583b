"""Feature table for the candidate changes of one incident (pure).

The columns are the signals of the registry (:mod:`server.rca.signals`), in order: each
signal computes its own value and sentence for each candidate from the incident's data
(:class:`~server.rca.signals.IncidentData`). The same rows feed the heuristic prior, the
learnt model and the training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.model import Anomaly, Change
from server.rca.drain import LogIndex
from server.rca.series import Series
from server.rca.signals import (
    BASE_SIGNALS,
    CHANGE_SIGNALS,
    HISTORY_SIGNALS,
    KIND_SIGNALS,
    Candidate,
    IncidentData,
)
from server.rca.topology import Topology

BASE_FEATURES: tuple[str, ...] = tuple(s.name for s in BASE_SIGNALS)
HISTORY_FEATURES: tuple[str, ...] = tuple(s.name for s in HISTORY_SIGNALS)
KIND_FEATURES: tuple[str, ...] = tuple(s.name for s in KIND_SIGNALS)
FEATURES: tuple[str, ...] = tuple(s.name for s in CHANGE_SIGNALS)
FIDX: dict[str, int] = {n: i for i, n in enumerate(FEATURES)}
#: evidence key shown to users -> the feature behind it
SHOWN_FEATURE: dict[str, str] = {"code_diff": "change_risk", "config_change": "change_risk"}

__all__ = ["BASE_FEATURES", "FEATURES", "FIDX", "HISTORY_FEATURES", "KIND_FEATURES", "CandidateRow", "Series",
           "build_rows", "evidence_values"]


@dataclass(slots=True)
class CandidateRow:
    change: Change
    values: np.ndarray  # len(FEATURES)
    sentences: dict[str, str] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)  # evidence names shown to users


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
    extra: dict[str, Any] | None = None,
) -> list[CandidateRow]:
    """Evidence rows for the candidates (history columns left at 0; see learning)."""
    if not candidates:
        return []
    data = IncidentData(candidates=candidates, all_changes=all_changes, onset=onset, anomalies=anomalies,
                        topo=topo, series=series, logs=logs, watermark=watermark, extra=extra)
    rows: list[CandidateRow] = []
    for j, c in enumerate(data.candidates):
        cand = Candidate(j, c)
        vals = np.zeros(len(FEATURES), dtype=np.float64)
        sent: dict[str, str] = {}
        shown: list[str] = []
        for i, sig in enumerate(CHANGE_SIGNALS):
            e = sig.compute(data, cand)
            vals[i] = e.value
            if e.sentence is not None:
                sent[sig.name] = e.sentence
            if e.shown_as is not None:
                shown.append(e.shown_as)
        rows.append(CandidateRow(change=c, values=vals, sentences=sent, shown=shown))
    return rows


def evidence_values(row: CandidateRow) -> dict[str, float]:
    """The evidence dict shown to users: signal -> value in [0, 1]."""
    return {name: round(float(row.values[FIDX[SHOWN_FEATURE.get(name, name)]]), 4) for name in row.shown}
