"""AppTests of deciding outside the Label-noise queue: from the sample detail (keys' buttons,
previous / next, moving on to the next undecided image), Samples' cards and bulk decision, the
Embeddings selection, Export's agreement, age preview and relabel-list upload."""
from __future__ import annotations

import pandas as pd
import pytest

from test_app_support import apply_bulk, page_test


@pytest.fixture
def fresh(app_data, tmp_path, monkeypatch):
    """The tiny dataset with an empty review store; returns the store."""
    from audit.reviews import ReviewStore

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    return ReviewStore(tmp_path / "ws" / "reviews.sqlite")


def _preds(app_data) -> pd.DataFrame:
    return pd.read_parquet(app_data.run / "predictions.parquet")


def test_decide_from_the_sample_detail_and_move_on(app_data, fresh):
    preds = _preds(app_data)
    at = page_test("samples", app_data, reviewer="ann")
    at.session_state["samples_sort"] = "Path"
    at.session_state["samples_split"] = ["train"]
    at.run()
    order = at.session_state["samples_detail_order"]
    first = order[0]
    at.button(key="samples_open_0").click().run()
    assert not at.exception, at.exception
    assert at.session_state["samples_detail_path"] == first
    # mask of this image: set "Not wear" (code 2), whether or not a check flagged it
    at.button(key="detail_field_mask").click().run()
    at.button(key="detail_set_2").click().run()
    assert not at.exception, at.exception
    row = fresh.latest(app_data.index.fingerprint).iloc[0]
    assert (row["item"], row["field"], row["decision"], int(row["new_value"]), row["reviewer"]) == \
        (first, "mask", "set", 2, "ann")
    # the detail moved on to the next image whose mask is undecided
    assert at.session_state["samples_detail_path"] == order[1]
    at.button(key="detail_previous").click().run()
    assert at.session_state["samples_detail_path"] == first
    assert any(t.value.startswith("Decided: Not wear (set by ann") for t in at.text)
    # gender of a train image is the person's: one decision for all seven photos
    person = preds.loc[preds["path"] == first, "person"].iloc[0]
    at.button(key="detail_field_gender").click().run()
    at.button(key="detail_keep").click().run()
    latest = fresh.latest(app_data.index.fingerprint).set_index(["item", "field"])
    assert latest.loc[(person, "gender"), "decision"] == "keep"
    # the next undecided gender is another person's photo
    now = at.session_state["samples_detail_path"]
    assert preds.loc[preds["path"] == now, "person"].iloc[0] != person


def test_samples_cards_show_decisions_and_bulk_states_its_count(app_data, fresh):
    preds = _preds(app_data)
    at = page_test("samples", app_data, reviewer="bob")
    at.session_state["samples_split"] = ["eval"]
    at.session_state["samples_sort"] = "Path"
    at.run()
    n_eval = int((preds["split"] == "eval").sum())
    apply_bulk(at, "samples", "set_1", field="gender", states=f"to {n_eval:,} gender items")
    latest = fresh.latest(app_data.index.fingerprint)
    assert len(latest) == n_eval and set(latest["new_value"]) == {1} and set(latest["reviewer"]) == {"bob"}
    assert any(t.value.startswith("✓ gender: Female (set by bob") for t in at.text)
    # the search box finds one image by its id
    one = preds.loc[preds["split"] == "eval", "person_id"].iloc[3]
    at.text_input(key="samples_search").input(one).run()
    assert len([b for b in at.button if b.key.startswith("samples_open_")]) == \
        int(preds.loc[preds["split"] == "eval", "path"].str.contains(one, regex=False).sum())
