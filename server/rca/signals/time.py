"""Time proximity of the change to the incident onset, and the after-onset penalty."""

from __future__ import annotations

from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class TimeProximity(ChangeSignal):
    """Change shortly before onset = 1 (a kind-specific ramp is free); older decays;
    after the onset (beyond its estimation error) penalised."""

    name = "time_proximity"
    weight = 2.75
    inputs = ("onset",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        s = ev.time_proximity(change_ts=c.ts, onset=data.onset, kind=c.kind)
        return Evidence(s.value, s.sentence, shown_as=self.name)


class AfterOnset(ChangeSignal):
    """1 when the change came clearly after the onset (it cannot have started it)."""

    name = "after_onset"
    weight = -2.9
    inputs = ("onset",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        return Evidence(ev.after_onset(change_ts=cand.change.ts, onset=data.onset))
