"""Export: what was decided (and by whom, where reviewers agree), what the corrected manifests
will say, a relabel list to import, and the relabeling list / corrected manifests to download."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ui import app_cache, review_widgets as rw

app_cache.route_through_app("export")
st.title("Export")
ctx = app_cache.page_context(need_data=True)

store = rw.open_store()
if store is None:
    st.stop()


# ---------------------------------------------------------------- import a relabel list
def _import_list(data: bytes, name: str) -> None:
    """Button callback: record the checked list in one transaction."""
    from audit.review_import import RelabelListError, import_relabel_list

    try:
        ids = import_relabel_list(store, ctx.index, data, source=name, reviewer=rw.reviewer(), bins=ctx.bins)
    except RelabelListError as err:
        st.session_state["export_import_message"] = ("error", str(err))
        return
    except Exception as err:
        st.session_state["export_import_message"] = ("error", f"Not imported: {app_cache.one_line(err)}")
        return
    message = f"Saved: {len(ids):,} decisions from {name}"
    st.session_state.setdefault(rw.UNDO_STACK_KEY, []).append((message, ctx.fingerprint, ids))
    st.session_state[rw.LAST_SAVED_KEY] = message  # its Undo undoes the whole import
    st.session_state["export_import_message"] = ("success", f"Imported {len(ids):,} decisions from {name}.")
    st.session_state["export_upload_round"] = st.session_state.get("export_upload_round", 0) + 1


with st.expander("Import a relabel list (CSV)"):
    st.caption("Columns `item` (image path, person folder or person id), `field` (mask, gender, age), `value` "
               "(male/female, wear/incorrect/not wear, an age in years or a bin) and optionally `note`. "
               "Every row is checked first: with any bad row nothing is imported. Decisions carry the file's "
               "name and the reviewer name from the sidebar. Terminal: `python -m audit review import DATA CSV`.")
    upload = st.file_uploader("Relabel list", type=["csv"],
                              key=f"export_upload_{st.session_state.get('export_upload_round', 0)}")
    if upload is not None:
        from audit.review_import import plan_frame, plan_relabel_list

        data = upload.getvalue()
        plan = plan_relabel_list(data, ctx.index, source=upload.name, bins=ctx.bins)
        if plan.problems:
            st.error(f"{len(plan.problems):,} bad rows in {upload.name}: nothing will be imported. Fix them and "
                     "upload again.")
            st.dataframe(pd.DataFrame(plan.problems, columns=["line", "problem"]), hide_index=True,
                         key="export_import_problems")
        elif not plan.decisions:
            st.warning(f"{upload.name} holds no rows.")
        else:
            st.dataframe(plan_frame(plan, ctx.bins), hide_index=True, key="export_import_preview")
            st.button(f"Import {len(plan.decisions):,} decisions", key="export_import_button", type="primary",
                      on_click=_import_list, args=(data, upload.name))
    if message := st.session_state.pop("export_import_message", None):
        (st.success if message[0] == "success" else st.error)(message[1])
rw.draw_save_messages(key="export")

latest = store.latest(ctx.fingerprint)
counts = store.counts(ctx.fingerprint)
if latest.empty:
    st.info("No decisions yet for this dataset: review suspects on the Label noise page first "
            "(or decide from Samples, or import a relabel list above).")
    st.stop()

m1, m2, m3 = st.columns(3)
is_decided = (latest["decision"] != "skip").to_numpy()
m1.metric("Decided items", f"{int(is_decided.sum()):,}", help="Accepted, kept or set (skips not counted).")
new_value, given = latest["new_value"].astype("float64"), latest["given"].astype("float64")  # NA -> NaN
changed = latest[latest["decision"].isin(["accept", "set"]).to_numpy() & (new_value != given).to_numpy()]
m2.metric("Labels changed", f"{len(changed):,}")
m3.metric("Skipped", f"{int((~is_decided).sum()):,}", help="Looked at, left undecided.")

st.subheader("Counts by field and decision")
pivot = counts.pivot_table(index="field", columns="decision", values="count", fill_value=0, aggfunc="sum")
st.dataframe(pivot, key="export_counts_table")

st.subheader("Reviewers")
agreement = store.agreement(ctx.fingerprint)
conflicts = store.conflicts(ctx.fingerprint)
n_open = int((~conflicts["resolved"]).sum()) if len(conflicts) else 0
reviewers = sorted({r or "(no name)" for r in latest["reviewer"]})
st.caption(f"Decisions by {len(reviewers)} reviewer{'s' if len(reviewers) != 1 else ''}; "
           f"{len(conflicts):,} items decided differently by two reviewers ({n_open:,} still open: resolve them "
           "on the Label noise page).")
st.text("Reviewers: " + ", ".join(reviewers))
if int(agreement["items"].sum()) == 0:
    st.caption("No item was decided by two reviewers yet, so there is no agreement to show.")
else:
    st.dataframe(agreement.assign(agreement=agreement["agreement"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}")),
                 hide_index=True, key="export_agreement_table",
                 column_config={"items": "items with 2+ reviewers", "agree": "all agree"})

st.subheader("Decisions")
from audit import export as audit_export  # noqa: E402  (after the page's early exits)

decisions = audit_export.relabel_frame(store, ctx.fingerprint, ctx.index.images)
only_changed = st.toggle("Only changed labels", key="export_only_changed")
shown = decisions[decisions["changed"]] if only_changed else decisions
columns = ["path", "field", "given_name", "new_name", "new_age", "changed", "decision", "note", "detectors", "score",
           "reviewer", "time"]
st.dataframe(shown[[c for c in columns if c in shown.columns]], hide_index=True, key="export_decisions_table",
             column_config={"given_name": "given", "new_name": "new", "new_age": "age set",
                            "score": st.column_config.NumberColumn("score", format="%.2f")})
if (decisions["item_kind"] == "missing").any():
    st.warning(f"{int((decisions['item_kind'] == 'missing').sum())} decisions concern images no longer in the "
               "dataset (changed since the decision); they are exported as they were recorded.")
with st.expander("Full history (every decision, oldest first)"):
    st.dataframe(store.history(ctx.fingerprint), hide_index=True, key="export_history_table")

st.subheader("What the corrected manifests will say")
preview = audit_export.manifest_preview(ctx.index.root, ctx.index.layout, decisions, ctx.index.images, bins=ctx.bins)
renamed = preview[preview["renamed"]]
ages = preview[preview["new_age"].notna() & (preview["new_age"] != preview["given_age"])]
st.caption(f"{len(renamed):,} person folders or eval files get a new name in the corrected train.csv / info.csv "
           f"(`corrected_path`, `corrected_ImageID`) and {len(ages):,} get a new age in years. Your folders and "
           "images are never renamed: the names are written into the CSVs only. Age decisions that kept the "
           "given age change the bin only.")
if len(preview):
    st.dataframe(preview, hide_index=True, key="export_preview_table",
                 column_config={"old": "name now", "new": "corrected name", "age_source": "age from"})

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
