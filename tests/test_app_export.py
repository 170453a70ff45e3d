"""AppTest of the Export page: decisions, counts, and the CSVs it offers and writes."""
from __future__ import annotations

import io

import pandas as pd

from test_app_support import app_data, app_data_session, page_test  # noqa: F401  (fixtures)


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
