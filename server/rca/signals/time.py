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


class LongBefore(ChangeSignal):
    """The change came far longer before the onset than any delayed effect explains (its
    kind's ramp plus :data:`~server.rca.evidence.DELAYED_S`) and the changed service's
    metrics did not move at the change: 0 within that horizon, rising to 1 over the next
    5 minutes, scaled down by the change-point alignment (a leak that starts at the deploy
    and alarms much later stays suspect)."""

    name = "long_before_onset"
    weight = -4.29
    inputs = ("onset",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        v = ev.long_before(change_ts=c.ts, onset=data.onset, kind=c.kind)
        if v <= 0.0:
            return Evidence(0.0)
        aligned = float(cand.memo.get("alignment", 0.0))
        v *= 1.0 - aligned
        if v >= 0.5:
            return Evidence(v, f"{ev.fmt_duration(data.onset - c.ts)} before the onset, longer than a delayed "
                               "effect usually takes, and nothing moved at the change", shown_as=self.name)
        return Evidence(v)


class Fresh(ChangeSignal):
    """The change came right before the onset (most bad changes show within a minute or
    two): 1 at the onset, halving every ~80 s of lead; within the onset's error after it
    too. Beside ``time_proximity`` (which forgives a kind's ramp and decays over 20
    minutes) it lets the prior tell "just before" from "several minutes before"."""

    name = "fresh"
    weight = 0.0
    inputs = ("onset",)

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        return Evidence(ev.fresh(change_ts=cand.change.ts, onset=data.onset))
