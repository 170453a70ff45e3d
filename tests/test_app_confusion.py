"""AppTest of the Confusion page: matrices, slices, group metrics, and a cell opening Samples."""
from __future__ import annotations

from pathlib import Path

from test_app_support import page_test

REPO = Path(__file__).resolve().parent.parent


def test_confusion_matrix_slices_and_group_gap(app_data):
    at = page_test("confusion", app_data).run()
    assert not at.exception, at.exception
    n = len(app_data.index.images)
    assert at.metric[0].value == f"{n:,}"  # images in the slice
    at.multiselect(key="confusion_split").set_value(["eval"]).run()
    n_eval = int((app_data.index.images["split"] == "eval").sum())
    assert at.metric[0].value == f"{n_eval:,}"
    at.radio(key="confusion_head").set_value("Gender").run()
    at.radio(key="confusion_values").set_value("Row-normalised").run()
    assert not at.exception, at.exception
    assert any("No group has 20" in i.value for i in at.info)  # only 6 eval images per race
    at.number_input(key="confusion_min_n").set_value(1).run()
    # the per-race table lists every race present in the slice, and names the gap
    labels = [m.label for m in at.metric]
    assert "Gap (macro F1)" in labels
    table = at.dataframe[-1].value
    assert set(table.index) == set(app_data.index.images.query("split == 'eval'")["race"])


def test_confusion_empty_slice_says_so(app_data):
    at = page_test("confusion", app_data).run()
    at.multiselect(key="confusion_split").set_value(["eval"])
    at.multiselect(key="confusion_source").set_value(["unknown"]).run()
    assert not at.exception
    assert at.warning and "No images match" in at.warning[0].value


def test_confusion_cell_opens_samples_of_that_cell(app_data):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/confusion.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Confusion"
    at.radio(key="confusion_head").set_value("Mask").run()
    at.selectbox(key="confusion_pick_given").set_value(0)
    at.selectbox(key="confusion_pick_pred").set_value(0)
    at.button(key="confusion_open_cell").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Samples"
    incoming = at.session_state["samples_incoming"]
    assert incoming["equals"] == {"mask": 0, "pred_mask": 0}
    images = app_data.index.images
    # the grid caption counts exactly the images given "wear" and predicted "wear"
    import pandas as pd
    preds = pd.read_parquet(app_data.run / "predictions.parquet")
    expected = int(((preds["mask"] == 0) & (preds["pred_mask"] == 0)).sum())
    assert any(c.value.startswith(f"{expected:,} images match") for c in at.caption), [c.value for c in at.caption]
    assert len(images) > expected
