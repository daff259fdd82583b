"""Resource metrics (CPU, memory, disk, network) of the service against their baselines."""

from __future__ import annotations

import math

from server.rca.deviation import resource_kind
from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class Resource(ServiceSignal):
    """Largest sustained robust z of the service's resource metrics (names matching cpu,
    mem, disk, fs, net, rx/tx, io ...): z = 3 -> 0, z = 8 -> ~0.63."""

    name = "resource"
    weight = 3.81
    explain_rank = 0
    inputs = ("deviations",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        b = data.best(cand.service, classes={"resource"})
        if b is None:
            return Evidence(0.0)
        metric, _, d = b
        v = 1.0 - math.exp(-max(0.0, d.sustained_z - 3.0) / 5.0)
        kind = resource_kind(metric, cand.service) or "resource"
        word = "up" if d.direction > 0 else "down"
        return Evidence(v, f"{kind} ({metric}) {word} {d.z:.1f}σ on {cand.service}", shown_as=self.name)
