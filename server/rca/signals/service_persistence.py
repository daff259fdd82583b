"""Persistence: the root of an ongoing incident keeps deviating; a burst that came and
went (a batch job, a GC storm on a neighbour) does not."""

from __future__ import annotations

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class Persistence(ServiceSignal):
    """Share of the points from the first threshold crossing to the end of the window that
    stay beyond it, for the service's most deviating metric."""

    name = "persistence"
    weight = 0.0
    inputs = ("deviations",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        b = data.best(cand.service)
        if b is None or b[2].first_ts is None:
            return Evidence(0.0)
        metric, _, d = b
        if d.persistence < 0.5:
            return Evidence(d.persistence, f"{metric} on {cand.service} deviated only briefly", shown_as=self.name)
        return Evidence(d.persistence, shown_as=self.name)
