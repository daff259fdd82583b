"""Position in the call topology: a root's dependencies look healthy, its callers do not."""

from __future__ import annotations

from server.rca.signals.base import Evidence
from server.rca.signals.service_base import ServiceCandidate, ServiceData, ServiceSignal


class TopologyRoot(ServiceSignal):
    """For a deviating service: the share of services with deviating latency or errors it
    can explain (itself and its transitive callers), times the share of its direct
    dependencies whose latency and errors look healthy.
    0.5 for every service when no topology is known."""

    name = "topology_root"
    weight = 3.79
    explain_rank = 2
    inputs = ("deviating", "topo")

    def compute(self, data: ServiceData, cand: ServiceCandidate) -> Evidence:
        s = cand.service
        if not data.has_topology:
            return Evidence(0.5)
        if s not in data.deviating:
            return Evidence(0.0, f"{s} shows no clear deviation", shown_as=self.name)
        dev = data.propagating | {s}
        reach = {s} | data.topo.upstream(s)
        coverage = len(dev & reach) / max(len(dev), 1)
        callees = data.topo.callees.get(s, set())
        bad = [c for c in callees if c in dev]
        healthy = 1.0 - len(bad) / len(callees) if callees else 1.0
        v = coverage * (0.3 + 0.7 * healthy)
        n_up = len((dev & reach) - {s})
        if bad:
            sent = f"{len(bad)} of {len(callees)} dependencies of {s} deviate too ({', '.join(sorted(bad)[:3])})"
        elif n_up:
            sent = f"{n_up} deviating service{'s' if n_up != 1 else ''} call{'s' if n_up == 1 else ''} {s}; " \
                   "its dependencies look healthy"
        else:
            sent = f"{s}'s dependencies look healthy"
        return Evidence(min(max(v, 0.0), 1.0), sent, shown_as=self.name)
