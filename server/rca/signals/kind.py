"""The change's kind, one-hot (only the learnt model weighs it)."""

from __future__ import annotations

from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class KindIs(ChangeSignal):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"kind_{kind}"  # type: ignore[misc]

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        return Evidence(float(cand.change.kind == self.kind))
