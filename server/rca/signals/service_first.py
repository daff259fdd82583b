"""Which service's metrics changed first."""

from __future__ import annotations

import math

from server.rca.evidence import fmt_duration
from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class FirstChange(ServiceSignal):
    """1 for the service whose metrics crossed their threshold first, decaying with the
    delay behind it (time constant 3 samples, at least 2 minutes)."""

    name = "first_change"
    weight = 0.26
    explain_rank = 3
    inputs = ("first_times", "step")

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        t = data.first_times.get(cand.service)
        if t is None or not data.first_times:
            return Evidence(0.0)
        lead = min(data.first_times.values())
        late = t - lead
        tau = max(120.0, 3.0 * data.step)
        v = math.exp(-max(late, 0.0) / tau)
        if late <= data.step:
            s = f"{cand.service} changed first"
        else:
            s = f"{cand.service} changed {fmt_duration(late)} after the first service"
        return Evidence(v, s, shown_as=self.name)
