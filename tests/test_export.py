"""Export: relabel list, CSV round trip with awkward values, corrected manifests, images untouched."""
import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from audit.cli import main as cli_main
from audit.dataset_index import index_dataset
from audit.export import (
    INFO_CSV_COLUMNS, RELABEL_COLUMNS, TRAIN_CSV_COLUMNS, age_in_bin, corrected_manifests, csv_bytes,
    export_all, read_export_csv, relabel_frame, value_name, write_relabel_csv,
)
from audit.labels import DEFAULT_BINS, TRAIN_MASK_TYPES
from audit.reviews import ReviewStore

AWKWARD = 'Kim, "Jay" 김철수\nline two; =SUM(A1), 한국어 텍스트'
P1 = "000001_female_Asian_24"          # leading zeros in the id
P2 = "100k-000038_male_White_45"
E1 = "ffhq-13643_female_LatinoHispanic_37_normal.png"
E2 = "000002_male_Black_30_mask.jpg"


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 100, 150)).save(path)


def _people_and_eval(images_train: Path, images_eval: Path) -> None:
    for k, person in enumerate((P1, P2)):
        for j, stem in enumerate(TRAIN_MASK_TYPES):
            _image(images_train / person / f"{stem}.jpg", 10 * k + j)
    _image(images_eval / E1, 200)
    _image(images_eval / E2, 210)


@pytest.fixture
def competition_data(tmp_path):
    root = tmp_path / "data"
    _people_and_eval(root / "train" / "images", root / "eval" / "images")
    prov = dict(original_photo_url="https://example.org/a,b?q=\"1\"", original_author=AWKWARD,
                photo_license="CC BY-NC 2.0", photo_license_url="https://creativecommons.org/licenses/by-nc/2.0/",
                dataset="Flickr-Faces-HQ Dataset", dataset_license="Creative Commons BY-NC-SA 4.0",
                dataset_license_url="https://creativecommons.org/licenses/by-nc-sa/4.0/")
    train = pd.DataFrame([
        dict(id="000001", gender="female", race="Asian", age="24", path=P1, **prov),
        dict(id="100k-000038", gender="male", race="White", age="45", path=P2,
             **{**prov, "original_author": "https://generated.photos", "dataset": "100k Faces Dataset"}),
    ], columns=TRAIN_CSV_COLUMNS)
    train.to_csv(root / "train" / "train.csv", index=False)
    info = pd.DataFrame([
        dict(ImageID=E1, ans="16", **prov),
        dict(ImageID=E2, ans="1", **{**prov, "original_author": "someone", "dataset": "100k Faces Dataset"}),
    ], columns=INFO_CSV_COLUMNS)
    info.to_csv(root / "eval" / "info.csv", index=False)
    return root


@pytest.fixture
def seed_data(tmp_path):
    root = tmp_path / "seed"
    _people_and_eval(root / "images" / "train", root / "images" / "eval")
    return root


def _decide(store, index):
    fp = index.fingerprint
    normal = [p for p in index.images["path"] if p.endswith(f"{P1}/normal.jpg")][0]
    eval_e1 = [p for p in index.images["path"] if p.endswith(E1)][0]
    eval_e2 = [p for p in index.images["path"] if p.endswith(E2)][0]
    store.record(fp, P1, "gender", "accept", given=1, suggested=0, person=P1, detectors="person_level,cleanlab",
                 score=7.5, note=AWKWARD)
    store.record(fp, P1, "age", "set", given=0, new_value=1, person=P1)           # bin only -> 25
    store.record(fp, P2, "age", "set", given=2, new_age=38, person=P2)            # typed age
    store.record(fp, normal, "mask", "keep", given=2, suggested=1, person=P1)
    store.record(fp, eval_e1, "mask", "accept", given=2, suggested=1)             # normal -> incorrect
    store.record(fp, eval_e2, "gender", "skip", given=0, suggested=1)
    store.record(fp, "images/gone/person_x", "age", "keep", given=1)              # not in the data any more
    return dict(normal=normal, e1=eval_e1, e2=eval_e2)


def _tree_hashes(root: Path) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
    return out


def test_value_names_and_age_in_bin():
    assert value_name("gender", 1) == "female"
    assert value_name("mask", 1) == "incorrect"
    assert value_name("age", 1) == "25–39"
    assert value_name("age", pd.NA) == ""
    assert age_in_bin(24, 1, DEFAULT_BINS) == 25
    assert age_in_bin(45, 1, DEFAULT_BINS) == 39
    assert age_in_bin(30, 1, DEFAULT_BINS) == 30
    assert age_in_bin(30, 0, DEFAULT_BINS) == 24
    assert age_in_bin(30, 2, DEFAULT_BINS) == 40


def test_relabel_frame_rows(competition_data, tmp_path):
    index = index_dataset(competition_data)
    store = ReviewStore(tmp_path / "r.sqlite")
    items = _decide(store, index)
    frame = relabel_frame(store, index.fingerprint, index.images)
    assert list(frame.columns) == RELABEL_COLUMNS
    assert len(frame) == 7
    rows = {(r.item, r.field): r for r in frame.itertuples(index=False)}

    g = rows[(P1, "gender")]
    assert g.item_kind == "person" and g.path == f"train/images/{P1}" and g.person_id == "000001"
    assert (g.given_name, g.new_name, g.changed, g.decision) == ("female", "male", True, "accept")
    assert g.note == AWKWARD and g.detectors == "person_level,cleanlab" and g.score == 7.5

    a = rows[(P1, "age")]
    assert (a.given_age, a.new, a.new_name, a.new_age, a.new_age_source) == (24, 1, "25–39", 25, "bin")
    b = rows[(P2, "age")]
    assert (b.new, b.new_age, b.new_age_source, b.changed) == (1, 38, "reviewer", True)

    k = rows[(items["normal"], "mask")]
    assert k.item_kind == "image" and not k.changed and k.new_name == "not_wear"
    s = rows[(items["e2"], "gender")]
    assert s.decision == "skip" and not s.changed and pd.isna(s.new) and s.new_name == ""
    m = rows[("images/gone/person_x", "age")]
    assert m.item_kind == "missing"


def test_relabel_csv_round_trip(competition_data, tmp_path):
    index = index_dataset(competition_data)
    store = ReviewStore(tmp_path / "r.sqlite")
    _decide(store, index)
    frame = relabel_frame(store, index.fingerprint, index.images)
    path = write_relabel_csv(frame, tmp_path / "out" / "relabel.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    assert raw == csv_bytes(frame)
    back = read_export_csv(path)
    assert list(back.columns) == RELABEL_COLUMNS
    assert back["note"].tolist() == frame["note"].tolist()
    assert AWKWARD in back["note"].tolist()
    assert back.loc[back["item"] == P1, "person_id"].tolist() == ["000001", "000001"]
    # Typed round trip with pandas' defaults too (numbers come back as numbers).
    typed = pd.read_csv(path, encoding="utf-8-sig")
    assert typed["note"].fillna("").tolist() == frame["note"].tolist()
    assert typed["changed"].tolist() == frame["changed"].tolist()


def test_corrected_manifests_competition_layout(competition_data, tmp_path):
    index = index_dataset(competition_data)
    store = ReviewStore(tmp_path / "r.sqlite")
    items = _decide(store, index)
    decisions = relabel_frame(store, index.fingerprint, index.images)
    out = corrected_manifests(index.root, index.layout, decisions, index.images, bins=index.bins)

    train = out["train.csv"]
    assert list(train.columns) == TRAIN_CSV_COLUMNS + ["corrected_path", "changed_fields"]
    r1 = train.set_index("path").loc[P1]
    assert (r1["id"], r1["gender"], r1["age"]) == ("000001", "male", "25")
    assert r1["corrected_path"] == "000001_male_Asian_25" and r1["changed_fields"] == "gender;age"
    assert r1["original_author"] == AWKWARD
    r2 = train.set_index("path").loc[P2]
    assert (r2["gender"], r2["age"], r2["corrected_path"]) == ("male", "38", "100k-000038_male_White_38")

    info = out["info.csv"].set_index("ImageID")
    assert info.loc[E1, "ans"] == "10"  # incorrect(1)*6 + female(1)*3 + 25-39(1)
    assert info.loc[E1, "corrected_ImageID"] == "ffhq-13643_female_LatinoHispanic_37_incorrect_mask.png"
    assert info.loc[E2, "ans"] == "1" and info.loc[E2, "changed_fields"] == ""  # skip changes nothing

    images = out["images.csv"].set_index("path")
    p1_rows = images[images["person"] == P1]
    assert len(p1_rows) == 7
    assert (p1_rows["corrected_gender"] == 0).all() and (p1_rows["corrected_age"] == 25).all()
    assert (p1_rows["corrected_age_bin"] == 1).all()
    assert images.loc[items["normal"], "corrected_mask"] == 2  # kept
    assert images.loc[items["e1"], "corrected_class_id"] == 10

    # Through the files: every cell written comes back as written.
    for name, frame in out.items():
        path = write_relabel_csv(frame, tmp_path / "files" / name)
        back = read_export_csv(path)
        assert back.equals(frame.astype(str).replace({"<NA>": ""})), name


def test_corrected_manifests_seed_layout_generated(seed_data, tmp_path):
    index = index_dataset(seed_data)
    assert index.layout == "seed"
    store = ReviewStore(tmp_path / "r.sqlite")
    _decide(store, index)
    decisions = relabel_frame(store, index.fingerprint, index.images)
    out = corrected_manifests(index.root, index.layout, decisions, index.images, bins=index.bins)
    train = out["train.csv"].set_index("path")
    assert sorted(train.index) == sorted([P1, P2])
    assert train.loc[P1, "id"] == "000001" and train.loc[P1, "gender"] == "male"
    assert train.loc[P1, "race"] == "Asian" and train.loc[P1, "age"] == "25"
    info = out["info.csv"].set_index("ImageID")
    assert list(out["info.csv"].columns[:2]) == ["ImageID", "ans"]
    assert info.loc[E2, "ans"] == "1"  # wear(0), male(0), 30 -> 25-39 (1)
    assert info.loc[E1, "ans"] == "10"


def test_export_all_writes_files_and_never_touches_images(competition_data, tmp_path):
    index = index_dataset(competition_data)
    store = ReviewStore(tmp_path / "r.sqlite")
    _decide(store, index)
    before = _tree_hashes(competition_data)
    paths = export_all(store, index)
    assert _tree_hashes(competition_data) == before
    assert set(paths) == {"relabel.csv", "train.csv", "info.csv", "images.csv", "history.csv"}
    folder = paths["relabel.csv"].parent
    assert folder.parent == Path(os.environ["MASK_AUDIT_WORKSPACE"]) / "exports"
    assert all(p.parent == folder and p.read_bytes().startswith(b"\xef\xbb\xbf") for p in paths.values())
    assert len(read_export_csv(paths["history.csv"])) == 7
    with pytest.raises(ValueError, match="inside the dataset"):
        export_all(store, index, competition_data / "exports")


def test_cli_export(competition_data, tmp_path, capsys):
    from audit.workspace import workspace_dir

    index = index_dataset(competition_data)
    _decide(ReviewStore(workspace_dir() / "reviews.sqlite"), index)
    before = _tree_hashes(competition_data)
    assert cli_main(["export", str(competition_data), "--out", str(tmp_path / "x")]) == 0
    printed = capsys.readouterr().out
    assert "gender accept 1" in printed and "relabel.csv" in printed
    back = read_export_csv(tmp_path / "x" / "train.csv")
    assert back.set_index("path").loc[P1, "gender"] == "male"
    assert _tree_hashes(competition_data) == before
    assert cli_main(["export", str(tmp_path / "nowhere")]) == 2


def test_cli_export_without_decisions_says_so(seed_data, tmp_path, capsys):
    assert cli_main(["export", str(seed_data), "--out", str(tmp_path / "y")]) == 0
    assert "No decisions recorded" in capsys.readouterr().out
    assert read_export_csv(tmp_path / "y" / "relabel.csv").empty


def test_free_text_that_looks_like_a_formula_is_exported_as_text(tmp_path):
    """A reviewer's note or name starting with = + - @ would run as a formula in Excel; the export
    prefixes an apostrophe there and nowhere else (paths and manifests stay exact)."""
    frame = pd.DataFrame({
        "path": ["=not a note", "images/b.jpg", "images/c.jpg", "images/d.jpg", "images/e.jpg"],
        "note": ['=HYPERLINK("http://x","y")', "-5 years off", "@SUM(A1)", "fine = yes", ""],
        "reviewer": ["+ann", "bo", "cy", "di", "ed"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    back = read_export_csv(write_relabel_csv(frame, tmp_path / "x.csv"))
    assert back["note"].tolist() == ['\'=HYPERLINK("http://x","y")', "'-5 years off", "'@SUM(A1)", "fine = yes", ""]
    assert back["reviewer"].tolist() == ["'+ann", "bo", "cy", "di", "ed"]
    assert back["path"].tolist() == frame["path"].tolist()  # not free text: untouched
    assert frame["note"].iloc[0].startswith("=")  # the caller's frame is not modified


@pytest.mark.parametrize("note", [" =1+1", "\n=HYPERLINK(\"http://x\")", "\r\n+cmd", "\t-2", "  @SUM(A1)",
                                  "\u00a0=1", "\u3000=1", "\n\n  = 2", "\ttext", "\nplain"])
def test_formula_guard_sees_through_leading_whitespace_and_newlines(tmp_path, note):
    frame = pd.DataFrame({"path": ["images/a.jpg"], "note": [note], "reviewer": ["ann"]})
    from audit.export import guard_formulas

    assert guard_formulas(frame)["note"].iloc[0] == "'" + note
    back = read_export_csv(write_relabel_csv(frame, tmp_path / "x.csv"))["note"].iloc[0]
    assert back.startswith("'") and back[1:].split() == note.split()  # the CSV may turn CR LF into LF


@pytest.mark.parametrize("note", ["fine = yes", "a-b", "e@mail.com", "", "  spaced out", "5 - 3"])
def test_formula_guard_leaves_ordinary_notes_alone(tmp_path, note):
    frame = pd.DataFrame({"path": ["images/a.jpg"], "note": [note], "reviewer": ["ann"]})
    back = read_export_csv(write_relabel_csv(frame, tmp_path / "x.csv"))
    assert back["note"].iloc[0] == note


def test_cli_export_never_writes_over_someones_folder(seed_data, tmp_path, capsys):
    from audit.workspace import workspace_dir

    ReviewStore(workspace_dir() / "reviews.sqlite")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("important")
    only_csv = tmp_path / "backup"
    only_csv.mkdir()
    (only_csv / "train.csv").write_text("my original train.csv")  # a name export writes, but not an export
    for out in (mine, only_csv, workspace_dir(), tmp_path / "thesis_link"):
        if out.name == "thesis_link":
            out.symlink_to(mine)
        assert cli_main(["export", str(seed_data), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--out" in err, err
    assert (mine / "thesis.txt").read_text() == "important" and sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    assert (only_csv / "train.csv").read_text() == "my original train.csv"
    # an earlier export of ours (and an empty folder) may be written again
    (tmp_path / "empty").mkdir()
    assert cli_main(["export", str(seed_data), "--out", str(tmp_path / "empty")]) == 0
    assert cli_main(["export", str(seed_data), "--out", str(tmp_path / "empty")]) == 0


def test_cli_export_with_a_reviews_file_that_is_not_a_store(seed_data, tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite")
    assert cli_main(["export", str(seed_data), "--reviews", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is not a review store" in err and len(err.strip().splitlines()) == 1
    assert bad.read_text() == "not sqlite" and not (tmp_path / "o").exists()
