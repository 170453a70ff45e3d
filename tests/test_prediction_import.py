import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit import labels as L
from audit import runs as R
from audit.dataset_index import index_dataset
from audit.prediction_import import PredictionImportError, import_predictions

PEOPLE = [("000001", "male", "Asian", 22), ("000002", "female", "White", 31), ("000003", "female", "Black", 55)]
EVAL = [("100001", "male", "White", 45, "mask"), ("100002", "female", "Asian", 19, "normal"),
        ("100003", "male", "Black", 27, "incorrect_mask"), ("100004", "female", "Indian", 62, "mask3")]


def write_tiny_dataset(root, size=(48, 64)):
    """A seed-layout dataset: 3 train people x 7 photos, 4 eval photos, small solid-colour JPEGs."""
    rng = np.random.default_rng(0)

    def save(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)

    for pid, gender, race, age in PEOPLE:
        for stem in L.TRAIN_MASK_TYPES:
            save(root / "images" / "train" / f"{pid}_{gender}_{race}_{age}" / f"{stem}.jpg")
    for pid, gender, race, age, mask_type in EVAL:
        save(root / "images" / "eval" / f"{pid}_{gender}_{race}_{age}_{mask_type}.jpg")
    return root


@pytest.fixture
def tiny_index(tmp_path):
    return index_dataset(write_tiny_dataset(tmp_path / "data"))


def eval_rows(index):
    return index.images[index.images["split"] == "eval"]


def eval_names(index):
    return [p.rsplit("/", 1)[1] for p in eval_rows(index)["path"]]


def write_csv(path, df):
    df.to_csv(path, index=False)
    return path


def test_submission_format_becomes_one_hot_eval_run(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    ans = [17, 0, 8, 4]
    # rows in another order than the index's: the run follows the index
    csv = write_csv(tmp_path / "sub.csv", pd.DataFrame({"ImageID": names[::-1], "ans": ans[::-1]}))
    run = R.Run.open(import_predictions(tiny_index, csv, tmp_path / "runs" / "sub"))
    df = run.predictions
    assert list(df.columns) == R.prediction_columns()
    assert list(df["path"]) == list(eval_rows(tiny_index)["path"])
    assert list(df["pred_class"]) == ans
    assert (df["confidence"] == 1.0).all() and (df["fold"] == -1).all()
    np.testing.assert_allclose(df[list(R.P_CLASS)].sum(axis=1), 1.0)
    assert run.meta["source"] == "import" and run.meta["csv_format"] == "submission"
    assert run.meta["splits"] == ["eval"] and run.meta["data_fingerprint"] == tiny_index.fingerprint
    assert not run.has_embeddings


def test_submission_with_extra_columns_like_info_csv(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    csv = write_csv(tmp_path / "info.csv", pd.DataFrame({"ImageID": names, "ans": [1, 2, 3, 4], "dataset": "x"}))
    run = R.Run.open(import_predictions(tiny_index, csv, tmp_path / "r"))
    assert run.meta["ignored_columns"] == ["dataset"]


def test_class_probabilities_by_path_for_all_splits(tiny_index, tmp_path):
    images = tiny_index.images
    rng = np.random.default_rng(3)
    p = rng.random((len(images), 18))
    p /= p.sum(axis=1, keepdims=True)
    table = pd.DataFrame(p, columns=[f"p_class_{i}" for i in range(18)])
    table.insert(0, "path", images["path"].to_numpy())
    table["fold"] = np.where(images["split"] == "train", 1, -1)
    table["pred_age"] = 33.5
    csv = write_csv(tmp_path / "probs.csv", table.sample(frac=1, random_state=0))
    run = R.Run.open(import_predictions(tiny_index, csv, tmp_path / "r"))
    df = run.predictions
    assert list(df["path"]) == list(images["path"]) and run.meta["splits"] == ["eval", "train"]
    np.testing.assert_allclose(df[list(R.P_CLASS)].to_numpy(), p, atol=1e-6)
    assert (df["pred_class"].to_numpy() == p.argmax(1)).all()
    pm, pg, pa = L.head_probs_from_classes(p)
    np.testing.assert_allclose(df[list(R.P_GENDER)].to_numpy(), pg, atol=1e-6)
    assert list(df["fold"]) == list(table["fold"]) and (df["pred_age"] == 33.5).all()


def test_digit_class_columns_and_file_names(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    p = np.full((4, 18), 1 / 18)
    table = pd.DataFrame(p, columns=[str(i) for i in range(18)])
    table.insert(0, "ImageID", names)
    run = R.Run.open(import_predictions(tiny_index, write_csv(tmp_path / "d.csv", table), tmp_path / "r"))
    assert run.meta["csv_format"] == "class_probs" and len(run.predictions) == 4


def test_per_head_probabilities(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    table = pd.DataFrame({"ImageID": names})
    for col, v in zip(R.P_MASK, (0.7, 0.2, 0.1)):
        table[col] = v
    for col, v in zip(R.P_GENDER, (0.25, 0.75)):
        table[col] = v
    for col, v in zip(R.P_AGE, (0.1, 0.1, 0.8)):
        table[col] = v
    run = R.Run.open(import_predictions(tiny_index, write_csv(tmp_path / "h.csv", table), tmp_path / "r"))
    df = run.predictions
    assert run.meta["csv_format"] == "head_probs"
    assert (df["pred_class"] == L.class_id(0, 1, 2)).all()
    np.testing.assert_allclose(df["confidence"], 0.7 * 0.75 * 0.8, atol=1e-6)


def bad_import(index, tmp_path, table, match):
    csv = tmp_path / "bad.csv"
    if isinstance(table, str):
        csv.write_text(table, encoding="utf-8")
    else:
        write_csv(csv, table)
    with pytest.raises(PredictionImportError, match=match) as err:
        import_predictions(index, csv, tmp_path / "runs" / "bad")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
    return str(err.value)


def test_unknown_ids_are_listed_with_line_numbers(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    ids = names + [f"nobody_{i}.jpg" for i in range(7)]
    msg = bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": ids, "ans": 0}), "7 image ids match no image")
    assert "line 6: 'nobody_0.jpg'" in msg and "line 10: 'nobody_4.jpg'" in msg
    assert "nobody_5" not in msg and "(and 2 more)" in msg


def test_missing_rows_inside_a_split(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    msg = bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names[:2], "ans": 0}), "2 eval images have no prediction")
    assert names[2] in msg and names[3] in msg


def test_duplicated_ids(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    # the same image once by file name, once by data-relative path
    ids = names + ["images/eval/" + names[1]]
    msg = bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": ids, "ans": 0}), "appear more than once")
    assert "line 6" in msg and "also line 3" in msg


def test_ambiguous_train_file_name(tiny_index, tmp_path):
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": ["mask1.jpg"], "ans": 0}), "shared by several images")


def test_wrong_columns(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    bad_import(tiny_index, tmp_path, pd.DataFrame({"image": names, "ans": 0}), "no image id column")
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "label": 0}), "no prediction columns")
    partial = pd.DataFrame({"ImageID": names, **{f"p_class_{i}": 1 / 17 for i in range(17)}})
    bad_import(tiny_index, tmp_path, partial, r"missing: \['p_class_17'\]")
    both = pd.DataFrame({"ImageID": names, **{f"p_class_{i}": 1 / 18 for i in range(18)}, "p_mask_0": 1})
    bad_import(tiny_index, tmp_path, both, "both 18-class and per-head")
    bad_import(tiny_index, tmp_path, "", "not a readable CSV")
    bad_import(tiny_index, tmp_path, "ImageID,ans\n", "no data rows")


def test_probabilities_not_summing_to_one(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    table = pd.DataFrame({"ImageID": names, **{f"p_class_{i}": 1 / 18 for i in range(18)}})
    table.loc[2, "p_class_0"] += 0.01
    msg = bad_import(tiny_index, tmp_path, table, "1 rows: the 18 class probabilities do not sum to 1")
    assert f"line 4: '{names[2]}' sums to 1.01" in msg
    # within the tolerance is fine
    table.loc[2, "p_class_0"] -= 0.0095
    run = R.Run.open(import_predictions(tiny_index, write_csv(tmp_path / "ok.csv", table), tmp_path / "ok"))
    assert len(run.predictions) == 4


def test_per_head_sum_checked_per_head(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    table = pd.DataFrame({"ImageID": names, "p_mask_0": 1.0, "p_mask_1": 0.0, "p_mask_2": 0.0,
                          "p_gender_0": 0.6, "p_gender_1": 0.6, "p_age_0": 1.0, "p_age_1": 0.0, "p_age_2": 0.0})
    bad_import(tiny_index, tmp_path, table, "p_gender probabilities do not sum to 1")


def test_non_numeric_and_out_of_range(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    msg = bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": ["1", "x", "", "2"]}), "not numbers")
    assert "line 3" in msg and "line 4" in msg and "ans='x'" in msg
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": [1, 18, 2, 3]}), "class id 0..17")
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": [1, 2.5, 2, 3]}), "class id 0..17")
    neg = pd.DataFrame({"ImageID": names, **{f"p_class_{i}": 1 / 16 for i in range(18)}})
    neg["p_class_0"] = -1 / 16
    neg["p_class_1"] = 2 / 16 + 1 / 16 - 1 / 16
    bad_import(tiny_index, tmp_path, neg, r"must lie in \[0, 1\]")


def test_failed_reimport_keeps_the_previous_run(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    good = write_csv(tmp_path / "good.csv", pd.DataFrame({"ImageID": names, "ans": 5}))
    run_dir = import_predictions(tiny_index, good, tmp_path / "r")
    bad = write_csv(tmp_path / "bad.csv", pd.DataFrame({"ImageID": names, "ans": 99}))
    with pytest.raises(PredictionImportError):
        import_predictions(tiny_index, bad, run_dir)
    assert (R.Run.open(run_dir).predictions["pred_class"] == 5).all()


def test_cli(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    good = write_csv(tmp_path / "sub.csv", pd.DataFrame({"ImageID": names, "ans": 3}))
    cmd = [sys.executable, "-m", "audit", "import-predictions", str(tiny_index.root), str(good), "--run", str(tmp_path / "r")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 predictions" in done.stdout
    assert len(R.Run.open(tmp_path / "r").predictions) == 4
    bad = write_csv(tmp_path / "bad.csv", pd.DataFrame({"ImageID": ["zzz.jpg"], "ans": 3}))
    cmd[5] = str(bad)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "match no image" in done.stderr and "line 2: 'zzz.jpg'" in done.stderr


# ---- nothing of a user's is replaced (issue #11) ----------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def test_import_into_someones_folder_is_refused_and_the_file_survives(tiny_index, tmp_path):
    """The issue's reproduction: mkdir mine; echo important > mine/thesis.txt; import-predictions
    DATA good.csv --run mine -> exit 2, thesis.txt intact."""
    good = write_csv(tmp_path / "good.csv", pd.DataFrame({"ImageID": eval_names(tiny_index), "ans": 3}))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("important\n")
    done = _cli("import-predictions", tiny_index.root, good, "--run", "./mine", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "not a Mask Audit run" in done.stderr
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "important\n"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.txt"]


def test_import_refuses_dot_the_data_folder_and_the_workspace(tiny_index, tmp_path):
    good = write_csv(tmp_path / "good.csv", pd.DataFrame({"ImageID": eval_names(tiny_index), "ans": 3}))
    workspace = tmp_path / "workspace"  # conftest's MASK_AUDIT_WORKSPACE
    workspace.mkdir(exist_ok=True)
    (workspace / "reviews.sqlite").write_bytes(b"decisions")
    data_files = sorted(p for p in tiny_index.root.rglob("*"))
    for target, says in ((".", "not a Mask Audit run"), (tiny_index.root, "is the dataset"),
                         (workspace, "workspace"), (tiny_index.root / "images" / "runs" / "x", "a folder inside it")):
        done = _cli("import-predictions", tiny_index.root, good, "--run", target, cwd=tmp_path)
        assert done.returncode == 2 and says in done.stderr, (target, done.stderr)
        assert "Traceback" not in done.stderr
    assert sorted(p for p in tiny_index.root.rglob("*")) == data_files
    assert (workspace / "reviews.sqlite").read_bytes() == b"decisions"
    # a run of ours is replaced, as before
    assert _cli("import-predictions", tiny_index.root, good, "--run", tmp_path / "r").returncode == 0
    assert _cli("import-predictions", tiny_index.root, good, "--run", tmp_path / "r").returncode == 0


# ---- bad CSVs the 19 kinds above missed (issue #11) -------------------------------------------

def _write_text(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _csv_error(tiny_index, tmp_path, csv_path) -> str:
    with pytest.raises(PredictionImportError) as err:
        import_predictions(tiny_index, csv_path, tmp_path / "runs" / "bad")
    assert not (tmp_path / "runs").exists()
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_a_ragged_line_is_named_by_its_own_line_number(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    rows = [f"{n},{i}" for i, n in enumerate(names)]
    extra = rows.copy()
    extra[2] += ",99"                                   # one cell too many on line 4
    msg = _csv_error(tiny_index, tmp_path, _write_text(tmp_path / "a.csv", "ImageID,ans\n" + "\n".join(extra) + "\n"))
    assert "line 4 has 3 cells but the header has 2" in msg
    short = rows.copy()
    short[1] = names[1]                                 # a missing cell on line 3
    msg = _csv_error(tiny_index, tmp_path, _write_text(tmp_path / "b.csv", "ImageID,ans\n" + "\n".join(short) + "\n"))
    assert "line 3 has 1 cells" in msg
    every = [r + ",x" for r in rows]                    # every row one cell longer: pandas shifted them all
    msg = _csv_error(tiny_index, tmp_path, _write_text(tmp_path / "c.csv", "ImageID,ans\n" + "\n".join(every) + "\n"))
    assert "line 2 has 3 cells" in msg


def test_line_numbers_stay_true_across_blank_lines_and_quoted_line_breaks(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    text = (f"ImageID,ans,comment\n\n{names[0]},1,\"two\nlines\"\n\n{names[1]},x,ok\n"
            f"{names[2]},2,\"a\r\nb\"\n{names[3]},3,fine\n")
    msg = _csv_error(tiny_index, tmp_path, _write_text(tmp_path / "a.csv", text))
    assert f"line 6: '{names[1]}'" in msg and "ans='x'" in msg


@pytest.mark.parametrize("kind", ["folder", "fifo", "broken_link", "missing"])
def test_something_that_is_not_a_csv_file_is_named_truly(tiny_index, tmp_path, kind):
    target = tmp_path / "preds.csv"
    says = {"folder": "is a folder, not a CSV file", "fifo": "is a FIFO (named pipe)",
            "broken_link": "broken symbolic link", "missing": "CSV not found"}[kind]
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)  # opening it would block: it must be refused before
    elif kind == "broken_link":
        target.symlink_to(tmp_path / "nowhere.csv")
    assert says in _csv_error(tiny_index, tmp_path, target)
    done = _cli("import-predictions", tiny_index.root, target, "--run", tmp_path / "r")
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bytes_that_are_not_utf8_and_nul_bytes(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    text = "ImageID,ans,note\n" + "".join(f"{n},1,ok\n" for n in names[:2]) + f"{names[2]},1,café\n" + f"{names[3]},1,x\n"
    msg = _csv_error(tiny_index, tmp_path, _write_text(tmp_path / "latin1.csv", text, "latin-1"))
    assert "not UTF-8" in msg and "line 4" in msg and "0xe9" in msg
    assert "line 3 holds a NUL byte" in _csv_error(
        tiny_index, tmp_path, _write_text(tmp_path / "nul.csv", f"ImageID,ans\n{names[0]},1\n{names[1]}\x00,2\n"))
    # UTF-8 with a BOM and non-ASCII cells is fine
    ok = "\ufeffImageID,ans,note\n" + "".join(f"{n},1,노트 é\n" for n in names)
    run = R.Run.open(import_predictions(tiny_index, _write_text(tmp_path / "ok.csv", ok), tmp_path / "ok"))
    assert len(run.predictions) == 4 and run.meta["ignored_columns"] == ["note"]


def test_nan_inf_negative_and_duplicate_rows(tiny_index, tmp_path):
    names = eval_names(tiny_index)
    probs = pd.DataFrame({"ImageID": names, **{f"p_class_{i}": 1 / 18 for i in range(18)}})
    for value, says in (("nan", "not numbers"), ("NaN", "not numbers"), ("inf", "not numbers"),
                        ("-0.5", r"must lie in \[0, 1\]")):
        bad = probs.astype({"p_class_0": object})
        bad.loc[1, "p_class_0"] = value
        bad_import(tiny_index, tmp_path, bad, says)
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": [1, -1, 2, 3]}), "class id 0..17")
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": 1, "pred_age": [30, -4, 20, 50]}),
               r"pred_age must be years within 0\.\.120")
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": 1, "pred_age": [30, 2000, 20, 50]}),
               "pred_age")
    bad_import(tiny_index, tmp_path, pd.DataFrame({"ImageID": names, "ans": 1, "fold": [0, 1, "nan", 2]}), "not numbers")
    dup = pd.concat([pd.DataFrame({"ImageID": names, "ans": 1})] * 2)  # the whole file twice
    msg = bad_import(tiny_index, tmp_path, dup, "4 image ids appear more than once")
    assert "line 6" in msg and "also line 2" in msg


def test_item_paths_with_dots_absolute_parts_and_links_match_nothing(tiny_index, tmp_path):
    """Path safety: a CSV row's id is matched against the indexed paths, never opened or joined."""
    names = eval_names(tiny_index)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"not yours")
    eval_dir = tiny_index.root / "images" / "eval"
    (eval_dir / "000999_male_White_40_mask.jpg").symlink_to(outside)   # a link out: never indexed
    index = index_dataset(tiny_index.root)
    for sneaky in (f"images/eval/../eval/{names[0]}", f"../data/images/eval/{names[0]}",
                   str(eval_dir / names[0]), f"images\\..\\..\\{names[0]}", "000999_male_White_40_mask.jpg",
                   "images/eval/000999_male_White_40_mask.jpg", "/etc/passwd", "..", "."):
        ids = names[1:] + [sneaky]
        msg = bad_import(index, tmp_path, pd.DataFrame({"ImageID": ids, "ans": 0}), "match no image")
        assert "line 5" in msg
    assert outside.read_bytes() == b"not yours"
