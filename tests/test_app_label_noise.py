"""AppTest of the Label noise page: the queue, filters, decisions saved at once, computing a queue."""
from __future__ import annotations

import shutil

from test_app_support import app_data, app_data_session, page_test  # noqa: F401  (fixtures)


def _store(app_data):
    from audit.reviews import ReviewStore
    return ReviewStore(app_data.workspace / "reviews.sqlite")


def test_label_noise_decisions_are_saved_and_shown(app_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))  # a fresh review store
    at = page_test("label_noise", app_data).run()
    assert not at.exception, at.exception
    assert at.button(key="label_noise_accept_0")
    first = at.session_state["label_noise_note_item_0"]
    at.text_input(key="label_noise_note_0").input("looks female, long hair")
    at.button(key="label_noise_accept_0").click().run()
    assert not at.exception, at.exception
    from audit.reviews import ReviewStore
    latest = ReviewStore(tmp_path / "ws" / "reviews.sqlite").latest(app_data.index.fingerprint)
    assert len(latest) == 1
    row = latest.iloc[0]
    assert (row["item"], row["field"]) == first
    assert row["decision"] == "accept" and row["note"] == "looks female, long hair"
    # "Undecided" (default) no longer lists it; "Decided" shows it as decided
    assert at.session_state["label_noise_note_item_0"] != first
    at.radio(key="label_noise_state").set_value("Decided").run()
    assert any(s.value.startswith("Decided: **accept**") for s in at.success)
    # set another value on the next item
    at.radio(key="label_noise_state").set_value("Undecided").run()
    second = at.session_state["label_noise_note_item_0"]
    at.selectbox(key="label_noise_value_0").set_value(0)
    at.button(key="label_noise_set_0").click().run()
    latest = ReviewStore(tmp_path / "ws" / "reviews.sqlite").latest(app_data.index.fingerprint)
    got = latest.set_index(["item", "field"]).loc[second]
    assert got["decision"] == "set" and int(got["new_value"]) == 0


def test_label_noise_filters_by_field(app_data):
    at = page_test("label_noise", app_data).run()
    at.toggle(key="label_noise_flagged").set_value(False)
    at.multiselect(key="label_noise_field").set_value(["mask"]).run()
    assert not at.exception, at.exception
    items = [at.session_state[f"label_noise_note_item_{i}"] for i in range(10)
             if f"label_noise_note_item_{i}" in at.session_state]
    assert items and all(field == "mask" for _item, field in items)


def test_label_noise_computes_a_missing_queue(app_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(app_data.run, run)
    (run / "suspects.parquet").unlink()
    at = page_test("label_noise", app_data)
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception, at.exception
    at.button(key="label_noise_compute").click().run()
    assert not at.exception, at.exception
    assert (run / "suspects.parquet").is_file()
    assert at.button(key="label_noise_accept_0")
