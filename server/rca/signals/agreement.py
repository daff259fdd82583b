"""Agreement with the root-service ranking: a change on the likely root service is more
suspect than one on a service the incident merely passes through."""

from __future__ import annotations

from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class RootService(ChangeSignal):
    """The root-service score of the changed service (from deviations, topology, resources
    and logs, before any change is considered), relative to the best service: 1 = the
    change is on the most likely root service."""

    name = "root_service"
    weight = 1.0
    explain_rank = 9
    inputs = ("extra['root_scores']",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        scores: dict[str, float] = data.extra.get("root_scores") or {}
        if not scores:
            return Evidence(0.0)
        s, v = max(((s, scores.get(s, 0.0)) for s in cand.services), key=lambda t: t[1])
        if v >= 0.5:
            return Evidence(v, f"{s} looks like the root service", shown_as=self.name)
        return Evidence(v, shown_as=self.name)
