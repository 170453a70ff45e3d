"""Mask Audit: `streamlit run app.py [-- --data DIR]`.

The router: sets the shared session keys, draws the sidebar (dataset, run, model card), builds
the demo on a first start, then runs the chosen page from pages/.
"""
from __future__ import annotations

import streamlit as st

from ui import app_cache, sidebar

st.set_page_config(page_title="Mask Audit", page_icon=":material/masks:", layout="wide")
app_cache.init_session_defaults()

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:", url_path="confusion"),
    st.Page("pages/samples.py", title="Samples", icon=":material/photo_library:", url_path="samples"),
    st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:", url_path="embeddings"),
    st.Page("pages/label_noise.py", title="Label noise", icon=":material/label:", url_path="label_noise"),
    st.Page("pages/data_quality.py", title="Data quality", icon=":material/image_search:", url_path="data_quality"),
    st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    st.Page("pages/try_model.py", title="Try the model", icon=":material/add_photo_alternate:", url_path="try_model"),
]

page = st.navigation(PAGES)
# A deep link opened before the router ever ran comes back here (see app_cache.route_through_app).
goto = st.query_params.get(app_cache.GOTO_PARAM)
if goto:
    del st.query_params[app_cache.GOTO_PARAM]
    target = next((p for p in PAGES if p.url_path == goto), None)
    if target is not None and target.url_path != page.url_path:
        st.switch_page(target)
sidebar.ensure_demo()
sidebar.draw_sidebar()
page.run()
