"""Overview: what the dataset holds, what is wrong with its files, and how the run scores."""
from __future__ import annotations

import streamlit as st

from audit import labels
from ui import app_cache, plots

app_cache.route_through_app("overview")
st.title("Overview")
ctx = app_cache.page_context(need_data=True)
index = ctx.index
images = index.images

if ctx.is_demo:
    st.caption("The built-in demo dataset: procedural faces with known, injected label noise. "
               "Point the sidebar at a real dataset folder to audit it.")

c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(images):,}")
c2.metric("People (train)", f"{index.people:,}")
c3.metric("Eval images", f"{int((images['split'] == 'eval').sum()):,}")
c4.metric("Name and file findings", f"{len(index.findings):,}",
          help="Problems in names, folders and CSV rows, and files that do not decode. Duplicates, leaks, "
               "strangers and unusable pictures are counted below once the Data quality page has checked them.")

# ---------------------------------------------------------------- headline metrics
if ctx.has_run:
    from audit import metrics

    st.subheader("Headline metrics")
    head = metrics.headline_metrics(ctx.predictions)
    cols = st.columns(max(len(head), 1) + 1)
    for col, (name, row) in zip(cols, head.iterrows()):
        col.metric(f"Macro F1 · {name}", f"{row['macro_f1']:.3f}", help=f"18-class macro F1 over {int(row['n']):,} images")
    shown = head.rename(columns={"n": "images", "acc_mask": "mask acc.", "acc_gender": "gender acc.",
                                 "acc_age": "age acc.", "acc_class": "18-class acc.", "macro_f1": "macro F1"})
    st.dataframe(shown.style.format({c: "{:.3f}" for c in shown.columns if c != "images"}),
                 key="overview_headline_table")
    out_of_fold = [name.split(" ")[0] for name in head.index if name.endswith("(out-of-fold)")]
    if out_of_fold:  # an imported run, or one from a model trained without folds, has none
        st.caption(" and ".join(out_of_fold).capitalize() + " rows are scored on out-of-fold predictions: "
                   "each image by the fold model that did not see it.")
elif ctx.run_problem:
    st.warning(ctx.run_problem)
else:
    st.info("No run loaded: the metrics, confusion, samples and label-noise pages need one (choose it in the sidebar).")

# ---------------------------------------------------------------- distributions
st.subheader("Counts")
bins = ctx.bins
charts = [
    ("class_id", {c: n for c, n in enumerate(labels.class_names(bins))}, "By class"),
    ("mask", dict(enumerate(labels.MASK_NAMES)), "By mask state"),
    ("gender", dict(enumerate(labels.GENDER_NAMES)), "By gender"),
    ("age_bin", dict(enumerate(bins.labels)), "By age bin"),
    ("race", None, "By race"),
    ("source", None, "By source"),
]
split_fig = plots.count_bars(images.assign(all="images"), "split", by="all", title="By split", height=260)
left, right = st.columns(2)
left.plotly_chart(split_fig, key="overview_chart_split")
for i, (column, names, title) in enumerate(charts):
    if column not in images.columns:
        continue
    fig = plots.count_bars(images, column, names=names, title=title, height=420 if column == "class_id" else 280)
    if column == "class_id":
        st.plotly_chart(fig, key=f"overview_chart_{column}")
    else:
        (right if i % 2 else left).plotly_chart(fig, key=f"overview_chart_{column}")

# ---------------------------------------------------------------- image-content findings (audit/quality.py)
quality = app_cache.cached_quality(ctx)
if quality is not None and len(quality[0]):
    from audit.quality import KIND_TITLES, counts_by_kind

    st.subheader("Duplicates, leaks, strangers and unusable images")
    counts = counts_by_kind(quality[0])
    cols = st.columns(min(len(counts), 6))
    for k, (kind, n) in enumerate(counts.items()):
        cols[k % len(cols)].metric(KIND_TITLES.get(kind, kind), f"{n:,}")
    st.caption("Found in the pictures; review them (keep or exclude files) on the Data quality page. "
               "The findings below are about names, folders and CSV rows.")
elif quality is None:
    st.caption("Duplicates, split leaks, strangers in a person's folder and unusable images: "
               "open the Data quality page to check every image once.")

# ---------------------------------------------------------------- findings
st.subheader("Name, folder and file findings")
findings = index.findings
if findings.empty:
    st.success("No findings in names, folders or files: every file parsed and every person is complete.")
else:
    kinds = sorted(findings["kind"].unique())
    f1, f2 = st.columns([2, 1])
    chosen = f1.multiselect("Kind", kinds, default=kinds, key="overview_finding_kinds")
    text = f2.text_input("Path or detail contains", key="overview_finding_text")
    shown = findings[findings["kind"].isin(chosen)]
    if text:
        mask = (shown["path"].astype(str).str.contains(text, case=False, regex=False)
                | shown["detail"].astype(str).str.contains(text, case=False, regex=False))
        shown = shown[mask]
    st.caption(f"{len(shown):,} of {len(findings):,} findings")
    st.dataframe(shown, hide_index=True, key="overview_findings_table",
                 column_config={"kind": st.column_config.TextColumn("kind", width="small")})
