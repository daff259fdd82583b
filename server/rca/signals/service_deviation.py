"""Which service's metrics changed most against their own baselines (BARO-style)."""

from __future__ import annotations

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class Deviation(ServiceSignal):
    """Largest sustained robust z-score (median/MAD of the metric's own baseline, 3-point
    rolling median after the onset) of the service's latency, error, resource or other
    metrics, relative to the incident's largest (1 = the most deviating service)."""

    name = "deviation"
    weight = 2.71
    explain_rank = 1
    inputs = ("deviations",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        b = data.best(cand.service)
        if b is None:
            return Evidence(0.0, f"no judgeable metrics on {cand.service}", shown_as=self.name)
        metric, _, d = b
        v = d.sustained_z / data.max_z if data.max_z > 0 else 0.0
        word = "rose" if d.direction > 0 else "fell"
        return Evidence(min(max(v, 0.0), 1.0), f"{metric} on {cand.service} {word} {d.z:.1f}σ (robust) "
                        f"from {d.baseline:.4g} to {d.observed:.4g}", shown_as=self.name)
