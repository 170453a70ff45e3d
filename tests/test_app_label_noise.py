"""AppTest of the Label noise page: one item at a time, decisions saved at once (accept, keep, set,
skip, age in years), undo, bulk with its count, reviewer conflicts, filters, computing a queue."""
from __future__ import annotations

import pytest

from test_app_support import apply_bulk, page_test, run_copy


def _latest(ws):
    from audit.reviews import ReviewStore
    return ReviewStore(ws / "reviews.sqlite")


@pytest.fixture
def fresh(app_data, tmp_path, monkeypatch):
    """The tiny dataset with an empty review store."""
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _current(at):
    return at.session_state["label_noise_cursor"]


def test_accept_with_note_saves_and_moves_to_the_next_item(app_data, fresh):
    at = page_test("label_noise", app_data, reviewer="ann").run()
    assert not at.exception, at.exception
    first = _current(at)
    at.text_input(key="label_noise_note_0").input("looks female, long hair")
    at.button(key="label_noise_accept_0").click().run()
    assert not at.exception, at.exception
    latest = _latest(fresh).latest(app_data.index.fingerprint)
    assert len(latest) == 1
    row = latest.iloc[0]
    assert (row["item"], row["field"]) == first
    assert row["decision"] == "accept" and row["note"] == "looks female, long hair" and row["reviewer"] == "ann"
    assert _current(at) != first  # moved on to the next undecided item
    assert any("Saved: accept for" in t.value for t in at.text)


def test_set_shows_the_value_set_and_skip_is_not_decided(app_data, fresh):
    from audit import labels

    at = page_test("label_noise", app_data).run()
    # the queue's first item: set a value that is neither given nor suggested where one exists
    item, field = _current(at)
    queue = at.session_state["label_noise_order"]
    assert queue[0] == (item, field)
    at.toggle(key="label_noise_flagged").set_value(False)
    at.multiselect(key="label_noise_field").set_value(["gender"]).run()
    item, field = _current(at)
    assert field == "gender"
    at.button(key="label_noise_set_1_0").click().run()   # Set Female, nothing preselected
    assert not at.exception, at.exception
    got = _latest(fresh).latest(app_data.index.fingerprint).set_index(["item", "field"]).loc[(item, field)]
    assert got["decision"] == "set" and int(got["new_value"]) == 1
    # the Decided view shows the value set (Female), not the suggestion
    at.radio(key="label_noise_state").set_value("Decided").run()
    assert _current(at) == (item, field)
    assert any(t.value.startswith(f"Decided: {labels.GENDER_NAMES[1]} (set") for t in at.text)
    # a skip stays undecided: not counted, still in the Undecided view
    at.radio(key="label_noise_state").set_value("Undecided").run()
    skipped = _current(at)
    decided_before = at.metric[1].value
    at.button(key="label_noise_skip_0").click().run()
    assert at.metric[1].value == decided_before
    assert skipped in at.session_state["label_noise_order"]


def test_a_markdown_note_is_shown_as_plain_text(app_data, fresh):
    at = page_test("label_noise", app_data).run()
    note = "![b](http://host/x.png) **bold**"
    at.text_input(key="label_noise_note_0").input(note)
    at.button(key="label_noise_keep_0").click().run()
    at.radio(key="label_noise_state").set_value("Decided").run()
    assert any(t.value == f"Note: {note}" for t in at.text)
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success]
    assert not any("![b](http" in v for v in rendered), "a note reached Markdown unescaped"


def test_undo_restores_the_state_before(app_data, fresh):
    at = page_test("label_noise", app_data).run()
    first = _current(at)
    at.button(key="label_noise_keep_0").click().run()
    at.button(key="label_noise_undo").click().run()
    assert not at.exception, at.exception
    store = _latest(fresh)
    hist = store.history(app_data.index.fingerprint, *first)
    assert hist["decision"].tolist() == ["keep", "skip"]  # undo appends, never deletes
    assert any(t.value.startswith("Undone:") for t in at.text)


def test_age_change_asks_for_years_or_keeps_the_age(app_data, fresh):
    from audit.export import age_bin_middle

    at = page_test("label_noise", app_data)
    at.session_state["label_noise_flagged"] = False
    at.run()
    at.multiselect(key="label_noise_field").set_value(["age"]).run()
    item, field = _current(at)
    given = int(at.session_state["label_noise_order"] and
                __import__("pandas").read_parquet(app_data.run / "suspects.parquet")
                .set_index(["item", "field"]).loc[(item, field), "given"])
    new_bin = (given + 1) % 3
    at.button(key=f"label_noise_set_{new_bin}_0").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="label_noise_age_years").value == age_bin_middle(new_bin)
    assert _latest(fresh).latest(app_data.index.fingerprint).empty  # nothing saved before the age is chosen
    at.number_input(key="label_noise_age_years").set_value(age_bin_middle(new_bin) + 1)
    at.button(key="label_noise_age_save").click().run()
    row = _latest(fresh).latest(app_data.index.fingerprint).iloc[0]
    assert (row["item"], row["field"]) == (item, field)
    assert int(row["new_age"]) == age_bin_middle(new_bin) + 1 and int(row["new_value"]) == new_bin
    # the next age item: keep the given age, mark the bin only
    item2, _ = _current(at)
    given2 = int(__import__("pandas").read_parquet(app_data.run / "suspects.parquet")
                 .set_index(["item", "field"]).loc[(item2, "age"), "given"])
    at.button(key=f"label_noise_set_{(given2 + 1) % 3}_0").click().run()
    at.button(key="label_noise_age_keep").click().run()
    row = _latest(fresh).latest(app_data.index.fingerprint).set_index("item").loc[item2]
    assert bool(row["keep_age"]) and row["new_age"] is __import__("pandas").NA


def test_bulk_states_the_count_and_writes_one_row_per_item(app_data, fresh):
    at = page_test("label_noise", app_data)
    at.session_state["label_noise_flagged"] = False
    at.run()
    at.multiselect(key="label_noise_field").set_value(["mask"]).run()
    n_shown = int(next(m.value for m in at.metric if m.label == "Shown").replace(",", ""))
    apply_bulk(at, "label_noise", "keep", states=f"to {n_shown:,} mask items")
    latest = _latest(fresh).latest(app_data.index.fingerprint)
    assert len(latest) == n_shown and set(latest["decision"]) == {"keep"}
    assert len(_latest(fresh).history(app_data.index.fingerprint)) == n_shown
    # one Undo undoes the whole bulk decision
    at.button(key="label_noise_undo").click().run()
    assert set(_latest(fresh).latest(app_data.index.fingerprint)["decision"]) == {"skip"}


def test_conflicts_are_listed_and_a_third_reviewer_resolves_them(app_data, fresh):
    from audit.reviews import ReviewStore

    at = page_test("label_noise", app_data).run()
    item, field = _current(at)
    store = ReviewStore(fresh / "reviews.sqlite")
    fp = app_data.index.fingerprint
    store.record(fp, item, field, "keep", given=0 if field != "age" else 0, reviewer="ann")
    store.record(fp, item, field, "set", given=0, new_value=1, reviewer="bob")
    at.session_state["reviewer"] = "cat"
    at.radio(key="label_noise_state").set_value("All").run()
    assert len(store.conflicts(fp)) == 1
    assert at.selectbox(key="label_noise_conflict_pick")
    at.button(key="label_noise_conflict_set_1").click().run()
    assert not at.exception, at.exception
    c = store.conflicts(fp).iloc[0]
    assert c["resolved"] and c["resolved_by"] == "cat"


def test_label_noise_filters_by_field_and_search(app_data):
    at = page_test("label_noise", app_data).run()
    at.toggle(key="label_noise_flagged").set_value(False)
    at.multiselect(key="label_noise_field").set_value(["mask"]).run()
    assert not at.exception, at.exception
    order = at.session_state["label_noise_order"]
    assert order and all(field == "mask" for _item, field in order)
    wanted = order[-1][0]
    at.text_input(key="label_noise_search").input(wanted.split("/")[-2]).run()
    order = at.session_state["label_noise_order"]
    assert order and all(wanted.split("/")[-2] in item for item, _ in order)


def test_label_noise_computes_a_missing_queue(app_data, tmp_path):
    run = run_copy(app_data, tmp_path / "run", without=("suspects.parquet",))
    at = page_test("label_noise", app_data, run_dir=str(run)).run()
    assert not at.exception, at.exception
    at.button(key="label_noise_compute").click().run()
    assert not at.exception, at.exception
    assert (run / "suspects.parquet").is_file()
    assert at.button(key="label_noise_accept_0")


def test_evidence_in_plain_words():
    from ui.review_widgets import detector_list, evidence_lines, plain

    ev = ("person_level: 6 of 7 photos look female (mean p=0.81); labelled male (log-likelihood ratio +3.2) | "
          "mask_slots: looks incorrect (p=0.80); labelled not wear (p=0.10); the person's photos fit -5.1 nats "
          "better with this one swapped with mask3 | cleanlab: p(labelled male)=0.10, p(female)=0.90")
    lines = evidence_lines(ev)
    assert [name for name, _p, _n in lines] == ["The person's other photos", "The person's mask photos",
                                                "The model disagrees"]
    assert lines[0][1] == "6 of 7 photos look female; labelled male"
    assert "nats" not in lines[1][1] and "-5.1" not in lines[1][1] and "better" not in lines[1][1]
    assert "(a swap with mask3 fits worse)" in lines[1][1]
    assert lines[2][1] == "the model says female (90%), not male (10%)"
    assert "log-likelihood ratio +3.2" in lines[0][2]  # the numbers stay behind the toggle
    assert detector_list("person_level, neighbours") == "The person's other photos, similar faces"
    assert plain("![b](http://h/x.png)") == r"\!\[b\]\(http\://h/x\.png\)"


def test_the_unmasked_photo_in_plain_words():
    from audit.noise.person_level import person_level
    from test_noise_detectors import _one_person
    from ui.review_widgets import evidence_lines

    row = person_level(_one_person(0.8, 0.01, given_gender=1), fields=("gender",)).iloc[0]
    (_name, words, numbers), = evidence_lines(f"person_level: {row['evidence']}")
    assert words == "1 of 7 photos look male; labelled female; the unmasked photo decides: it looks male"
    assert "(p=0.99)" in numbers and "log-likelihood ratio" in numbers


def test_bulk_age_decisions_keep_each_age(app_data, fresh):
    at = page_test("label_noise", app_data)
    at.session_state["label_noise_flagged"] = False
    at.run()
    at.multiselect(key="label_noise_field").set_value(["age"]).run()
    at.toggle(key="label_noise_bulk_on").set_value(True).run()
    at.selectbox(key="label_noise_bulk_choice").set_value("set_1").run()
    at.checkbox(key="label_noise_bulk_confirm").check().run()
    at.button(key="label_noise_bulk_apply").click().run()
    assert not at.exception, at.exception
    latest = _latest(fresh).latest(app_data.index.fingerprint)
    assert len(latest) and latest["keep_age"].all() and latest["new_age"].isna().all()


def test_history_view_and_picking_from_the_list(app_data, fresh):
    from audit.reviews import ReviewStore

    at = page_test("label_noise", app_data).run()
    item, field = _current(at)
    store = ReviewStore(fresh / "reviews.sqlite")
    store.record(app_data.index.fingerprint, item, field, "skip", given=0, reviewer="ann", note="later")
    store.record(app_data.index.fingerprint, item, field, "skip", given=0, reviewer="bob")
    at.run()
    at.toggle(key="label_noise_history_on_0").set_value(True).run()
    history = next(d.value for d in at.dataframe if "reviewer" in d.value.columns)
    assert history["reviewer"].tolist() == ["ann", "bob"] and history["note"].tolist() == ["later", ""]
    at.toggle(key="label_noise_list_on").set_value(True).run()
    listed = next(d.value for d in at.dataframe if "suggested" in d.value.columns)
    assert listed["item"].iloc[0] == item and len(listed) > 1


def test_a_key_press_that_reaches_the_item_before_saves_nothing(app_data, fresh):
    """Keys pressed faster than the page redraws reach the previous run's buttons: the callback
    sees that its item is no longer the current one and records nothing."""
    at = page_test("label_noise", app_data).run()
    first = _current(at)
    at.session_state["label_noise_cursor"] = at.session_state["label_noise_order"][1]  # moved on meanwhile
    at.button(key="label_noise_keep_0").click().run()
    assert _latest(fresh).latest(app_data.index.fingerprint).empty
    assert any("nothing saved" in e.value for e in at.error)
    assert _current(at) != first
