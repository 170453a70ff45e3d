import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from audit import dataset_index as di
from audit.cli import main as cli_main
from audit.dataset_index import FINDING_KINDS, DatasetNotFound, detect_layout, index_dataset
from audit.labels import COMPETITION_BINS, DEFAULT_BINS, TRAIN_MASK_TYPES, class_id

REPO = Path(__file__).resolve().parent.parent

PEOPLE = [
    "100k-000038_female_White_18",
    "ffhq-13643_female_LatinoHispanic_37",
    "000001_male_Asian_45",
    "003397-1_female_Black_30",
]
EVAL = [
    "ffhq-24905_female_Asian_30_incorrect_mask.png",
    "100k-000120_male_White_52_mask.jpg",
    "ffhq-02873_male_Indian_22_normal.PNG",
    "000777_female_MiddleEastern_61_mask2.jpeg",
]
TRAIN_HEADER = ["id", "gender", "race", "age", "path", "original_photo_url", "original_author",
                "photo_license", "photo_license_url", "dataset"]
INFO_HEADER = ["ImageID", "ans", "original_photo_url", "original_author", "photo_license",
               "photo_license_url", "dataset"]


def _dirs(root: Path, layout: str) -> tuple[Path, Path]:
    if layout == "seed":
        return root / "images" / "train", root / "images" / "eval"
    return root / "train" / "images", root / "eval" / "images"


def _dataset_of(pid: str) -> str:
    return "100k Faces Dataset" if pid.startswith("100k-") else "Flickr-Faces-HQ Dataset"


def _write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _train_row(folder: str) -> list:
    pid, gender, race, age = folder.split("_")
    return [pid, gender, race, age, folder, f"https://x/{pid}", f"author of {pid}", "CC BY", "https://lic", _dataset_of(pid)]


def _info_row(name: str, bins=DEFAULT_BINS) -> list:
    stem = name.rsplit(".", 1)[0]
    pid, gender, race, age, *mt = stem.split("_")
    mt = "_".join(mt).lower()
    mask = 1 if mt == "incorrect_mask" else 2 if mt == "normal" else 0
    ans = class_id(mask, int(gender == "female"), bins.bin(int(age)))
    return [name, str(ans), f"https://x/{pid}", f"author of {pid}", "CC BY", "https://lic", _dataset_of(pid)]


def make_tree(root: Path, layout: str = "seed", people=PEOPLE, eval_names=EVAL, csvs: bool = True) -> Path:
    """A clean tiny tree: 1-byte files (names are all the index reads without check_images)."""
    train_dir, eval_dir = _dirs(root, layout)
    for folder in people:
        (train_dir / folder).mkdir(parents=True)
        for stem in TRAIN_MASK_TYPES:
            (train_dir / folder / f"{stem}.jpg").write_bytes(b"x")
    eval_dir.mkdir(parents=True)
    for name in eval_names:
        (eval_dir / name).write_bytes(b"x")
    if layout == "competition" and csvs:
        _write_csv(root / "train" / "train.csv", TRAIN_HEADER, [_train_row(f) for f in people])
        _write_csv(root / "eval" / "info.csv", INFO_HEADER, [_info_row(n) for n in eval_names])
    return root


def kinds(index) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, path, _detail in index.findings.itertuples(index=False, name=None):
        out.setdefault(kind, []).append(path)
    return out


# ---- layouts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["seed", "competition"])
def test_clean_tree_indexes_every_image_without_findings(tmp_path, layout):
    root = make_tree(tmp_path / "d", layout)
    index = index_dataset(root)
    assert index.layout == layout and index.root == root.resolve()
    assert index.findings.empty, index.findings
    assert list(index.images.columns) == list(di.IMAGE_COLUMNS)
    assert list(index.findings.columns) == ["kind", "path", "detail"]
    imgs = index.images
    assert len(imgs) == 4 * 7 + 4 and index.people == 4
    assert (imgs["split"] == "train").sum() == 28
    assert list(imgs.sort_values(["split", "path"])["path"]) == list(imgs["path"])
    assert imgs[["gender", "age", "age_bin", "mask", "class_id"]].dtypes.map(lambda d: d.kind).eq("i").all()
    # data-relative POSIX paths that exist
    assert all((root / p).is_file() for p in imgs["path"])
    prefix = "images/train/" if layout == "seed" else "train/images/"
    assert imgs.loc[imgs["split"] == "train", "path"].str.startswith(prefix).all()

    r = imgs.set_index("path")
    p = f"{prefix}ffhq-13643_female_LatinoHispanic_37/incorrect_mask.jpg"
    assert r.loc[p, ["person", "person_id", "race", "age", "mask_type", "ext"]].tolist() == [
        "ffhq-13643_female_LatinoHispanic_37", "ffhq-13643", "LatinoHispanic", 37, "incorrect_mask", "jpg"]
    assert (r.loc[p, "gender"], r.loc[p, "age_bin"], r.loc[p, "mask"], r.loc[p, "class_id"]) == (1, 1, 1, 10)
    ev = f"{'images/eval' if layout == 'seed' else 'eval/images'}/ffhq-02873_male_Indian_22_normal.PNG"
    assert (r.loc[ev, "class_id"], r.loc[ev, "ext"], r.loc[ev, "person"], r.loc[ev, "mask_type"]) == (
        12, "png", "ffhq-02873_male_Indian_22", "normal")
    # source: id prefix (seed) or the CSV dataset column (competition); unknown for plain digit ids
    src = imgs.drop_duplicates("person_id").set_index("person_id")["source"]
    assert src["100k-000038"] == "GAN" and src["ffhq-13643"] == "photo"
    if layout == "seed":
        assert src["000001"] == "unknown"
        assert (imgs[["dataset", "author", "license", "license_url", "photo_url"]] == "").all().all()
    else:
        assert src["000001"] == "photo"  # its CSV row names FFHQ
        row = r.loc[p]
        assert (row["author"], row["license"], row["license_url"], row["photo_url"]) == (
            "author of ffhq-13643", "CC BY", "https://lic", "https://x/ffhq-13643")
        assert row["dataset"] == "Flickr-Faces-HQ Dataset"


def test_bins_change_age_bin_and_class_but_not_fingerprint(tmp_path):
    root = make_tree(tmp_path / "d")
    a = index_dataset(root)
    b = index_dataset(root, bins=COMPETITION_BINS)
    assert b.bins == COMPETITION_BINS
    assert a.fingerprint == b.fingerprint
    r = b.images.set_index("path")
    assert r.loc["images/train/ffhq-13643_female_LatinoHispanic_37/normal.jpg", "age_bin"] == 1
    assert r.loc["images/train/100k-000038_female_White_18/normal.jpg", "age_bin"] == 0
    assert r.loc["images/eval/000777_female_MiddleEastern_61_mask2.jpeg", "age_bin"] == 2
    assert r.loc["images/train/000001_male_Asian_45/normal.jpg", "age_bin"] == 1  # 45: 30-59 here, >=40 by default
    assert a.images.set_index("path").loc["images/train/000001_male_Asian_45/normal.jpg", "age_bin"] == 2


def test_fingerprint_is_stable_and_sees_sizes_names_and_labels(tmp_path):
    root = make_tree(tmp_path / "d")
    fp = index_dataset(root).fingerprint
    assert index_dataset(root).fingerprint == fp
    assert make_tree(tmp_path / "copy").exists() and index_dataset(tmp_path / "copy").fingerprint == fp  # root-independent
    (root / "images/eval" / EVAL[0]).write_bytes(b"xy")
    fp2 = index_dataset(root).fingerprint
    assert fp2 != fp
    (root / "images/train" / PEOPLE[0]).rename(root / "images/train" / "100k-000038_male_White_18")
    assert index_dataset(root).fingerprint not in (fp, fp2)


@pytest.mark.parametrize("layout", ["seed", "competition"])
@pytest.mark.parametrize("sub", ["data", "input/data"])
def test_parent_folder_is_accepted(tmp_path, layout, sub):
    data = make_tree(tmp_path / "top" / sub, layout)
    assert detect_layout(tmp_path / "top") == (data.resolve(), layout)
    assert detect_layout(data) == (data.resolve(), layout)
    assert len(index_dataset(tmp_path / "top").images) == 32


def test_seed_images_folder_itself_is_accepted(tmp_path):
    root = make_tree(tmp_path / "d")
    assert detect_layout(root / "images") == (root.resolve(), "seed")


@pytest.mark.parametrize("make", [
    lambda p: p,                                   # empty folder
    lambda p: (p / "photos").mkdir() or p,         # something else
    lambda p: p / "missing",                       # does not exist
])
def test_not_a_dataset_raises_one_line_naming_the_layouts(tmp_path, make):
    root = make(tmp_path)
    with pytest.raises(DatasetNotFound) as err:
        detect_layout(root)
    msg = str(err.value)
    assert "\n" not in msg and "images/train/<person>/" in msg and "eval/info.csv" in msg
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("sub", ["input", "anything", "deeper/still"])
def test_a_dataset_elsewhere_inside_is_never_indexed_silently(tmp_path, sub):
    """issue #11: `index DIR` on a folder of unrelated things looked deeper and indexed what it found.
    It looks only where its error says; a dataset one level down is named in the message."""
    make_tree(tmp_path / "top" / sub)
    (tmp_path / "top" / "notes.txt").write_text("unrelated")
    with pytest.raises(DatasetNotFound) as err:
        detect_layout(tmp_path / "top")
    msg = str(err.value)
    assert "\n" not in msg and "in data/ or input/data/ under it" in msg
    if "/" not in sub:
        assert f"(it holds one in {sub}/: pass that folder)" in msg


def test_several_datasets_under_one_parent_are_named(tmp_path):
    make_tree(tmp_path / "p" / "one")
    make_tree(tmp_path / "p" / "two", "competition")
    with pytest.raises(DatasetNotFound, match="one, two/: pass that folder"):
        detect_layout(tmp_path / "p")


@pytest.mark.parametrize("layout", ["seed", "competition"])
def test_a_missing_split_is_a_finding(tmp_path, layout):
    root = make_tree(tmp_path / "d", layout)
    _train, eval_dir = _dirs(root, layout)
    for f in eval_dir.iterdir():
        f.unlink()
    eval_dir.rmdir()
    index = index_dataset(root)
    assert kinds(index) == {"missing_split": ["images/eval" if layout == "seed" else "eval/images"]}
    assert len(index.images) == 28 and (index.images["split"] == "train").all()


def test_only_eval_loads(tmp_path):
    root = make_tree(tmp_path / "d", people=[])  # no person: images/train is never made
    assert not (root / "images" / "train").exists()
    index = index_dataset(root)
    assert kinds(index) == {"missing_split": ["images/train"]}
    assert len(index.images) == 4 and index.people == 0


def test_missing_csvs_are_findings_and_names_still_label(tmp_path):
    root = make_tree(tmp_path / "d", "competition", csvs=False)
    index = index_dataset(root)
    assert kinds(index) == {"missing_csv": ["train/train.csv", "eval/info.csv"]}
    assert len(index.images) == 32


# ---- findings planted -------------------------------------------------------------------------

def test_every_file_level_finding(tmp_path):
    root = make_tree(tmp_path / "d")
    t, e = root / "images" / "train", root / "images" / "eval"
    p0, p1, p2 = (t / p for p in PEOPLE[:3])
    (p0 / "._normal.jpg").write_bytes(b"x")            # hidden (AppleDouble)
    (t / ".DS_Store").write_bytes(b"x")                 # hidden
    (e / ".hidden.png").write_bytes(b"x")
    (p0 / ".ipynb_checkpoints").mkdir()                 # hidden folder
    (p0 / "notes.txt").write_text("x")                  # unknown
    (t / "README.md").write_text("x")                   # a file where a person folder belongs
    (p0 / "sub").mkdir()                                # a folder inside a person folder
    (e / "Thumbs.db").write_bytes(b"x")
    (t / "not_a_person").mkdir()                        # unparseable person
    (t / "not_a_person" / "normal.jpg").write_bytes(b"x")
    (p1 / "mask6.jpg").write_bytes(b"x")                # unparseable train file
    (e / "ffhq-9_male_White.png").write_bytes(b"x")     # unparseable eval file
    (p1 / "mask2.jpg").unlink()                         # missing
    (p1 / "normal.jpg").unlink()
    (p2 / "normal.png").write_bytes(b"x")               # extra: slot twice
    (p2 / "mask.JPG").write_bytes(b"x")                 # extra: outside the 7 slots
    (t / PEOPLE[3] / "mask3.jpg").write_bytes(b"")      # empty
    (t / "000001_female_Asian_45").mkdir()              # duplicate id in train
    for stem in TRAIN_MASK_TYPES:
        (t / "000001_female_Asian_45" / f"{stem}.jpg").write_bytes(b"x")
    (e / "ffhq-24905_female_Asian_30_mask.png").write_bytes(b"x")   # duplicate eval id
    (e / "003397-1_female_Black_30_mask.png").write_bytes(b"x")     # id in train and eval

    index = index_dataset(root)
    k = kinds(index)
    assert set(k) == {"hidden_file", "unknown_file", "unparseable_person", "unparseable_name", "missing_files",
                      "extra_files", "empty_file", "duplicate_id", "id_in_train_and_eval"}
    assert sorted(k["hidden_file"]) == sorted([
        f"images/train/{PEOPLE[0]}/._normal.jpg", "images/train/.DS_Store", "images/eval/.hidden.png",
        f"images/train/{PEOPLE[0]}/.ipynb_checkpoints"])
    assert sorted(k["unknown_file"]) == sorted([
        f"images/train/{PEOPLE[0]}/notes.txt", "images/train/README.md", f"images/train/{PEOPLE[0]}/sub",
        "images/eval/Thumbs.db"])
    assert k["unparseable_person"] == ["images/train/not_a_person"]
    assert sorted(k["unparseable_name"]) == sorted([f"images/train/{PEOPLE[1]}/mask6.jpg",
                                                   "images/eval/ffhq-9_male_White.png"])
    assert k["missing_files"] == [f"images/train/{PEOPLE[1]}"]
    detail = index.findings.set_index("kind").loc["missing_files", "detail"]
    assert "mask2" in detail and "normal" in detail
    assert k["extra_files"] == [f"images/train/{PEOPLE[2]}"]
    detail = index.findings.set_index("kind").loc["extra_files", "detail"]
    assert "normal.jpg, normal.png" in detail and "mask.JPG" in detail
    assert k["empty_file"] == [f"images/train/{PEOPLE[3]}/mask3.jpg"]
    assert sorted(k["duplicate_id"]) == sorted(["images/train/000001_male_Asian_45",
                                               "images/eval/ffhq-24905_female_Asian_30_mask.png"])
    assert k["id_in_train_and_eval"] == ["images/eval/003397-1_female_Black_30_mask.png"]

    # the rest loads: skipped files are absent, kept ones present
    paths = set(index.images["path"])
    assert f"images/train/{PEOPLE[2]}/normal.png" in paths and f"images/train/{PEOPLE[2]}/mask.JPG" in paths
    assert f"images/train/{PEOPLE[3]}/mask3.jpg" not in paths
    assert not any("not_a_person" in p or "/." in p or p.endswith((".txt", ".db")) for p in paths)
    assert len(index.images) == 28 - 2 + 2 - 1 + 7 + 4 + 2
    assert index.people == 5


def test_csv_findings(tmp_path):
    people = PEOPLE + ["ffhq-00005_male_White_33"]
    root = make_tree(tmp_path / "d", "competition", people=people)
    rows = [_train_row(f) for f in people]
    rows[0][1] = "male"                                 # gender disagrees
    rows[1][2] = "Asian"                                # race disagrees
    rows[2][3] = "46"                                   # age disagrees
    rows[3][3] = "thirty"                               # invalid
    del rows[4]                                         # folder the CSV lacks
    rows.append(_train_row("ffhq-77777_female_Black_41"))   # row without a folder
    rows.append(list(rows[0]))                          # duplicate row
    rows[-1][1] = "female"
    _write_csv(root / "train" / "train.csv", TRAIN_HEADER, rows)
    info = [_info_row(n) for n in EVAL]
    info[0][1] = "16"                                   # ans disagrees with the name
    info[1][1] = "99"                                   # invalid ans
    extra_file = "ffhq-55555_female_Asian_20_normal.png"
    (root / "eval" / "images" / extra_file).write_bytes(b"x")   # file the CSV lacks
    info.append(_info_row("ffhq-66666_male_Asian_20_mask.png"))  # row without a file
    _write_csv(root / "eval" / "info.csv", INFO_HEADER, info)

    index = index_dataset(root)
    k = kinds(index)
    assert set(k) == {"csv_mismatch", "csv_invalid_value", "missing_from_csv", "csv_row_without_file",
                      "csv_duplicate_row"}
    f = index.findings
    mism = f[f["kind"] == "csv_mismatch"]
    assert sorted(mism["path"]) == sorted([f"train/images/{PEOPLE[0]}", f"train/images/{PEOPLE[1]}",
                                           f"train/images/{PEOPLE[2]}", f"eval/images/{EVAL[0]}"])
    text = " | ".join(mism["detail"])
    assert "gender male in the CSV, female in the name" in text
    assert "race Asian in the CSV, LatinoHispanic in the name" in text
    assert "age 46 in the CSV, 45 in the name" in text
    assert re.search(r"line 2: ans 16 but the name says class 10 \(mask Not wear vs Incorrect", text)
    assert sorted(k["csv_invalid_value"]) == [f"eval/images/{EVAL[1]}", f"train/images/{PEOPLE[3]}"]
    assert sorted(k["missing_from_csv"]) == sorted([f"train/images/{people[4]}", f"eval/images/{extra_file}"])
    assert sorted(k["csv_row_without_file"]) == sorted(["train/images/ffhq-77777_female_Black_41",
                                                       "eval/images/ffhq-66666_male_Asian_20_mask.png"])
    assert k["csv_duplicate_row"] == [f"train/images/{PEOPLE[0]}"]
    # names win, everything on disk loads
    assert len(index.images) == 5 * 7 + 5
    r = index.images.set_index("path")
    assert r.loc[f"train/images/{PEOPLE[0]}/normal.jpg", "gender"] == 1
    assert r.loc[f"eval/images/{extra_file}", "source"] == "photo"  # from the id when the CSV lacks it
    assert r.loc[f"eval/images/{extra_file}", "author"] == ""


def test_unreadable_csv_and_missing_key_column(tmp_path):
    root = make_tree(tmp_path / "d", "competition")
    (root / "train" / "train.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    _write_csv(root / "eval" / "info.csv", ["name", "label"], [["a", "1"]])
    index = index_dataset(root)
    assert kinds(index) == {"csv_unreadable": ["train/train.csv", "eval/info.csv"]}
    assert len(index.images) == 32


def test_bom_csv_as_export_writes_it(tmp_path):
    root = make_tree(tmp_path / "d", "competition")
    for rel in ("train/train.csv", "eval/info.csv"):
        p = root / rel
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    index = index_dataset(root)
    assert index.findings.empty and (index.images["author"] != "").all()


def test_hash_named_eval_takes_labels_from_ans(tmp_path):
    root = make_tree(tmp_path / "d", "competition", eval_names=[])
    names = {"cbc5c6e168e63498590db46022617123f1fe1268.jpg": 16, "0a1b2c.png": 7, "ffff.jpg": 0}
    for n in names:
        (root / "eval" / "images" / n).write_bytes(b"x")
    _write_csv(root / "eval" / "info.csv", ["ImageID", "ans"], [[n, str(a)] for n, a in names.items()])
    (root / "eval" / "images" / "deadbeef.jpg").write_bytes(b"x")  # neither a name nor a CSV row
    index = index_dataset(root)
    assert sorted(kinds(index)) == ["missing_from_csv", "unparseable_name"]
    assert kinds(index)["unparseable_name"] == ["eval/images/deadbeef.jpg"]
    ev = index.images[index.images["split"] == "eval"].set_index("path")
    assert len(ev) == 3
    row = ev.loc["eval/images/cbc5c6e168e63498590db46022617123f1fe1268.jpg"]
    assert (row["class_id"], row["mask"], row["gender"], row["age_bin"], row["age"]) == (16, 2, 1, 1, -1)
    assert (row["mask_type"], row["race"], row["person_id"], row["source"]) == (
        "normal", "", "cbc5c6e168e63498590db46022617123f1fe1268", "unknown")
    assert ev.loc["eval/images/0a1b2c.png", "mask_type"] == "incorrect_mask"
    assert ev.loc["eval/images/ffff.jpg", "mask_type"] == "mask"


def test_ans_placeholder_is_ignored(tmp_path):
    names = [f"ffhq-{i:05d}_female_White_{20 + i}_normal.png" for i in range(12)]
    root = make_tree(tmp_path / "d", "competition", eval_names=names)
    _write_csv(root / "eval" / "info.csv", ["ImageID", "ans"], [[n, "0"] for n in names])
    index = index_dataset(root)
    assert kinds(index) == {"ans_placeholder": ["eval/info.csv"]}
    assert (index.images.loc[index.images["split"] == "eval", "mask"] == 2).all()


def test_ans_made_with_other_bins_is_one_finding_not_thousands(tmp_path):
    names = [f"ffhq-{i:05d}_female_White_{18 + 4 * i}_normal.png" for i in range(12)]  # ages 18..62
    root = make_tree(tmp_path / "d", "competition", eval_names=names)
    _write_csv(root / "eval" / "info.csv", ["ImageID", "ans"],
               [[n, _info_row(n, COMPETITION_BINS)[1]] for n in names])
    index = index_dataset(root)
    assert kinds(index) == {"ans_other_bins": ["eval/info.csv"]}
    assert index_dataset(root, bins=COMPETITION_BINS).findings.empty


def test_progress_is_reported(tmp_path):
    root = make_tree(tmp_path / "d")
    calls = []
    index_dataset(root, progress=lambda done, total, msg: calls.append((done, total, msg)))
    msgs = {m for _, _, m in calls}
    assert {"scanning train folders", "scanning eval files"} <= msgs
    assert all(0 < d <= t for d, t, _ in calls)
    assert (4, 4, "scanning eval files") in calls and (4, 4, "scanning train folders") in calls


def test_finding_kinds_are_documented():
    for kind in FINDING_KINDS:
        assert re.search(rf"^\s+{kind}\s", di.__doc__, re.M), kind


# ---- check_images -----------------------------------------------------------------------------

def _image_bytes(fmt: str, size=(384, 512)) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)  # noise, so a JPEG is long enough to cut in the middle of its data
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def test_check_images_flags_truncated_garbage_and_wrong_size(tmp_path):
    people = PEOPLE[:2]
    root = make_tree(tmp_path / "d", people=people, eval_names=EVAL[:2])
    jpg, png = _image_bytes("JPEG"), _image_bytes("PNG")
    for p in root.rglob("*"):
        if p.is_file():
            p.write_bytes(png if p.suffix.lower() == ".png" else jpg)
    t = root / "images" / "train"
    (t / people[0] / "mask1.jpg").write_bytes(jpg[: len(jpg) // 2])           # truncated JPEG
    (t / people[0] / "mask2.jpg").unlink()
    (t / people[0] / "mask2.png").write_bytes(b"this is not a png at all")     # garbage with .png
    (t / people[1] / "normal.jpg").write_bytes(_image_bytes("JPEG", (512, 384)))  # wrong size (w x h swapped)

    assert index_dataset(root).findings.empty  # names only: nothing decoded
    calls = []
    index = index_dataset(root, check_images=True, workers=2, progress=lambda d, n, m: calls.append((d, n, m)))
    k = kinds(index)
    assert k["truncated_image"] == [f"images/train/{people[0]}/mask1.jpg"]
    assert k["unreadable_image"] == [f"images/train/{people[0]}/mask2.png"]
    assert k["unexpected_size"] == [f"images/train/{people[1]}/normal.jpg"]
    assert "512x384 (w x h), expected 384x512" in index.findings.set_index("kind").loc["unexpected_size", "detail"]
    assert set(k) == {"truncated_image", "unreadable_image", "unexpected_size"}
    # undecodable files are dropped, the wrongly sized one is kept
    paths = set(index.images["path"])
    assert f"images/train/{people[0]}/mask1.jpg" not in paths and f"images/train/{people[1]}/normal.jpg" in paths
    assert len(index.images) == 2 * 7 + 2 - 2
    checks = [c for c in calls if c[2] == "checking images"]
    assert checks and checks[-1][0] == checks[-1][1] == 2 * 7 + 2


# ---- CLI --------------------------------------------------------------------------------------

def test_cli_json_schema(tmp_path, capsys):
    root = make_tree(tmp_path / "d", "competition")
    (root / "train" / "images" / PEOPLE[0] / ".DS_Store").write_bytes(b"x")
    assert cli_main(["index", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"images", "people", "layout", "root", "fingerprint", "counts", "findings"} <= set(out)
    assert (out["images"], out["people"], out["layout"]) == (32, 4, "competition")
    assert out["root"] == str(root.resolve())
    assert out["findings"] == [{"kind": "hidden_file", "path": f"train/images/{PEOPLE[0]}/.DS_Store",
                                "detail": "hidden file or folder"}]
    assert out["counts"]["split"] == {"train": 28, "eval": 4}
    assert out["counts"]["findings"] == {"hidden_file": 1}
    assert sum(out["counts"]["mask"].values()) == 32


def test_cli_summary_and_bins(tmp_path, capsys):
    root = make_tree(tmp_path / "d")
    (root / "images" / "eval" / "junk.txt").write_text("x")
    assert cli_main(["index", str(root), "--bins", "competition"]) == 0
    out = capsys.readouterr().out
    assert "seed layout" in out and "competition: <30" in out
    assert "Images: 32 (train 28 from 4 people; eval 4)" in out
    assert "unknown_file" in out and "images/eval/junk.txt" in out
    assert cli_main(["index", str(root), "--bins", "30,60", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bins"] == {"lo": 30, "hi": 60, "name": "custom"}


def test_cli_not_a_dataset_exits_2_with_one_line(tmp_path, capsys):
    assert cli_main(["index", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and "images/train/<person>/" in captured.err
    make_tree(tmp_path / "d")
    assert cli_main(["index", str(tmp_path / "d"), "--bins", "40,30"]) == 2
    assert cli_main(["index", str(tmp_path / "d"), "--workers", "0"]) == 2


def test_cli_subprocess_keeps_stdout_pure_json(tmp_path):
    root = make_tree(tmp_path / "d")
    res = subprocess.run([sys.executable, "-m", "audit", "index", str(root), "--json", "--check-images"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # 1-byte files do not decode: every one is a finding and dropped
    assert out["images"] == 0 and len(out["findings"]) == 32
    assert {f["kind"] for f in out["findings"]} == {"unreadable_image"}


# ---- the real names at full scale -------------------------------------------------------------

@pytest.mark.slow
def test_real_manifest_names_index_cleanly(tmp_path, real_manifest_dir):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_index import build_name_tree
    finally:
        sys.path.pop(0)
    root = build_name_tree(Path(real_manifest_dir), tmp_path / "real", "competition")
    index = index_dataset(root)
    assert index.layout == "competition"
    assert index.findings.empty, index.findings.head(20)
    imgs = index.images
    train, ev = imgs[imgs["split"] == "train"], imgs[imgs["split"] == "eval"]
    assert index.people == 2700 and len(train) == 2700 * 7 and len(ev) == 12600
    people = train.drop_duplicates("person")
    assert people["race"].value_counts().to_dict() == {
        "White": 1480, "LatinoHispanic": 523, "Asian": 399, "Black": 130, "MiddleEastern": 127, "Indian": 41}
    assert people["gender"].value_counts().to_dict() == {1: 1604, 0: 1096}
    assert people["source"].value_counts().to_dict() == {"GAN": 1797, "photo": 903}
    assert (people["age"].min(), people["age"].max(), people["age"].median()) == (16, 60, 27)
    assert ev["ext"].value_counts().to_dict() == {"png": 12080, "jpg": 520}
    assert (ev.loc[ev["ext"] == "png", "source"] == "photo").all() and (ev.loc[ev["ext"] == "jpg", "source"] == "GAN").all()
    assert ev["mask_type"].value_counts().to_dict() == {"mask": 5645, "incorrect_mask": 4167, "normal": 2788}
    assert (ev["age"].min(), ev["age"].max()) == (12, 67)
    assert ev["person_id"].is_unique
    # ans in info.csv agrees with every name under the default bins (else csv_mismatch above)
    info = pd.read_csv(Path(real_manifest_dir) / "info.csv", usecols=["ImageID", "ans"])
    got = ev.assign(ImageID=ev["path"].str.rsplit("/", n=1).str[1]).merge(info, on="ImageID")
    assert len(got) == 12600 and (got["class_id"] == got["ans"]).all()
    assert (train["author"] != "").all() and (ev["license"] != "").all()
    assert root.exists()


def test_check_images_finds_truncation_even_when_pillow_is_told_to_load_truncated(tmp_path, monkeypatch):
    from PIL import ImageFile

    root = make_tree(tmp_path / "d", people=PEOPLE[:1], eval_names=[])
    jpg = _image_bytes("JPEG")
    for p in root.rglob("*.jpg"):
        p.write_bytes(jpg)
    cut = root / "images" / "train" / PEOPLE[0] / "normal.jpg"
    cut.write_bytes(jpg[: len(jpg) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    index = index_dataset(root, check_images=True)
    assert kinds(index) == {"truncated_image": [f"images/train/{PEOPLE[0]}/normal.jpg"]}
    assert len(index.images) == 6


def test_csv_numbers_survive_a_spreadsheet_round_trip(tmp_path):
    root = make_tree(tmp_path / "d", "competition")
    rows = [_train_row(f) for f in PEOPLE]
    rows[0][3] = rows[0][3] + ".0"      # 18.0
    _write_csv(root / "train" / "train.csv", TRAIN_HEADER, rows)
    info = [_info_row(n) for n in EVAL]
    info[0][1] = info[0][1] + ".0"
    _write_csv(root / "eval" / "info.csv", INFO_HEADER, info)
    assert index_dataset(root).findings.empty
    rows[0][3] = "18.5"
    _write_csv(root / "train" / "train.csv", TRAIN_HEADER, rows)
    assert kinds(index_dataset(root)) == {"csv_invalid_value": [f"train/images/{PEOPLE[0]}"]}


def test_an_unlistable_split_is_a_finding(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "d")
    real = di._list_folder

    def deny_eval(path, root):
        if path.endswith("eval"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, root)

    monkeypatch.setattr(di, "_list_folder", deny_eval)
    index = index_dataset(root)
    assert kinds(index) == {"missing_split": ["images/eval"]}
    assert len(index.images) == 28


def test_train_csv_without_path_column_matches_by_id(tmp_path):
    root = make_tree(tmp_path / "d", "competition")
    header = [h for h in TRAIN_HEADER if h != "path"]
    rows = [[v for h, v in zip(TRAIN_HEADER, _train_row(f)) if h != "path"] for f in PEOPLE]
    rows[1][3] = "38"                                   # age disagrees with ffhq-13643_..._37
    rows.append(["ffhq-99999", "male", "White", "30", "", "", "", "", ""])
    _write_csv(root / "train" / "train.csv", header, rows)
    index = index_dataset(root)
    assert kinds(index) == {"csv_mismatch": [f"train/images/{PEOPLE[1]}"], "csv_row_without_file": ["train/images"]}
    assert "id ffhq-99999" in index.findings.set_index("kind").loc["csv_row_without_file", "detail"]
    assert (index.images.loc[index.images["split"] == "train", "author"] != "").all()


# ---- links, special files and odd data folders (issue #11) ------------------------------------

def _finding(index, kind):
    f = index.findings
    return f[f["kind"] == kind]


@pytest.mark.parametrize("layout", ["seed", "competition"])
def test_a_broken_link_in_a_person_folder_drops_only_that_file(tmp_path, layout):
    root = make_tree(tmp_path / "d", layout)
    train, eval_dir = _dirs(root, layout)
    person = train / PEOPLE[0]
    (person / "mask3.jpg").unlink()
    (person / "mask3.jpg").symlink_to(tmp_path / "gone.jpg")
    (eval_dir / "ffhq-99999_male_White_40_mask.jpg").symlink_to(tmp_path / "gone_too.jpg")
    index = index_dataset(root)
    rows = index.images[index.images["person"] == PEOPLE[0]]
    assert len(rows) == 6 and not rows["path"].str.endswith("mask3.jpg").any()
    broken = _finding(index, "broken_link")
    assert sorted(broken["path"]) == sorted([f"{train.relative_to(root)}/{PEOPLE[0]}/mask3.jpg",
                                             f"{eval_dir.relative_to(root)}/ffhq-99999_male_White_40_mask.jpg"])
    assert _finding(index, "unknown_file").empty  # no longer "cannot list the folder"
    assert len(index.images) == 31


def test_links_out_of_the_data_folder_are_never_followed(tmp_path):
    root = make_tree(tmp_path / "d")
    outside = make_tree(tmp_path / "elsewhere")
    train, eval_dir = _dirs(root, "seed")
    (train / PEOPLE[1] / "normal.jpg").unlink()
    (train / PEOPLE[1] / "normal.jpg").symlink_to(outside / "images" / "train" / PEOPLE[1] / "normal.jpg")
    (train / "000099_male_White_33").symlink_to(outside / "images" / "train" / PEOPLE[2], target_is_directory=True)
    (eval_dir / "x_male_White_40_mask.jpg").symlink_to(Path("/etc/hostname"))
    # a link that stays inside the data folder is followed as before
    (eval_dir / "000123_male_White_40_mask.jpg").symlink_to(eval_dir / EVAL[1])
    index = index_dataset(root)
    out = _finding(index, "outside_link")
    assert set(out["path"]) == {f"images/train/{PEOPLE[1]}/normal.jpg", "images/train/000099_male_White_33",
                                "images/eval/x_male_White_40_mask.jpg"}
    assert not index.images["path"].str.contains("000099|x_male").any()
    assert "images/eval/000123_male_White_40_mask.jpg" in set(index.images["path"])
    # a split folder that is itself a link out of the data folder is not scanned
    root2 = tmp_path / "d2"
    (root2 / "images").mkdir(parents=True)
    (root2 / "images" / "train").symlink_to(outside / "images" / "train", target_is_directory=True)
    (root2 / "images" / "eval").mkdir()
    index2 = index_dataset(root2)
    assert index2.images.empty and set(_finding(index2, "outside_link")["path"]) == {"images/train"}


def test_a_fifo_where_an_image_belongs_is_never_opened(tmp_path):
    import os

    root = make_tree(tmp_path / "d")
    train, eval_dir = _dirs(root, "seed")
    (train / PEOPLE[0] / "normal.jpg").unlink()
    os.mkfifo(train / PEOPLE[0] / "normal.jpg")
    os.mkfifo(eval_dir / "000555_male_White_40_mask.jpg")
    index = index_dataset(root, check_images=True)  # would block forever if it opened a FIFO
    assert set(_finding(index, "special_file")["path"]) == {f"images/train/{PEOPLE[0]}/normal.jpg",
                                                            "images/eval/000555_male_White_40_mask.jpg"}
    assert len(index_dataset(root).images.query("person == @PEOPLE[0]")) == 6


def _odd_roots(tmp_path):
    import os

    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file.txt").write_text("x")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    return {
        "empty": (tmp_path / "empty", "not a mask dataset"),
        "file": (tmp_path / "a_file.txt", "is a file, not a folder"),
        "broken link": (tmp_path / "broken", "broken symbolic link"),
        "fifo": (tmp_path / "fifo", "is a FIFO"),
        "missing": (tmp_path / "missing", "does not exist"),
    }


def test_odd_data_folders_are_one_line_each(tmp_path, capsys):
    for name, (root, says) in _odd_roots(tmp_path).items():
        with pytest.raises(DatasetNotFound, match=says):
            detect_layout(root)
        assert cli_main(["index", str(root)]) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err, (name, err)


@pytest.mark.parametrize("name", ["with space", "quote's \"double\"", "new\nline", "유니코드 données", "tab\there"])
def test_data_folder_names_with_odd_characters(tmp_path, capsys, name):
    root = make_tree(tmp_path / name)
    assert len(index_dataset(root).images) == 32
    assert cli_main(["index", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == str(root.resolve())
    (tmp_path / name / "images" / "train").rename(tmp_path / name / "x")
    (tmp_path / name / "images" / "eval").rename(tmp_path / name / "y")
    assert cli_main(["index", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1  # a newline in the name is escaped, not printed


@pytest.mark.slow
def test_a_folder_of_100000_junk_files_answers_quickly(tmp_path, capsys):
    import time

    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(100_000):
        (junk / f"file_{i:06d}.bin").touch()
    for i in range(300):
        (junk / f"dir_{i:03d}").mkdir()
    t0 = time.perf_counter()
    assert cli_main(["index", str(junk)]) == 2
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert "not a mask dataset" in err and len(err.strip().splitlines()) == 1
    assert seconds < 10, seconds
