"""Label noise: the merged review queue, its evidence and images, and a decision per item,
saved at once in the workspace's ReviewStore."""
from __future__ import annotations

import math
import os
import uuid

import numpy as np
import streamlit as st

from audit import labels
from pages import app_cache, sample_detail

ITEMS_PER_PAGE = 10
FIELD_NAMES = {"mask": "Mask", "gender": "Gender", "age": "Age"}

app_cache.route_through_app("label_noise")
st.title("Label noise")
ctx = app_cache.page_context(need_data=True, need_run=True)
bins = ctx.bins
run_path = str(ctx.run_path)


def compute_queue() -> None:
    """Run every detector on the run and write suspects.parquet (atomically)."""
    from audit.noise.merge import find_suspects
    from audit.runs import Run

    with st.status("Finding label-noise suspects…", expanded=True) as status:
        st.write("Running the detectors (confident learning, person-level, mask slots, neighbours, age residuals)…")
        queue = find_suspects(Run.open(run_path))
        st.write(f"Merging {len(queue):,} items into one queue…")
        target = ctx.run_path / "suspects.parquet"
        tmp = target.with_name(f".suspects-{uuid.uuid4().hex[:8]}.parquet")
        queue.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        status.update(label=f"Review queue ready: {len(queue):,} items", state="complete")


queue = app_cache.cached_suspects(run_path, app_cache.run_stamp(ctx.run_path))
if queue is None:
    st.info("This run has no review queue yet. Computing it takes seconds on the demo and about a minute "
            "for the full dataset (or run `python -m audit suspects RUN` in a terminal).")
    if st.button("Find suspects", key="label_noise_compute", type="primary"):
        try:
            compute_queue()
        except Exception as err:
            st.error(f"Could not compute the review queue: {app_cache.one_line(err)}")
            st.stop()
        st.rerun()
    st.stop()
if queue.empty:
    st.success("The detectors found nothing to review in this run.")
    st.stop()

try:
    store = app_cache.review_store(str(app_cache.reviews_path()))
    latest = store.latest(ctx.fingerprint)
except Exception as err:
    st.error(f"Could not open the review store {app_cache.reviews_path()}: {app_cache.one_line(err)}")
    st.stop()
decided = {(r.item, r.field): r for r in latest.itertuples(index=False)}

# ---------------------------------------------------------------- filters
detector_names = sorted({d for ds in queue["detectors"].astype(str) for d in ds.split(", ") if d})
f1, f2, f3, f4 = st.columns([2, 3, 2, 2])
fields = f1.multiselect("Field", list(FIELD_NAMES), format_func=FIELD_NAMES.get, key="label_noise_field")
detectors = f2.multiselect("Flagged by", detector_names, key="label_noise_detector",
                           help="Items flagged by any of these detectors.")
splits = f3.multiselect("Split", ["train", "eval"], key="label_noise_split")
state = f4.radio("Show", ["Undecided", "Decided", "All"], horizontal=True, key="label_noise_state")
only_flagged = st.toggle("Only items at least one detector flagged", value=True, key="label_noise_flagged")

shown = queue
if fields:
    shown = shown[shown["field"].isin(fields)]
if detectors:
    pattern = shown["detectors"].astype(str).str.split(", ")
    shown = shown[pattern.map(lambda ds: bool(set(ds) & set(detectors)))]
if splits:
    shown = shown[shown["split"].isin(splits)]
if only_flagged and "flagged" in shown.columns:
    shown = shown[shown["flagged"]]
is_decided = np.array([(i, f) in decided for i, f in zip(shown["item"], shown["field"])], dtype=bool)
if state == "Undecided":
    shown = shown[~is_decided]
elif state == "Decided":
    shown = shown[is_decided]

m1, m2, m3 = st.columns(3)
m1.metric("Items in queue", f"{len(queue):,}")
m2.metric("Decided", f"{len(decided):,}")
m3.metric("Shown", f"{len(shown):,}")

n_pages = max(1, math.ceil(len(shown) / ITEMS_PER_PAGE))
page_no = int(st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="label_noise_page"))
page_no = min(page_no, n_pages)
items = shown.iloc[(page_no - 1) * ITEMS_PER_PAGE: page_no * ITEMS_PER_PAGE]
if items.empty:
    st.info("Nothing to show with these filters." + (" Every item is decided: see Export." if state == "Undecided" else ""))
    st.stop()


def value_name(field: str, code) -> str:
    return sample_detail.field_value(field, code, bins)


def save(i: int, item, decision: str, new_value=None) -> None:
    """Record one decision at once (button callback), and say so."""
    note = st.session_state.get(f"label_noise_note_{i}", "")
    try:
        store.record(ctx.fingerprint, str(item["item"]), str(item["field"]), decision,
                     given=int(item["given"]), suggested=int(item["suggested"]), new_value=new_value,
                     bins=bins, note=note, split=str(item["split"]), person=str(item["person"]),
                     path=str(item["path"]), detectors=str(item["detectors"]), score=float(item["score"]),
                     reviewer=st.session_state.get(app_cache.REVIEWER_KEY, ""))
    except Exception as err:
        st.session_state["label_noise_last_error"] = f"Not saved: {app_cache.one_line(err)}"
        return
    st.session_state["label_noise_last_saved"] = (f"Saved: {decision} for {item['field']} of {item['item']}"
                                                  + (f" → {value_name(item['field'], new_value)}" if decision == "set" else ""))


if msg := st.session_state.pop("label_noise_last_error", None):
    st.error(msg)
if msg := st.session_state.pop("label_noise_last_saved", None):
    st.toast(msg, icon=":material/check:")

preds = ctx.predictions
for i, (_, item) in enumerate(items.iterrows()):
    field = str(item["field"])
    key = (item["item"], field)
    done = decided.get(key)
    # Widgets belong to a position on the page; refill them when another item moves there.
    if st.session_state.get(f"label_noise_note_item_{i}") != key:
        st.session_state[f"label_noise_note_item_{i}"] = key
        st.session_state[f"label_noise_note_{i}"] = done.note if done is not None else ""
        st.session_state[f"label_noise_value_{i}"] = int(item["suggested"])
    with st.container(border=True, key=f"label_noise_item_{i}"):
        head = (f"**#{int(item['rank'])} · {FIELD_NAMES.get(field, field)}** of "
                f"{'person' if item['item_kind'] == 'person' else 'image'} `{item['item']}` ({item['split']})")
        st.markdown(head)
        st.markdown(f"given **{value_name(field, item['given'])}** → suggested **{value_name(field, item['suggested'])}** · "
                    f"score {item['score']:.2f} · flagged by {item['detectors'] or 'none'}")
        st.caption(str(item["evidence"]))
        if done is not None:
            shown_value = "" if done.decision == "skip" else f" → {value_name(field, done.new_value)}"
            st.success(f"Decided: **{done.decision}**{shown_value}" + (f" · note: {done.note}" if done.note else "")
                       + f" · {str(done.created)[:19].replace('T', ' ')}")

        # supporting images: a person's photos (all 7), or for an image of a train person, the whole person
        if item["item_kind"] == "person" or item["split"] == "train":
            rows = preds.loc[preds["person"] == item["person"]]
        else:
            rows = preds.loc[preds["path"] == item["path"]]
        sample_detail.draw_strip(ctx, rows, highlight=None if item["item_kind"] == "person" else item["path"],
                                 key_prefix=f"label_noise_strip_{i}")

        names = labels.field_value_names(field, bins)
        c1, c2, c3, c4, c5, c6 = st.columns([2, 2, 2, 1, 1, 3])
        c1.button(f"Accept: {value_name(field, item['suggested'])}", key=f"label_noise_accept_{i}", type="primary",
                  on_click=save, args=(i, item, "accept"))
        c2.button(f"Keep: {value_name(field, item['given'])}", key=f"label_noise_keep_{i}",
                  on_click=save, args=(i, item, "keep"))
        other = c3.selectbox("Another value", range(len(names)), format_func=lambda v, names=names: names[v],
                             key=f"label_noise_value_{i}", label_visibility="collapsed")
        c4.button("Set", key=f"label_noise_set_{i}", on_click=save, args=(i, item, "set", int(other)))
        c5.button("Skip", key=f"label_noise_skip_{i}", on_click=save, args=(i, item, "skip"))
        c6.text_input("Note", key=f"label_noise_note_{i}", placeholder="note (saved with the decision)",
                      label_visibility="collapsed")
