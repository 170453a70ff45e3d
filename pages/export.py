"""Export: what was decided, and the relabeling list / corrected manifests to download."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import app_cache

app_cache.route_through_app("export")
st.title("Export")
ctx = app_cache.page_context(need_data=True)

try:
    store = app_cache.review_store(str(app_cache.reviews_path()))
    latest = store.latest(ctx.fingerprint)
    counts = store.counts(ctx.fingerprint)
except Exception as err:
    st.error(f"Could not open the review store {app_cache.reviews_path()}: {app_cache.one_line(err)}")
    st.stop()

if latest.empty:
    st.info("No decisions yet for this dataset: review suspects on the Label noise page first.")
    st.stop()

m1, m2, m3 = st.columns(3)
m1.metric("Decided items", f"{len(latest):,}")
new_value, given = latest["new_value"].astype("float64"), latest["given"].astype("float64")  # NA -> NaN
changed = latest[latest["decision"].isin(["accept", "set"]).to_numpy() & (new_value != given).to_numpy()]
m2.metric("Labels changed", f"{len(changed):,}")
m3.metric("Skipped", f"{int((latest['decision'] == 'skip').sum()):,}")

st.subheader("Counts by field and decision")
pivot = counts.pivot_table(index="field", columns="decision", values="count", fill_value=0, aggfunc="sum")
st.dataframe(pivot, key="export_counts_table")

st.subheader("Decisions")
from audit import export as audit_export  # noqa: E402  (after the page's early exits)

decisions = audit_export.relabel_frame(store, ctx.fingerprint, ctx.index.images)
only_changed = st.toggle("Only changed labels", key="export_only_changed")
shown = decisions[decisions["changed"]] if only_changed else decisions
columns = ["path", "field", "given_name", "new_name", "changed", "decision", "note", "detectors", "score",
           "reviewer", "time"]
st.dataframe(shown[[c for c in columns if c in shown.columns]], hide_index=True, key="export_decisions_table",
             column_config={"given_name": "given", "new_name": "new",
                            "score": st.column_config.NumberColumn("score", format="%.2f")})
if (decisions["item_kind"] == "missing").any():
    st.warning(f"{int((decisions['item_kind'] == 'missing').sum())} decisions concern images no longer in the "
               "dataset (changed since the decision); they are exported as they were recorded.")
with st.expander("Full history (every decision, oldest first)"):
    st.dataframe(store.history(ctx.fingerprint), hide_index=True, key="export_history_table")

st.subheader("Download")
try:
    files = app_cache.export_files(ctx, latest)
except Exception as err:
    st.error(f"Could not build the export: {app_cache.one_line(err)}")
    st.stop()
st.caption("CSV, UTF-8 with BOM (Excel opens Korean text correctly). Written into the workspace too: "
           f"`{Path(next(iter(files.values()))[2]).parent}`. Your images are never renamed or rewritten.")
cols = st.columns(len(files))
for col, (label, (name, data, _written)) in zip(cols, files.items()):
    col.download_button(label, data=data, file_name=name, mime="text/csv", key=f"export_download_{name.split('.')[0]}",
                        on_click="ignore", type="primary" if name == "relabel.csv" else "secondary")
