"""Model: the ranking model's version, labels used, held-out accuracy over versions, the
learning curve (held-out accuracy against labels used) and feature importances."""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, common, data


def render() -> None:
    url = data.server_url()
    info = data.model(url)
    if info is None:
        st.info("This server does not publish its ranking model (`GET /model`).")
        return
    versions = data.model_versions(url)
    c = st.columns(4)
    c[0].metric("Model version", int(info.get("version") or 0))
    c[1].metric("Labels used", int(info.get("labels_used") or 0))
    c[2].metric("Labelled incidents", int(info.get("labelled_incidents") or 0))
    c[3].metric("Blend weight", f"{float(info.get('blend_weight') or 0.0):.2f}",
                help="share of the learnt model in the ranking (0: heuristic prior only)")
    st.caption(f"kind: {info.get('kind', '?')}"
               + (f" · trained at {info['trained_at']}" if info.get("trained_at") else ""))
    heldout = info.get("heldout")
    if isinstance(heldout, dict) and heldout:
        h = st.columns(4)
        h[0].metric("Held-out AC@1", f"{heldout.get('ac1', 0):.3f}",
                    delta=f"{heldout.get('ac1', 0) - heldout.get('prior_ac1', 0):+.3f} vs prior")
        h[1].metric("Held-out AC@3", f"{heldout.get('ac3', 0):.3f}",
                    delta=f"{heldout.get('ac3', 0) - heldout.get('prior_ac3', 0):+.3f} vs prior")
        h[2].metric("Held-out MRR", f"{heldout.get('mrr', 0):.3f}",
                    delta=f"{heldout.get('mrr', 0) - heldout.get('prior_mrr', 0):+.3f} vs prior")
        h[3].metric("Held-out incidents", int(heldout.get("incidents", 0)))
    if int(info.get("version") or 0) == 0:
        st.info("No learnt model yet: suspects are ranked by the heuristic prior. Label the cause of a few "
                "incidents (the evidence page's Cause buttons) and the model trains by itself.")
    with_heldout = [v for v in versions if v.heldout]
    c1, c2 = st.columns(2)
    with c1:
        st.subheader("Held-out accuracy over versions")
        if with_heldout:
            st.plotly_chart(charts.heldout_figure(versions, x="version"), key="by-version")
        else:
            st.caption(f"{len(versions)} version{'s' if len(versions) != 1 else ''} trained; held-out accuracy "
                       "needs at least 4 incidents labelled with their cause.")
    with c2:
        st.subheader("Learning curve")
        if with_heldout:
            st.plotly_chart(charts.heldout_figure(versions, x="labels_used"), key="learning-curve")
        else:
            st.caption("appears once a model version has held-out accuracy")
    st.subheader("Feature importances")
    coef = info.get("coefficients")
    if isinstance(coef, dict) and coef:
        st.plotly_chart(charts.importance_figure({str(k): float(v) for k, v in coef.items()}), key="importances")
    else:
        feats = info.get("features") or []
        st.caption("the learnt coefficients appear with the first trained model"
                   + (f"; evidence signals: {', '.join(map(str, feats))}" if feats else ""))
    if versions:
        st.dataframe([{"version": v.version, "labels used": v.labels_used, "labelled incidents": v.labelled_incidents,
                       "blend weight": v.blend_weight, "AC@1": (v.heldout or {}).get("ac1"),
                       "MRR": (v.heldout or {}).get("mrr"), "trained at": v.trained_at} for v in versions],
                     hide_index=True, key="versions")


st.title("Ranking model")
common.sidebar()
common.show_flash()
common.guard(render)
