"""Incidents: a filterable, paginated table (status, service, time range), severity and
count over time, and click-through to an incident's evidence page.

Query parameters (deep link): ``status``, ``service``, ``range``, ``page``, ``size``.
"""

from __future__ import annotations

import math

import streamlit as st

from workbench.ui import charts, common, data, frames

#: incidents read for the charts and the total count (the server's largest page)
OVERVIEW_LIMIT = 10_000
PAGE_SIZES = [25, 50, 100, 200]


def render() -> None:
    url = data.server_url()
    newest = data.incidents(url, limit=1)
    if not newest:
        st.info("No incidents yet. The server has not detected any regression: send metrics "
                "(`rca sim`, `rca demo`, or your own exporters) and incidents appear here by themselves.")
        return
    services = sorted({s.name for s in data.services(url)})
    c1, c2, c3, c4 = st.columns([1, 1.4, 1, 0.7])
    status = c1.selectbox("Status", ["all", "OPEN", "RESOLVED"], key="status", bind="query-params")
    service = c2.selectbox("Service", ["all", *services], key="service", bind="query-params")
    preset = c3.selectbox("Time range (onset)", list(common.RANGES), key="range", bind="query-params",
                          help="relative to the newest incident (event time)")
    size = c4.selectbox("Per page", PAGE_SIZES, index=1, key="size", bind="query-params")
    since, until = common.time_range(preset, newest=newest[0].started_at, key="inc")
    st_f = None if status == "all" else str(status)
    svc_f = None if service == "all" else str(service)

    overview = data.incidents(url, status=st_f, service=svc_f, since=since, until=until, limit=OVERVIEW_LIMIT)
    total = len(overview)
    if total == 0:
        st.info("No incident matches these filters.")
        return
    n_open = sum(1 for i in overview if i.is_open)
    more = "+" if total >= OVERVIEW_LIMIT else ""
    m1, m2, m3 = st.columns(3)
    m1.metric("Incidents", f"{total:,}{more}")
    m2.metric("Open", f"{n_open:,}")
    m3.metric("Highest severity", f"{max(i.severity for i in overview):.2f}")
    st.plotly_chart(charts.incidents_overview(overview), key="overview")

    pages = max(1, math.ceil(total / int(size)))
    page = st.pagination(pages, key="page", bind="query-params") if pages > 1 else 1
    rows = data.incidents(url, status=st_f, service=svc_f, since=since, until=until, limit=int(size),
                          offset=(page - 1) * int(size))
    st.caption(f"page {page} of {pages}{more} · {len(rows)} incidents · newest first · click a row to open it")
    event = st.dataframe(frames.incidents_frame(rows), hide_index=True, key="table", on_select="rerun",
                         selection_mode="single-row",
                         column_config={"severity": st.column_config.ProgressColumn(
                             "severity", min_value=0.0, max_value=1.0, format="%.2f")})
    picked = getattr(getattr(event, "selection", None), "rows", None)
    if picked:
        common.open_incident(rows[picked[0]].id)
    with st.form("open", border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        choice = c1.selectbox("Open an incident", [r.id for r in rows],
                              format_func=lambda i: f"{i} · {next(r.title for r in rows if r.id == i)}")
        if c2.form_submit_button("Open evidence", type="primary"):
            common.open_incident(str(choice))


st.title("Incidents")
common.sidebar()
common.show_flash()
common.guard(render)
