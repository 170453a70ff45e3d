"""One image in detail (full image, per-head probabilities, Grad-CAM, the person's photos,
provenance, suspect evidence), and thumbnails; shared by Samples and Label noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from audit import labels
from audit.thumbnails import ensure_thumbnails, safe_data_path
from pages import app_cache, plots

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


def field_value(field: str, code, bins: labels.AgeBins) -> str:
    try:
        return labels.field_value_names(field, bins)[int(code)]
    except (ValueError, IndexError, TypeError):
        return str(code)


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
        ok = ":green[:material/check_circle:]" if row["class_id"] == row["pred_class"] else ":red[:material/cancel:]"
        st.markdown(f"given: **{given}**  \npredicted: **{pred}** {ok} (confidence {row['confidence']:.3f})")
        if not np.isnan(row.get("pred_age", np.nan)):
            st.caption(f"predicted age: {row['pred_age']:.1f} years · fold {row['fold']}")
        probs = {
            "mask": (list(labels.MASK_NAMES), [row[f"p_mask_{i}"] for i in range(labels.N_MASK)]),
            "gender": (list(labels.GENDER_NAMES), [row[f"p_gender_{i}"] for i in range(labels.N_GENDER)]),
            "age": (list(bins.labels), [row[f"p_age_{i}"] for i in range(labels.N_AGE_BINS)]),
        }
        given_codes = {"mask": int(row["mask"]), "gender": int(row["gender"]), "age": int(row["age_bin"])}
        st.plotly_chart(plots.probability_bars(probs, given=given_codes), key=f"detail_probs_{rel_path}",
                        config={"displayModeBar": False})
        st.caption("Orange: the given label.")

    sus = suspect_rows(ctx, rel_path, str(row["person"]))
    if sus is not None and len(sus):
        st.markdown("**Suspect evidence**")
        for _, s in sus.iterrows():
            st.markdown(f"- **{s['field']}**: given {field_value(s['field'], s['given'], bins)} → suggested "
                        f"{field_value(s['field'], s['suggested'], bins)} · score {s['score']:.2f} · "
                        f"{s['detectors'] or 'no detector flagged it'}  \n  {s['evidence']}")

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
    heads = {"mask": ("mask", "pred_mask"), "gender": ("gender", "pred_gender"), "age": ("age_bin", "pred_age_bin")}
    # start on the head that got it wrong (if any), where the heatmaps say the most
    wrong = [h for h, (g, p) in heads.items() if int(row[g]) != int(row[p])]
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
    g, p = heads[head]
    sha = str(ctx.meta.get("checkpoint_sha256", ""))
    try:
        if remote:
            overlays, crop = app_cache.remote_gradcam_overlays(remote, str(path), app_cache._stat_stamp([path]),
                                                               head, int(row[g]), int(row[p]))
        else:
            overlays = app_cache.gradcam_overlays(str(checkpoint), sha, str(path),
                                                  app_cache._stat_stamp([path]), head, int(row[g]), int(row[p]))
    except Exception as err:
        st.error(f"Grad-CAM failed: {app_cache.one_line(err)}")
        return
    cols = st.columns(len(overlays))
    for col, (caption, image) in zip(cols, overlays):
        col.image(image, caption=caption, width="stretch")
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


DETAIL_KEY = "samples_detail_path"  # the sample whose detail is open, until the dialog is closed


def _close_detail() -> None:
    st.session_state.pop(DETAIL_KEY, None)


@st.dialog("Sample", width="large", on_dismiss=_close_detail)
def _detail_dialog(ctx: app_cache.AppContext, rel_path: str) -> None:
    draw_detail(ctx, rel_path)


def open_detail(rel_path: str) -> None:
    st.session_state[DETAIL_KEY] = rel_path


def show_open_detail(ctx: app_cache.AppContext) -> None:
    """Draw the detail dialog of the opened sample, if one is open (kept across reruns)."""
    rel_path = st.session_state.get(DETAIL_KEY)
    if rel_path:
        _detail_dialog(ctx, rel_path)
