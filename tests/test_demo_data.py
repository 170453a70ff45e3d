"""The demo dataset: layout, names, determinism, truth consistency, noise rates, --like, CLI."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.cli import main as cli_main
from audit.demo_data import (
    TRUTH_COLUMNS, NoiseRates, _images_of, _plan, contact_sheet, make_demo, read_truth,
)
from audit.labels import DEFAULT_BINS, GENDERS, TRAIN_MASK_TYPES
from fixtures_demo import TINY_NOISE, make_tiny_demo

RACES = {"White", "LatinoHispanic", "Asian", "Black", "MiddleEastern", "Indian"}
PERSON = re.compile(r"^(?P<id>(100k-\d{6}|ffhq-\d{5}))_(?P<gender>male|female)_(?P<race>[A-Za-z]+)_(?P<age>\d+)$")


def _digest_tree(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _labels_from_path(path: str) -> tuple[int, int, str]:
    """Given (gender, age, race) carried by a data-relative path."""
    parts = path.split("/")
    key = parts[2] if parts[1] == "train" else parts[2].rsplit(".", 1)[0]
    if parts[1] == "eval":
        key = re.sub(r"_(mask|incorrect_mask|normal)$", "", key)
    m = PERSON.match(key)
    assert m, path
    return GENDERS.index(m["gender"]), int(m["age"]), m["race"]


def test_layout_names_and_sizes(tiny_demo):
    train = sorted((tiny_demo / "images" / "train").iterdir())
    assert len(train) == 24
    for person in train:
        m = PERSON.match(person.name)
        assert m and m["race"] in RACES, person.name
        files = sorted(person.iterdir())
        assert sorted(f.stem for f in files) == sorted(TRAIN_MASK_TYPES), person.name
        # one extension per person, by source: 100k (GAN) jpg, ffhq (photo) png
        assert {f.suffix for f in files} == {".jpg" if m["id"].startswith("100k") else ".png"}
    evals = sorted((tiny_demo / "images" / "eval").iterdir())
    assert len(evals) == 48
    for f in evals:
        m = re.match(r"^(.+?)_(mask|incorrect_mask|normal)\.(jpg|png)$", f.name)
        assert m and PERSON.match(m[1]), f.name
        assert f.suffix == (".jpg" if f.name.startswith("100k") else ".png")
    for f in [p for p in (tiny_demo / "images").rglob("*") if p.is_file()]:
        with Image.open(f) as im:
            assert im.size == (384, 512) and im.mode == "RGB", f


def test_truth_is_consistent_with_names_and_flags(tiny_demo):
    truth = read_truth(tiny_demo)
    assert tuple(truth.columns) == TRUTH_COLUMNS
    files = sorted(str(p.relative_to(tiny_demo)) for p in (tiny_demo / "images").rglob("*") if p.is_file())
    assert sorted(truth["path"]) == files  # one row per image, data-relative paths
    for field in ("gender", "age", "mask"):
        assert (truth[f"{field}_corrupted"] == (truth[f"true_{field}"] != truth[f"given_{field}"])).all()
        assert truth[f"{field}_corrupted"].any(), f"no {field} noise in the tiny demo"
    for row in truth.itertuples():
        g, a, _race = _labels_from_path(row.path)
        assert (row.given_gender, row.given_age) == (g, a), row.path  # names carry the GIVEN labels
        assert row.person == row.path.split("/")[2] if row.split == "train" else row.path.split("/")[2].startswith(row.person)
    # age noise always crosses a default-bin boundary
    shifted = truth[truth.age_corrupted]
    assert (DEFAULT_BINS.bin(shifted.true_age) != DEFAULT_BINS.bin(shifted.given_age)).all()
    # person-level noise: all 7 photos of a train person agree
    per_person = truth[truth.split == "train"].groupby("person")
    assert (per_person[["true_gender", "true_age", "gender_corrupted", "age_corrupted"]].nunique() == 1).all().all()
    assert (per_person.size() == 7).all()


def test_mask_swap_crosses_normal_and_incorrect(tiny_demo):
    truth = read_truth(tiny_demo)
    train = truth[truth.split == "train"].copy()
    train["stem"] = train.path.str.rsplit("/", n=1).str[1].str.rsplit(".", n=1).str[0]
    swapped = set(train.loc[train.mask_corrupted, "person"])
    assert swapped
    for person, rows in train.groupby("person"):
        by_stem = rows.set_index("stem")
        assert list(by_stem.loc[[f"mask{i}" for i in range(1, 6)], "true_mask"]) == [0] * 5
        if person in swapped:
            assert (by_stem.loc["normal", "true_mask"], by_stem.loc["normal", "given_mask"]) == (1, 2)
            assert (by_stem.loc["incorrect_mask", "true_mask"], by_stem.loc["incorrect_mask", "given_mask"]) == (2, 1)
            assert by_stem.mask_corrupted.sum() == 2
        else:
            assert not by_stem.mask_corrupted.any()
            assert (by_stem.loc["normal", "true_mask"], by_stem.loc["incorrect_mask", "true_mask"]) == (2, 1)
    # eval images carry no mask noise and use the eval mask types
    ev = truth[truth.split == "eval"]
    assert not ev.mask_corrupted.any()


def test_same_seed_same_bytes_any_worker_count_and_other_seed_differs(tmp_path):
    kw = dict(people=3, eval_images=4, noise=TINY_NOISE)
    a = _digest_tree(make_tiny_demo(tmp_path / "a", workers=1, **kw))
    b = _digest_tree(make_tiny_demo(tmp_path / "b", workers=2, **kw))
    assert a == b
    assert "truth.csv" in a and "demo.json" in a
    c = _digest_tree(make_tiny_demo(tmp_path / "c", seed=1, workers=2, **kw))
    assert c["truth.csv"] != a["truth.csv"]
    assert set(c) != set(a)  # other people, other names


def test_noise_rates_are_honoured_at_moderate_size():
    noise = NoiseRates(gender_flip=0.05, age_shift=0.1, mask_swap=0.02)
    plan = _plan(people=1000, eval_images=2000, seed=3, like=None, like_limit=None, noise=noise)
    train = [p for p in plan if p.split == "train"]
    ev = [p for p in plan if p.split == "eval"]
    assert len(train) == 1000 and len(ev) == 2000
    assert sum(p.true_gender != p.given_gender for p in train) == 50
    assert sum(p.true_age != p.given_age for p in train) == 100
    assert sum(p.swapped for p in train) == 20
    assert sum(p.true_gender != p.given_gender for p in ev) == 100
    assert not any(p.swapped for p in ev)
    # the real sets' shape: skewed race mix in train, eval more even; eval mask mix unlike 5:1:1
    tr_white = np.mean([p.race == "White" for p in train])
    ev_white = np.mean([p.race == "White" for p in ev])
    assert 0.48 < tr_white < 0.62 and 0.26 < ev_white < 0.39
    mt = pd.Series([p.eval_mask_type for p in ev]).value_counts(normalize=True)
    assert 0.40 < mt["mask"] < 0.50 and 0.28 < mt["incorrect_mask"] < 0.38 and 0.18 < mt["normal"] < 0.26
    assert np.mean([p.source == "photo" for p in ev]) > 0.9 > np.mean([p.source == "photo" for p in train])
    # zero rates: no noise at all
    clean = _plan(people=200, eval_images=50, seed=3, like=None, like_limit=None, noise=NoiseRates(0, 0, 0))
    assert all(p.true_gender == p.given_gender and p.true_age == p.given_age and not p.swapped for p in clean)


def test_like_reproduces_the_real_manifest_names(real_manifest_dir):
    train = pd.read_csv(Path(real_manifest_dir) / "train.csv", dtype=str)
    info = pd.read_csv(Path(real_manifest_dir) / "info.csv", dtype=str)
    plan = _plan(people=0, eval_images=0, seed=0, like=real_manifest_dir, like_limit=None, noise=NoiseRates())
    paths = [im.path for p in plan for im in _images_of(p)]
    assert len(paths) == 2700 * 7 + 12600
    folders = sorted({p.split("/")[2] for p in paths if p.startswith("images/train/")})
    assert folders == sorted(train["path"])
    assert sorted(p.split("/")[2] for p in paths if p.startswith("images/eval/")) == sorted(info["ImageID"])
    tr = [p for p in plan if p.split == "train"]
    assert sum(p.true_gender != p.given_gender for p in tr) == round(0.04 * 2700)
    assert sum(p.true_age != p.given_age for p in tr) == round(0.08 * 2700)
    assert sum(p.swapped for p in tr) == round(0.015 * 2700)


def test_like_subset_is_drawn_with_the_manifest_names(real_manifest_dir, tmp_path):
    info = make_demo(tmp_path / "like", like=real_manifest_dir, like_limit=3, workers=2,
                     noise=NoiseRates(gender_flip=0.5, age_shift=0.5, mask_swap=0.5))
    train = pd.read_csv(Path(real_manifest_dir) / "train.csv", dtype=str).head(3)
    evals = pd.read_csv(Path(real_manifest_dir) / "info.csv", dtype=str).head(3)
    assert sorted(p.name for p in (info.root / "images" / "train").iterdir()) == sorted(train["path"])
    assert sorted(p.name for p in (info.root / "images" / "eval").iterdir()) == sorted(evals["ImageID"])
    truth = read_truth(info.root)
    assert len(truth) == 3 * 7 + 3
    meta = json.loads((info.root / "demo.json").read_text())
    assert meta["complete"] and meta["like_limit"] == 3


def test_output_folder_rules(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        make_demo(tmp_path / "mine", people=1, eval_images=1)
    assert (tmp_path / "mine" / "precious.txt").exists()
    # a previous demo is replaced, stale files and all
    out = make_tiny_demo(tmp_path / "demo", people=3, eval_images=2, seed=0)
    stale = out / "images" / "eval" / "stale.png"
    stale.write_bytes(b"")
    make_tiny_demo(out, people=2, eval_images=2, seed=1)
    assert not stale.exists()
    assert len(list((out / "images" / "train").iterdir())) == 2


def test_cli_make_demo(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["make-demo", str(out), "--people", "2", "--eval", "3", "--seed", "5",
                     "--gender-flip", "0.5", "--workers", "1"]) == 0
    assert "2 train people" in capsys.readouterr().out
    truth = read_truth(out)
    assert len(truth) == 2 * 7 + 3 and truth.gender_corrupted.any()
    assert json.loads((out / "demo.json").read_text())["seed"] == 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    assert cli_main(["make-demo", str(tmp_path / "other"), "--people", "1", "--eval", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli_main(["make-demo", str(tmp_path / "other"), "--people", "1", "--eval", "1", "--force"]) == 0
    assert cli_main(["make-demo", str(out), "--like-limit", "3"]) == 2


def test_index_reads_the_demo_without_findings(tiny_demo):
    from audit.dataset_index import index_dataset

    index = index_dataset(tiny_demo)
    assert index.layout == "seed"
    assert len(index.images) == 24 * 7 + 48 and index.people == 24
    assert len(index.findings) == 0, index.findings.head().to_string()
    truth = read_truth(tiny_demo).drop(columns=["split"])
    joined = index.images.merge(truth, on="path", how="inner", suffixes=("", "_truth"))
    assert (joined["person"] == joined["person_truth"]).all()
    assert len(joined) == len(index.images)
    assert (joined["gender"] == joined["given_gender"]).all() and (joined["mask"] == joined["given_mask"]).all()
    assert set(index.images["source"]) == {"GAN", "photo"}


def test_contact_sheet(tiny_demo, tmp_path):
    sheet = contact_sheet(tiny_demo, tmp_path / "sheet.png", n=12, columns=4, thumb=60)
    assert sheet.size == (4 * 60, 3 * (80 + 26))
    assert (tmp_path / "sheet.png").exists()


def test_progress_reports_every_image_and_works_from_a_thread(tmp_path):
    """The app builds the demo from a Streamlit script thread, with a progress indicator."""
    import threading

    calls, errors = [], []

    def build():
        try:
            # 8 people + 3 eval = two chunks, so the worker pool really runs
            make_demo(tmp_path / "t", people=8, eval_images=3, workers=2,
                      progress=lambda done, total, msg: calls.append((done, total, msg)))
        except Exception as err:  # surfaced below
            errors.append(err)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors
    assert calls[0][0] == 0 and calls[-1][:2] == (59, 59) and len(calls) == 3
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert json.loads((tmp_path / "t" / "demo.json").read_text())["complete"] is True


def test_force_never_deletes_or_overwrites_what_is_not_a_demo(tmp_path):
    """issue #11: make-demo --force may replace a previous demo and nothing else."""
    # someone's dataset (or any images/ folder) with --force: refused, every file kept
    data = tmp_path / "data"
    (data / "images" / "train" / "000001_male_Asian_22").mkdir(parents=True)
    (data / "images" / "train" / "000001_male_Asian_22" / "mask1.jpg").write_bytes(b"my photo")
    with pytest.raises(FileExistsError, match="never writes over"):
        make_demo(data, people=1, eval_images=1, force=True, workers=1)
    assert (data / "images" / "train" / "000001_male_Asian_22" / "mask1.jpg").read_bytes() == b"my photo"
    assert sorted(p.name for p in data.iterdir()) == ["images"]
    # a folder with a truth.csv of its own: refused too
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "truth.csv").write_text("mine")
    with pytest.raises(FileExistsError):
        make_demo(tmp_path / "t", people=1, eval_images=1, force=True, workers=1)
    assert (tmp_path / "t" / "truth.csv").read_text() == "mine"


def test_a_demo_holding_someones_files_is_not_cleared(tmp_path):
    out = make_tiny_demo(tmp_path / "demo", people=2, eval_images=2, seed=0)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for extra in (out / "images" / "notes.txt", out / "images" / "eval" / "thesis.docx",
                  out / "images" / "train" / "backup" / "x" / "y.jpg"):
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text("important")
        with pytest.raises(FileExistsError, match="did not draw"):
            make_demo(out, people=1, eval_images=1, seed=1, workers=1)
        assert extra.read_text() == "important"
        assert all((out / rel).exists() for rel in before)  # nothing deleted
        extra.unlink()
        for folder in (out / "images" / "train" / "backup" / "x", out / "images" / "train" / "backup"):
            if folder.exists():
                folder.rmdir()
    # files beside images/ are not the demo's and stay; the demo itself is redrawn
    (out / "README.txt").write_text("mine")
    make_tiny_demo(out, people=1, eval_images=1, seed=2)
    assert (out / "README.txt").read_text() == "mine" and len(read_truth(out)) == 8


def test_cli_make_demo_force_into_a_dataset_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images" / "eval").mkdir(parents=True)
    (data / "images" / "eval" / "100001_male_White_45_mask.jpg").write_bytes(b"x")
    assert cli_main(["make-demo", str(data), "--people", "1", "--eval", "1", "--force", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "never writes over" in err
    assert (data / "images" / "eval" / "100001_male_White_45_mask.jpg").read_bytes() == b"x"
