"""Scoring candidates: heuristic prior, blending with a learnt model, calibration (pure).

Each candidate gets a logit ``z`` (prior, learnt, or a blend weighted by how much the
model has learnt). Scores are probabilities under a "one cause or none" model:

    P(change c is the cause) = exp(z_c) / (1 + sum_j exp(z_j))

which equals the logistic ``sigmoid(z_c)`` when there is one candidate, and makes
candidates compete when there are several. The remaining mass ``1 / (1 + sum exp z)`` is
the probability that none of the changes is the cause: when no candidate reaches
:data:`CONVINCING`, the incident says "no convincing change".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.rca.evidence import change_subject
from server.rca.features import FEATURES, FIDX, CandidateRow
from server.rca.signals import CHANGE_SIGNALS

#: Weights of the cold-start prior (log-odds per unit of evidence; each signal's ``weight``
#: in :mod:`server.rca.signals`). Started by hand, then
#: fitted by maximum likelihood of the "one cause or none" model on the *tuning* seeds only
#: (1000-1119 by the default mix and 1200-1299 with kinds from the organisation profile;
#: ``python -m server.rca.tune``), L2-regularised towards the hand-set values (lambda 0.3),
#: with signs constrained (evidence can only raise suspicion; penalties only lower it).
#: Evaluation uses other seeds (docs/ranking.md).
PRIOR_WEIGHTS: dict[str, float] = {s.name: s.weight for s in CHANGE_SIGNALS if s.weight != 0.0}
PRIOR_BIAS = -10.5
#: Minimum probability for the top suspect to be presented as the likely cause (chosen on
#: the tuning seeds: 3 of 183 correct top suspects fall below it, 7 of 9 wrong ones above).
CONVINCING = 0.5

_PRIOR_VEC = np.array([PRIOR_WEIGHTS.get(n, 0.0) for n in FEATURES], dtype=np.float64)


def prior_logits(x: np.ndarray) -> np.ndarray:
    """Logits of the heuristic prior for a feature matrix ``[n, len(FEATURES)]``."""
    if x.size == 0:
        return np.zeros(0)
    return np.asarray(x @ _PRIOR_VEC + PRIOR_BIAS, dtype=np.float64)


def blend(prior: np.ndarray, learnt: np.ndarray | None, weight: float) -> np.ndarray:
    if learnt is None or weight <= 0.0:
        return prior
    w = min(max(weight, 0.0), 1.0)
    return np.asarray((1.0 - w) * prior + w * learnt, dtype=np.float64)


def blend_weight(labelled_incidents: int, *, half: float = 12.0) -> float:
    """How much the learnt model is trusted: 0 with no labels, 0.5 at ``half`` labelled
    incidents, approaching 0.9 with many."""
    if labelled_incidents <= 0:
        return 0.0
    return 0.9 * labelled_incidents / (labelled_incidents + half * 0.8)


def probabilities(z: np.ndarray) -> np.ndarray:
    """Per-candidate cause probabilities with a "none of them" alternative (logit 0)."""
    if z.size == 0:
        return z
    m = max(float(z.max()), 0.0)
    e = np.exp(z - m)
    return np.asarray(e / (np.exp(-m) + e.sum()), dtype=np.float64)


def order(scores: np.ndarray, rows: Sequence[CandidateRow]) -> list[int]:
    """Best first; ties broken by time proximity, then change time (later first), then id."""
    return sorted(
        range(len(rows)),
        key=lambda i: (-round(float(scores[i]), 12), -float(rows[i].values[FIDX["time_proximity"]]),
                       -rows[i].change.ts, rows[i].change.id),
    )


_EXPLAINED = sorted((s for s in CHANGE_SIGNALS if s.explain_rank is not None),
                    key=lambda s: int(s.explain_rank or 0))


def explain(row: CandidateRow, *, learnt_coef: np.ndarray | None = None) -> str:
    """One sentence: what changed and when, then the strongest supporting evidence."""
    head = f"{change_subject(row.change)} {row.sentences.get('time_proximity', '')}".strip()
    weights = _PRIOR_VEC if learnt_coef is None else learnt_coef
    scored: list[tuple[float, str]] = []
    for sig in _EXPLAINED:
        i = FIDX[sig.name]
        contrib = float(row.values[i]) * float(weights[i])
        if not sig.explainable(row.change):
            continue
        if contrib > 0.25 and sig.name in row.sentences:
            scored.append((contrib, sig.name))
    scored.sort(key=lambda t: -t[0])
    top = [n for _, n in scored[:3]]
    for sig in _EXPLAINED:  # e.g. what the errors name is the most useful clue for a human
        if sig.always_explain and row.values[FIDX[sig.name]] > 0 and sig.name not in top and sig.name in row.sentences:
            top.append(sig.name)
    parts = [row.sentences[n] for n in top]
    if not parts:
        weak = row.sentences.get("blast_radius")
        parts = [weak] if weak else []
    return "; ".join([head, *parts])
