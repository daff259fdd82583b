"""How two runs over the same period differ (pure): incidents gained and lost, rank
changes of the labelled causes, AC@k before and after.

A run is its incidents (id, onset, services, title) and each incident's suspects in
rank order. Incidents of the two runs are paired one-to-one, closest onsets first,
when they share a service and their onsets are at most ``tolerance_s`` apart; the
unpaired ones of the new run are *gained*, those of the old run *lost*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

KS: tuple[int, ...] = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class RunIncident:
    id: str
    started_at: float
    services: tuple[str, ...]
    title: str = ""
    status: str = ""


@dataclass(slots=True)
class Run:
    incidents: list[RunIncident]
    ranked: dict[str, list[str | None]] = field(default_factory=dict)  # incident id -> change ids, best first

    def rank_of(self, incident_id: str, change_id: str) -> int | None:
        for i, cid in enumerate(self.ranked.get(incident_id, []), start=1):
            if cid == change_id:
                return i
        return None


@dataclass(slots=True)
class RankChange:
    before_incident: str
    after_incident: str | None
    change_id: str
    rank_before: int | None
    rank_after: int | None


@dataclass(slots=True)
class Diff:
    incidents_before: int
    incidents_after: int
    matched: list[tuple[str, str]]
    gained: list[RunIncident]
    lost: list[RunIncident]
    rank_changes: list[RankChange]
    ac_before: dict[int, float]
    ac_after: dict[int, float]
    labelled: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ac_before"] = {f"ac{k}": v for k, v in self.ac_before.items()}
        d["ac_after"] = {f"ac{k}": v for k, v in self.ac_after.items()}
        return d


def match_incidents(before: Sequence[RunIncident], after: Sequence[RunIncident], *,
                    tolerance_s: float = 900.0) -> list[tuple[str, str]]:
    """One-to-one pairs (before id, after id): closest onsets first, sharing a service."""
    cands: list[tuple[float, str, str]] = []
    for b in before:
        for a in after:
            gap = abs(a.started_at - b.started_at)
            if gap <= tolerance_s and set(a.services) & set(b.services):
                cands.append((gap, b.id, a.id))
    cands.sort()
    used_b: set[str] = set()
    used_a: set[str] = set()
    out: list[tuple[str, str]] = []
    for _, b_id, a_id in cands:
        if b_id in used_b or a_id in used_a:
            continue
        used_b.add(b_id)
        used_a.add(a_id)
        out.append((b_id, a_id))
    return out


def accuracy(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[int, float]:
    """AC@k: share of labelled causes ranked in the top k (a cause missing from the
    suspects, or whose incident is gone, counts as a miss)."""
    n = len(ranks)
    return {k: (round(sum(1 for r in ranks if r is not None and r <= k) / n, 4) if n else 0.0) for k in ks}


def compare(before: Run, after: Run, causes: Mapping[str, str], *, tolerance_s: float = 900.0,
            ks: Sequence[int] = KS) -> Diff:
    """``causes`` maps an incident id of ``before`` to its labelled cause (a change id)."""
    pairs = match_incidents(before.incidents, after.incidents, tolerance_s=tolerance_s)
    b2a = dict(pairs)
    matched_a = set(b2a.values())
    changes: list[RankChange] = []
    for inc_id in sorted(causes, key=lambda i: next((x.started_at for x in before.incidents if x.id == i), 0.0)):
        cid = causes[inc_id]
        a_id = b2a.get(inc_id)
        changes.append(RankChange(inc_id, a_id, cid, before.rank_of(inc_id, cid),
                                  after.rank_of(a_id, cid) if a_id is not None else None))
    return Diff(
        incidents_before=len(before.incidents), incidents_after=len(after.incidents), matched=pairs,
        gained=[a for a in after.incidents if a.id not in matched_a],
        lost=[b for b in before.incidents if b.id not in b2a],
        rank_changes=changes,
        ac_before=accuracy([c.rank_before for c in changes], ks),
        ac_after=accuracy([c.rank_after for c in changes], ks),
        labelled=len(changes),
    )


def carry_causes(causes: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Labels of one run moved onto the paired incidents of another."""
    m = dict(pairs)
    return {m[i]: c for i, c in causes.items() if i in m}
