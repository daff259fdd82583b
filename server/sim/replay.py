"""Replay a :class:`~server.sim.scenario.Scenario` into a running RCA server over HTTP.

Only the public HTTP contract is used (``/ingest/*``, ``/health``, ``/incidents``), so
the same replay works against the embedded server, the stack, or any conforming
implementation. Data goes out in event-time order: per chunk of event time, first the
change events of that chunk, then its logs, then its metric points, so the server sees
each change before the metrics that follow it, as it would live.

Also holds small helpers to read incidents and suspects back and to match them with a
scenario's ground truth (used by tests and ``rca eval``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from server.sim.scenario import Scenario, Truth
from server.timeutil import parse_ts

CHANGE_ENDPOINTS: dict[str, tuple[str, str]] = {
    "deployment": ("/ingest/deployments", "deployments"),
    "config_change": ("/ingest/config_changes", "config_changes"),
    "flag_change": ("/ingest/flag_changes", "flag_changes"),
}


class ReplayError(RuntimeError):
    """The server rejected a batch or did not become idle in time."""


@dataclass(slots=True)
class ReplayStats:
    metrics: int = 0
    logs: int = 0
    changes: int = 0
    edges: int = 0
    requests: int = 0
    seconds: float = 0.0


# How long one batch may wait on 429/503 answers before the replay gives up on it.
BACKPRESSURE_BUDGET = 120.0


def auth_headers() -> dict[str, str]:
    """The API key from env RCA_API_KEY as a bearer header (empty when unset)."""
    key = os.environ.get("RCA_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(client: httpx.Client, path: str, key: str, items: Sequence[dict[str, Any]], stats: ReplayStats) -> None:
    """POST ``{key: items}``; halves the batch on 413 (body too large), waits out 429/503 as
    their Retry-After asks (up to ``BACKPRESSURE_BUDGET``), retries connection errors twice."""
    if not items:
        return
    body = orjson.dumps({key: list(items)})
    deadline = time.monotonic() + BACKPRESSURE_BUDGET
    attempt = 0
    while True:
        try:
            resp = client.post(path, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError:
            if attempt == 2:
                raise
            attempt += 1
            time.sleep(0.5 * attempt)
            continue
        stats.requests += 1
        if resp.status_code not in (429, 503):
            break
        # the server is behind: wait as long as it asks (Retry-After), within the budget
        try:
            wait = float(resp.headers.get("retry-after", 0.5 * (attempt + 1)))
        except ValueError:
            wait = 0.5 * (attempt + 1)
        if time.monotonic() + wait > deadline:
            break
        time.sleep(min(wait, 10.0))
    if resp.status_code == 413 and len(items) > 1:
        mid = len(items) // 2
        _post(client, path, key, items[:mid], stats)
        _post(client, path, key, items[mid:], stats)
        return
    if resp.status_code >= 400:
        raise ReplayError(f"POST {path} -> {resp.status_code}: {resp.text[:500]}")


def _batches(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def post_changes(client: httpx.Client, changes: Sequence[dict[str, Any]], stats: ReplayStats | None = None) -> None:
    """POST change events (contract dicts with a ``kind`` key) to their endpoints, in order."""
    st = stats or ReplayStats()
    run: list[dict[str, Any]] = []
    run_kind: str | None = None
    for c in [*changes, {"kind": None}]:
        if c["kind"] != run_kind and run:
            path, key = CHANGE_ENDPOINTS[str(run_kind)]
            _post(client, path, key, run, st)
            st.changes += len(run)
            run = []
        run_kind = c["kind"]
        if run_kind is not None:
            run.append({k: v for k, v in c.items() if k != "kind"})


def post_edges(client: httpx.Client, edges: Sequence[dict[str, str]], stats: ReplayStats | None = None) -> None:
    st = stats or ReplayStats()
    _post(client, "/ingest/topology", "edges", edges, st)
    st.edges += len(edges)


def post_metrics(client: httpx.Client, points: Sequence[dict[str, Any]], stats: ReplayStats | None = None,
                 batch: int = 5000) -> None:
    st = stats or ReplayStats()
    for b in _batches(points, batch):
        _post(client, "/ingest/metrics", "points", b, st)
        st.metrics += len(b)


def post_logs(client: httpx.Client, logs: Sequence[dict[str, Any]], stats: ReplayStats | None = None,
              batch: int = 5000) -> None:
    st = stats or ReplayStats()
    for b in _batches(logs, batch):
        _post(client, "/ingest/logs", "logs", b, st)
        st.logs += len(b)


def pending(client: httpx.Client) -> int:
    resp = client.get("/health")
    resp.raise_for_status()
    return int(resp.json().get("pending", 0))


def wait_idle(client: httpx.Client, timeout: float = 60.0, poll: float = 0.05) -> None:
    """Wait until the server reports ``pending == 0``."""
    deadline = time.monotonic() + timeout
    while True:
        left = pending(client)
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise ReplayError(f"server still has {left} pending events after {timeout:.0f} s")
        time.sleep(poll)


def _slice(items: Sequence[dict[str, Any]], lo: int, t_end: float) -> int:
    hi = lo
    while hi < len(items) and float(items[hi]["ts"]) < t_end:
        hi += 1
    return hi


def replay(scenario: Scenario, server: str | httpx.Client, *, chunk_s: float = 600.0, batch: int = 5000,
           with_logs: bool = True, wait: bool = True, timeout: float = 120.0) -> ReplayStats:
    """Push ``scenario`` into the server at ``server`` (base URL or a ready client) in
    event-time order and, with ``wait``, block until the server has processed it all."""
    client = httpx.Client(base_url=server, timeout=60.0, headers=auth_headers()) if isinstance(server, str) else server
    stats = ReplayStats()
    t0 = time.perf_counter()
    try:
        post_edges(client, scenario.edges, stats)
        logs = scenario.logs if with_logs else []
        ic = il = im = 0
        t = scenario.start
        while t < scenario.end or ic < len(scenario.changes) or il < len(logs) or im < len(scenario.metrics):
            t_end = t + chunk_s if t + chunk_s < scenario.end else float("inf")
            jc, jl, jm = (_slice(scenario.changes, ic, t_end), _slice(logs, il, t_end),
                          _slice(scenario.metrics, im, t_end))
            post_changes(client, scenario.changes[ic:jc], stats)
            post_logs(client, logs[il:jl], stats, batch)
            post_metrics(client, scenario.metrics[im:jm], stats, batch)
            ic, il, im = jc, jl, jm
            t = t_end
        if wait:
            wait_idle(client, timeout)
    finally:
        if isinstance(server, str):
            client.close()
    stats.seconds = time.perf_counter() - t0
    return stats


# ---- reading results back --------------------------------------------------------------

def list_incidents(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    params.setdefault("limit", 1000)
    resp = client.get("/incidents", params=params)
    resp.raise_for_status()
    return list(resp.json())


def get_suspects(client: httpx.Client, incident_id: str) -> list[dict[str, Any]]:
    resp = client.get(f"/incidents/{incident_id}/suspects")
    resp.raise_for_status()
    return sorted(resp.json(), key=lambda s: s.get("rank", 0))


def incident_start(incident: dict[str, Any]) -> float:
    return parse_ts(incident["started_at"])


def matching_incidents(incidents: Sequence[dict[str, Any]], truth: Truth, *, before_s: float = 600.0,
                       after_s: float = 900.0) -> list[dict[str, Any]]:
    """Incidents that belong to the scenario's fault: started between ``before_s`` before
    the onset and ``after_s`` after it (or the fault end), sharing a service with the
    affected services or the faulty service. Empty for control scenarios."""
    if truth.onset is None:
        return []
    hi = max(truth.onset + after_s, truth.fault_end or 0.0)
    svcs = set(truth.affected_services) | ({truth.fault_service} if truth.fault_service else set())
    out = []
    for inc in incidents:
        t = incident_start(inc)
        if truth.onset - before_s <= t <= hi and svcs & set(inc.get("services") or []):
            out.append(inc)
    return out


def culprit_rank(suspects: Sequence[dict[str, Any]], culprit_id: str | None) -> int | None:
    """1-based rank of the culprit among ``suspects`` (ranked best first), None if absent."""
    if culprit_id is None:
        return None
    for i, s in enumerate(suspects, start=1):
        if s.get("change_id") == culprit_id:
            return int(s.get("rank") or i)
    return None
