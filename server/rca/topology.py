"""Service-graph helpers for RCA (pure).

An edge ``source -> target`` means *source calls target* (source depends on target).
A fault in a service propagates to its callers, so the services that a change can make
anomalous are the changed service and its (transitive) callers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from server.model import Edge


class Topology:
    """Adjacency in both directions with cached reachability queries."""

    def __init__(self, edges: Iterable[Edge]) -> None:
        self.callees: dict[str, set[str]] = {}
        self.callers: dict[str, set[str]] = {}
        for e in edges:
            if e.source == e.target:
                continue
            self.callees.setdefault(e.source, set()).add(e.target)
            self.callers.setdefault(e.target, set()).add(e.source)
        self._up: dict[str, frozenset[str]] = {}

    def upstream(self, service: str) -> frozenset[str]:
        """Every transitive caller of ``service`` (not including it)."""
        hit = self._up.get(service)
        if hit is None:
            hit = frozenset(_bfs(service, self.callers, max_depth=None))
            self._up[service] = hit
        return hit

    def neighbourhood(self, services: Iterable[str], *, callee_depth: int = 2, caller_depth: int = 1) -> set[str]:
        """``services`` plus their dependencies (callees) and direct callers."""
        out: set[str] = set()
        for s in services:
            out.add(s)
            out |= _bfs(s, self.callees, max_depth=callee_depth)
            out |= _bfs(s, self.callers, max_depth=caller_depth)
        return out

    def distance(self, a: str, b: str, *, limit: int = 4) -> int | None:
        """Undirected hop distance between two services (None if farther than ``limit``)."""
        if a == b:
            return 0
        seen = {a}
        frontier = [a]
        for d in range(1, limit + 1):
            nxt: list[str] = []
            for n in frontier:
                for m in self.callees.get(n, set()) | self.callers.get(n, set()):
                    if m == b:
                        return d
                    if m not in seen:
                        seen.add(m)
                        nxt.append(m)
            frontier = nxt
        return None


def _bfs(start: str, adj: dict[str, set[str]], *, max_depth: int | None) -> set[str]:
    seen: set[str] = set()
    q: deque[tuple[str, int]] = deque([(start, 0)])
    while q:
        node, depth = q.popleft()
        if max_depth is not None and depth >= max_depth:
            continue
        for nxt in adj.get(node, ()):
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                q.append((nxt, depth + 1))
    return seen
