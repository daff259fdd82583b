"""What one poll of the incident list changes (pure; runs in the polling thread).

Comparing frozen ``Incident`` dataclasses is cheap, building table cells is not, so only
new or changed incidents get their cells built, and the UI thread only applies the delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.client.models import Incident
from workbench.tui.render import incident_row, incident_sort_key


@dataclass(slots=True)
class ListDelta:
    incidents: dict[str, Incident]  # the full state after this poll
    upserts: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)  # rows to add or update
    removes: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    sort_mode: str = "severity"

    @property
    def changes(self) -> int:
        return len(self.upserts) + len(self.removes)


def sort_order(incidents: dict[str, Incident], mode: str) -> list[str]:
    return [i.id for i in sorted(incidents.values(), key=lambda i: incident_sort_key(i, mode))]


def diff_incidents(old: dict[str, Incident], fetched: list[Incident], *, full: bool,
                   sort_mode: str) -> ListDelta:
    """``full``: ``fetched`` is the whole filtered list (others are removed); otherwise it is
    the newest page only, merged into ``old``."""
    if full:
        new = {i.id: i for i in fetched}
        removes = [k for k in old if k not in new]
    else:
        new = dict(old)
        new.update((i.id, i) for i in fetched)
        removes = []
    upserts = [(k, incident_row(i)) for k, i in new.items() if old.get(k) != i]
    new_ids = [k for k in new if k not in old]
    return ListDelta(incidents=new, upserts=upserts, removes=removes, order=sort_order(new, sort_mode),
                     new_ids=new_ids, sort_mode=sort_mode)
