"""Agreement with the change ranking: a convincing change on the service supports it."""

from __future__ import annotations

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class ChangeSupport(ServiceSignal):
    """The best cause probability of a change on this service."""

    name = "change_support"
    weight = 2.45
    explain_rank = 6
    inputs = ("change_support",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        p, subject = data.change_support.get(cand.service, (0.0, ""))
        if p <= 0.05:
            return Evidence(p)
        return Evidence(p, f"{subject} is a likely cause ({p:.2f})", shown_as=self.name)


class InIncident(ServiceSignal):
    """The service is one of the incident's services (it has an anomaly or the alert names it)."""

    name = "in_incident"
    weight = 0.37
    inputs = ("incident_services",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        return Evidence(1.0 if cand.service in data.incident_services else 0.0)
