"""Dataset layouts as data (audit/layouts.py, issue #12 item 4): the index, the app's re-index stamp
and the export read the layout descriptions; a third layout is one more DatasetLayout; the
fingerprint (read by column name now) keeps the values runs and the committed demo card key on."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from audit import layouts
from audit.dataset_index import EXPECTED_LAYOUTS, DatasetNotFound, detect_layout, index_dataset
from audit.labels import COMPETITION_BINS, TRAIN_MASK_TYPES
from audit.layouts import COMPETITION, LAYOUTS, SEED, DatasetLayout, get_layout

PEOPLE = ("100k-000038_female_White_18", "ffhq-13643_female_LatinoHispanic_37", "000001_male_Asian_45")
EVAL = ("ffhq-24905_female_Asian_30_incorrect_mask.png", "100k-000120_male_White_52_mask.jpg")
HASH_NAMED = (("0a1b2c3d4e.jpg", 17), ("ffeeddccbb.jpg", 3))  # no labels in the name: ans gives them
# sha256 of these trees as the index computed them before rows were read by name (commit 2504e99,
# r[4], r[9], r[-1]): runs, reviews and weights/demo/model.json's data_fingerprint key on the values.
FINGERPRINT_BEFORE = {
    "seed": "582ade48ac170c9fab43bc13bdc2156f81b1eb766182835dc519883fa75108b4",
    "competition": "0182c61e64f8e1a1a2ecd622c83581781ea4d069f975d2ec53ee1cf30d5a2616",
}


def _write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_tree(root: Path, layout: DatasetLayout) -> Path:
    """A tree in `layout`, from its description alone: files of known sizes (the index reads names
    and sizes only), and the layout's CSVs where it has them (with a hash-named eval file that
    only info.csv labels)."""
    for n, folder in enumerate(PEOPLE):
        (root / layout.train_images / folder).mkdir(parents=True)
        for k, slot in enumerate(TRAIN_MASK_TYPES):
            (root / layout.train_images / folder / f"{slot}.jpg").write_bytes(b"x" * (1 + n + k))
    (root / layout.eval_images).mkdir(parents=True)
    for k, name in enumerate(EVAL):
        (root / layout.eval_images / name).write_bytes(b"y" * (5 + k))
    if layout.train_csv:
        _write_csv(root / layout.train_csv, ["id", "gender", "race", "age", "path"],
                   [[*folder.split("_"), folder] for folder in PEOPLE])
    if layout.eval_csv:
        for name, _ans in HASH_NAMED:
            (root / layout.eval_images / name).write_bytes(b"z" * 9)
        _write_csv(root / layout.eval_csv, ["ImageID", "ans"], [[EVAL[0], 10], [EVAL[1], 2], *HASH_NAMED])
    return root


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.name)
def test_each_layout_is_found_and_indexed_from_its_description(tmp_path, layout):
    root = write_tree(tmp_path / "d", layout)
    assert detect_layout(root) == (root.resolve(), layout.name)
    index = index_dataset(root)
    assert index.layout == layout.name and index.findings.empty
    n_hashed = len(HASH_NAMED) if layout.eval_csv else 0
    assert len(index.images) == len(PEOPLE) * 7 + len(EVAL) + n_hashed
    folder = {"train": layout.train_images, "eval": layout.eval_images}
    assert all(path.startswith(folder[split] + "/") for path, split in zip(index.images["path"], index.images["split"]))


def test_index_finds_a_parent_folder_only_where_the_message_says(tmp_path):
    write_tree(tmp_path / "top" / "data", SEED)
    assert index_dataset(tmp_path / "top").root == (tmp_path / "top" / "data").resolve()
    assert detect_layout(tmp_path / "top" / "data" / "images")[1] == "seed"  # SEED.inner_folders


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.name)
def test_fingerprint_values_are_unchanged_by_reading_rows_by_name(tmp_path, layout):
    root = write_tree(tmp_path / "d", layout)
    index = index_dataset(root)
    assert index.fingerprint == FINGERPRINT_BEFORE[layout.name]
    assert index_dataset(root, bins=COMPETITION_BINS).fingerprint == FINGERPRINT_BEFORE[layout.name]


def test_the_descriptions_say_what_the_code_used_to_hard_code():
    assert (SEED.train_images, SEED.eval_images, SEED.manifests) == ("images/train", "images/eval", ())
    assert (COMPETITION.train_images, COMPETITION.eval_images) == ("train/images", "eval/images")
    assert COMPETITION.manifests == ("train/train.csv", "eval/info.csv")
    # The app's stamp: every folder on the way to an image folder or CSV, as it listed by hand.
    assert layouts.all_stamp_paths() == ("images", "images/train", "images/eval", "train", "train/images", "eval",
                                         "eval/images", "train/train.csv", "eval/info.csv")
    assert EXPECTED_LAYOUTS == (
        "expected images/train/<person>/ + images/eval/ (seed layout) or train/images/ + train/train.csv, "
        "eval/images/ + eval/info.csv (competition layout), in it or in data/ or input/data/ under it")
    assert get_layout("competition") is COMPETITION and get_layout(SEED) is SEED
    with pytest.raises(ValueError, match="unknown dataset layout 'flat'; known: seed, competition"):
        get_layout("flat")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.name)
def test_the_stamp_changes_when_a_person_or_a_manifest_changes(tmp_path, layout):
    pytest.importorskip("streamlit")
    from ui.app_cache import dataset_stamp

    root = write_tree(tmp_path / "d", layout)
    before = dataset_stamp(root)
    (root / layout.train_images / "000002_male_Asian_50").mkdir()
    after_person = dataset_stamp(root)
    assert after_person != before
    for manifest in layout.manifests:
        os.utime(root / manifest, ns=(1, 1))
        assert dataset_stamp(root) != after_person


# A third layout, as a newcomer would add it: one DatasetLayout in audit/layouts.py.
FLAT = DatasetLayout(name="flat", train_images="people", eval_images="test", train_csv="people.csv",
                     markers=("people", "test"), expected="people/<person>/ + people.csv, test/")


def test_a_third_layout_is_one_description(tmp_path, monkeypatch):
    from audit.export import corrected_manifests, relabel_frame
    from audit.reviews import ReviewStore

    monkeypatch.setattr(layouts, "LAYOUTS", (*LAYOUTS, FLAT))
    root = write_tree(tmp_path / "d", FLAT)
    assert detect_layout(root) == (root.resolve(), "flat")
    index = index_dataset(root)
    assert index.layout == "flat" and index.findings.empty and len(index.images) == len(PEOPLE) * 7 + len(EVAL)
    # Its train.csv is read by the index (a row missing is a finding) and by the export (rows kept).
    _write_csv(root / FLAT.train_csv, ["id", "gender", "race", "age", "path", "note"],
               [[*f.split("_"), f, f"row {i}"] for i, f in enumerate(PEOPLE[:2])])
    index = index_dataset(root)
    assert index.findings["kind"].tolist() == ["missing_from_csv"]
    store = ReviewStore(tmp_path / "r.sqlite")
    decisions = relabel_frame(store, index.fingerprint, index.images)
    out = corrected_manifests(index.root, index.layout, decisions, index.images, bins=index.bins)
    assert out["train.csv"]["note"].tolist() == ["row 0", "row 1"]
    assert "people.csv" in layouts.all_stamp_paths()  # the app re-indexes when it changes


def test_not_a_dataset_names_every_layout(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        detect_layout(tmp_path)
    assert all(f"({layout.name} layout)" in str(err.value) for layout in LAYOUTS)
