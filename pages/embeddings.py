"""Embeddings: every image on the 2-D UMAP of the backbone's features (PCA while UMAP computes);
a lasso or box selection opens the selected images in Samples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from audit import embedding_layout, labels
from ui import app_cache, plots

app_cache.route_through_app("embeddings")
st.title("Embeddings")
ctx = app_cache.page_context(need_data=True, need_run=True)
run_path = str(ctx.run_path)
if not embedding_layout.embeddings_path(ctx.run_path).is_file():
    st.info("This run has no embeddings (runs imported from a predictions CSV have none), so there is no map. "
            "Predict with a checkpoint (`python -m audit predict`) to get one.")
    st.stop()

bins = ctx.bins
stamp = app_cache.run_stamp(ctx.run_path)
df = app_cache.predictions_with_suspects(ctx)

# ---------------------------------------------------------------- which layout
try:
    status = embedding_layout.layout_status(run_path, "umap")
    # UMAP starts by itself on a session's first visit of a run (tests switch that off to spawn
    # nothing); after that only Refresh restarts it, so a failing computation is not retried per rerun.
    started = st.session_state.setdefault("embeddings_umap_started", [])
    first_visit = st.session_state.get("embeddings_autostart_umap", True) and run_path not in started
    if status == "missing" and (first_visit or st.session_state.get("embeddings_refresh")):
        started.append(run_path)
        status = embedding_layout.start_layout_in_background(run_path, "umap")
except Exception as err:
    status = "failed"
    st.warning(f"Could not start the UMAP layout: {app_cache.one_line(err)}. Showing PCA.")

xy = None
if status == "ready":
    layout_file = embedding_layout.layout_path(run_path, "umap")
    xy = app_cache.cached_layout(run_path, "umap", app_cache._stat_stamp([layout_file]))
    method = "UMAP"
if xy is None:
    xy = app_cache.cached_pca(run_path, stamp)
    method = "PCA"

s1, s2 = st.columns([4, 1])
if status == "running":
    s1.info("UMAP is computing in the background (a few minutes for a full dataset); showing PCA meanwhile. "
            "Other pages keep working; the map switches to UMAP by itself when it is ready.")

    @st.fragment(run_every=3)
    def _switch_when_umap_is_ready() -> None:
        # Polls the job only (cheap): the whole page reruns once, when the layout is there.
        if embedding_layout.layout_status(run_path, "umap") != "running":
            st.rerun()

    _switch_when_umap_is_ready()
elif status == "missing":
    log = embedding_layout.layout_log(run_path, "umap").strip().splitlines()
    if log:
        s1.warning(f"UMAP did not finish: {log[-1]}. Showing PCA; Refresh retries.")
    else:
        s1.info("UMAP has not been computed for this run; showing PCA. Refresh starts it.")
else:
    s1.caption(f"Layout: {method} of the backbone's pooled features, {len(xy):,} images.")
if s2.button("Refresh", key="embeddings_refresh"):
    st.rerun()

# ---------------------------------------------------------------- colour
names = labels.class_names(bins)
COLOURS = {
    "Correct / wrong": lambda d: pd.Series(np.where(d["correct"], "correct", "wrong"), name="prediction"),
    "Given class": lambda d: d["class_id"].map(dict(enumerate(names))).rename("given class"),
    "Predicted class": lambda d: d["pred_class"].map(dict(enumerate(names))).rename("predicted class"),
    "Mask (given)": lambda d: d["mask"].map(dict(enumerate(labels.MASK_NAMES))).rename("mask"),
    "Gender (given)": lambda d: d["gender"].map(dict(enumerate(labels.GENDER_NAMES))).rename("gender"),
    "Age bin (given)": lambda d: d["age_bin"].map(dict(enumerate(bins.labels))).rename("age bin"),
    "Mask (predicted)": lambda d: d["pred_mask"].map(dict(enumerate(labels.MASK_NAMES))).rename("pred. mask"),
    "Gender (predicted)": lambda d: d["pred_gender"].map(dict(enumerate(labels.GENDER_NAMES))).rename("pred. gender"),
    "Age bin (predicted)": lambda d: d["pred_age_bin"].map(dict(enumerate(bins.labels))).rename("pred. age bin"),
    "Split": lambda d: d["split"].rename("split"),
    "Source": lambda d: d["source"].rename("source"),
    "Race": lambda d: d["race"].rename("race"),
    "Suspect score": lambda d: d["suspect_score"].rename("suspect score"),
    "Confidence": lambda d: d["confidence"].rename("confidence"),
}
CONTINUOUS = {"Suspect score", "Confidence"}
ORDERED = {"Given class": names, "Predicted class": names, "Mask (given)": labels.MASK_NAMES,
           "Mask (predicted)": labels.MASK_NAMES, "Gender (given)": labels.GENDER_NAMES,
           "Gender (predicted)": labels.GENDER_NAMES, "Age bin (given)": bins.labels, "Age bin (predicted)": bins.labels}
c1, c2 = st.columns([2, 3])
only = c1.multiselect("Show split", ["train", "eval"], key="embeddings_split", help="Empty = both splits.")
draw_all = c2.toggle("Draw every point", key="embeddings_all",
                     help=f"By default at most {embedding_layout.MAX_DRAWN_POINTS:,} points are drawn: a browser "
                          "without a GPU draws them in software, and many more make the page slow.")

rows = np.arange(len(df)) if not only else np.flatnonzero(df["split"].isin(only).to_numpy())
# Kept whenever they fit: the model's errors and the flagged label-noise suspects.
queue = app_cache.cached_suspects(run_path, stamp)
flagged = np.zeros(len(df), dtype=bool)
if queue is not None and "flagged" in queue:
    hits = queue[queue["flagged"].astype(bool)]
    flagged = (df["path"].isin(hits.loc[hits["item_kind"] == "image", "item"])
               | df["person"].isin(hits.loc[hits["item_kind"] == "person", "item"])).to_numpy()
keep = flagged | ~df["correct"].to_numpy()
shown = rows if draw_all else rows[embedding_layout.points_to_draw(
    keep[rows], df["suspect_score"].to_numpy()[rows], embedding_layout.MAX_DRAWN_POINTS)]
if len(shown) < len(rows):
    kept_shown = int(keep[shown].sum())
    kept_all = int(keep[rows].sum())
    room = int(embedding_layout.MAX_DRAWN_POINTS * embedding_layout.KEPT_SHARE)
    which = (f"every model error and flagged label-noise suspect ({kept_all:,})" if kept_shown == kept_all else
             f"{kept_shown:,} of the {kept_all:,} model errors and flagged suspects (the {room:,} with the highest "
             "suspect scores, the others as the sample drew them)")
    st.caption(f"**{len(shown):,} of {len(rows):,} points shown**: {which}, and an even random sample of the "
               "others (fixed seed, so the same points each time). Turn on “Draw every point” to see all of them.")

hover = np.asarray(app_cache.cached_hover_text(run_path, stamp, bins), dtype=object)
drawn = df.iloc[shown]
colourings = {name: colour(drawn).reset_index(drop=True) for name, colour in COLOURS.items()}
fig = plots.embedding_figure(xy[shown], colourings, hover[shown], continuous=CONTINUOUS, categories=ORDERED)
# customdata holds positions in `shown`; map back to rows of the run
event = st.plotly_chart(fig, key="embeddings_chart", on_select="rerun", selection_mode=("box", "lasso"))
st.caption("“Colour by” (below the map) recolours it in the browser. Drag a lasso (or switch to box select in "
           "the chart's toolbar) to select images; double-click the chart to clear.")

points = event.selection.points if event and event.selection else []
if points:
    picked = []
    for point in points:
        cd = point.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0]
        if cd is not None:
            picked.append(shown[int(cd)])
    selected = df.iloc[sorted(set(picked))]
    wrong = int((~selected["correct"]).sum())
    m1, m2 = st.columns([3, 1])
    m1.success(f"{len(selected):,} images selected · {wrong:,} misclassified · "
               f"{int((selected['split'] == 'train').sum()):,} train / {int((selected['split'] == 'eval').sum()):,} eval")
    if m2.button("Open in Samples", key="embeddings_open_selection", type="primary"):
        st.session_state[app_cache.SAMPLES_SELECTION_KEY] = {
            "kind": "paths", "from": "Embeddings", "paths": selected["path"].tolist(),
            "label": f"{len(selected):,} images selected on the {method} map",
        }
        st.switch_page("pages/samples.py")
    top = selected["class_id"].map(dict(enumerate(names))).value_counts().head(6)
    st.caption("Given classes in the selection: " + ", ".join(f"{k} ({v})" for k, v in top.items()))
    # Decide the selection here (one decision for all of it); single images: Open in Samples.
    from ui import review_widgets

    if st.toggle(f"Decide the {len(selected):,} selected images at once", key="embeddings_bulk_on"):
        with st.container(border=True, key="embeddings_bulk"):
            review_widgets.bulk_for_images(ctx, selected, key="embeddings_bulk",
                                           what=f"selected on the {method} map")
    review_widgets.draw_save_messages(key="embeddings")
