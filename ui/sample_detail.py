"""One image in detail (full image, per-head probabilities, Grad-CAM, the person's photos,
provenance, suspect evidence), and thumbnails; shared by Samples and Label noise."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from audit import labels
from audit.thumbnails import ensure_thumbnails, safe_data_path
from ui import app_cache, plots
from ui.review_widgets import plain

THUMB_SIZE = (144, 192)  # (width, height): a 3:4 tile, sharp at six tiles per row


def thumbnails(ctx: app_cache.AppContext, paths: list[str], size=THUMB_SIZE) -> list[Path]:
    """Thumbnail files for data-relative `paths` (made once, cached on disk in the workspace)."""
    return ensure_thumbnails(ctx.index.root, paths, app_cache.thumbnails_dir(), size=size)


def image_file(ctx: app_cache.AppContext, rel_path: str) -> Path | None:
    """The image's file inside the data folder, or None (with a message) if refused or gone."""
    try:
        path = safe_data_path(ctx.index.root, rel_path)
    except ValueError as err:
        st.error(f"Refused to open {rel_path}: {err}")
        return None
    if not path.is_file():
        st.warning(f"{rel_path} was deleted or moved since the dataset was indexed: press Re-index in the sidebar.")
        return None
    return path


def provenance_caption(row: pd.Series) -> str:
    """Source and licence credit of one index row (FFHQ photos require the author's credit)."""
    parts = [f"source: {row.get('source', 'unknown')}"]
    if row.get("dataset"):
        parts.append(f"dataset: {row['dataset']}")
    author = row.get("author") or ""
    licence = row.get("license") or ""
    if author or licence:
        credit = "Photo"
        if author:
            credit += f" by {author}"
        if licence:
            url = row.get("license_url") or ""
            credit += f", licence [{licence}]({url})" if url else f", licence {licence}"
        if row.get("photo_url"):
            credit += f" ([original]({row['photo_url']}))"
        parts.append(credit)
    elif str(row.get("source")) == "photo":
        parts.append("FFHQ photo: the author credit is in the dataset's CSV (not present in this folder)")
    return " · ".join(parts)


def index_row(ctx: app_cache.AppContext, rel_path: str) -> pd.Series | None:
    images = ctx.index.images
    hit = images.loc[images["path"] == rel_path]
    return hit.iloc[0] if len(hit) else None


def suspect_rows(ctx: app_cache.AppContext, rel_path: str, person: str) -> pd.DataFrame | None:
    queue = app_cache.cached_suspects(str(ctx.run_path), app_cache.run_stamp(ctx.run_path))
    if queue is None:
        return None
    hit = ((queue["item_kind"] == "image") & (queue["item"] == rel_path)) | \
          ((queue["item_kind"] == "person") & (queue["item"] == person))
    return queue[hit]


def draw_detail(ctx: app_cache.AppContext, rel_path: str) -> None:
    """The body of the detail view for one image of the run."""
    preds = ctx.predictions
    hit = preds.loc[preds["path"] == rel_path]
    if hit.empty:
        st.error(f"{rel_path} is not in this run.")
        return
    row = hit.iloc[0]
    bins = ctx.bins
    left, right = st.columns([1, 1.4])
    with left:
        path = image_file(ctx, rel_path)
        if path is not None:
            st.image(str(path), width="stretch")
        meta = index_row(ctx, rel_path)
        if meta is not None:
            st.caption(provenance_caption(meta))
    with right:
        st.markdown(f"**{rel_path}**  \n{row['split']} · person `{row['person']}` · race {row['race']} · age {row['age']}")
        given = labels.class_name(int(row["class_id"]), bins)
        pred = labels.class_name(int(row["pred_class"]), bins)
        # blue / orange: told apart by colour-blind readers too (not green / red)
        ok = ":blue[:material/check_circle:]" if row["class_id"] == row["pred_class"] else ":orange[:material/cancel:]"
        st.markdown(f"given: **{given}**  \npredicted: **{pred}** {ok} (confidence {row['confidence']:.3f})")
        if not np.isnan(row.get("pred_age", np.nan)):
            st.caption(f"predicted age: {row['pred_age']:.1f} years · fold {row['fold']}")
        fields = labels.FIELD_INFO.values()
        probs = {f.name: (list(f.value_names(bins)), [row[c] for c in f.prob_columns]) for f in fields}
        given_codes = {f.name: int(row[f.label_column]) for f in fields}
        st.plotly_chart(plots.probability_bars(probs, given=given_codes), key=f"detail_probs_{rel_path}",
                        config={"displayModeBar": False})
        st.caption("Orange: the given label.")

    draw_decisions(ctx, row)

    draw_gradcam(ctx, row)

    if row["split"] == "train":
        same = preds.loc[preds["person"] == row["person"]]
        st.markdown(f"**{row['person']}: all {len(same)} photos**")
        draw_strip(ctx, same, highlight=rel_path, key_prefix="detail_person")


def draw_strip(ctx: app_cache.AppContext, rows: pd.DataFrame, *, highlight: str | None = None,
               key_prefix: str = "strip") -> None:
    """A row of thumbnails with mask type, given and predicted mask state."""
    thumbs = thumbnails(ctx, rows["path"].tolist())
    cols = st.columns(max(len(rows), 7))
    for col, (_, r), thumb in zip(cols, rows.iterrows(), thumbs):
        col.image(str(thumb), width="stretch")
        mark = ":orange[:material/arrow_right:] " if r["path"] == highlight else ""
        col.caption(f"{mark}{r['mask_type']}  \npred {labels.MASK_NAMES[int(r['pred_mask'])]} · "
                    f"{labels.GENDER_NAMES[int(r['pred_gender'])][0]} · {ctx.bins.labels[int(r['pred_age_bin'])]}")


def draw_overlays(compute: Callable[[], list[tuple[str, object]]]) -> bool:
    """The Grad-CAM and EigenCAM overlays [(caption, image)] that `compute()` returns, side by side;
    one error line instead, and False, when it fails (a model server gone, a file replaced)."""
    try:
        overlays = compute()
    except Exception as err:  # whatever the model or its server raised: one line on the page
        st.error(f"Grad-CAM failed: {plain(app_cache.one_line(err))}")
        return False
    cols = st.columns(len(overlays))
    for col, (caption, image) in zip(cols, overlays):
        col.image(image, caption=caption, width="stretch")
    return True


def draw_gradcam(ctx: app_cache.AppContext, row: pd.Series) -> None:
    """Grad-CAM and EigenCAM overlays for the given and the predicted value of a head, on demand."""
    st.markdown("**Grad-CAM**")
    if ctx.meta.get("source") == "import":
        st.caption("This run was imported from predictions made elsewhere: there is no model to explain.")
        return
    remote = app_cache.model_url()  # a model server answers instead of this process (sidebar)
    checkpoint = app_cache.run_checkpoint(ctx.meta)
    if checkpoint is None and not remote:
        st.caption(f"The run's checkpoint ({ctx.meta.get('checkpoint', 'unknown')}) is not on this machine, "
                   "so Grad-CAM cannot run.")
        return
    heads = labels.FIELD_INFO
    # start on the head that got it wrong (if any), where the heatmaps say the most
    wrong = [h for h, f in heads.items() if int(row[f.label_column]) != int(row[f.pred_column])]
    h1, h2 = st.columns([2, 1])
    head = h1.radio("Head", list(heads), index=list(heads).index(wrong[0]) if wrong else 0, horizontal=True,
                    key="detail_gradcam_head")
    key = f"detail_gradcam_{row['path']}"
    if h2.button("Compute Grad-CAM", key="detail_gradcam_button"):
        st.session_state[key] = True
    if not st.session_state.get(key):
        return
    path = image_file(ctx, str(row["path"]))
    if path is None:
        return
    g, p = heads[head].label_column, heads[head].pred_column
    sha = str(ctx.meta.get("checkpoint_sha256", ""))
    crop = None  # a model server's input crop comes with its overlays

    def overlays():
        nonlocal crop
        if remote:
            shown, crop = app_cache.remote_gradcam_overlays(remote, str(path), app_cache._stat_stamp([path]),
                                                            head, int(row[g]), int(row[p]), ctx.bins)
            return shown
        return app_cache.gradcam_overlays(str(checkpoint), sha, str(path), app_cache._stat_stamp([path]), head,
                                          int(row[g]), int(row[p]), ctx.bins)

    if not draw_overlays(overlays):
        return
    notes = []
    if int(row.get("fold", -1)) >= 0:
        # The run's probabilities for this row come from the fold model that did not see the person.
        notes.append("The heatmaps explain the final model, which trained on this photo; the probabilities "
                     "above are out-of-fold, so the two can differ.")
    if not remote:
        crop = app_cache.gradcam_explainer(str(checkpoint), sha).card.crop  # already loaded for the overlays
    if crop < 1:
        notes.append(f"Dimmed: outside the central {crop:.0%} of the image's width and height, which is all "
                     "this model sees (its input crop).")
    if notes:
        st.caption(" ".join(notes))


# ----------------------------------------------------------------------------- deciding in the detail

DETAIL_ORDER_KEY = "samples_detail_order"  # image paths in the Samples page's order (previous / next)
DETAIL_FIELD_KEY = "detail_field"          # the field the keys decide: mask | gender | age
FIELD_KEYS = {"mask": "M", "gender": "G", "age": "Y"}


def _pick_field(field: str) -> None:
    st.session_state[DETAIL_FIELD_KEY] = field


def _step_detail(step: int) -> None:
    """Previous / next image of the Samples order (button callback)."""
    order = st.session_state.get(DETAIL_ORDER_KEY) or []
    current = st.session_state.get(DETAIL_KEY)
    if current in order:
        pos = min(max(order.index(current) + step, 0), len(order) - 1)
        st.session_state[DETAIL_KEY] = order[pos]


def _is_open(drawn_path: str, target) -> bool:
    """Whether the image a decision button was drawn for is still the one the detail shows (keys
    pressed faster than the dialog redraws must not land on the image before)."""
    return st.session_state.get(DETAIL_KEY) in (None, drawn_path)


def _next_undecided(ctx: app_cache.AppContext, target, decision: str) -> None:
    """After a decision in the detail: the next image of the Samples order whose same field is
    still undecided (a train person's photos share their gender and age)."""
    from ui import review_widgets as rw

    order = st.session_state.get(DETAIL_ORDER_KEY) or []
    current = st.session_state.get(DETAIL_KEY)
    if current not in order:
        return
    decided = rw.decided_lookup(app_cache.review_store(str(app_cache.reviews_path())).latest(ctx.fingerprint))
    by_path = ctx.predictions.set_index("path")
    pos = order.index(current)
    for path in order[pos + 1:]:
        if path not in by_path.index:
            continue
        r = by_path.loc[path]
        item = str(r["person"]) if target.field != "mask" and r["split"] == "train" else path
        if item != target.item and not rw.is_decided(decided.get((item, target.field))):
            st.session_state[DETAIL_KEY] = path
            return


def draw_decisions(ctx: app_cache.AppContext, row: pd.Series) -> None:
    """The image's three labels (its mask; its person's gender and age), what was decided, the
    checks' suggestion in words, and the decision widget with keys for the chosen field."""
    from functools import partial

    from ui import review_widgets as rw

    store = rw.open_store()
    if store is None:
        return
    bins = ctx.bins
    decided = rw.decided_lookup(store.latest(ctx.fingerprint))
    targets = rw.targets_for_image(row, rw.queue_for(ctx, ctx.predictions.loc[[row.name]]))
    st.markdown("**Labels: decide here**")
    rw.draw_save_messages(key="detail", shortcuts=True)
    flagged = [t.field for t in targets if t.suggested is not None and t.suggested != t.given and t.detectors]
    active = st.session_state.get(DETAIL_FIELD_KEY) or (flagged[0] if flagged else "mask")
    cols = st.columns(3)
    for col, t in zip(cols, targets):
        with col.container(border=True, key=f"detail_label_{t.field}"):
            st.button(f"{rw.FIELD_NAMES[t.field]}: {rw.value_name(t.field, t.given, bins)}",
                      key=f"detail_field_{t.field}", on_click=_pick_field, args=(t.field,),
                      type="primary" if t.field == active else "secondary", shortcut=FIELD_KEYS[t.field],
                      width="stretch", help=f"Decide the {t.field} with the keys below "
                                            f"({'per person' if t.item_kind == 'person' else 'this image'}).")
            done = decided.get(t.key)
            if done is not None:
                st.text(("Decided: " if rw.is_decided(done) else "") + rw.decided_text(done, bins))
            if t.suggested is not None and t.suggested != t.given and not rw.is_decided(done):
                st.caption(rw.plain(rw.evidence_summary(t, bins)))
    target = next(t for t in targets if t.field == active)
    st.caption(f"Deciding the {active} of {'person ' + target.item if target.item_kind == 'person' else 'this image'}. "
               + rw.keys_help() + " M/G/Y choose the field.")
    rw.decision_panel(ctx, target, decided.get(target.key), key="detail", shortcuts=True,
                      on_decided=partial(_next_undecided, ctx), current=partial(_is_open, str(row["path"])))
    order = st.session_state.get(DETAIL_ORDER_KEY) or []
    if str(row["path"]) in order:
        pos = order.index(str(row["path"]))
        n1, n2, n3 = st.columns([1, 3, 1], vertical_alignment="center")
        n1.button("Previous", key="detail_previous", on_click=_step_detail, args=(-1,), disabled=pos == 0,
                  shortcut=rw.KEYS["previous"], icon=":material/arrow_back:", width="stretch")
        n2.caption(f"Image {pos + 1:,} of {len(order):,} on Samples")
        n3.button("Next", key="detail_next", on_click=_step_detail, args=(1,), disabled=pos >= len(order) - 1,
                  shortcut=rw.KEYS["next"], icon=":material/arrow_forward:", width="stretch")


DETAIL_KEY = "samples_detail_path"  # the sample whose detail is open, until the dialog is closed


def _close_detail() -> None:
    st.session_state.pop(DETAIL_KEY, None)


@st.dialog("Sample", width="large", on_dismiss=_close_detail)
def _detail_dialog(ctx: app_cache.AppContext, rel_path: str) -> None:
    # A dialog is a fragment: a click inside reruns only this function with its first arguments,
    # so previous / next and "move on after a decision" are read from the session.
    draw_detail(ctx, st.session_state.get(DETAIL_KEY) or rel_path)


def open_detail(rel_path: str) -> None:
    st.session_state[DETAIL_KEY] = rel_path


def show_open_detail(ctx: app_cache.AppContext) -> None:
    """Draw the detail dialog of the opened sample, if one is open (kept across reruns)."""
    rel_path = st.session_state.get(DETAIL_KEY)
    if rel_path:
        _detail_dialog(ctx, rel_path)
