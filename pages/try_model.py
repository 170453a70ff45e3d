"""Try the model: upload photos, see the prediction, per-head probabilities and Grad-CAM of each.

The model is the one the sidebar names: a model server (MASK_AUDIT_MODEL_URL or the sidebar
field) or, in this process, the run's checkpoint (else the committed demo model). Predictions go
through audit.serving.ImagePredictor (the server's code) and Grad-CAM through the same cached
calls as the sample detail. Uploads are checked (type, size, full decode) and kept in
workspace/uploads/ under their content hash, never in the data folder.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from audit import labels, workspace
from ui import app_cache, plots, sample_detail
from ui.review_widgets import plain

MAX_UPLOAD_MB = 10  # per photo; .streamlit/config.toml's maxUploadSize is the browser-side cap
MAX_PHOTOS = 12     # per go: each gets a Grad-CAM
ACCEPTED_TYPES = ["jpg", "jpeg", "png", "webp"]

app_cache.route_through_app("try_model")
st.title("Try the model")
ctx = app_cache.page_context(need_data=False)
remote = app_cache.model_url()

if remote:
    info = app_cache.model_server_card(remote)
    if not info["ok"]:
        st.error(f"Model server {plain(remote)}: {plain(info['error'])}. Fix or clear the URL in the sidebar.")
        st.stop()
    model_key = ("remote", remote, str(info.get("checkpoint_sha256", "")))
    st.caption(f"Answered by the model server at {plain(remote)}: {plain(info['card'].get('arch', '?'))} "
               f"on {plain(info.get('device', '?'))}.")
else:
    checkpoint = app_cache.run_checkpoint(ctx.meta) if ctx.has_run else None
    if checkpoint is None and (workspace.DEMO_WEIGHTS / "model.pt").is_file():
        checkpoint = workspace.DEMO_WEIGHTS / "model.pt"
    if checkpoint is None:
        st.error("No model to try: choose a run whose checkpoint is on this machine, or set a model server "
                 "URL in the sidebar.")
        st.stop()
    model_key = ("local", str(checkpoint), app_cache.checkpoint_sha(str(checkpoint)))
    st.caption(f"Answered in this process by {plain(Path(checkpoint).parent.name)} ({plain(checkpoint)}).")

uploads = st.file_uploader(f"Face photos (JPEG, PNG or WebP, up to {MAX_UPLOAD_MB} MB each)", type=ACCEPTED_TYPES,
                           accept_multiple_files=True, key="try_uploads")
if not uploads:
    st.info("Upload one or more photos to see what the model says about each. They are kept in the "
            "workspace (workspace/uploads/), never in your data folder.")
    st.stop()
if len(uploads) > MAX_PHOTOS:
    st.warning(f"{len(uploads)} photos uploaded: the first {MAX_PHOTOS} are shown.")

stored: list[tuple[str, Path]] = []  # (name as uploaded, file in the workspace)
for upload in uploads[:MAX_PHOTOS]:
    try:
        stored.append((upload.name, app_cache.store_upload(upload.getvalue(), max_mb=MAX_UPLOAD_MB)))
    except ValueError as err:  # not an image, too large, undecodable, wrong shape: one line per file
        st.error(f"{plain(upload.name)}: {plain(app_cache.one_line(err))}")
if not stored:
    st.stop()

try:
    predictions = app_cache.upload_predictions(model_key, tuple(str(p) for _, p in stored))
except Exception as err:  # server gone, refused: one line
    st.error(f"Prediction failed: {plain(app_cache.one_line(err))}")
    st.stop()

head = st.radio("Grad-CAM of", labels.FIELDS, horizontal=True, key="try_gradcam_head",
                help="Where the chosen head looked to predict what it predicted.")
bins = labels.AgeBins.from_dict(info["card"]["bins"]) if remote else ctx.bins

for (name, path), pred in zip(stored, predictions):
    st.divider()
    left, right = st.columns([1, 1.6])
    with left:
        st.image(str(path), width="stretch")
        st.caption(plain(name))
    with right:
        age = f" · age about {pred['age_years']:.0f} years" if pred.get("age_years") is not None else ""
        st.markdown(f"predicted: **{labels.class_name(int(pred['class_id']), bins)}** "
                    f"(confidence {pred['confidence']:.3f}){age}")
        probs = {f.name: (list(f.value_names(bins)), pred[f.name]) for f in labels.FIELD_INFO.values()}
        st.plotly_chart(plots.probability_bars(probs), key=f"try_probs_{path.name}", config={"displayModeBar": False})
        m, g, a = labels.split_class(int(pred["class_id"]))
        predicted = dict(zip(labels.FIELDS, (m, g, a)))[head]
        sample_detail.draw_overlays(partial(app_cache.explain_upload, model_key, str(path), head, int(predicted), bins))
