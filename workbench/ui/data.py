"""Server data for the pages: ``workbench.client`` calls behind ``st.cache_data``.

Reads are cached for :data:`TTL_S` seconds per (server URL, arguments), so paging,
filtering and the reruns of a page do not hit the server again, and data a few seconds
old is replaced by itself. Errors are never cached: a page that failed because the server
was down loads again on the next run. Writes (labels, rerun RCA) clear the cache.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import streamlit as st

from workbench.client import (
    DEFAULT_URL,
    Anomaly,
    Change,
    ChangeIncident,
    Health,
    Incident,
    Label,
    LogPatterns,
    ModelVersion,
    RcaClient,
    Series,
    SeriesInfo,
    Service,
    Suspect,
)

#: seconds a read stays cached (the pages are live views: keep it short)
TTL_S = 5.0
ENV_SERVER_URL = "RCA_UI_SERVER_URL"
ENV_TIMEOUT = "RCA_UI_TIMEOUT"


def server_url() -> str:
    return str(st.session_state.get("server_url") or os.environ.get(ENV_SERVER_URL) or DEFAULT_URL).rstrip("/")


def timeout() -> float:
    try:
        return float(os.environ.get(ENV_TIMEOUT) or 5.0)
    except ValueError:
        return 5.0


@st.cache_resource(show_spinner=False)
def _client(url: str, timeout_s: float) -> RcaClient:
    return RcaClient(url, timeout=timeout_s)


def client(url: str | None = None) -> RcaClient:
    """The shared client of a server (one connection pool per URL for every session)."""
    return _client(url or server_url(), timeout())


def clear() -> None:
    """Forget every cached read (after a write, or when the user asks to retry)."""
    st.cache_data.clear()


@st.cache_data(ttl=2.0, show_spinner=False)
def health(url: str) -> Health:
    return client(url).health()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def incidents(url: str, *, status: str | None = None, service: str | None = None, since: datetime | None = None,
              until: datetime | None = None, limit: int = 100, offset: int = 0) -> list[Incident]:
    return client(url).incidents(status=status, service=service, since=since, until=until, limit=limit,
                                 offset=offset)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def incident(url: str, incident_id: str) -> Incident:
    return client(url).incident(incident_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def anomalies(url: str, incident_id: str) -> list[Anomaly]:
    return client(url).anomalies(incident_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def suspects(url: str, incident_id: str) -> list[Suspect]:
    return client(url).suspects(incident_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def labels(url: str, incident_id: str) -> list[Label]:
    return client(url).labels(incident_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def changes(url: str, *, service: str | None = None, since: datetime | None = None, until: datetime | None = None,
            kind: str | None = None, limit: int | None = None) -> list[Change]:
    return client(url).changes(service=service, since=since, until=until, kind=kind, limit=limit)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def change(url: str, change_id: str) -> Change:
    return client(url).change(change_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def change_incidents(url: str, change_id: str) -> list[ChangeIncident]:
    return client(url).change_incidents(change_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def services(url: str) -> list[Service]:
    return client(url).services()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def series_catalogue(url: str, *, service: str | None = None) -> list[SeriesInfo]:
    return client(url).service_metrics(service=service)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def series(url: str, service: str, metric: str, *, since: datetime | None = None, until: datetime | None = None,
           step: float | None = None, labels: tuple[tuple[str, str], ...] = ()) -> Series:
    return client(url).series(service, metric, since=since, until=until, step=step, labels=dict(labels) or None)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def log_patterns(url: str, incident_id: str, *, change_id: str | None = None, before: float | None = None,
                 after: float | None = None, min_level: str | None = None) -> LogPatterns:
    return client(url).log_patterns(incident_id, change_id=change_id, before=before, after=after,
                                    min_level=min_level)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def model(url: str) -> dict[str, Any] | None:
    return client(url).model()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def model_versions(url: str) -> list[ModelVersion]:
    return client(url).model_versions()
