"""Confusion: where the classifier fails, for any slice; a click on a cell opens its samples."""
from __future__ import annotations

import streamlit as st

from audit import labels, metrics
from ui import app_cache, plots

app_cache.route_through_app("confusion")
st.title("Confusion")
ctx = app_cache.page_context(need_data=True, need_run=True)
preds = ctx.predictions
bins = ctx.bins

# head -> (given column, predicted column, value names)
HEADS = {
    "18 classes": ("class_id", "pred_class", labels.class_names(bins)),
    **{f.title: (f.label_column, f.pred_column, list(f.value_names(bins))) for f in labels.FIELD_INFO.values()},
}
# Whole words on the 18-class ticks ("Not wear · Male · 25–39"): the short "Not·M·25–39" was cryptic.
CLASS_TICKS = labels.class_names(bins)

# ---------------------------------------------------------------- slice
with st.expander("Slice", expanded=True):
    s1, s2, s3, s4, s5 = st.columns(5)
    split = s1.multiselect("Split", sorted(preds["split"].unique()), key="confusion_split")
    race = s2.multiselect("Race", sorted(preds["race"].astype(str).unique()), key="confusion_race")
    source = s3.multiselect("Source", sorted(preds["source"].astype(str).unique()), key="confusion_source")
    gender = s4.multiselect("Gender (given)", [0, 1], format_func=lambda g: labels.GENDER_NAMES[g],
                            key="confusion_gender")
    age = s5.multiselect("Age bin (given)", [0, 1, 2], format_func=lambda a: bins.labels[a], key="confusion_age")
slice_filters = {"split": split or None, "race": race or None, "source": source or None,
                 "gender": gender or None, "age_bin": age or None}
part = metrics.slice_frame(preds, **slice_filters)

c1, c2, c3 = st.columns([3, 2, 2])
head = c1.radio("Matrix", list(HEADS), horizontal=True, key="confusion_head")
values = c2.radio("Values", ["Counts", "Row-normalised"], horizontal=True, key="confusion_values")
given_col, pred_col, names = HEADS[head]
c3.metric("Images in slice", f"{len(part):,}",
          help="Macro F1 of the slice: " + (f"{metrics.macro_f1(part['class_id'], part['pred_class']):.3f}"
                                            if len(part) else "n/a"))

if part.empty:
    st.warning("No images match this slice: widen the filters above.")
    st.stop()

counts = metrics.confusion(part[given_col], part[pred_col], len(names))
matrix = metrics.normalize_rows(counts) if values == "Row-normalised" else counts
tick_names = CLASS_TICKS if head == "18 classes" else names


def _on_cell_selected() -> None:
    """A click on a cell: hand its (given, predicted) pair to the Samples page."""
    state = st.session_state.get("confusion_matrix_chart")
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    if not points:
        return
    point = points[0]
    given, pred = int(round(point["y"])), int(round(point["x"]))
    _send_cell(given, pred)


def _send_cell(given: int, pred: int) -> None:
    head_now = st.session_state.get("confusion_head", "18 classes")
    g_col, p_col, value_names = HEADS[head_now]
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = {
        "kind": "cell",
        "label": f"{head_now}: given {value_names[given]} × predicted {value_names[pred]}",
        "equals": {g_col: given, p_col: pred},
        "slice": {k: v for k, v in slice_filters.items() if v},
    }
    st.session_state["confusion_go_to_samples"] = True


st.plotly_chart(plots.confusion_figure(matrix, tick_names, normalised=values == "Row-normalised"),
                key="confusion_matrix_chart", on_select=_on_cell_selected, selection_mode="points",
                config={"displayModeBar": False})
st.caption("Rows: the given label; columns: the prediction. Click a cell to open its images in Samples, "
           "where each label can be decided (or all of the cell's at once).")

with st.form("confusion_open_form", border=False):
    o1, o2, o3 = st.columns([3, 3, 2])
    pick_given = o1.selectbox("Given", range(len(names)), format_func=lambda i: names[i], key="confusion_pick_given")
    pick_pred = o2.selectbox("Predicted", range(len(names)), format_func=lambda i: names[i], key="confusion_pick_pred")
    o3.write("")
    if o3.form_submit_button("Open these samples", key="confusion_open_cell"):
        _send_cell(int(pick_given), int(pick_pred))

if st.session_state.pop("confusion_go_to_samples", False):
    st.switch_page("pages/samples.py")

# ---------------------------------------------------------------- per-group metrics
st.subheader("Metrics by group")
g1, g2 = st.columns([1, 3])
group_col = g1.selectbox("Group by", ["race", "source", "split", "gender", "age_bin", "mask"], key="confusion_group_by")
min_n = g1.number_input("Smallest group for the gap", min_value=1, value=20, step=5, key="confusion_min_n")
result = metrics.metric_by_group(part, group_col, metric="macro_f1", min_n=int(min_n))
table = result.table.copy()
if group_col == "gender":
    table.index = [labels.GENDER_NAMES[int(i)] for i in table.index]
elif group_col == "age_bin":
    table.index = [bins.labels[int(i)] for i in table.index]
elif group_col == "mask":
    table.index = [labels.MASK_NAMES[int(i)] for i in table.index]
table = table.rename(columns={"n": "images", "acc_mask": "mask acc.", "acc_gender": "gender acc.",
                              "acc_age": "age acc.", "acc_class": "18-class acc.", "macro_f1": "macro F1"})
with g2:
    summary = result.summary()
    if result.best is not None:
        m1, m2, m3 = st.columns(3)
        # The value in the label, not as a delta: a delta draws an arrow as if it were a change.
        m1.metric(f"Best group (macro F1 {summary['best_value']:.3f})",
                  str(table.index[list(result.table.index).index(result.best)]))
        m2.metric(f"Worst group (macro F1 {summary['worst_value']:.3f})",
                  str(table.index[list(result.table.index).index(result.worst)]))
        m3.metric("Gap (macro F1)", f"{result.gap:.3f}")
    else:
        st.info(f"No group has {int(min_n)} or more images in this slice.")
    st.dataframe(table.style.format({c: "{:.3f}" for c in table.columns if c != "images"}),
                 key="confusion_group_table")
