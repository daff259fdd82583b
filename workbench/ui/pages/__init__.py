"""The Streamlit pages of ``rca ui`` (scripts run by ``st.navigation`` in ``workbench/streamlit_app.py``)."""
