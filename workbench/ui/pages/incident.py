"""Incident evidence: every anomalous metric around onset (baseline band, onset, change
markers), the ranked suspects (change and service suspects) with an evidence breakdown
and explanation each, new log patterns after the change, labelling and rerun RCA.

Deep link: ``/incident?id=inc-3`` (``id`` is the only query parameter).
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import streamlit as st

from workbench.client import Anomaly, Change, ClientError, Incident, NotFound, Suspect
from workbench.ui import charts, common, data, frames

BEFORE = timedelta(minutes=45)  # shown before the onset
AFTER = timedelta(minutes=20)  # shown after detection
MAX_EXPANDED_SUSPECTS = 10
RERUN_WAIT_S = 20.0


# ---- actions (button callbacks: they run before the page, so it shows fresh data) ----------

def _author() -> str:
    return str(st.session_state.get("author") or "analyst")


def label_suspect(incident_id: str, suspect: Suspect, verdict: str) -> None:
    try:
        lb = data.client().label(incident_id, verdict=verdict, suspect_id=suspect.id, author=_author(),
                                 note="from the Streamlit evidence page")
    except ClientError as exc:
        common.flash("error", f"Label not saved: {exc}")
        return
    data.clear()
    what = "the cause" if verdict == "cause" else "not the cause"
    common.flash("success", f"Labelled {charts.suspect_label(suspect)} as {what} of {incident_id} "
                            f"(label {lb.id}). Rerun RCA to see the ranking with it.")


def label_other(incident_id: str) -> None:
    change_id = (st.session_state.get("other_typed") or "").strip() or st.session_state.get("other_change")
    verdict = "cause" if st.session_state.get("other_verdict", "cause") == "cause" else "not_cause"
    if not change_id:
        common.flash("error", "Pick or type a change id to label.")
        return
    try:
        lb = data.client().label(incident_id, verdict=verdict, change_id=str(change_id), author=_author(),
                                 note=st.session_state.get("other_note") or None)
    except ClientError as exc:
        common.flash("error", f"Label not saved: {exc}")
        return
    data.clear()
    common.flash("success", f"Labelled {change_id} as {verdict.replace('_', ' ')} of {incident_id} (label {lb.id}).")


def rerun_rca(incident_id: str) -> None:
    c = data.client()
    try:
        before = c.suspects(incident_id)
        c.rerun_rca(incident_id)
        try:
            c.wait_idle(timeout=RERUN_WAIT_S)
        except ClientError:
            common.flash("warning", f"RCA rerun requested; the server is still busy after {RERUN_WAIT_S:g} s, "
                                    "the suspects below may not include it yet.")
        after = c.suspects(incident_id)
    except ClientError as exc:
        common.flash("error", f"Rerun RCA failed: {exc}")
        return
    data.clear()
    st.session_state["rerun_result"] = (incident_id, before, after, time.time())


def _rerun_summary(before: list[Suspect], after: list[Suspect]) -> str:
    def top(xs: list[Suspect]) -> str:
        return f"{charts.suspect_label(xs[0])} ({xs[0].score:.2f})" if xs else "none"

    old_rank = {charts.suspect_label(s): s.rank for s in before}
    moves = []
    for s in after[:5]:
        k = charts.suspect_label(s)
        r0 = old_rank.get(k)
        if r0 is None:
            moves.append(f"{k} new at #{s.rank}")
        elif r0 != s.rank:
            moves.append(f"{k} #{r0} → #{s.rank}")
    changed = "; ".join(moves) if moves else "ranking unchanged"
    return f"RCA rerun done: top suspect {top(after)} (was {top(before)}); {changed}."


# ---- sections -------------------------------------------------------------------------------

def _header(inc: Incident, requested: str) -> None:
    if inc.id != requested:
        st.info(f"{requested} was merged into {inc.id}; showing {inc.id}.")
    st.header(f"{inc.id} · {inc.title}")
    c = st.columns(5)
    c[0].metric("Status", inc.status)
    c[1].metric("Severity", f"{inc.severity:.2f}")
    c[2].metric("Anomalies", inc.anomaly_count)
    c[3].metric("Onset (UTC)", f"{inc.started_at:%H:%M:%S}", help=common.fmt_dt(inc.started_at))
    c[4].metric("Detected after", f"{(inc.detected_at - inc.started_at).total_seconds():.0f} s",
                help=common.fmt_dt(inc.detected_at))
    st.caption(f"services: {', '.join(inc.services)} · onset {common.fmt_dt(inc.started_at)}"
               + (f" · resolved {common.fmt_dt(inc.resolved_at)}" if inc.resolved_at else "")
               + f" · link: `{common.incident_path(inc.id)}`")
    if inc.extra.get("no_convincing_change"):
        st.warning("RCA found no convincing change among the candidates.")


def _series_key(a: Anomaly) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return a.service, a.metric, tuple(sorted(a.labels.items()))


def _anomalies(url: str, inc: Incident, anomalies: list[Anomaly], changes: list[Change],
               suspects: list[Suspect]) -> None:
    st.subheader(f"Anomalous metrics ({len(anomalies)})")
    if not anomalies:
        st.info("This incident has no anomalies stored (it may have been opened by an alert).")
        return
    first: dict[tuple[str, str, tuple[tuple[str, str], ...]], Anomaly] = {}
    for a in sorted(anomalies, key=lambda a: a.started_at):
        first.setdefault(_series_key(a), a)
    suspect_changes = {s.change_id for s in suspects[:3] if s.change_id}
    hi = max(inc.detected_at, inc.started_at) + AFTER
    cols = st.columns(2)
    for n, ((svc, metric, lbl), a) in enumerate(first.items()):
        lo = a.started_at - BEFORE
        hi = max(hi, a.started_at + AFTER)
        s = data.series(url, svc, metric, since=lo, until=hi, labels=lbl)
        marks = [c for c in changes if (svc in c.services or c.id in suspect_changes) and lo <= c.ts <= hi]
        with cols[n % 2]:
            if not s.points:
                st.caption(f"{svc} · {metric}: no stored points around onset")
                continue
            st.plotly_chart(charts.anomaly_figure(a, s, onset=inc.started_at, changes=marks), key=f"an-{n}")
            if a.reason:
                st.markdown(f"**Why anomalous:** {a.reason}")
            st.caption(f"{a.direction} {a.baseline:.4g} → {a.observed:.4g}, score {a.score:.2f}"
                       + (f" · joined: {a.join_reason}" if a.join_reason else ""))


def _suspect_detail(inc: Incident, s: Suspect, changes_by_id: dict[str, Change], labelled: dict[str, str]) -> None:
    st.markdown(f"**{s.explanation or 'no explanation'}**")
    c1, c2 = st.columns([3, 2])
    with c1:
        if s.evidence:
            st.plotly_chart(charts.evidence_figure(s.evidence, colour=charts.KIND_COLOURS.get(s.kind, "#1f77b4")),
                            key=f"ev-{s.id}")
        else:
            st.caption("no evidence signals recorded")
    with c2:
        if s.change_id:
            ch = changes_by_id.get(s.change_id)
            st.caption(f"{s.kind} `{s.change_id}` on {s.service or '?'} at {common.fmt_dt(s.ts)}")
            if ch is not None:
                st.write(charts.change_summary(ch))
                for f in ch.diff_files[:8]:
                    st.caption(f"`{f.get('path')}` +{f.get('added', 0)} −{f.get('removed', 0)}")
        else:
            st.caption(f"service suspect: **{s.service}** is the root-cause service (no single change)")
        verdict = labelled.get(s.change_id or "") or labelled.get(s.id)
        if verdict:
            st.caption(f"labelled: **{verdict.replace('_', ' ')}**")
        b1, b2 = st.columns(2)
        b1.button("Cause", key=f"cause-{s.id}", on_click=label_suspect, args=(inc.id, s, "cause"),
                  type="primary" if s.rank == 1 else "secondary", width="stretch")
        b2.button("Not cause", key=f"not-{s.id}", on_click=label_suspect, args=(inc.id, s, "not_cause"),
                  width="stretch")


def _suspects(inc: Incident, suspects: list[Suspect], changes_by_id: dict[str, Change], labels_: list) -> None:
    st.subheader(f"Ranked suspects ({len(suspects)})")
    if not suspects:
        st.info("No suspects yet: RCA has not run for this incident, or no change happened on its services "
                "in the lookback window. Use *Label another change* below if you know the cause.")
        return
    labelled: dict[str, str] = {}
    for lb in labels_:
        for k in (lb.change_id, lb.suspect_id):
            if k:
                labelled[k] = lb.verdict
    c1, c2 = st.columns([2, 3])
    c1.plotly_chart(charts.suspects_figure(suspects[:15]), key="suspects-chart")
    c2.dataframe(frames.suspects_frame(suspects, labels_), hide_index=True, key="suspects-table",
                 column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0,
                                                                         format="%.2f")})
    for s in suspects[:MAX_EXPANDED_SUSPECTS]:
        with st.expander(f"#{s.rank} · {s.kind} · {charts.suspect_label(s)} · score {s.score:.2f}",
                         expanded=s.rank == 1):
            _suspect_detail(inc, s, changes_by_id, labelled)
    if len(suspects) > MAX_EXPANDED_SUSPECTS:
        st.caption(f"{len(suspects) - MAX_EXPANDED_SUSPECTS} more suspects in the table above")


def _log_patterns(url: str, inc: Incident, suspects: list[Suspect]) -> None:
    st.subheader("Log patterns after the change")
    change_ids = [s.change_id for s in suspects if s.change_id]
    options = change_ids or [""]  # no change suspect: the server centres on the onset
    pick = st.selectbox("Around the change", options, key="patterns_change",
                        format_func=lambda c: c if c else "the onset (no change suspect)")
    try:
        lp = data.log_patterns(url, inc.id, change_id=pick or None)
    except NotFound:
        st.info("This server has no log-pattern endpoint (`/incidents/{id}/log_patterns`).")
        return
    new = lp.new_patterns
    st.caption(f"{lp.lines:,} WARN+ log lines on {', '.join(lp.services)} from "
               f"{lp.before_s / 60:.0f} min before to {lp.after_s / 60:.0f} min after {common.fmt_dt(lp.at)}"
               + (f" (1-in-{lp.sample_step} sample)" if lp.sample_step > 1 else ""))
    if not lp.patterns:
        st.info("No WARN or ERROR log lines around this change.")
        return
    if new:
        st.markdown(f"**{len(new)} new pattern{'s' if len(new) != 1 else ''}** after the change (★)")
    else:
        st.caption("No pattern is new after the change; the most frequent ones:")
    st.plotly_chart(charts.log_patterns_figure(lp.patterns), key="patterns-chart")
    st.dataframe(frames.patterns_frame(lp.patterns), hide_index=True, key="patterns-table")


def _actions(url: str, inc: Incident, changes: list[Change], labels_: list) -> None:
    st.subheader("Label another change · rerun RCA")
    c1, c2 = st.columns([3, 2])
    with c1, st.form("label-other"):
        ids = [c.id for c in sorted(changes, key=lambda c: c.ts, reverse=True)]
        by_id = {c.id: c for c in changes}
        st.selectbox("Change in the candidate window", ids, key="other_change", index=0 if ids else None,
                     format_func=lambda i: f"{i} · {charts.change_summary(by_id[i])}" if i in by_id else i)
        st.text_input("…or type a change id", key="other_typed", placeholder="dep-481")
        st.radio("Verdict", ["cause", "not cause"], key="other_verdict", horizontal=True)
        st.text_input("Note", key="other_note")
        st.form_submit_button("Save label", on_click=label_other, args=(inc.id,))
    with c2:
        st.button("Rerun RCA", key="rerun", on_click=rerun_rca, args=(inc.id,), type="primary",
                  help="recompute the suspects with every label given so far")
        res = st.session_state.get("rerun_result")
        if res and res[0] == inc.id:
            st.success(_rerun_summary(res[1], res[2]))
        if labels_:
            st.caption(f"{len(labels_)} label{'s' if len(labels_) != 1 else ''} on this incident")
            st.dataframe(frames.labels_frame(labels_), hide_index=True, key="labels-table")


def render() -> None:
    url = data.server_url()
    requested = common.query_param("id")
    if not requested:
        recent = data.incidents(url, limit=100)
        if not recent:
            st.info("No incidents yet: nothing to show. Incidents appear once the server detects a regression.")
            return
        pick = st.selectbox("Incident", [i.id for i in recent],
                            format_func=lambda i: f"{i} · {next(r.title for r in recent if r.id == i)}")
        st.query_params["id"] = str(pick)
        requested = str(pick)
    try:
        inc = data.incident(url, requested)
    except NotFound:
        st.warning(f"Incident {requested!r} not found on {url}.")
        st.page_link(common.PAGE_INCIDENTS, label="All incidents", icon=":material/emergency_home:")
        return
    _header(inc, requested)
    anomalies = data.anomalies(url, inc.id)
    suspects = data.suspects(url, inc.id)
    labels_ = data.labels(url, inc.id)
    onset = min([inc.started_at, *[a.started_at for a in anomalies]])
    window_changes = data.changes(url, since=onset - timedelta(hours=2),
                                  until=max(inc.detected_at, onset) + timedelta(minutes=15))
    changes_by_id = {c.id: c for c in window_changes}
    for s in suspects:
        if s.change_id and s.change_id not in changes_by_id:
            with contextlib.suppress(NotFound):
                changes_by_id[s.change_id] = data.change(url, s.change_id)
    _anomalies(url, inc, anomalies, list(changes_by_id.values()), suspects)
    _suspects(inc, suspects, changes_by_id, labels_)
    _log_patterns(url, inc, suspects)
    _actions(url, inc, list(changes_by_id.values()), labels_)


st.title("Incident evidence")
common.sidebar()
common.show_flash()
common.guard(render)
