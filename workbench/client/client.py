"""Sync and async typed clients over the HTTP contract.

``RcaClient`` and ``AsyncRcaClient`` have the same methods with the same arguments;
the async one returns awaitables. Both raise :class:`~workbench.client.errors.ClientError`
subclasses only (``ServerUnavailable`` for connection failures and timeouts).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from workbench.client import calls
from workbench.client.calls import Call, TimeLike
from workbench.client.errors import ClientError
from workbench.client.models import (
    Anomaly,
    Change,
    Health,
    Incident,
    Label,
    Series,
    SeriesInfo,
    Service,
    Suspect,
)
from workbench.client.transport import DEFAULT_TIMEOUT, result, translate

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
# Total time a call may spend waiting on 429/503 answers that carry Retry-After.
DEFAULT_RETRY_BUDGET = 30.0


def _headers(headers: dict[str, str] | None, api_key: str | None) -> dict[str, str]:
    """Request headers with the API key (argument, else env RCA_API_KEY) as a bearer token."""
    out = dict(headers or {})
    key = api_key if api_key is not None else os.environ.get("RCA_API_KEY")
    if key:
        out.setdefault("Authorization", f"Bearer {key}")
    return out


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying a 429/503 answer that says so, else None."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after")
    try:
        return max(0.0, min(float(value), 60.0)) if value is not None else None
    except ValueError:
        return None


def _timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout, connect=min(2.0, timeout))


class RcaClient:
    """Blocking client. Use as a context manager or call :meth:`close`."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = None,
                 headers: dict[str, str] | None = None, api_key: str | None = None,
                 retry_budget: float = DEFAULT_RETRY_BUDGET) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_budget = retry_budget
        self._http = httpx.Client(base_url=self.base_url, timeout=_timeout(timeout), headers=_headers(headers, api_key))

    def __enter__(self) -> RcaClient:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, call: Call[T]) -> T:
        deadline = time.monotonic() + self.retry_budget
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, json=call.body)
            except httpx.HTTPError as exc:
                raise translate(exc, call, self.base_url) from exc
            wait = retry_after(response)
            if wait is None or time.monotonic() + wait > deadline:
                return result(call, response)
            time.sleep(wait)

    # ---- ingestion -------------------------------------------------------------------
    def ingest_metrics(self, points: Iterable[Any]) -> int:
        return self.call(calls.ingest("metrics", points))

    def ingest_logs(self, logs: Iterable[Any]) -> int:
        return self.call(calls.ingest("logs", logs))

    def ingest_deployments(self, deployments: Iterable[Any]) -> int:
        return self.call(calls.ingest("deployments", deployments))

    def ingest_config_changes(self, changes: Iterable[Any]) -> int:
        return self.call(calls.ingest("config_changes", changes))

    def ingest_flag_changes(self, changes: Iterable[Any]) -> int:
        return self.call(calls.ingest("flag_changes", changes))

    def ingest_topology(self, edges: Iterable[Any]) -> int:
        return self.call(calls.ingest_topology(edges))

    # ---- query -----------------------------------------------------------------------
    def incidents(self, *, status: str | None = None, service: str | None = None,
                  since: TimeLike | None = None, limit: int | None = None,
                  offset: int | None = None) -> list[Incident]:
        return self.call(calls.incidents(status=status, service=service, since=since, limit=limit,
                                         offset=offset))

    def incident(self, incident_id: str) -> Incident:
        return self.call(calls.incident(incident_id))

    def anomalies(self, incident_id: str) -> list[Anomaly]:
        return self.call(calls.anomalies(incident_id))

    def suspects(self, incident_id: str) -> list[Suspect]:
        return self.call(calls.suspects(incident_id))

    def label(self, incident_id: str, *, verdict: str, change_id: str | None = None,
              suspect_id: str | None = None, author: str | None = None, note: str | None = None) -> Label:
        return self.call(calls.label(incident_id, verdict=verdict, change_id=change_id,
                                     suspect_id=suspect_id, author=author, note=note))

    def labels(self, incident_id: str) -> list[Label]:
        """Labels given to the incident (extension endpoint)."""
        return self.call(calls.labels(incident_id))

    def rerun_rca(self, incident_id: str) -> dict[str, Any]:
        return self.call(calls.rerun_rca(incident_id))

    def changes(self, *, service: str | None = None, since: TimeLike | None = None,
                until: TimeLike | None = None, kind: str | None = None,
                limit: int | None = None) -> list[Change]:
        return self.call(calls.changes(service=service, since=since, until=until, kind=kind, limit=limit))

    def change(self, change_id: str) -> Change:
        """One change event (extension endpoint)."""
        return self.call(calls.change(change_id))

    def services(self) -> list[Service]:
        return self.call(calls.services())

    def service_metrics(self, *, service: str | None = None) -> list[SeriesInfo]:
        return self.call(calls.service_metrics(service=service))

    def series(self, service: str, metric: str, *, since: TimeLike | None = None,
               until: TimeLike | None = None, step: float | None = None) -> Series:
        return self.call(calls.series(service, metric, since=since, until=until, step=step))

    def health(self) -> Health:
        return self.call(calls.health())

    def model(self) -> dict[str, Any] | None:
        return self.call(calls.model())

    def wait_idle(self, *, timeout: float = 30.0, poll: float = 0.1) -> Health:
        """Poll ``/health`` until ``pending`` is 0; raises :class:`ClientError` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if h.pending == 0:
                return h
            if time.monotonic() > deadline:
                raise ClientError(f"server still has {h.pending} pending events after {timeout}s")
            time.sleep(poll)


class AsyncRcaClient:
    """Non-blocking client with the same methods as :class:`RcaClient`."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout | None = None,
                 headers: dict[str, str] | None = None, api_key: str | None = None,
                 retry_budget: float = DEFAULT_RETRY_BUDGET) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_budget = retry_budget
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=_timeout(timeout),
                                       headers=_headers(headers, api_key))

    async def __aenter__(self) -> AsyncRcaClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, call: Call[T]) -> T:
        deadline = time.monotonic() + self.retry_budget
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params, json=call.body)
            except httpx.HTTPError as exc:
                raise translate(exc, call, self.base_url) from exc
            wait = retry_after(response)
            if wait is None or time.monotonic() + wait > deadline:
                return result(call, response)
            await asyncio.sleep(wait)

    # ---- ingestion -------------------------------------------------------------------
    async def ingest_metrics(self, points: Iterable[Any]) -> int:
        return await self.call(calls.ingest("metrics", points))

    async def ingest_logs(self, logs: Iterable[Any]) -> int:
        return await self.call(calls.ingest("logs", logs))

    async def ingest_deployments(self, deployments: Iterable[Any]) -> int:
        return await self.call(calls.ingest("deployments", deployments))

    async def ingest_config_changes(self, changes: Iterable[Any]) -> int:
        return await self.call(calls.ingest("config_changes", changes))

    async def ingest_flag_changes(self, changes: Iterable[Any]) -> int:
        return await self.call(calls.ingest("flag_changes", changes))

    async def ingest_topology(self, edges: Iterable[Any]) -> int:
        return await self.call(calls.ingest_topology(edges))

    # ---- query -----------------------------------------------------------------------
    async def incidents(self, *, status: str | None = None, service: str | None = None,
                        since: TimeLike | None = None, limit: int | None = None,
                        offset: int | None = None) -> list[Incident]:
        return await self.call(calls.incidents(status=status, service=service, since=since, limit=limit,
                                               offset=offset))

    async def incident(self, incident_id: str) -> Incident:
        return await self.call(calls.incident(incident_id))

    async def anomalies(self, incident_id: str) -> list[Anomaly]:
        return await self.call(calls.anomalies(incident_id))

    async def suspects(self, incident_id: str) -> list[Suspect]:
        return await self.call(calls.suspects(incident_id))

    async def label(self, incident_id: str, *, verdict: str, change_id: str | None = None,
                    suspect_id: str | None = None, author: str | None = None,
                    note: str | None = None) -> Label:
        return await self.call(calls.label(incident_id, verdict=verdict, change_id=change_id,
                                           suspect_id=suspect_id, author=author, note=note))

    async def labels(self, incident_id: str) -> list[Label]:
        """Labels given to the incident (extension endpoint)."""
        return await self.call(calls.labels(incident_id))

    async def rerun_rca(self, incident_id: str) -> dict[str, Any]:
        return await self.call(calls.rerun_rca(incident_id))

    async def changes(self, *, service: str | None = None, since: TimeLike | None = None,
                      until: TimeLike | None = None, kind: str | None = None,
                      limit: int | None = None) -> list[Change]:
        return await self.call(calls.changes(service=service, since=since, until=until, kind=kind,
                                             limit=limit))

    async def change(self, change_id: str) -> Change:
        """One change event (extension endpoint)."""
        return await self.call(calls.change(change_id))

    async def services(self) -> list[Service]:
        return await self.call(calls.services())

    async def service_metrics(self, *, service: str | None = None) -> list[SeriesInfo]:
        return await self.call(calls.service_metrics(service=service))

    async def series(self, service: str, metric: str, *, since: TimeLike | None = None,
                     until: TimeLike | None = None, step: float | None = None) -> Series:
        return await self.call(calls.series(service, metric, since=since, until=until, step=step))

    async def health(self) -> Health:
        return await self.call(calls.health())

    async def model(self) -> dict[str, Any] | None:
        return await self.call(calls.model())

    async def wait_idle(self, *, timeout: float = 30.0, poll: float = 0.1) -> Health:
        """Poll ``/health`` until ``pending`` is 0; raises :class:`ClientError` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            h = await self.health()
            if h.pending == 0:
                return h
            if time.monotonic() > deadline:
                raise ClientError(f"server still has {h.pending} pending events after {timeout}s")
            await asyncio.sleep(poll)
