"""Entry point of the Streamlit pages (``rca ui``): page config and navigation.

Run with ``rca ui --url http://127.0.0.1:8000`` (or ``streamlit run workbench/streamlit_app.py``
with ``RCA_UI_SERVER_URL`` set). Every page talks to the server only through
``workbench.client``; see docs/ui.md for the pages and their deep links.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="RCA workbench", page_icon=":material/troubleshoot:", layout="wide")

PAGES = [
    st.Page("ui/pages/incidents.py", title="Incidents", icon=":material/emergency_home:", url_path="incidents", default=True),
    st.Page("ui/pages/incident.py", title="Incident evidence", icon=":material/troubleshoot:", url_path="incident"),
    st.Page("ui/pages/explorer.py", title="Explorer", icon=":material/monitoring:", url_path="explorer"),
    st.Page("ui/pages/changes.py", title="Changes", icon=":material/rocket_launch:", url_path="changes"),
    st.Page("ui/pages/model.py", title="Model", icon=":material/model_training:", url_path="model"),
]

st.navigation(PAGES).run()
