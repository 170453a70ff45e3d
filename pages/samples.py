"""Samples: a paged, filterable grid of images with their labels and predictions; one opens in detail."""
from __future__ import annotations

import math

import numpy as np
import streamlit as st

from audit import labels, metrics
from ui import app_cache, review_widgets, sample_detail

PAGE_SIZE = 48
GRID_COLUMNS = 6
SORTS = {
    "Confidence (lowest first)": ("confidence", True),
    "Confidence (highest first)": ("confidence", False),
    "Suspect score (highest first)": ("suspect_score", False),
    "Path": ("path", True),
}

app_cache.route_through_app("samples")
st.title("Samples")
ctx = app_cache.page_context(need_data=True, need_run=True)
bins = ctx.bins
df = app_cache.predictions_with_suspects(ctx)
class_names = labels.class_names(bins)

# ---------------------------------------------------------------- incoming selection
incoming = st.session_state.get(app_cache.SAMPLES_SELECTION_KEY)
if incoming:
    b1, b2 = st.columns([5, 1])
    n_in = len(incoming.get("paths", [])) if incoming.get("kind") == "paths" else None
    b1.info(f"Showing the selection from {incoming.get('from', 'another page')}: {incoming.get('label', '')}"
            + (f" ({n_in:,} images)" if n_in is not None else ""))
    if b2.button("Clear selection", key="samples_clear_selection"):
        st.session_state[app_cache.SAMPLES_SELECTION_KEY] = None
        st.rerun()
    if incoming.get("kind") == "cell":
        df = metrics.slice_frame(df, **{k: v for k, v in incoming.get("slice", {}).items()})
        for column, value in incoming.get("equals", {}).items():
            df = df[df[column].to_numpy() == value]
    elif incoming.get("kind") == "paths":
        df = df[df["path"].isin(set(incoming.get("paths", [])))]

# ---------------------------------------------------------------- filters
with st.expander("Filters", expanded=not incoming):
    f1, f2, f3, f4 = st.columns(4)
    split = f1.multiselect("Split", ["train", "eval"], key="samples_split")
    given_cls = f2.multiselect("Given class", list(range(labels.N_CLASSES)), format_func=lambda c: class_names[c],
                               key="samples_given_class")
    pred_cls = f3.multiselect("Predicted class", list(range(labels.N_CLASSES)), format_func=lambda c: class_names[c],
                              key="samples_pred_class")
    correctness = f4.radio("Prediction", ["All", "Wrong", "Correct"], horizontal=True, key="samples_correct")
    g1, g2, g3, g4, g5 = st.columns(5)
    mask = g1.multiselect("Mask (given)", [0, 1, 2], format_func=lambda v: labels.MASK_NAMES[v], key="samples_mask")
    gender = g2.multiselect("Gender (given)", [0, 1], format_func=lambda v: labels.GENDER_NAMES[v], key="samples_gender")
    age = g3.multiselect("Age bin (given)", [0, 1, 2], format_func=lambda v: bins.labels[v], key="samples_age")
    race = g4.multiselect("Race", sorted(df["race"].astype(str).unique()), key="samples_race")
    source = g5.multiselect("Source", sorted(df["source"].astype(str).unique()), key="samples_source")
    h1, h2, h3 = st.columns([2, 2, 2])  # the sort names are long: 1 part cut them off
    conf = h1.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.01, key="samples_confidence")
    max_suspect = float(np.ceil(df["suspect_score"].max())) if len(df) and df["suspect_score"].max() > 0 else 0.0
    min_suspect = h2.slider("Suspect score at least", 0.0, max(max_suspect, 1.0), 0.0, step=0.1,
                            key="samples_min_suspect", disabled=max_suspect == 0.0,
                            help="The label-noise queue's score (0 = not suspected). "
                                 "Compute the queue on the Label noise page.")
    sort = h3.selectbox("Sort", list(SORTS), key="samples_sort")
    quality = app_cache.cached_quality(ctx)  # data-quality findings, once the Data quality page computed them
    has_quality = st.checkbox("Has a quality finding", key="samples_quality", disabled=quality is None,
                              help="Files named by a finding of the Data quality page (duplicates, leaks, "
                                   "strangers, unusable images)" + ("" if quality else ": open that page once first"))

shown = metrics.slice_frame(df, split=split or None, class_id=given_cls or None, pred_class=pred_cls or None,
                            mask=mask or None, gender=gender or None, age_bin=age or None,
                            race=race or None, source=source or None)
keep = (shown["confidence"].to_numpy() >= conf[0]) & (shown["confidence"].to_numpy() <= conf[1])
if correctness != "All":
    keep &= shown["correct"].to_numpy() == (correctness == "Correct")
if min_suspect > 0:
    keep &= shown["suspect_score"].to_numpy() >= min_suspect
shown = shown[keep]
if has_quality and quality is not None:
    from audit.quality import flagged_paths

    shown = shown[shown["path"].isin(flagged_paths(quality[0]))]
search = st.text_input("Find", key="samples_search", placeholder="find by person id, folder or image path",
                       label_visibility="collapsed")
if search.strip():
    needle = search.strip().lower()
    shown = shown[shown["path"].astype(str).str.lower().str.contains(needle, regex=False)]
sort_col, ascending = SORTS[sort]
shown = shown.sort_values(sort_col, ascending=ascending, kind="stable")
# previous / next in the detail walk this order
st.session_state[sample_detail.DETAIL_ORDER_KEY] = shown["path"].tolist()

# ---------------------------------------------------------------- the grid
n_pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
p1, p2 = st.columns([1, 4])
page_no = p1.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, value=1, step=1, key="samples_page")
page_no = min(int(page_no), n_pages)
p2.caption(f"{len(shown):,} images match · {int((~shown['correct']).sum()):,} misclassified · "
           f"showing {min(len(shown), (page_no - 1) * PAGE_SIZE + 1):,}–{min(len(shown), page_no * PAGE_SIZE):,}")
if shown.empty:
    st.warning("No image matches these filters: widen them, or clear the incoming selection.")
    st.stop()

if st.toggle(f"Decide the {len(shown):,} images that match at once", key="samples_bulk_on",
             help="One decision for every matching image (or its person), after a confirmation."):
    with st.container(border=True, key="samples_bulk"):
        review_widgets.bulk_for_images(ctx, shown, key="samples_bulk", what="images matching the Samples filters")
review_widgets.draw_save_messages(key="samples")
store = review_widgets.open_store()
decided = review_widgets.decided_lookup(store.latest(ctx.fingerprint)) if store is not None else {}

page_rows = shown.iloc[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE]
thumbs = sample_detail.thumbnails(ctx, page_rows["path"].tolist())
for start in range(0, len(page_rows), GRID_COLUMNS):
    cols = st.columns(GRID_COLUMNS)
    for col, (i, row), thumb in zip(cols, enumerate(page_rows.iloc[start:start + GRID_COLUMNS].itertuples(index=False),
                                                     start=start), thumbs[start:start + GRID_COLUMNS]):
        with col.container(border=True):
            st.image(str(thumb), width="stretch")
            # blue / orange: right and wrong told apart by colour-blind readers too
            mark = ":blue[:material/check_circle:] right" if row.correct else ":orange[:material/cancel:] wrong"
            st.markdown(f"{mark} · confidence {row.confidence:.2f}"
                        + (f" · :violet[:material/flag:] suspect {row.suspect_score:.1f}" if row.suspect_score > 0 else ""))
            st.caption(f"{review_widgets.plain(row.person_id)} · {review_widgets.plain(row.mask_type)} ({row.split})  \n"
                       f"given: {class_names[row.class_id]}  \npred: {class_names[row.pred_class]}")
            for line in review_widgets.decided_on_image(row._asdict(), decided, bins):
                st.text("✓ " + line)
            st.button("Open", key=f"samples_open_{i}", width="stretch", on_click=sample_detail.open_detail,
                      args=(row.path,))

sample_detail.show_open_detail(ctx)
