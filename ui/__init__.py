"""The app's own Streamlit code beside the pages: the shared context and every `st.cache_*`
wrapper (`app_cache`), the sidebar and background-job progress (`sidebar`), charts (`plots`), the
sample detail (`sample_detail`) and the decision widgets (`review_widgets`).

Kept out of `pages/` so that folder holds only pages (Streamlit treats every file in a `pages/`
folder as a page until `st.navigation` has run), and out of `audit/`, which never imports streamlit.
"""
