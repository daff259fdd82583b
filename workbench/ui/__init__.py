"""Support for the Streamlit pages (``rca ui``): cached data access, figures, tables.

``charts`` and ``frames`` are pure (typed client models in, plotly figures / polars tables
out); ``data`` and ``common`` use Streamlit. The pages themselves are in
``workbench/pages/`` and the entry point is ``workbench/streamlit_app.py``.
"""
