"""AppTest of the Samples page: filters, sorting, paging, incoming selections, the detail view."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from test_app_support import page_test

REPO = Path(__file__).resolve().parent.parent


def _preds(app_data) -> pd.DataFrame:
    return pd.read_parquet(app_data.run / "predictions.parquet")


def _caption_count(at) -> int:
    text = next(c.value for c in at.caption if " images match" in c.value)
    return int(text.split(" images match")[0].replace(",", ""))


def test_samples_grid_filters_and_paging(app_data):
    preds = _preds(app_data)
    at = page_test("samples", app_data).run()
    assert not at.exception, at.exception
    assert _caption_count(at) == len(preds)
    assert len([b for b in at.button if b.key.startswith("samples_open_")]) == 48  # a full page
    at.radio(key="samples_correct").set_value("Wrong").run()
    wrong = int((preds["class_id"] != preds["pred_class"]).sum())
    assert _caption_count(at) == wrong
    at.radio(key="samples_correct").set_value("All")
    at.multiselect(key="samples_split").set_value(["eval"])
    at.multiselect(key="samples_gender").set_value([1]).run()
    assert _caption_count(at) == int(((preds["split"] == "eval") & (preds["gender"] == 1)).sum())
    at.slider(key="samples_confidence").set_value((0.5, 1.0)).run()
    expected = int(((preds["split"] == "eval") & (preds["gender"] == 1) & (preds["confidence"] >= 0.5)).sum())
    assert _caption_count(at) == expected
    assert not at.exception, at.exception


def test_samples_second_page_and_sort(app_data):
    preds = _preds(app_data)
    at = page_test("samples", app_data).run()
    at.selectbox(key="samples_sort").set_value("Confidence (highest first)").run()
    at.number_input(key="samples_page").set_value(2).run()
    assert not at.exception, at.exception
    n_second = min(48, len(preds) - 48)
    assert len([b for b in at.button if b.key.startswith("samples_open_")]) == n_second


def test_samples_accepts_a_list_of_paths_and_opens_detail(app_data):
    preds = _preds(app_data)
    person = preds.loc[preds["split"] == "train", "person"].iloc[0]
    paths = preds.loc[preds["person"] == person, "path"].tolist()[:3]
    incoming = {"kind": "paths", "from": "Embeddings", "paths": paths, "label": "3 images"}
    at = page_test("samples", app_data, samples_incoming=incoming).run()
    assert not at.exception, at.exception
    assert _caption_count(at) == 3
    assert "Embeddings" in at.info[0].value
    at.button(key="samples_open_0").click().run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "given:" in text and "predicted:" in text
    # a train row shows all of the person's photos
    assert f"{person}: all 7 photos" in text
    at.button(key="samples_clear_selection").click().run()
    assert _caption_count(at) == len(preds)


def test_samples_deleted_image_is_a_clear_message(app_data, tmp_path):
    from audit.dataset_index import index_dataset
    from test_app_support import AppData, write_synthetic_run

    root = tmp_path / "data"
    shutil.copytree(app_data.root, root)
    index = index_dataset(root)
    run = write_synthetic_run(index, tmp_path / "ws" / "runs" / "r", suspects=False)
    # a train photo: deleting it changes only its person folder, which the cached index does not watch
    gone = index.images.loc[index.images["split"] == "train", "path"].iloc[0]
    data = AppData(root=root, run=run, workspace=tmp_path / "ws", index=index)
    at = page_test("samples", data)
    at.session_state["samples_incoming"] = {"kind": "paths", "paths": [gone], "label": "one"}
    at.run()
    (root / gone).unlink()  # deleted after indexing (the index is cached)
    at.button(key="samples_open_0").click().run()
    assert not at.exception, at.exception
    assert any("deleted or moved" in w.value for w in at.warning)


@pytest.mark.slow
def test_samples_detail_computes_gradcam_on_a_real_run(tiny_demo, tiny_run, monkeypatch, tmp_path):
    """On the tiny demo predicted by a tiny trained model: the detail view draws the four overlays."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    at = AppTest.from_file(str(REPO / "pages" / "samples.py"), default_timeout=120)
    at.session_state["data_dir"] = str(tiny_demo)
    at.session_state["run_dir"] = str(tiny_run)
    at.run()
    assert not at.exception, at.exception
    at.button(key="samples_open_0").click().run()
    assert not at.exception, at.exception
    at.button(key="detail_gradcam_button").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = " ".join(i.caption for img in at.get("image") for i in img.proto.imgs)
    for method in ("Grad-CAM · given", "Grad-CAM · predicted", "EigenCAM · given", "EigenCAM · predicted"):
        assert method in text, text[:500]
    # the tiny model sees the whole image, so there is no input crop to explain
    assert not any("Dimmed" in c.value for c in at.caption)
