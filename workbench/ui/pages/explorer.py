"""Explorer: any service and metric (and label set) over any range, with anomalies and
change markers overlaid; several metrics aligned on one time axis.

Query parameters (deep link): ``services`` and ``series`` (``service/metric``, repeatable),
``labels`` (``k=v,k2=v2``), ``range``.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from workbench.client import Anomaly, SeriesInfo
from workbench.ui import charts, common, data

MAX_POINTS = 600  # per series on screen: longer ranges are bucketed by the server
MAX_INCIDENTS = 50  # incidents whose anomalies are overlaid


def _label_key(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    out = []
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise common.InputError(f"label set {text!r}: expected k=v pairs separated by commas")
        out.append((k.strip(), v.strip()))
    return tuple(sorted(out))


def _anomalies(url: str, services: list[str], since: datetime | None, until: datetime | None) -> list[Anomaly]:
    out: list[Anomaly] = []
    seen: set[str] = set()
    for svc in services:
        for inc in data.incidents(url, service=svc, since=since, until=until, limit=MAX_INCIDENTS):
            if inc.id in seen:
                continue
            seen.add(inc.id)
            out.extend(data.anomalies(url, inc.id))
    return out


def render() -> None:
    url = data.server_url()
    catalogue: list[SeriesInfo] = data.series_catalogue(url)
    if not catalogue:
        st.info("No metrics stored yet: send points to `POST /ingest/metrics` (or run `rca demo`).")
        return
    all_services = sorted({s.service for s in catalogue})
    c1, c2 = st.columns([1, 2])
    chosen = c1.multiselect("Services", all_services, default=all_services[:1], key="services",
                            bind="query-params")
    options = sorted({f"{s.service}/{s.metric}" for s in catalogue if s.service in chosen})
    picked = c2.multiselect("Metrics (one row each, shared time axis)", options, default=options[:3], key="series",
                            bind="query-params")
    if not picked:
        st.info("Pick a service and at least one metric.")
        return
    infos = [s for s in catalogue if f"{s.service}/{s.metric}" in picked]
    label_sets = sorted({_label_key(s.labels) for s in infos if s.labels})
    c3, c4 = st.columns([1, 2])
    preset = c3.selectbox("Time range", list(common.RANGES), index=2, key="range", bind="query-params",
                          help="relative to the newest point of the chosen series (event time)")
    lbl_text = c4.selectbox("Label set", ["", *label_sets], key="labels", bind="query-params",
                            format_func=lambda x: x or "all label sets (averaged)") if label_sets else ""
    labels = _parse_labels(lbl_text or "")
    newest = max((s.last_ts for s in infos if s.last_ts), default=None)
    oldest = min((s.first_ts for s in infos if s.first_ts), default=None)
    since, until = common.time_range(preset, newest=newest, key="exp")
    lo, hi = since or oldest, until or newest
    step = None
    if lo is not None and hi is not None and (hi - lo).total_seconds() > 0:
        span = (hi - lo).total_seconds()
        step = span / MAX_POINTS if span / MAX_POINTS > 10 else None
    panels = []
    for key in picked:
        svc, _, metric = key.partition("/")
        s = data.series(url, svc, metric, since=since, until=until, step=step, labels=labels)
        panels.append((key + (f" {{{lbl_text}}}" if labels else ""), s))
    services = sorted({k.partition("/")[0] for k in picked})
    changes = [c for svc in services for c in data.changes(url, service=svc, since=lo, until=hi)]
    changes = list({c.id: c for c in changes}.values())
    anomalies = [a for a in _anomalies(url, services, None if lo is None else lo, hi)
                 if f"{a.service}/{a.metric}" in picked]
    st.plotly_chart(charts.explorer_figure(panels, anomalies=anomalies, changes=changes), key="explorer")
    st.caption(f"{sum(len(s.points) for _, s in panels):,} points"
               + (f" in {step:.0f} s buckets" if step else "")
               + f" · {len(anomalies)} anomalies · {len(changes)} changes · {common.fmt_dt(lo)} → {common.fmt_dt(hi)}")
    incs = sorted({a.incident_id for a in anomalies if a.incident_id})
    if incs:
        st.caption("incidents in view:")
        cols = st.columns(min(6, len(incs)))
        for n, i in enumerate(incs[:24]):
            with cols[n % len(cols)]:
                common.incident_link(i)


st.title("Explorer")
common.sidebar()
common.show_flash()
common.guard(render)
