"""AppTest of the Export page: decisions, counts, and the CSVs it offers and writes."""
from __future__ import annotations

import io

import pandas as pd

from test_app_support import page_test


def test_export_without_decisions_says_what_to_do(app_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    at = page_test("export", app_data).run()
    assert not at.exception, at.exception
    assert "No decisions yet" in at.info[0].value


def test_export_offers_relabel_csv_of_the_decisions(app_data, tmp_path, monkeypatch):
    from audit.reviews import ReviewStore

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    store = ReviewStore(tmp_path / "ws" / "reviews.sqlite")
    queue = pd.read_parquet(app_data.run / "suspects.parquet")
    a, b = queue.iloc[0], queue.iloc[1]
    fp = app_data.index.fingerprint
    store.record(fp, a["item"], a["field"], "accept", given=int(a["given"]), suggested=int(a["suggested"]),
                 note='said "no", then yes, 마스크')
    store.record(fp, b["item"], b["field"], "keep", given=int(b["given"]), suggested=int(b["suggested"]))
    at = page_test("export", app_data).run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Decided items"] == "2" and shown["Labels changed"] == "1"
    # the relabel CSV was written into the workspace, UTF-8 with BOM, and holds both decisions
    written = list((tmp_path / "ws" / "exports").glob("*/relabel.csv"))
    assert len(written) == 1
    raw = written[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig")
    assert set(frame["decision"]) == {"accept", "keep"}
    assert 'said "no", then yes, 마스크' in set(frame["note"].dropna())
    assert any(c.value.startswith("CSV, UTF-8 with BOM") for c in at.caption)
    # a rerun with the same decisions does not write another export
    at.run()
    assert len(list((tmp_path / "ws" / "exports").glob("*/relabel.csv"))) == 1


def test_export_counts_skips_apart_shows_agreement_and_the_manifest_preview(app_data, tmp_path, monkeypatch):
    from audit.export import age_bin_middle
    from audit.reviews import ReviewStore

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    store = ReviewStore(tmp_path / "ws" / "reviews.sqlite")
    fp = app_data.index.fingerprint
    people = app_data.index.images[app_data.index.images["split"] == "train"].drop_duplicates("person")
    p0, p1 = people.iloc[0], people.iloc[1]
    g0 = int(p0["gender"])
    store.record(fp, p0["person"], "gender", "set", given=g0, new_value=1 - g0, reviewer="ann")
    store.record(fp, p0["person"], "gender", "keep", given=g0, reviewer="bob")          # a conflict
    new_bin = (int(p1["age_bin"]) + 1) % 3
    store.record(fp, p1["person"], "age", "set", given=int(p1["age_bin"]), new_age=age_bin_middle(new_bin))
    store.record(fp, p1["person"], "mask", "skip", given=0)
    at = page_test("export", app_data).run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Decided items"], shown["Skipped"]) == ("2", "1")  # a skip is not a decision
    frames = [d.value for d in at.dataframe]
    agreement = next(f for f in frames if "agreement" in f.columns).set_index("field")
    assert agreement.loc["gender", "items"] == 1 and agreement.loc["gender", "agreement"] == "0%"
    preview = next(f for f in frames if "renamed" in f.columns).set_index("old")
    folder = p1["path"].split("/")[-2]
    assert preview.loc[folder, "renamed"] and preview.loc[folder, "new_age"] == age_bin_middle(new_bin)


def test_export_imports_a_relabel_list_or_lists_its_bad_rows(app_data, tmp_path, monkeypatch):
    from audit.reviews import ReviewStore

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    person = app_data.index.images.loc[app_data.index.images["split"] == "train", "person"].iloc[0]
    at = page_test("export", app_data, reviewer="cat").run()
    assert not at.exception, at.exception
    store = ReviewStore(tmp_path / "ws" / "reviews.sqlite")
    bad = b"item,field,value\nghost,gender,male\n" + f"{person},gender,maybe\n".encode()
    at.file_uploader[0].set_value(("bad list.csv", bad, "text/csv")).run()
    assert not at.exception, at.exception
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert problems["line"].tolist() == [2, 3]
    assert not any(b.key == "export_import_button" for b in at.button)
    assert store.history(app_data.index.fingerprint).empty
    good = f"item,field,value,note\n{person},gender,female,\"![x](http://h/x.png)\"\n".encode("utf-8-sig")
    at.file_uploader[0].set_value(("fixes.csv", good, "text/csv")).run()
    at.button(key="export_import_button").click().run()
    assert not at.exception, at.exception
    row = store.latest(app_data.index.fingerprint).iloc[0]
    assert (row["item"], row["source"], row["reviewer"], row["new_value"]) == (person, "fixes.csv", "cat", 1)
    assert any("Imported 1 decisions from fixes.csv" in s.value for s in at.success)
    # the import is undone as a whole
    at.button(key="export_undo").click().run()
    assert store.latest(app_data.index.fingerprint).iloc[0]["decision"] == "skip"
