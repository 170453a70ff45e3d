"""Data-quality decisions in the review store and the export: excluded files leave the corrected
manifests (the images themselves are never touched)."""
from __future__ import annotations

import hashlib

import pytest

from audit.dataset_index import index_dataset
from audit.export import export_all, read_export_csv
from audit.reviews import FILE_EXCLUDE, FILE_FIELD, FILE_KEEP, ReviewStore
from test_app_support import write_seed_dataset


def _digest(root):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_excluded_files_are_listed_and_left_out_of_the_corrected_manifests(tmp_path):
    root = tmp_path / "data"
    write_seed_dataset(root, people=4, eval_images=6)
    index = index_dataset(root)
    before = _digest(root)
    store = ReviewStore(tmp_path / "reviews.sqlite")
    images = index.images
    ev = images.loc[images["split"] == "eval", "path"].iloc[0]
    people = images.loc[images["split"] == "train", "person"].unique()
    one_photo = images.loc[images["person"] == people[0], "path"].iloc[2]
    whole = images.loc[images["person"] == people[1], "path"].tolist()
    kept = images.loc[images["person"] == people[2], "path"].iloc[0]
    fp = index.fingerprint
    for path in [ev, one_photo, *whole]:
        store.record(fp, path, FILE_FIELD, "set", given=FILE_KEEP, new_value=FILE_EXCLUDE, note="=cmd() stranger")
    store.record(fp, kept, FILE_FIELD, "set", given=FILE_KEEP, new_value=FILE_EXCLUDE)
    store.record(fp, kept, FILE_FIELD, "keep", given=FILE_KEEP)  # changed their mind: kept
    # a label decision next to them still exports as before
    store.record(fp, ev, "mask", "set", given=int(images.loc[images["path"] == ev, "mask"].iloc[0]),
                 new_value=(int(images.loc[images["path"] == ev, "mask"].iloc[0]) + 1) % 3)

    written = export_all(store, index, tmp_path / "out")
    excluded = read_export_csv(written["excluded_files.csv"])
    assert sorted(excluded["path"]) == sorted([ev, one_photo, *whole])
    assert excluded.loc[excluded["path"] == ev, "note"].iloc[0] == "'=cmd() stranger"  # formula guard
    corrected = read_export_csv(written["images.csv"])
    assert not set(corrected["path"]) & set(excluded["path"])
    assert kept in set(corrected["path"])
    assert len(corrected) == len(images) - len(excluded)
    info = read_export_csv(written["info.csv"])
    assert ev.rsplit("/", 1)[-1] not in set(info["ImageID"]) and len(info) == 5
    train = read_export_csv(written["train.csv"])
    assert people[1] not in set(train["path"]) and len(train) == 3
    row = train[train["path"] == people[0]].iloc[0]
    assert row["excluded_files"] == one_photo.rsplit("/", 1)[-1]
    relabel = read_export_csv(written["relabel.csv"])
    assert set(relabel["field"]) == {"mask"}  # file decisions are not labels
    assert _digest(root) == before  # the images are never touched


def test_file_decisions_are_validated():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        store = ReviewStore(Path(tmp) / "r.sqlite")
        with pytest.raises(ValueError):
            store.record("fp", "images/eval/x.png", FILE_FIELD, "set", given=FILE_KEEP, new_value=2)
        store.record("fp", "images/eval/x.png", FILE_FIELD, "set", given=FILE_KEEP, new_value=FILE_EXCLUDE)
        assert store.latest("fp")["new_value"].tolist() == [FILE_EXCLUDE]
        store.close()
