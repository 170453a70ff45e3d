"""AppTest of the Embeddings page: PCA stand-in while UMAP is absent, colourings switched in the browser,
the cap on drawn points, runs without embeddings."""
from __future__ import annotations

from test_app_support import page_test, run_copy


def _chart_spec(at) -> dict:
    import json

    charts = at.get("plotly_chart")
    assert len(charts) == 1, len(charts)
    return json.loads(charts[0].proto.spec)


def _array(value):
    """A figure's data array: a JSON list or plotly's base64 typed array -> numpy."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def _n_points(spec: dict) -> int:
    return len(_array(spec["data"][0]["x"]))


def _legend_keys(button: dict) -> list[str]:
    args = button["args"][0]
    return [name for name, visible in zip(args["name"][1:], args["visible"][1:]) if visible]


def test_embeddings_shows_pca_and_every_colouring_in_the_figure(app_data):
    at = page_test("embeddings", app_data, embeddings_autostart_umap=False).run()
    assert not at.exception, at.exception
    assert any("UMAP has not been computed" in i.value for i in at.info)
    n = len(app_data.index.images)
    spec = _chart_spec(at)
    assert _n_points(spec) == n  # a tiny run: every point, no "shown" caption
    assert not any("points shown" in c.value for c in at.caption)
    # the colour options live in the figure (plotly restyle buttons): switching needs no rerun
    menu = spec["layout"]["updatemenus"][0]
    labels = [b["label"] for b in menu["buttons"]]
    for colour in ("Correct / wrong", "Given class", "Suspect score", "Split", "Confidence", "Age bin (predicted)"):
        assert colour in labels, labels
    assert labels[menu.get("active", 0)] == "Correct / wrong"
    n_traces = len(spec["data"])
    for button in menu["buttons"]:
        assert button["method"] == "restyle"
        args = button["args"][0]
        assert len(_array(args["marker.color"][0])) == n, button["label"]  # one colour value per point
        assert len(args["visible"]) == len(args["name"]) == n_traces
    # each button shows its own legend keys; "Correct / wrong" in the colour-blind-safe blue / orange
    buttons = {b["label"]: b for b in menu["buttons"]}
    assert sorted(_legend_keys(buttons["Split"])) == ["eval", "train"]
    assert _legend_keys(buttons["Suspect score"]) == [] and buttons["Suspect score"]["args"][0]["marker.showscale"][0]
    right_wrong = buttons["Correct / wrong"]["args"][0]
    assert _legend_keys(buttons["Correct / wrong"]) == ["correct", "wrong"]
    assert right_wrong["marker.color"][1:3] == ["#0072B2", "#E69F00"]
    assert [t.get("name") for t in spec["data"][1:3]] == ["correct", "wrong"]  # the initial keys
    assert spec["layout"]["legend"]["orientation"] == "h" and spec["layout"]["legend"]["x"] == 0
    at.multiselect(key="embeddings_split").set_value(["eval"]).run()
    assert not at.exception, at.exception
    assert _n_points(_chart_spec(at)) == int((app_data.index.images["split"] == "eval").sum())


def test_embeddings_caps_the_drawn_points_and_keeps_the_errors(app_data, monkeypatch):
    import pandas as pd
    from audit import embedding_layout

    preds = pd.read_parquet(app_data.run / "predictions.parquet")
    queue = pd.read_parquet(app_data.run / "suspects.parquet")
    flagged = queue[queue["flagged"].astype(bool)]
    wrong = (preds["pred_class"] != preds["class_id"]).to_numpy()
    kept = wrong | preds["path"].isin(flagged["item"]).to_numpy() | preds["person"].isin(flagged["item"]).to_numpy()
    wrong = int(wrong.sum())
    cap = int(kept.sum()) + 10  # every error and flagged suspect fits, and 10 others
    monkeypatch.setattr(embedding_layout, "MAX_DRAWN_POINTS", cap)
    monkeypatch.setattr(embedding_layout, "KEPT_SHARE", 1.0)
    at = page_test("embeddings", app_data, embeddings_autostart_umap=False).run()
    assert not at.exception, at.exception
    n = len(preds)
    assert n > cap, (n, cap)
    assert any(f"{cap:,} of {n:,} points shown" in c.value for c in at.caption), [c.value for c in at.caption]
    spec = _chart_spec(at)
    assert _n_points(spec) == cap
    # every error is drawn: the "Correct / wrong" colouring has at least `wrong` wrong points
    button = next(b for b in spec["layout"]["updatemenus"][0]["buttons"] if b["label"] == "Correct / wrong")
    codes = _array(button["args"][0]["marker.color"][0])
    assert int((codes == _legend_keys(button).index("wrong")).sum()) == wrong
    at.toggle(key="embeddings_all").set_value(True).run()
    assert not at.exception, at.exception
    assert _n_points(_chart_spec(at)) == n
    assert not any("points shown" in c.value for c in at.caption)


def test_points_to_draw_is_bounded_deterministic_and_keeps_what_fits():
    import numpy as np
    from audit.embedding_layout import points_to_draw

    rng = np.random.default_rng(1)
    keep = rng.random(1000) < 0.1
    score = rng.random(1000)
    rows = points_to_draw(keep, score, 300)
    assert len(rows) == 300 and np.all(np.diff(rows) > 0)
    assert set(np.flatnonzero(keep)) <= set(rows)
    assert np.array_equal(rows, points_to_draw(keep, score, 300))
    assert np.array_equal(points_to_draw(keep, score, 5000), np.arange(1000))
    # more kept rows than their share: the highest-scored ones, and the rest still sampled
    many = rng.random(1000) < 0.8
    rows = points_to_draw(many, score, 100, kept_share=0.75)
    assert len(rows) == 100
    top = np.flatnonzero(many)[np.argsort(-score[many], kind="stable")[:75]]
    assert set(top) <= set(rows)


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
