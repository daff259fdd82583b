"""Origin of a latency or error cascade, judged without a topology.

A service's latency includes the time it waits on its dependencies, so when one service
slows down its callers slow down by (a share of) the same absolute amount on top of their
own work: the *relative* rise shrinks at every hop up the call chain. Errors that callers
pass on add the callee's failures (or a share of them) to their own: the *absolute* rise
of an error ratio shrinks too. So among the services whose latency or errors clearly
rose, the one that rose the most in those terms is where the cascade starts. No call
graph is needed (real recordings often come without one), and a service that is merely
slower because its dependency is slower ranks below that dependency.
"""

from __future__ import annotations

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class CascadeOrigin(ServiceSignal):
    """The service's relative latency rise (log ratio of the medians after/before the
    onset) and absolute error-ratio rise, each relative to the largest among the services
    whose latency or errors clearly deviate; the larger of the two, the error share scaled
    by the latency share when the service's latency rose too (1 = the cascade's likely
    origin, 0 = no clear latency or error rise)."""

    name = "cascade_origin"
    weight = 4.67
    explain_rank = 2
    inputs = ("rises",)

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        mine = data.rises.get(cand.service)
        if not mine:
            return Evidence(0.0)
        share: dict[str, float] = {}
        for cls in ("latency", "error"):
            top = max((r.get(cls, 0.0) for r in data.rises.values()), default=0.0)
            share[cls] = mine.get(cls, 0.0) / top if top > 0 else 0.0
        # errors of a service that is itself waiting on a slower service (its latency rose,
        # but less than another's) are likely passed on: they count only as much as its
        # latency share (a root whose error metric is not reported still shows in latency)
        err = share["error"] * (share["latency"] if "latency" in mine else 1.0)
        # "rose the most" is only as strong as the share of services whose metric of that
        # kind is seen (a root that reports no error metric cannot top the error ranking)
        lat = share["latency"] * data.coverage.get("latency", 1.0)
        err *= data.coverage.get("error", 1.0)
        best, what = (lat, "latency") if lat >= err else (err, "error")
        if best >= 0.999 * max(data.coverage.get(what, 1.0), 1e-9) and len(data.rises) > 1:
            sent = f"{cand.service}'s {what} rose the most of the {len(data.rises)} services whose {what} rose " \
                   "(callers' rises shrink up a call chain)"
        elif best >= 0.999 * max(data.coverage.get(what, 1.0), 1e-9):
            sent = f"{cand.service} is the only service whose latency or errors clearly rose"
        else:
            sent = f"{cand.service}'s {what} rose less than another service's (it may only be waiting on it)"
        return Evidence(min(best, 1.0), sent, shown_as=self.name)
