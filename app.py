"""Mask Audit: `streamlit run app.py [-- --data DIR]`.

The router: sets the shared session keys, draws the sidebar (dataset, run, model card), builds
the demo on a first start, then runs the chosen page from pages/.
"""
from __future__ import annotations

import streamlit as st

from pages import app_cache, sidebar

st.set_page_config(page_title="Mask Audit", page_icon="😷", layout="wide")
app_cache.init_session_defaults()

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon="📋", url_path="overview", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon="🔢", url_path="confusion"),
    st.Page("pages/samples.py", title="Samples", icon="🖼️", url_path="samples"),
    st.Page("pages/embeddings.py", title="Embeddings", icon="🗺️", url_path="embeddings"),
    st.Page("pages/label_noise.py", title="Label noise", icon="🏷️", url_path="label_noise"),
    st.Page("pages/export.py", title="Export", icon="📤", url_path="export"),
]

page = st.navigation(PAGES)
sidebar.ensure_demo()
sidebar.draw_sidebar()
page.run()
