"""Entry point of the Streamlit pages (``rca ui``): page config and navigation.

Run with ``rca ui --url http://127.0.0.1:8000`` (or ``streamlit run workbench/streamlit_app.py``
with ``RCA_UI_SERVER_URL`` set). Every page talks to the server only through
``workbench.client``; see docs/ui.md for the pages and their deep links.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="RCA workbench", page_icon="🔎", layout="wide")

PAGES = [
    st.Page("pages/incidents.py", title="Incidents", icon="🚨", url_path="incidents", default=True),
    st.Page("pages/incident.py", title="Incident evidence", icon="🔎", url_path="incident"),
    st.Page("pages/explorer.py", title="Explorer", icon="📈", url_path="explorer"),
    st.Page("pages/changes.py", title="Changes", icon="🚀", url_path="changes"),
    st.Page("pages/model.py", title="Model", icon="🧠", url_path="model"),
]

st.navigation(PAGES).run()
