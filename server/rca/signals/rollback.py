"""Rollbacks: a revert of this change that ended the incident; a change that is a rollback."""

from __future__ import annotations

from server.model import Change
from server.rca import evidence as ev
from server.rca.series import recovered_by_series
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData, change_subject_key


def _same_subject(data: IncidentData, c: Change) -> list[Change]:
    return data.by_subject.get(change_subject_key(c), [])


class RollbackRecovery(ChangeSignal):
    """A later rollback/revert of this change (deployment back to its previous version,
    config restored, flag turned back) after which the incident recovered."""

    name = "rollback_recovery"
    weight = 5.25
    explain_rank = 0
    inputs = ("by_subject", "anomalies", "view", "watermark")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        # only a revert after the incident started can end it
        revert = next((r for r in _same_subject(data, c)
                       if r.ts > max(c.ts, data.onset - ev.ONSET_SLACK_S) and r.ts <= data.watermark
                       and ev.reverts(r, c)), None)
        recovered = None
        if revert is not None:
            recovered = ev.recovery_time(data.anomalies, after=revert.ts)
            if recovered is None:
                recovered = recovered_by_series(data.view, data.anomalies, revert.ts, data.watermark)
        sig = ev.rollback_recovery(revert_ts=revert.ts if revert else None, recovered_at=recovered,
                                   service=cand.services[0])
        return Evidence(sig.value, sig.sentence, shown_as=self.name if revert is not None else None)


class IsRollback(ChangeSignal):
    """The change is itself a rollback (penalty: it undoes a change, it rarely breaks things)."""

    name = "is_rollback"
    weight = -2.6
    inputs = ("by_subject",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        earlier = [e for e in _same_subject(data, c) if e.ts < c.ts]
        if ev.is_rollback(c, earlier):
            return Evidence(1.0, "this change is itself a rollback")
        return Evidence(0.0)
