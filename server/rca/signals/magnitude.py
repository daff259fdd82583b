"""Size of the shifts a change could explain (tiny detector hits make weak incidents)."""

from __future__ import annotations

from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class AnomalyMagnitude(ChangeSignal):
    """Largest anomaly on the changed service or its callers (half of the incident's largest
    when none of them is anomalous)."""

    name = "anomaly_magnitude"
    weight = 2.55
    inputs = ("anomalies", "topo")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        reach = set(cand.services)
        for s in cand.services:
            reach |= data.topo.upstream(s)
        mags = [ev.anomaly_magnitude(a) for a in data.anomalies if a.service in reach]
        mag = max(mags) if mags else 0.5 * max((ev.anomaly_magnitude(a) for a in data.anomalies), default=0.0)
        return Evidence(mag)
