"""AppTest of the Embeddings page: PCA stand-in while UMAP is absent, colouring, runs without embeddings."""
from __future__ import annotations

from test_app_support import page_test, run_copy


def test_embeddings_shows_pca_and_recolours(app_data):
    at = page_test("embeddings", app_data, embeddings_autostart_umap=False).run()
    assert not at.exception, at.exception
    assert any("UMAP has not been computed" in i.value for i in at.info)
    n = len(app_data.index.images)
    assert any(f"{n:,} images" in c.value or "Drag a lasso" in c.value for c in at.caption)
    for colour in ("Given class", "Suspect score", "Split", "Correct / wrong"):
        at.selectbox(key="embeddings_colour").set_value(colour).run()
        assert not at.exception, (colour, at.exception)
    at.multiselect(key="embeddings_split").set_value(["eval"]).run()
    assert not at.exception, at.exception


def test_embeddings_uses_a_cached_umap_layout(app_data, tmp_path):
    import shutil

    import numpy as np
    from audit import embedding_layout

    run = tmp_path / "run"
    shutil.copytree(app_data.run, run)
    # a layout file where the UMAP cache would put it (computing one would import umap: ~25 s)
    xy = np.random.default_rng(0).normal(size=(len(app_data.index.images), 2)).astype(np.float32)
    np.save(embedding_layout.layout_path(run, "umap"), xy)
    at = page_test("embeddings", app_data, embeddings_autostart_umap=False)
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Layout: UMAP") for c in at.caption), [c.value for c in at.caption]


def test_embeddings_without_embeddings_says_why(app_data, tmp_path):
    run = run_copy(app_data, tmp_path / "run", without=("embeddings.npy",))
    at = page_test("embeddings", app_data, run_dir=str(run)).run()
    assert not at.exception, at.exception
    assert "no embeddings" in at.info[0].value


def test_hover_text_is_short_ascii_with_id_and_labels(app_data):
    from audit.runs import Run
    from ui import app_cache

    run = Run.open(app_data.run)
    hover = app_cache.cached_hover_text(str(app_data.run), ("test",), run.bins)
    preds = run.predictions
    assert len(hover) == len(preds)
    assert all(h.isascii() for h in hover)  # JSON would escape anything else to 6 bytes a character
    first = preds.iloc[0]
    assert hover[0].startswith(str(first["person_id"])) and " | pred " in hover[0]
    assert not any("<" in h or ">" in h for h in hover)  # plotly's JSON escapes them to six bytes
    assert max(map(len, hover)) < 80
