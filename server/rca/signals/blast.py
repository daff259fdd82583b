"""Blast radius: do the anomalous services look like the changed service plus its callers?"""

from __future__ import annotations

from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class BlastRadius(ChangeSignal):
    """Share of anomalous services that are the changed service or its transitive callers;
    the changed service being anomalous weighs most."""

    name = "blast_radius"
    weight = 6.65
    explain_rank = 4
    inputs = ("anomalous", "topo")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        sig = ev.blast_radius(changed=cand.services, anomalous=data.anomalous, topo=data.topo)
        return Evidence(sig.value, sig.sentence, shown_as=self.name)
