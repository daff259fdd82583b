"""Historical risk learnt from labels (filled in by :class:`server.rca.learning.HistoryStats`).

The values are left at 0 in the table and set by the history, which is computed from
the labels of *other* incidents (leave-one-incident-out)."""

from __future__ import annotations

from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class History(ChangeSignal):
    """Cause rate of changes with the same service+kind, author, paths in other labelled
    incidents (the best of the three below), smoothed to the base rate."""

    name = "history"
    weight = 1.0
    explain_rank = 5

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        return Evidence(0.0)


class HistoryPart(ChangeSignal):
    """One of the history's parts (only the learnt model weighs them)."""

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        return Evidence(0.0)
