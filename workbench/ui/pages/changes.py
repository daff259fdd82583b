"""Changes: the change log as a timeline across services, filterable by service, kind and
time, each change linking to the incidents in which it is a suspect.

Query parameters (deep link): ``service``, ``kind``, ``range``, ``id`` (the selected change).
"""

from __future__ import annotations

import streamlit as st

from workbench.client import NotFound
from workbench.ui import charts, common, data, frames

KINDS = ["all", "deployment", "config_change", "flag_change"]
LIMIT = 5000


def render() -> None:
    url = data.server_url()
    latest = data.changes(url, limit=1)
    if not latest:
        st.info("No changes recorded yet: send deployments, config changes and flag changes to "
                "`POST /ingest/deployments`, `/ingest/config_changes`, `/ingest/flag_changes`.")
        return
    services = sorted({s.name for s in data.services(url)} | {s for c in latest for s in c.services})
    c1, c2, c3 = st.columns(3)
    service = c1.selectbox("Service", ["all", *services], key="service", bind="query-params")
    kind = c2.selectbox("Kind", KINDS, key="kind", bind="query-params")
    preset = c3.selectbox("Time range", list(common.RANGES), key="range", bind="query-params",
                          help="relative to the newest change (event time)")
    newest = max(c.ts for c in latest)
    since, until = common.time_range(preset, newest=newest, key="chg")
    changes = data.changes(url, service=None if service == "all" else service, since=since, until=until,
                           kind=None if kind == "all" else kind, limit=LIMIT)
    if not changes:
        st.info("No change matches these filters.")
        return
    st.caption(f"{len(changes):,} changes" + (f" (the newest {LIMIT:,})" if len(changes) >= LIMIT else ""))
    st.plotly_chart(charts.changes_timeline(changes), key="timeline")
    st.dataframe(frames.changes_frame(changes), hide_index=True, key="table")

    ids = [c.id for c in changes]
    wanted = common.query_param("id")
    index = ids.index(wanted) if wanted in ids else 0
    by_id = {c.id: c for c in changes}
    chosen = st.selectbox("Change", ids, index=index, key="change_pick",
                          format_func=lambda i: f"{i} · {charts.change_summary(by_id[i])}")
    st.query_params["id"] = str(chosen)
    ch = by_id[str(chosen)]
    st.subheader(f"{ch.id} · {ch.kind}")
    st.write(charts.change_summary(ch))
    st.caption(f"at {common.fmt_dt(ch.ts)} on {', '.join(ch.services)}")
    for f in ch.diff_files[:20]:
        st.caption(f"`{f.get('path')}` +{f.get('added', 0)} −{f.get('removed', 0)}")
    try:
        rows = data.change_incidents(url, ch.id)
    except NotFound:
        st.info("This server cannot list the incidents of a change (`/changes/{id}/incidents`).")
        return
    if not rows:
        st.caption("Not a suspect in any incident.")
        return
    st.markdown(f"**Suspect in {len(rows)} incident{'s' if len(rows) != 1 else ''}:**")
    st.dataframe(frames.change_incidents_frame(rows), hide_index=True, key="incidents")
    for r in rows[:20]:
        common.incident_link(r.incident_id, f"{r.incident_id} · #{r.rank} suspect (score {r.score:.2f}) · {r.title}")


st.title("Changes")
common.sidebar()
common.show_flash()
common.guard(render)
