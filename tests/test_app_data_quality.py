"""AppTest of the Data quality page: findings computed once in a background job, shown by kind,
decided through the review store (keep, exclude, set the stranger's mask label)."""
from __future__ import annotations

import pytest

from audit.quality import KIND_TITLES
from audit.reviews import FILE_EXCLUDE, FILE_FIELD, ReviewStore
from fixtures_quality import identity_run, quality_tree
from test_app_support import AppData, page_test


@pytest.fixture
def quality_app(tmp_path, monkeypatch) -> AppData:
    from audit.dataset_index import index_dataset

    root = tmp_path / "data"
    planted = quality_tree(root, people=10)
    index = index_dataset(root)
    ws = tmp_path / "workspace"
    stranger = planted["person_outlier"][0]
    run = identity_run(index, ws / "runs" / "identity", stranger=stranger)
    monkeypatch.setenv("MASK_AUDIT_DATA", str(root))
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(ws))
    data = AppData(root=root, run=run, workspace=ws, index=index)
    data.planted, data.stranger = planted, stranger
    return data


def _texts(at) -> str:
    return " ".join(t.value for t in at.text)


def test_page_finds_groups_and_records_decisions(quality_app):
    at = page_test("data_quality", quality_app, timeout=180).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data quality"
    shown = {m.label: m.value for m in at.metric}
    assert shown["Images checked"] == f"{len(quality_app.index.images):,}"
    assert "the embeddings of the run identity" in " ".join(c.value for c in at.caption)
    kinds = at.multiselect(key="dq_kinds")
    assert {KIND_TITLES[k] for k in ("exact_duplicate", "split_leak", "person_outlier", "dark", "blurry")} <= set(kinds.options)
    # the stranger's group, the stranger marked
    kinds.set_value(["person_outlier"]).run()
    assert not at.exception, at.exception
    assert quality_app.stranger in _texts(at)
    assert any(c.value.startswith("⚠ stranger") for c in at.caption)
    # exclude the stranger's file, then set its mask label
    exclude = [b for b in at.button if b.label == "Exclude"]
    exclude[0].click().run()
    assert not at.exception, at.exception
    store = ReviewStore(quality_app.workspace / "reviews.sqlite")
    latest = store.latest(quality_app.index.fingerprint)
    row = latest[(latest["item"] == quality_app.stranger) & (latest["field"] == FILE_FIELD)]
    assert row["new_value"].tolist() == [FILE_EXCLUDE]
    assert "1 files excluded" in " ".join(c.value for c in at.caption)
    mask_box = [s for s in at.selectbox if s.label.startswith("Move the stranger's label")][0]
    mask_box.set_value(2).run()
    [b for b in at.button if b.label == "Set label"][0].click().run()
    assert not at.exception, at.exception
    latest = store.latest(quality_app.index.fingerprint)
    row = latest[(latest["item"] == quality_app.stranger) & (latest["field"] == "mask")]
    assert row["new_value"].tolist() == [2] and row["decision"].tolist() == ["set"]
    # the excluded files download
    assert any(d.label == "Download the excluded files (CSV)" for d in at.get("download_button"))
    # duplicates: keep the first, exclude the rest; the undecided filter then hides the group
    at.multiselect(key="dq_kinds").set_value(["exact_duplicate"]).run()
    [b for b in at.button if b.label.startswith("Keep the first")][0].click().run()
    latest = store.latest(quality_app.index.fingerprint)
    excluded = set(latest.loc[(latest["field"] == FILE_FIELD) & (latest["new_value"] == FILE_EXCLUDE), "item"])
    dup = quality_app.planted["exact_duplicate"]
    assert dup[1] in excluded and dup[0] not in excluded
    at.radio(key="dq_state").set_value("Undecided").run()
    assert not at.exception
    assert "0 of" in " ".join(c.value for c in at.caption)
    store.close()


def test_split_filter_and_second_visit_reuses_the_findings(quality_app):
    at = page_test("data_quality", quality_app, timeout=180).run()
    assert not at.exception, at.exception
    at.multiselect(key="dq_split").set_value(["train"]).run()
    assert not at.exception
    caption = " ".join(c.value for c in at.caption)
    assert " of " in caption
    again = page_test("data_quality", quality_app, timeout=20).run()  # no job: read from the workspace
    assert not again.exception, again.exception
    assert again.metric[0].value == f"{len(quality_app.index.images):,}"


def test_page_without_a_run_finds_the_stranger_from_the_pictures(quality_app):
    at = page_test("data_quality", quality_app, run=False, timeout=180).run()
    assert not at.exception, at.exception
    assert "the pictures only (no run chosen" in " ".join(c.value for c in at.caption)
    assert KIND_TITLES["person_outlier"] in set(at.multiselect(key="dq_kinds").options)


def test_overview_counts_and_samples_filter_use_the_findings(quality_app):
    before = page_test("overview", quality_app).run()
    assert not before.exception, before.exception
    assert "open the Data quality page" in " ".join(c.value for c in before.caption)
    assert not page_test("data_quality", quality_app, timeout=180).run().exception
    at = page_test("overview", quality_app).run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown[KIND_TITLES["exact_duplicate"]] == "1" and shown[KIND_TITLES["person_outlier"]] == "1"
    samples = page_test("samples", quality_app).run()
    assert not samples.exception, samples.exception
    samples.checkbox(key="samples_quality").check().run()
    assert not samples.exception, samples.exception
    caption = " ".join(c.value for c in samples.caption)
    flagged = {p for paths in quality_app.planted.values() for p in paths} - set(quality_app.planted["unreadable_image"])
    assert f"{len(flagged) + 6:,} images match" in caption or "images match" in caption
    n = int(caption.split(" images match")[0].split()[-1].replace(",", ""))
    assert len(flagged) <= n < len(quality_app.index.images) // 2


@pytest.mark.parametrize("page", ["label_noise", "export", "samples", "overview"])
def test_other_pages_live_with_file_decisions(quality_app, page):
    """A keep / exclude decision (field 'file') in the store must not upset the label pages."""
    from audit.reviews import FILE_KEEP

    store = ReviewStore(quality_app.workspace / "reviews.sqlite")
    path = quality_app.planted["exact_duplicate"][1]
    store.record(quality_app.index.fingerprint, path, FILE_FIELD, "set", given=FILE_KEEP, new_value=FILE_EXCLUDE)
    store.close()
    at = page_test(page, quality_app, timeout=120).run()
    assert not at.exception, at.exception


def test_export_page_offers_the_excluded_files(quality_app):
    from audit.reviews import FILE_KEEP

    store = ReviewStore(quality_app.workspace / "reviews.sqlite")
    path = quality_app.planted["exact_duplicate"][1]
    store.record(quality_app.index.fingerprint, path, FILE_FIELD, "set", given=FILE_KEEP, new_value=FILE_EXCLUDE)
    store.close()
    at = page_test("export", quality_app, timeout=120).run()
    assert not at.exception, at.exception
    labels_ = [d.label for d in at.get("download_button")]
    assert any("excluded_files.csv" in label for label in labels_), labels_
