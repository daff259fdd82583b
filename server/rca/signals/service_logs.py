"""Error logs: callers' new errors that name the service, and its own new errors."""

from __future__ import annotations

import math

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class LogBlame(ServiceSignal):
    """New WARN/ERROR patterns after the onset on other services that name this one
    (``timeout calling payments``, ``connection reset by payments``)."""

    name = "log_blame"
    weight = 3.92
    explain_rank = 4
    inputs = ("blame",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        n, who = data.blame.get(cand.service, (0, []))
        if n == 0:
            return Evidence(0.0)
        v = 1.0 - math.exp(-n / 2.0)
        return Evidence(v, f"new errors on {', '.join(who[:3])} name {cand.service}", shown_as=self.name)


class OwnErrors(ServiceSignal):
    """New WARN/ERROR patterns on the service itself after the onset."""

    name = "own_errors"
    weight = 0.78
    explain_rank = 5
    inputs = ("own_errors",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        n, err = data.own_errors.get(cand.service, (0, False))
        if n == 0:
            return Evidence(0.0)
        v = (1.0 - math.exp(-n / 1.5)) * (1.0 if err else 0.7)
        return Evidence(v, f"{n} new {'ERROR' if err else 'WARN'} pattern{'s' if n != 1 else ''} on {cand.service}",
                        shown_as=self.name)
