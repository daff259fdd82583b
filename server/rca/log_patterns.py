"""Log patterns around one moment (a change or an onset): counts before and after (pure).

Used by ``GET /incidents/{id}/log_patterns`` so analysts see the new error patterns that
the ``error_logs`` evidence is built from. The templates come from the same Drain index
as RCA (:func:`server.rca.drain.build_index`), and "new" uses the same rule as the
evidence (:meth:`server.rca.drain.LogIndex.new_patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.model import LOG_LEVELS
from server.rca.drain import LogIndex


@dataclass(frozen=True, slots=True)
class PatternCount:
    service: str
    template: str
    level: str  # highest level seen among the pattern's lines
    before: int  # lines in [at - before_s, at)
    after: int  # lines in [at, at + after_s]
    new: bool  # new (or surging) after ``at`` by the evidence's rule
    first_after_s: float | None  # seconds from ``at`` to the first line at or after it
    example: str  # one raw message of the pattern


def pattern_counts(index: LogIndex, *, at: float, before_s: float, after_s: float,
                   services: set[str] | None = None, min_count: int = 3) -> list[PatternCount]:
    """Every pattern with a line in the window, new ones first, then by count after.

    Counts are scaled back up when the index mined a 1-in-k sample of a huge window.
    """
    if not index.group_ts:
        return []
    times = np.array([at], dtype=np.float64)
    ends = np.array([at + after_s], dtype=np.float64)
    new, _delay = index.new_patterns(times=times, ends=ends, services=services, before_s=before_s,
                                     min_count=min_count)
    k = max(index.sample_step, 1)
    out: list[PatternCount] = []
    for g, ts in enumerate(index.group_ts):
        svc = index.group_service[g]
        if services is not None and svc not in services:
            continue
        i_lo = int(np.searchsorted(ts, at - before_s, side="left"))
        i_at = int(np.searchsorted(ts, at, side="left"))
        i_end = int(np.searchsorted(ts, at + after_s, side="right"))
        before, after = (i_at - i_lo) * k, (i_end - i_at) * k
        if before == 0 and after == 0:
            continue
        first = float(ts[i_at] - at) if i_at < len(ts) and ts[i_at] <= at + after_s else None
        lvl = index.group_level[g]
        out.append(PatternCount(
            service=svc, template=index.templates[index.group_template[g]],
            level=LOG_LEVELS[lvl] if 0 <= lvl < len(LOG_LEVELS) else str(lvl),
            before=before, after=after, new=bool(new[g, 0]), first_after_s=first,
            example=index.group_example[g],
        ))
    out.sort(key=lambda p: (not p.new, -p.after, -p.before, p.service, p.template))
    return out
