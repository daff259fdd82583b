"""Log template mining (Drain) and "new patterns after a change" counting (pure).

Messages are first masked in bulk with a vectorised regular expression (numbers, hex
ids, durations, UUIDs become ``<*>``) and de-duplicated, so the Drain tree only sees the
distinct masked messages: a million log lines typically collapse to a few hundred
strings. Drain (He et al., 2017) then clusters those into templates by token count, a
prefix tree over the leading tokens, and token similarity.

:class:`LogIndex` keeps, per ``(service, template)``, the sorted timestamps of its
lines, so the number of occurrences before and after any change time is two binary
searches, vectorised over all candidate changes at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from server.model import LOG_LEVELS, LogWindow

WILDCARD = "<*>"
# Any run that contains a digit, with the hex letters before it and the word characters
# after it: numbers, durations, hex ids, UUIDs, IPs, version numbers (``v2.14.0`` -> ``v<*>``;
# mentions of versions are matched against each pattern's example line instead).
_MASK_RE = r"[0-9a-fA-F]*[0-9][\w.:%+\-]*"
_CHUNK = 250_000


def mask_messages(messages: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Mask variable parts of every message and de-duplicate.

    Returns ``(codes, uniques)``: ``uniques[codes[i]]`` is the masked form of message i.
    """
    if len(messages) == 0:
        return np.zeros(0, dtype=np.int64), []
    arr = _arrow(messages)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) <= _CHUNK:
        masked: pa.Array | pa.ChunkedArray = pc.replace_substring_regex(arr, pattern=_MASK_RE, replacement=WILDCARD)
    else:  # the regex kernel releases the GIL: mask chunks in parallel
        parts = [arr.slice(i, _CHUNK) for i in range(0, len(arr), _CHUNK)]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
            done = list(ex.map(lambda a: pc.replace_substring_regex(a, pattern=_MASK_RE, replacement=WILDCARD), parts))
        masked = pa.chunked_array(done)
    enc = pc.dictionary_encode(masked)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries().combine_chunks()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(s) for s in enc.dictionary.to_pylist()]


@dataclass(slots=True)
class _Cluster:
    tokens: list[str]
    id: int
    size: int = 0


@dataclass(slots=True)
class Drain:
    """The Drain online template miner over whitespace tokens.

    ``depth`` is the prefix-tree depth (number of leading tokens used to route, plus the
    length layer); ``sim_threshold`` the share of equal tokens needed to join a cluster.
    """

    depth: int = 3
    sim_threshold: float = 0.5
    max_children: int = 100
    clusters: list[_Cluster] = field(default_factory=list)
    _tree: dict[int, dict] = field(default_factory=dict)  # type: ignore[type-arg]

    def add(self, message: str, count: int = 1) -> int:
        """Add one (already masked) message; returns its template id."""
        tokens = message.split()
        node = self._tree.setdefault(len(tokens), {})
        for tok in tokens[: max(self.depth - 2, 0)]:
            key = WILDCARD if any(ch.isdigit() for ch in tok) else tok
            if key not in node:
                if len(node) >= self.max_children:
                    key = WILDCARD
                node = node.setdefault(key, {})
            else:
                node = node[key]
        leaf: list[_Cluster] = node.setdefault("__clusters__", [])
        best, best_sim = None, -1.0
        for c in leaf:
            sim = _similarity(c.tokens, tokens)
            if sim > best_sim:
                best, best_sim = c, sim
        if best is not None and best_sim >= self.sim_threshold:
            best.tokens = [a if a == b else WILDCARD for a, b in zip(best.tokens, tokens, strict=True)]
            best.size += count
            return best.id
        c = _Cluster(tokens=list(tokens), id=len(self.clusters), size=count)
        self.clusters.append(c)
        leaf.append(c)
        return c.id

    def template(self, cluster_id: int) -> str:
        return " ".join(self.clusters[cluster_id].tokens)


def _similarity(template: list[str], tokens: list[str]) -> float:
    if not tokens:
        return 1.0
    same = sum(1 for a, b in zip(template, tokens, strict=True) if a in (b, WILDCARD))
    return same / len(tokens)


_LEVEL_RANK = {lvl: i for i, lvl in enumerate(LOG_LEVELS)}
ERROR_RANK = _LEVEL_RANK["ERROR"]


@dataclass(slots=True)
class LogIndex:
    """Mined templates and per ``(service, template)`` sorted timestamps."""

    since: float
    until: float
    templates: list[str]
    group_service: list[str]
    group_template: list[int]
    group_level: list[int]  # highest level rank seen in the group
    group_ts: list[np.ndarray]  # sorted event times per group
    group_example: list[str]  # one raw message of the group (for mentions of versions etc.)
    lines: int
    sample_step: int = 1  # 1 = every line mined; k = a systematic 1-in-k sample (huge windows)

    @staticmethod
    def empty(since: float = 0.0, until: float = 0.0) -> LogIndex:
        return LogIndex(since, until, [], [], [], [], [], [], 0)

    def new_patterns(
        self,
        *,
        times: np.ndarray,
        ends: np.ndarray,
        services: set[str] | None = None,
        before_s: float = 1800.0,
        min_count: int = 3,
        factor: float = 5.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(new, delay)`` matrices ``[group, candidate]``: is the group's pattern new (or
        surging) in ``[times[c], ends[c]]`` compared with the ``before_s`` seconds before
        ``times[c]``, and how long after ``times[c]`` its first line came.

        A pattern is new when it occurs at least ``min_count`` times after, and its rate
        after is ``factor`` times its (smoothed) rate before.
        """
        n = len(times)
        min_count = max(1, -(-min_count // self.sample_step))
        out = np.zeros((len(self.group_ts), n), dtype=bool)
        delay = np.full((len(self.group_ts), n), np.inf)
        if n == 0:
            return out, delay
        lo = np.maximum(times - before_s, self.since)
        before_dur = np.maximum(times - lo, 1.0)
        after_dur = np.maximum(ends - times, 1.0)
        judgeable = (times - lo) >= 120.0
        for g, ts in enumerate(self.group_ts):
            if len(ts) < min_count or (services is not None and self.group_service[g] not in services):
                continue
            i_lo = np.searchsorted(ts, lo, side="left")
            i_t = np.searchsorted(ts, times, side="left")
            i_end = np.searchsorted(ts, ends, side="right")
            before = (i_t - i_lo).astype(np.float64)
            after = (i_end - i_t).astype(np.float64)
            rate_b = (before + 0.5) / before_dur
            rate_a = after / after_dur
            out[g] = judgeable & (after >= min_count) & (rate_a > factor * rate_b)
            first = ts[np.minimum(i_t, len(ts) - 1)]
            delay[g] = np.where(i_t < len(ts), first - times, np.inf)
        return out, delay


def _arrow(col: object) -> pa.Array | pa.ChunkedArray:
    """A string column as Arrow (stores may hand over Arrow arrays directly: no copy)."""
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col
    return pa.array(col, type=pa.string())


#: Above this many lines, templates are mined and counted on a systematic 1-in-k sample
#: (masking costs ~0.8 µs per line; rates and "new after vs before" are ratios, so a
#: sample keeps them; only patterns rarer than ~k lines can be missed).
MAX_MINED_LINES = 200_000


def _sample(col: object, step: int) -> object:
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col[::step] if isinstance(col, pa.Array) else col.combine_chunks()[::step]
    return list(col)[::step]  # type: ignore[call-overload]


def build_index(logs: LogWindow, *, since: float, until: float, drain: Drain | None = None,
                max_lines: int = MAX_MINED_LINES) -> LogIndex:
    """Mine templates over a log window and index occurrences by ``(service, template)``."""
    total = len(logs)
    if total == 0:
        return LogIndex.empty(since, until)
    step = 1 if total <= max_lines else -(-total // max_lines)
    if step > 1:
        logs = LogWindow(service=_sample(logs.service, step), ts=_sample(logs.ts, step),  # type: ignore[arg-type]
                         level=_sample(logs.level, step), message=_sample(logs.message, step))  # type: ignore[arg-type]
    n = len(logs)
    codes, uniques = mask_messages(logs.message)  # type: ignore[arg-type]
    miner = drain or Drain()
    counts = np.bincount(codes, minlength=len(uniques))
    # feed distinct messages in sorted order: templates do not depend on row order (ties in ts)
    tpl_of_unique = np.zeros(len(uniques), dtype=np.int64)
    for u in sorted(range(len(uniques)), key=uniques.__getitem__):
        tpl_of_unique[u] = miner.add(uniques[u], int(counts[u]))
    tpl = tpl_of_unique[codes]
    svc_enc = pc.dictionary_encode(_arrow(logs.service))
    svc_codes = np.asarray(svc_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    svc_names = [str(s) for s in svc_enc.dictionary.to_pylist()]
    lvl_enc = pc.dictionary_encode(_arrow(logs.level))
    lvl_codes = np.asarray(lvl_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    lvl_rank = np.array([_LEVEL_RANK.get(str(v).upper(), 0) for v in lvl_enc.dictionary.to_pylist()], dtype=np.int64)
    ranks = lvl_rank[lvl_codes] if len(lvl_rank) else np.zeros(n, dtype=np.int64)
    ts = (logs.ts.to_numpy(zero_copy_only=False) if isinstance(logs.ts, pa.Array | pa.ChunkedArray)
          else np.asarray(logs.ts)).astype(np.float64, copy=False)
    n_tpl = len(miner.clusters)
    key = svc_codes * n_tpl + tpl
    pos = np.arange(n)
    if n > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, key, ranks, pos = ts[order], key[order], ranks[order], pos[order]
    order = np.argsort(key, kind="stable")
    key_s = key[order]
    ts_s = ts[order]
    rk_s = ranks[order]
    pos_s = pos[order]
    bounds = np.flatnonzero(np.diff(key_s)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(key_s)]))
    max_rank = np.maximum.reduceat(rk_s, starts)
    gs: list[str] = []
    gt: list[int] = []
    gl: list[int] = []
    gts: list[np.ndarray] = []
    gx: list[str] = []
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        k = int(key_s[a])
        gs.append(svc_names[k // n_tpl])
        gt.append(k % n_tpl)
        gl.append(int(max_rank[i]))
        gts.append(ts_s[a:b])
        ex = logs.message[int(pos_s[b - 1])]
        gx.append(str(ex.as_py() if isinstance(ex, pa.Scalar) else ex))
    return LogIndex(
        since=since, until=until, templates=[miner.template(i) for i in range(n_tpl)], group_service=gs,
        group_template=gt, group_level=gl, group_ts=gts, group_example=gx, lines=total, sample_step=step,
    )
