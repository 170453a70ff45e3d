"""Data quality: duplicates, split leaks, a stranger among a person's photos, images no one can
label (audit/quality.py), shown as groups of thumbnails and decided like labels: keep the file,
exclude it from the corrected manifests, or set the photo's mask label."""
from __future__ import annotations

import hashlib
import math

import pandas as pd
import streamlit as st

from audit import jobs, labels, workspace
from audit.quality import GROUP_KINDS, KIND_EXPLANATIONS, KIND_TITLES, counts_by_kind
from audit.reviews import FILE_EXCLUDE, FILE_FIELD, FILE_KEEP
from ui import app_cache, sample_detail, sidebar

GROUPS_PER_PAGE = 8
SHOW_MEMBERS = 7  # thumbnails per group; a bigger group says how many more

app_cache.route_through_app("data_quality")
st.title("Data quality")
ctx = app_cache.page_context(need_data=True)
index = ctx.index
run = app_cache.quality_run(ctx)

# ---------------------------------------------------------------- findings (computed once, in the background)
cached = app_cache.cached_quality(ctx)
if cached is None:
    argv = ["quality", str(ctx.data_root.resolve())] + (["--run", str(run.path)] if run is not None else [])
    job = jobs.job_dir(workspace.workspace_dir() / "jobs", f"quality-{ctx.fingerprint[:16]}")
    if sidebar.follow_job(job, argv, title="Checking every image once (hashes, cleanvision properties"
                          + (", the run's embeddings" if run is not None else "") + "). The result is kept.",
                          terminal_command="python -m audit " + " ".join(argv)):
        app_cache.clear_quality_cache()
        st.rerun()
    st.stop()
findings, source = cached
images = index.images
split_of = dict(zip(images["path"].tolist(), images["split"].tolist()))

counts = counts_by_kind(findings)
c1, c2, c3 = st.columns(3)
c1.metric("Images checked", f"{len(images):,}")
c2.metric("Findings", f"{len(findings):,}")
c3.metric("Kinds found", f"{len(counts)}")
st.caption(f"Person checks: {source}.")
if not counts:
    st.success("No duplicates, leaks, strangers or unusable images found.")
    st.stop()
chart = pd.DataFrame({"findings": list(counts.values())}, index=[KIND_TITLES.get(k, k) for k in counts])
st.bar_chart(chart, horizontal=True, height=max(160, 32 * len(counts)))
with st.expander("What each kind means"):
    st.dataframe(pd.DataFrame({"kind": list(KIND_EXPLANATIONS), "means": list(KIND_EXPLANATIONS.values())}),
                 hide_index=True, key="dq_kinds_table")

# ---------------------------------------------------------------- decisions so far
store = app_cache.review_store(str(app_cache.reviews_path()))
latest = store.latest(ctx.fingerprint)
file_rows = latest[latest["field"] == FILE_FIELD]
file_state = {item: int(v) for item, v in zip(file_rows["item"], file_rows["new_value"]) if not pd.isna(v)}
mask_set = {item: int(v) for item, v in zip(latest.loc[latest["field"] == "mask", "item"],
                                             latest.loc[latest["field"] == "mask", "new_value"]) if not pd.isna(v)}
n_excluded = sum(v == FILE_EXCLUDE for v in file_state.values())
if n_excluded:
    st.caption(f"{n_excluded:,} files excluded so far: the Export leaves them out of the corrected manifests "
               "(excluded_files.csv lists them; the images are never touched).")

# ---------------------------------------------------------------- filters
f1, f2, f3 = st.columns([3, 2, 2])
kinds = list(counts)
chosen = f1.multiselect("Kind", kinds, default=kinds, format_func=lambda k: KIND_TITLES.get(k, k), key="dq_kinds")
splits = f2.multiselect("Split", ["train", "eval"], key="dq_split")
state = f3.radio("Show", ["All", "Undecided"], horizontal=True, key="dq_state")


def members(row) -> list[str]:
    """The files a finding names: the group, the stranger then the person's photos, or the photo."""
    if row.kind == "person_mixed":
        return list(row.related)
    return [row.path, *list(row.related)]


shown = findings[findings["kind"].isin(chosen)]
if splits:
    keep = [any(split_of.get(p) in splits for p in members(r)) for r in shown.itertuples(index=False)]
    shown = shown[keep]
if state == "Undecided":
    keep = [not any(p in file_state for p in members(r)) for r in shown.itertuples(index=False)]
    shown = shown[keep]
st.caption(f"{len(shown):,} of {len(findings):,} findings")
if shown.empty:
    st.stop()
pages = max(1, math.ceil(len(shown) / GROUPS_PER_PAGE))
page_no = st.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="dq_page") if pages > 1 else 1
page_rows = shown.iloc[(page_no - 1) * GROUPS_PER_PAGE: page_no * GROUPS_PER_PAGE]

if st.button("Open these files in Samples", key="dq_to_samples", disabled=not ctx.has_run,
             help=None if ctx.has_run else "Samples needs a run: choose one in the sidebar."):
    paths = sorted({p for r in shown.itertuples(index=False) for p in members(r)})
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = {"kind": "paths", "paths": paths, "from": "Data quality",
                                                         "label": ", ".join(KIND_TITLES.get(k, k) for k in chosen)}
    st.switch_page("pages/samples.py")


def record_file(path: str, value: int, note: str = "") -> None:
    reviewer = st.session_state.get(app_cache.REVIEWER_KEY, "") or ""
    decision = "keep" if value == FILE_KEEP else "set"
    store.record(ctx.fingerprint, path, FILE_FIELD, decision, given=FILE_KEEP,
                 new_value=None if decision == "keep" else value, split=split_of.get(path, ""),
                 path=path, detectors="quality", reviewer=reviewer, note=note)


def widget_key(*parts) -> str:
    return "dq_" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- one group per finding
for row in page_rows.itertuples(index=False):
    files = members(row)
    with st.container(border=True):
        st.markdown(f"**{KIND_TITLES.get(row.kind, row.kind)}** · score {row.score:.2f}")
        st.text(f"{row.path}\n{row.detail}")  # paths and details are data: plain text
        visible = files[:SHOW_MEMBERS]
        thumbs = sample_detail.thumbnails(ctx, visible)
        cols = st.columns(SHOW_MEMBERS)
        for k, (path, thumb) in enumerate(zip(visible, thumbs)):
            with cols[k]:
                st.image(str(thumb), width="stretch")
                marked = row.kind == "person_outlier" and path == row.path
                # a train photo: its person folder and slot; an eval file: its name
                tail = -2 if path.startswith("images/train/") else -1
                label = ("⚠ stranger · " if marked else "") + "/".join(path.split("/")[tail:])
                st.caption(f"{label} · {split_of.get(path, '?')}")
                now = file_state.get(path)
                if now is not None:
                    st.caption("excluded" if now == FILE_EXCLUDE else "kept")
                if st.button("Keep", key=widget_key("keep", row.kind, row.path, path), width="stretch"):
                    record_file(path, FILE_KEEP)
                    st.rerun()
                if st.button("Exclude", key=widget_key("excl", row.kind, row.path, path), type="primary",
                             width="stretch"):
                    record_file(path, FILE_EXCLUDE, note=f"{row.kind}: {row.detail}")
                    st.rerun()
        if len(files) > SHOW_MEMBERS:
            st.caption(f"+{len(files) - SHOW_MEMBERS:,} more files in this group")
        if row.kind in GROUP_KINDS and len(files) > 1:
            if st.button(f"Keep the first, exclude the other {len(files) - 1:,}",
                         key=widget_key("rest", row.kind, row.path)):
                reviewer = st.session_state.get(app_cache.REVIEWER_KEY, "") or ""
                store.record_many(ctx.fingerprint, [
                    {"item": p, "field": FILE_FIELD, "decision": "set", "given": FILE_KEEP, "new_value": FILE_EXCLUDE,
                     "split": split_of.get(p, ""), "path": p, "detectors": "quality",
                     "note": f"{row.kind}: copy of {files[0]}"}
                    for p in files[1:]], reviewer=reviewer)
                st.rerun()
        if row.kind == "person_outlier" and row.path in split_of:
            given = int(images.loc[images["path"] == row.path, "mask"].iloc[0])
            m1, m2 = st.columns([3, 1])
            value = m1.selectbox("Move the stranger's label: mask state", [0, 1, 2], index=given,
                                 format_func=lambda v: labels.MASK_NAMES[v], key=widget_key("mask", row.path))
            if row.path in mask_set:
                m1.caption(f"decided: {labels.MASK_NAMES[mask_set[row.path]]}")
            if m2.button("Set label", key=widget_key("setmask", row.path)):
                store.record(ctx.fingerprint, row.path, "mask", "set" if value != given else "keep", given=given,
                             new_value=value, split=split_of.get(row.path, ""), path=row.path, detectors="quality",
                             reviewer=st.session_state.get(app_cache.REVIEWER_KEY, "") or "")
                st.rerun()

from audit.export import excluded_files  # noqa: E402  (only this download needs it)

excluded = excluded_files(store, ctx.fingerprint, images)
if len(excluded):
    from audit.export import csv_bytes

    st.download_button("Download the excluded files (CSV)", csv_bytes(excluded), file_name="excluded_files.csv",
                       mime="text/csv", key="dq_download_excluded")
