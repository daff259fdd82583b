"""Change-point alignment: did the changed service's metrics shift right at the change?"""

from __future__ import annotations

from server.rca import evidence as ev
from server.rca.series import shift_z
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class ChangePointAlignment(ChangeSignal):
    """Anomaly onsets on the changed service right after the change, or a level shift of
    its raw series at the change time (15 min before vs 10 min after)."""

    name = "change_point_alignment"
    weight = 0.65
    explain_rank = 1
    inputs = ("onsets_by_service", "view")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        services = cand.services
        om = ev.onset_alignment(change_ts=c.ts, kind=c.kind,
                                onsets=[o for s in services for o in data.onsets_by_service.get(s, [])])
        best_shift, best_metric, best_svc = 0.0, None, services[0]
        at = c.ts + min(ev.RAMP_S.get(c.kind, 180.0), 60.0)
        for s in services:
            for m, t, v in data.view.by_service.get(s, []):
                sh = ev.shift_strength(shift_z(t, v, at))
                if sh > best_shift:
                    best_shift, best_metric, best_svc = sh, m, s
        sig = ev.change_point_alignment(onset_match=om, shift=best_shift, metric=best_metric, service=best_svc)
        cand.memo["alignment"] = sig.value
        return Evidence(sig.value, sig.sentence, shown_as=self.name)
