"""What every page shares: the sidebar, server-error handling with retry, flash messages,
time-range filters and links between pages (deep links with query parameters)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import streamlit as st

from workbench.client import ClientError, NotFound, ServerTimeout, ServerUnavailable, parse_dt
from workbench.ui import data

PAGE_INCIDENTS = "ui/pages/incidents.py"
PAGE_INCIDENT = "ui/pages/incident.py"
PAGE_EXPLORER = "ui/pages/explorer.py"
PAGE_CHANGES = "ui/pages/changes.py"
PAGE_MODEL = "ui/pages/model.py"

#: time-range presets, relative to the newest data (event time: replays may be far from now)
RANGES: dict[str, timedelta | None] = {
    "all": None, "last 1 h": timedelta(hours=1), "last 6 h": timedelta(hours=6),
    "last 24 h": timedelta(hours=24), "last 7 d": timedelta(days=7), "custom": None,
}


class InputError(ValueError):
    """A filter the user typed cannot be used (shown as a message, never a traceback)."""


# ---- page chrome ----------------------------------------------------------------------------

def sidebar() -> None:
    url = data.server_url()
    with st.sidebar:
        st.caption("RCA server")
        st.code(url, language=None)
        try:
            h = data.health(url)
            pending = f", {h.pending} pending" if h.pending else ""
            st.caption(f"● {h.status}{pending}")
        except ClientError:
            st.caption("○ not reachable")
        st.text_input("Your name (for labels)", key="author",
                      value=st.session_state.get("author") or os.environ.get("USER") or "analyst")
        if st.button("Refresh data", key="refresh", help="drop cached data and load again"):
            data.clear()


def flash(kind: str, message: str) -> None:
    """A message shown at the top of the next run of the page (after a button's callback)."""
    st.session_state.setdefault("_flash", []).append((kind, message))


def show_flash() -> None:
    for kind, message in st.session_state.pop("_flash", []):
        {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(message)


def guard(render: Callable[[], None]) -> None:
    """Run a page; a down, slow or failing server becomes a clear message and a retry button."""
    url = data.server_url()
    try:
        render()
    except ServerTimeout as exc:
        st.error(f"The RCA server at {url} is slow: it did not answer within {data.timeout():g} s. "
                 "It may be busy processing a large batch; try again in a moment.")
        st.caption(str(exc))
        _retry()
    except ServerUnavailable as exc:
        st.error(f"Cannot reach the RCA server at {url}. Start it with `rca serve` (or `rca demo`), or pass "
                 "the right address to `rca ui --url`.")
        st.caption(str(exc))
        _retry()
    except NotFound as exc:
        st.warning(f"Not found: {exc.detail if exc.detail else exc}")
    except InputError as exc:
        st.error(str(exc))
    except ClientError as exc:
        st.error(f"The RCA server answered with an error: {exc}")
        _retry()


def _retry() -> None:
    if st.button("Retry", key="retry", type="primary"):
        data.clear()
        st.rerun()


# ---- time ranges ----------------------------------------------------------------------------

def time_range(preset: str, *, newest: datetime | None, key: str) -> tuple[datetime | None, datetime | None]:
    """``(since, until)`` for a preset of :data:`RANGES` (relative to ``newest``), or two
    typed timestamps for ``custom``."""
    if preset == "custom":
        c1, c2 = st.columns(2)
        since_s = c1.text_input("From (ISO 8601, UTC if no zone)", key=f"{key}_since",
                                placeholder="2026-11-30T04:00:00Z")
        until_s = c2.text_input("To (ISO 8601, UTC if no zone)", key=f"{key}_until", placeholder="empty: no end")
        return parse_time(since_s, "From"), parse_time(until_s, "To")
    delta = RANGES.get(preset)
    if delta is None or newest is None:
        return None, None
    return newest - delta, None


def parse_time(text: str, field: str) -> datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_dt(text)
    except ValueError as exc:
        raise InputError(f"{field}: {text!r} is not a timestamp (use ISO 8601, e.g. 2026-11-30T04:00:00Z)") from exc


def fmt_dt(dt: datetime | None) -> str:
    return "—" if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---- links between pages --------------------------------------------------------------------

def incident_path(incident_id: str) -> str:
    """The deep link of an incident's evidence page, relative to the app's address."""
    return f"/incident?id={incident_id}"


def open_incident(incident_id: str) -> None:
    st.switch_page(PAGE_INCIDENT, query_params={"id": incident_id})


def incident_link(incident_id: str, label: str | None = None) -> None:
    st.page_link(PAGE_INCIDENT, label=label or incident_id, query_params={"id": incident_id}, icon=":material/troubleshoot:")


def query_param(name: str) -> str | None:
    v = st.query_params.get(name)
    return str(v) if v else None
