"""The change itself: diff size and risky paths, config value change, flag rollout share."""

from __future__ import annotations

from server.model import Change
from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class ChangeRisk(ChangeSignal):
    """Deployments: diff size and risky paths (migrations, dependency manifests, config
    files), shown as ``code_diff``; config changes: size of the value change, shown as
    ``config_change``; flag changes: neutral."""

    name = "change_risk"
    weight = 0.65
    explain_rank = 6

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        if c.kind == "deployment":
            sig = ev.code_diff(c.diff_files)
            return Evidence(sig.value, sig.sentence, shown_as="code_diff")
        if c.kind == "config_change":
            sig = ev.config_magnitude(old=c.fields.get("old_value"), new=c.fields.get("new_value"))
            return Evidence(sig.value, sig.sentence, shown_as="config_change")
        return Evidence(0.5, "flag change")


class Rollout(ChangeSignal):
    """A flag's rollout share (a flag at 5 % rarely explains a big shift)."""

    name = "rollout"
    weight = 0.35
    explain_rank = 7

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        sig = ev.rollout_share(c)
        return Evidence(sig.value, sig.sentence, shown_as=self.name if c.kind == "flag_change" else None)

    def explainable(self, change: Change) -> bool:
        return change.kind == "flag_change"
