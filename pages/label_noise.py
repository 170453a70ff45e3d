"""Label noise: the merged review queue, one item at a time, decided by keyboard or mouse and
saved at once in the workspace's ReviewStore; bulk decisions and reviewer conflicts below."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui import app_cache, review_widgets as rw, sample_detail

TABLE_ROWS = 100  # rows of the "shown items" table (from the current item on)
WINDOW = 300      # shown items kept in the session for previous / next / "next undecided" callbacks
SEP = "\x1f"      # joins item and field into one key string (vectorised lookups on 60,000+ rows)

app_cache.route_through_app("label_noise")
st.title("Label noise")
ctx = app_cache.page_context(need_data=True, need_run=True)
bins = ctx.bins
run_path = str(ctx.run_path)


def compute_queue(second_opinion: str) -> None:
    """Run every detector on the run (with another run of the same images as a second opinion when
    one is chosen) and write suspects.parquet (atomically)."""
    from audit.noise.merge import find_suspects
    from audit.runs import Run

    with st.status("Finding label-noise suspects…", expanded=True) as status:
        st.write("Running the checks (model disagreement, the person's other photos, mask photo slots, "
                 "similar faces, predicted age" + (", the second opinion" if second_opinion else "") + ")…")
        run = Run.open(run_path)
        queue = find_suspects(run, second_opinion=Run.open(second_opinion) if second_opinion else None)
        st.write(f"Merging {len(queue):,} items into one queue…")
        run.write_suspects(queue)
        status.update(label=f"Review queue ready: {len(queue):,} items", state="complete")


def second_opinion_choice() -> str:
    """A selectbox of the other runs of this dataset (another model, the pretrained backbone's run,
    imported predictions): their disagreement with the labels is evidence the run's own model lacks."""
    others = [r for r in app_cache.runs_listing()
              if r["path"] != run_path and r["meta"].get("data_fingerprint") == ctx.fingerprint]
    paths = [""] + [r["path"] for r in others]
    names = {r["path"]: r["name"] for r in others}
    default = next((i for i, r in enumerate(others, 1) if r["name"].endswith("-pretrained")), 0)
    return st.selectbox("Second opinion", paths, index=default, key="label_noise_second_opinion",
                        format_func=lambda p: names.get(p, "— none —"),
                        help="Another run of the same images, e.g. a model that never saw these labels "
                             "(`python -m audit predict` with other weights, or `import-predictions` from a "
                             "face-attribute service). `python -m audit suspects RUN --second-opinion RUN2` "
                             "does the same in a terminal.")


def find_suspects_button(label: str, key: str, *, primary: bool) -> None:
    choice = second_opinion_choice()
    if st.button(label, key=key, type="primary" if primary else "secondary"):
        try:
            compute_queue(choice)
        except Exception as err:
            st.error(f"Could not compute the review queue: {app_cache.one_line(err)}")
            st.stop()
        app_cache.cached_suspects.clear()
        st.rerun()


queue = app_cache.cached_suspects(run_path, app_cache.run_stamp(ctx.run_path))
if queue is None:
    st.info("This run has no review queue yet. Computing it takes seconds on the demo and about a minute "
            "for the full dataset (or run `python -m audit suspects RUN` in a terminal).")
    find_suspects_button("Find suspects", "label_noise_compute", primary=True)
    st.stop()
with st.expander("Recompute the queue (e.g. with a second opinion)"):
    find_suspects_button("Recompute", "label_noise_recompute", primary=False)
if queue.empty:
    st.success("The detectors found nothing to review in this run.")
    st.stop()

store = rw.open_store()
if store is None:
    st.stop()
latest = store.latest(ctx.fingerprint)
decided = rw.decided_lookup(latest)

# ---------------------------------------------------------------- filters
queue_keys = app_cache.cached_queue_keys(run_path, app_cache.run_stamp(ctx.run_path), SEP)
detector_names = list(queue_keys.detector_names)
f1, f2, f3, f4 = st.columns([2, 3, 2, 3])
fields = f1.multiselect("Field", list(rw.FIELD_NAMES), format_func=rw.FIELD_NAMES.get, key="label_noise_field")
detectors = f2.multiselect("Flagged by", detector_names, format_func=rw.detector_name, key="label_noise_detector",
                           help="Items flagged by any of these checks.")
splits = f3.multiselect("Split", ["train", "eval"], key="label_noise_split")
state = f4.radio("Show", ["Undecided", "Decided", "All"], horizontal=True, key="label_noise_state",
                 help="Skipped items count as undecided.")
g1, g2 = st.columns([3, 2], vertical_alignment="bottom")
search = g1.text_input("Find", key="label_noise_search", placeholder="person id, person folder or image path",
                       label_visibility="collapsed")
only_flagged = g2.toggle("Only items at least one check flagged", value=True, key="label_noise_flagged")

ordered = queue
if fields:
    ordered = ordered[ordered["field"].isin(fields)]
if detectors:
    pattern = ordered["detectors"].astype(str).str.split(", ")
    ordered = ordered[pattern.map(lambda ds: bool(set(ds) & set(detectors)))]
if splits:
    ordered = ordered[ordered["split"].isin(splits)]
if only_flagged and "flagged" in ordered.columns:
    ordered = ordered[ordered["flagged"]]
if search.strip():
    needle = search.strip().lower()
    hay = (ordered["item"].astype(str) + "\n" + ordered["path"].astype(str)).str.lower()
    ordered = ordered[hay.str.contains(needle, regex=False)]
def key_strings(frame) -> np.ndarray:
    """(N,) 'item<SEP>field' strings of queue rows (the frame is the queue or rows of it)."""
    return queue_keys.keys[frame.index.to_numpy()]


decided_keys = {f"{item}{SEP}{field}" for (item, field), d in decided.items() if rw.is_decided(d)}
skipped_keys = {f"{item}{SEP}{field}" for (item, field), d in decided.items() if not rw.is_decided(d)}
# Python sets, not Index.isin: pandas 3's string Index.isin took ~1 s for 1,000 keys in 62,000.
is_decided = np.fromiter((k in decided_keys for k in key_strings(ordered)), dtype=bool, count=len(ordered))
if state == "Undecided":
    shown = ordered[~is_decided]
elif state == "Decided":
    shown = ordered[is_decided]
else:
    shown = ordered
shown_key_strings = key_strings(shown)

queue_key_set = queue_keys.key_set
n_decided = sum(k in queue_key_set for k in decided_keys)
n_skipped = sum(k in queue_key_set for k in skipped_keys)
m1, m2, m3 = st.columns(3)
m1.metric("Items in queue", f"{len(queue):,}",
          help="Every (image or person, field) the checks scored, flagged or not.")
m2.metric("Decided", f"{n_decided:,}", help=f"Accepted, kept or set; {n_skipped:,} skipped items count as undecided.")
m3.metric("Shown", f"{len(shown):,}", help="Items matching the filters above; they are reviewed one at a time below.")
st.caption(f"The queue holds {len(queue):,} items; {len(ordered):,} match the filters and "
           f"{len(shown):,} of those are {state.lower() if state != 'All' else 'shown'}. {rw.keys_help()}")

# ---------------------------------------------------------------- the current item
CURSOR, ORDER, UNDECIDED, POS = ("label_noise_cursor", "label_noise_order", "label_noise_undecided",
                                 "label_noise_pos")


# The session keeps a window of the shown order (ORDER, starting at shown position START) for the
# callbacks; outside it, CURSOR None makes the page take the item at shown position POS.
START = "label_noise_window_start"


def _move(step: int) -> None:
    """Next / previous button callback."""
    order, start = st.session_state.get(ORDER) or [], int(st.session_state.get(START, 0))
    pos = max(int(st.session_state.get(POS, 0)) + step, 0)
    st.session_state[POS] = pos
    st.session_state[CURSOR] = order[pos - start] if 0 <= pos - start < len(order) else None


def _is_current(target: rw.ReviewTarget) -> bool:
    """Whether a decision button's item is still the one the page is on (see decision_panel)."""
    cursor = st.session_state.get(CURSOR)
    return cursor is None or tuple(cursor) == target.key


def _advance(target: rw.ReviewTarget, decision: str) -> None:
    """After a decision: the next undecided item after this one (in the shown order)."""
    order, start = st.session_state.get(ORDER) or [], int(st.session_state.get(START, 0))
    undecided = set(st.session_state.get(UNDECIDED) or ()) - {target.key}
    at = order.index(target.key) if target.key in order else int(st.session_state.get(POS, 0)) - start
    for i in range(at + 1, len(order)):
        if order[i] in undecided:
            st.session_state[CURSOR], st.session_state[POS] = order[i], start + i
            return
    # none left in the window: the item after this one (the Undecided view has dropped this one)
    st.session_state[CURSOR], st.session_state[POS] = None, start + at + 1


rw.draw_save_messages(key="label_noise", shortcuts=True)
if shown.empty:
    st.info("Nothing to show with these filters."
            + (" Every item is decided: see Export." if state == "Undecided" else ""))
    st.stop()

cursor = st.session_state.get(CURSOR)
hit = np.flatnonzero(shown_key_strings == f"{cursor[0]}{SEP}{cursor[1]}") if cursor else []
if len(hit):
    pos = int(hit[0])
else:  # decided away (Undecided view) or filtered out: the item now at its place
    pos = min(int(st.session_state.get(POS, 0)), len(shown) - 1)
start = max(pos - 1, 0)
window = [tuple(k.split(SEP, 1)) for k in shown_key_strings[start: pos + WINDOW]]
st.session_state[CURSOR], st.session_state[POS] = window[pos - start], pos
st.session_state[ORDER], st.session_state[START] = window, start
st.session_state[UNDECIDED] = [k for k in window if not rw.is_decided(decided.get(k))]
item = shown.iloc[pos]
field = str(item["field"])
done = decided.get(window[pos - start])
preds = ctx.predictions
if item["item_kind"] == "person" or item["split"] == "train":
    rows = preds.loc[preds["person"] == item["person"]]
else:
    rows = preds.loc[preds["path"] == item["path"]]
given_age = int(rows["age"].iloc[0]) if len(rows) else -1
target = rw.target_from_queue(item, given_age=given_age)

n1, n2, n3 = st.columns([1, 4, 1], vertical_alignment="center")
n1.button("Previous", key="label_noise_previous", on_click=_move, args=(-1,), shortcut=rw.KEYS["previous"],
          icon=":material/arrow_back:", disabled=pos == 0, width="stretch")
n2.caption(f"Item {pos + 1:,} of {len(shown):,} shown")
n3.button("Next", key="label_noise_next", on_click=_move, args=(1,), shortcut=rw.KEYS["next"],
          icon=":material/arrow_forward:", disabled=pos >= len(shown) - 1, width="stretch")

with st.container(border=True, key="label_noise_item_0"):
    kind = "person" if item["item_kind"] == "person" else "image"
    st.markdown(f"**#{int(item['rank'])} · {rw.FIELD_NAMES.get(field, field)}** of {kind} `{item['item']}` "
                f"({item['split']})")
    st.markdown(f"given **{rw.value_name(field, item['given'], bins)}** → suggested "
                f"**{rw.value_name(field, item['suggested'], bins)}**"
                + (f" · labelled age {given_age}" if field == "age" and given_age >= 0 else ""))
    st.markdown(rw.plain(rw.evidence_summary(target, bins)))
    if st.toggle("Show the numbers", key="label_noise_numbers"):
        lines = [f"- **{rw.plain(name or 'check')}**: {rw.plain(numbers)}"
                 for name, _plain, numbers in rw.evidence_lines(item["evidence"])]
        st.markdown("\n".join(lines) + f"\n\nscore {float(item['score']):.2f} (higher = more likely wrong) · "
                    f"flagged by {rw.plain(rw.detector_list(item['detectors']) or 'no check')}")
    sample_detail.draw_strip(ctx, rows, highlight=None if item["item_kind"] == "person" else item["path"],
                             key_prefix="label_noise_strip_0")
    rw.decision_panel(ctx, target, done, key="label_noise", suffix="_0", shortcuts=True, on_decided=_advance,
                      current=_is_current)

# ---------------------------------------------------------------- the shown items
# A toggle, not an expander: an expander's table would be built and sent on every keyed decision.
if st.toggle(f"List the shown items ({len(shown):,}) to pick one", key="label_noise_list_on"):
    part = shown.iloc[pos: pos + TABLE_ROWS]
    table = pd.DataFrame({
        "rank": part["rank"].to_numpy(), "field": part["field"].to_numpy(), "item": part["item"].to_numpy(),
        "given": [rw.value_name(f, v, bins) for f, v in zip(part["field"], part["given"])],
        "suggested": [rw.value_name(f, v, bins) for f, v in zip(part["field"], part["suggested"])],
        "score": part["score"].to_numpy(),
        "decided": [rw.decided_text(decided[k], bins) if k in decided else ""
                    for k in window[pos - start: pos - start + TABLE_ROWS]],
    })
    event = st.dataframe(table, hide_index=True, key="label_noise_table", on_select="rerun",
                         selection_mode="single-row",
                         column_config={"score": st.column_config.NumberColumn("score", format="%.2f")})
    picked = event.selection.rows if event and event.selection else []
    if picked and pos + picked[0] != pos:
        st.session_state[CURSOR], st.session_state[POS] = window[pos - start + picked[0]], pos + picked[0]
        st.session_state.pop("label_noise_table", None)
        st.rerun()
    if len(shown) > TABLE_ROWS:
        st.caption(f"The {TABLE_ROWS} items from the current one on; use the filters or Find for others.")

# ---------------------------------------------------------------- bulk
if st.toggle("Decide many at once", key="label_noise_bulk_on",
             help="One decision for every shown item of one field, after a confirmation."):
    with st.container(border=True, key="label_noise_bulk"):
        shown_fields = [f for f in rw.FIELD_NAMES if f in set(shown["field"])]
        bulk_field = st.radio("Field", shown_fields, format_func=rw.FIELD_NAMES.get, horizontal=True,
                              key="label_noise_bulk_field")
        min_score = st.number_input("Score at least", value=0.0, step=0.5, key="label_noise_bulk_min_score",
                                    help="Only shown items whose score is at least this.")
        part = shown[(shown["field"] == bulk_field) & (shown["score"].to_numpy() >= min_score)]
        # Given ages in years (people: their folder's age; images: their own) so that bulk age
        # decisions keep them and only mark the bin.
        age_of = dict(zip(preds["path"], preds["age"]))
        age_of.update(zip(preds["person"], preds["age"]))
        targets = [rw.target_from_queue(r, given_age=int(age_of.get(r["item"], -1))) for r in part.to_dict("records")]
        rw.bulk_panel(ctx, targets, key="label_noise_bulk",
                      what=f"{state.lower()} {bulk_field} items shown, score ≥ {min_score:g}")

# ---------------------------------------------------------------- conflicts
conflicts = store.conflicts(ctx.fingerprint)
open_conflicts = conflicts[~conflicts["resolved"]] if len(conflicts) else conflicts
with st.expander(f"Reviewers disagree: {len(open_conflicts):,} open, "
                 f"{len(conflicts) - len(open_conflicts):,} resolved"):
    if conflicts.empty:
        st.caption("No item was decided differently by two reviewers.")
    else:
        st.caption("Items two reviewers decided differently. A third reviewer's decision resolves one "
                   "(set your name in the sidebar).")
        view = conflicts.assign(value=[rw.value_name(f, v, bins) for f, v in zip(conflicts["field"], conflicts["value"])])
        st.dataframe(view[["item", "field", "votes", "resolved", "resolved_by", "value", "created"]],
                     hide_index=True, key="label_noise_conflicts_table")
        if len(open_conflicts):
            options = list(range(len(open_conflicts)))
            which = st.selectbox("Resolve", options, key="label_noise_conflict_pick",
                                 format_func=lambda i: f"{open_conflicts.iloc[i]['field']} of {open_conflicts.iloc[i]['item']}")
            c = open_conflicts.iloc[int(which)]
            c_target = rw.ReviewTarget(
                item=str(c["item"]), field=str(c["field"]),
                item_kind="image" if "/" in str(c["item"]) else "person", given=int(c["given"]),
                suggested=None if pd.isna(c["suggested"]) else int(c["suggested"]), split=str(c["split"]),
                person=str(c["person"]), path=str(c["path"]),
                given_age=int(preds.loc[preds["path"] == c["path"], "age"].iloc[0])
                if (preds["path"] == c["path"]).any() else -1)
            st.text(f"Votes (codes): {c['votes']}")
            rw.decision_panel(ctx, c_target, decided.get(c_target.key), key="label_noise_conflict",
                              show_history=True)
