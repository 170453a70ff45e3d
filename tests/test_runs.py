import json

import numpy as np
import pandas as pd
import pytest

from audit import labels as L
from audit import runs as R


def index_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 3, n)
    gender = rng.integers(0, 2, n)
    age = rng.integers(18, 70, n)
    age_bin = L.DEFAULT_BINS.bin(age)
    return pd.DataFrame({
        "path": [f"images/train/{i:06d}_male_Asian_30/mask1.jpg" for i in range(n)],
        "split": ["train"] * n,
        "person": [f"{i:06d}_male_Asian_30" for i in range(n)],
        "person_id": [f"{i:06d}" for i in range(n)],
        "gender": gender, "race": ["Asian"] * n, "age": age, "age_bin": age_bin, "mask": mask,
        "mask_type": ["mask1"] * n, "class_id": L.class_id(mask, gender, age_bin),
        "source": ["GAN"] * n, "fold": rng.integers(0, 3, n),
    })


def random_probs(rng, n, k):
    p = rng.random((n, k)) + 0.01
    return p / p.sum(axis=1, keepdims=True)


def make_predictions(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return R.finish_predictions(index_rows(n, seed), random_probs(rng, n, 3), random_probs(rng, n, 2),
                                random_probs(rng, n, 3), rng.uniform(10, 70, n))


def test_finish_predictions_columns_and_consistency():
    df = make_predictions(25)
    assert list(df.columns) == R.prediction_columns()
    p_class = df[list(R.P_CLASS)].to_numpy()
    assert p_class.dtype == np.float32
    np.testing.assert_allclose(p_class.sum(axis=1), 1.0, atol=1e-5)
    # 18-class prediction = product of heads: its parts are each head's argmax
    assert (df["pred_mask"].to_numpy() == df[list(R.P_MASK)].to_numpy().argmax(1)).all()
    assert (df["pred_gender"].to_numpy() == df[list(R.P_GENDER)].to_numpy().argmax(1)).all()
    assert (df["pred_age_bin"].to_numpy() == df[list(R.P_AGE)].to_numpy().argmax(1)).all()
    assert (df["pred_class"] == L.class_id(df["pred_mask"], df["pred_gender"], df["pred_age_bin"])).all()
    np.testing.assert_allclose(df["confidence"], p_class.max(axis=1))


def test_finish_predictions_from_classes_uses_marginals():
    rng = np.random.default_rng(1)
    p_class = random_probs(rng, 6, 18)
    df = R.finish_predictions_from_classes(index_rows(6), p_class)
    pm, pg, pa = L.head_probs_from_classes(p_class)
    np.testing.assert_allclose(df[list(R.P_MASK)].to_numpy(), pm, atol=1e-6)
    assert (df["pred_class"].to_numpy() == p_class.argmax(1)).all()
    assert df["pred_age"].isna().all()


def test_finish_predictions_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="p_mask"):
        R.finish_predictions(index_rows(4), np.ones((3, 3)) / 3, np.ones((4, 2)) / 2, np.ones((4, 3)) / 3)


def test_write_and_open_round_trip(tmp_path):
    df = make_predictions(12)
    emb = np.random.default_rng(0).normal(size=(12, 7)).astype(np.float32)
    path = R.write_run(tmp_path / "runs" / "a", df, emb, {"source": "predict", "bins": L.DEFAULT_BINS.to_dict()})
    run = R.Run.open(path)
    assert run.name == "a" and run.has_embeddings and run.source == "predict"
    pd.testing.assert_frame_equal(run.predictions, df)
    assert run.embeddings.dtype == np.float16 and run.embeddings.shape == (12, 7)
    np.testing.assert_allclose(run.embeddings, emb, atol=1e-2)
    assert run.meta["n_images"] == 12 and run.meta["embedding_dim"] == 7 and run.meta["created"]
    assert run.bins == L.DEFAULT_BINS
    assert run.suspects is None
    pd.DataFrame({"path": ["x"], "field": ["gender"]}).to_parquet(run.suspects_path)
    assert list(run.suspects["field"]) == ["gender"]
    # nothing but the run folder is left in runs/
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]


def test_run_without_embeddings(tmp_path):
    path = R.write_run(tmp_path / "b", make_predictions(3), None, {"source": "import"})
    run = R.Run.open(path)
    assert not run.has_embeddings and run.embeddings is None and run.source == "import"


def test_write_run_validates(tmp_path):
    df = make_predictions(5)
    with pytest.raises(ValueError, match="embeddings"):
        R.write_run(tmp_path / "x", df, np.zeros((4, 3)), {})
    with pytest.raises(ValueError, match="lack columns"):
        R.write_run(tmp_path / "x", df.drop(columns=["p_class_3"]), None, {})
    bad = df.copy()
    bad.loc[0, "p_class_0"] += 0.5
    with pytest.raises(ValueError, match="summing to 1"):
        R.write_run(tmp_path / "x", bad, None, {})
    assert not (tmp_path / "x").exists()


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(R.np, "save", crash)
    with pytest.raises(OSError, match="simulated"):
        R.write_run(tmp_path / "runs" / "c", make_predictions(4), np.zeros((4, 2)), {"source": "predict"})
    assert list((tmp_path / "runs").iterdir()) == []


def test_crash_while_replacing_keeps_the_old_run(tmp_path, monkeypatch):
    first = make_predictions(4, seed=1)
    R.write_run(tmp_path / "c", first, np.zeros((4, 2)), {"source": "predict", "tag": "old"})
    (tmp_path / "c" / "layout_umap_x.npy").write_bytes(b"stale")
    monkeypatch.setattr(R.np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("simulated")))
    with pytest.raises(OSError):
        R.write_run(tmp_path / "c", make_predictions(6, seed=2), np.zeros((6, 2)), {"source": "predict"})
    run = R.Run.open(tmp_path / "c")
    assert run.meta["tag"] == "old" and len(run.predictions) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    monkeypatch.undo()
    # a successful replace drops the old run's derived files (layouts were for old embeddings)
    R.write_run(tmp_path / "c", make_predictions(6, seed=2), np.zeros((6, 2)), {"source": "predict"})
    assert not (tmp_path / "c" / "layout_umap_x.npy").exists()
    assert len(R.Run.open(tmp_path / "c").predictions) == 6


def test_open_rejects_non_runs(tmp_path):
    with pytest.raises(R.NotARunError, match="not found"):
        R.Run.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(R.NotARunError, match="not a run folder"):
        R.Run.open(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text("{nope")
    (bad / "predictions.parquet").write_bytes(b"")
    with pytest.raises(R.NotARunError, match="cannot be read"):
        R.Run.open(bad)


def test_list_runs(tmp_path):
    runs = tmp_path / "runs"
    R.write_run(runs / "b", make_predictions(2), None, {"source": "import"})
    R.write_run(runs / "a", make_predictions(2), np.zeros((2, 3)), {"source": "predict"})
    (runs / "not_a_run").mkdir()
    (runs / ".a.partial-1234").mkdir()
    listed = R.list_runs(runs)
    assert [name for name, _ in listed] == ["a", "b"]
    assert listed[1][1]["source"] == "import"
    assert R.list_runs(tmp_path / "nothing") == []
    # default: the workspace's runs folder (conftest points it at a tmp dir)
    assert R.list_runs() == []
    json.dumps(listed)  # metas are plain JSON


def test_resolve_run_dir(tmp_path):
    from audit.workspace import runs_dir

    assert R.resolve_run_dir("demo") == runs_dir() / "demo"
    assert R.resolve_run_dir("runs/demo") == runs_dir() / "demo"
    assert R.resolve_run_dir(tmp_path / "x") == tmp_path / "x"
    assert R.resolve_run_dir("out/runs/demo") == R.Path("out/runs/demo")


# ---- nothing of a user's is ever replaced (issue #11) -----------------------------------------

def _tree(folder):
    """{relative path: bytes} of every file under `folder`: what must survive a refusal."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fill", [
    lambda d: (d / "thesis.txt").write_text("important"),                        # someone's files
    lambda d: (d / "reviews.sqlite").write_bytes(b"SQLite format 3\x00"),        # a workspace
    lambda d: (d / "images" / "train").mkdir(parents=True),                      # a dataset
    lambda d: (d / "meta.json").write_text('{"format": "someone-else/1"}'),      # another tool's meta
    lambda d: (d / "sub").mkdir(),                                               # just a folder
])
def test_write_run_refuses_a_folder_that_is_not_a_run(tmp_path, fill):
    target = tmp_path / "mine"
    target.mkdir()
    fill(target)
    before = _tree(target)
    with pytest.raises(R.RunFolderRefused) as err:
        R.write_run(target, make_predictions(3), None, {"source": "import"})
    assert "\n" not in str(err.value) and "not a Mask Audit run" in str(err.value)
    assert _tree(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_write_run_names_what_a_refused_folder_is(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "reviews.sqlite").write_bytes(b"x")
    with pytest.raises(R.RunFolderRefused, match="workspace"):
        R.write_run(tmp_path / "ws", make_predictions(2), None, {})
    (tmp_path / "data" / "images" / "eval").mkdir(parents=True)
    with pytest.raises(R.RunFolderRefused, match="dataset"):
        R.write_run(tmp_path / "data", make_predictions(2), None, {})


def test_write_run_fills_an_empty_folder_and_refuses_files_and_links(tmp_path):
    (tmp_path / "empty").mkdir()
    assert R.Run.open(R.write_run(tmp_path / "empty", make_predictions(2), None, {})).meta["n_images"] == 2
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(R.RunFolderRefused, match="not a folder"):
        R.write_run(tmp_path / "a_file", make_predictions(2), None, {})
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(R.RunFolderRefused, match="symbolic link"):
        R.write_run(tmp_path / "link", make_predictions(2), None, {})
    assert (tmp_path / "a_file").read_text() == "x" and R.is_run_folder(tmp_path / "empty")


def test_a_run_holding_someone_elses_file_is_not_replaced(tmp_path):
    run_dir = R.write_run(tmp_path / "r", make_predictions(2), None, {"tag": "old"})
    (run_dir / "notes.txt").write_text("my notes")
    with pytest.raises(R.RunFolderRefused, match="notes.txt"):
        R.write_run(run_dir, make_predictions(3), None, {})
    assert (run_dir / "notes.txt").read_text() == "my notes" and R.Run.open(run_dir).meta["tag"] == "old"


def test_replacing_a_run_deletes_only_run_files(tmp_path, monkeypatch):
    run_dir = R.write_run(tmp_path / "r", make_predictions(2), None, {})
    # someone drops a file in between the check and the swap: it survives in the hidden old folder
    real_check = R.check_run_target
    calls = []

    def check_then_drop(path):
        real_check(path)
        calls.append(path)
        if len(calls) == 2:
            (run_dir / "late.txt").write_text("late")

    monkeypatch.setattr(R, "check_run_target", check_then_drop)
    R.write_run(run_dir, make_predictions(3), None, {})
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".r.old-")]
    assert len(leftovers) == 1 and (leftovers[0] / "late.txt").read_text() == "late"
    assert [p.name for p in leftovers[0].iterdir()] == ["late.txt"]
    assert R.Run.open(run_dir).meta["n_images"] == 3


def test_run_meta_paths_are_not_trusted(tmp_path):
    """meta.json's data_root / checkpoint pointing somewhere odd: replacing the run writes and
    deletes inside the run folder only."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    meta = {"data_root": str(victim), "checkpoint": "../../victim/keep.txt"}
    run_dir = R.write_run(tmp_path / "runs" / "r", make_predictions(2), None, meta)
    R.write_run(run_dir, make_predictions(3), None, meta)
    assert _tree(victim) == {"keep.txt": b"keep"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r"]


# ---- a truncated or corrupted run is one clear error (issue #11) ------------------------------

def test_truncated_predictions_are_a_run_file_error(tmp_path):
    run_dir = R.write_run(tmp_path / "r", make_predictions(20), np.zeros((20, 4)), {})
    data = (run_dir / R.PREDICTIONS_NAME).read_bytes()
    (run_dir / R.PREDICTIONS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(R.RunFileError) as err:
        R.Run.open(run_dir)
    msg = str(err.value)
    assert "\n" not in msg and "predictions.parquet cannot be read" in msg and "python -m audit predict" in msg
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) - 10],                     # cut short
    lambda b: b"garbage" * 10,                      # not an .npy at all
    lambda b: b + b"\x00" * 16,                     # longer than its header says
])
def test_corrupted_embeddings_are_a_run_file_error(tmp_path, damage):
    run_dir = R.write_run(tmp_path / "r", make_predictions(5), np.ones((5, 3)), {})
    path = run_dir / R.EMBEDDINGS_NAME
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(R.RunFileError, match="embeddings.npy") as err:
        R.Run.open(run_dir)
    assert "\n" not in str(err.value)


def test_embeddings_of_other_rows_are_a_run_file_error(tmp_path):
    run_dir = R.write_run(tmp_path / "r", make_predictions(5), np.ones((5, 3)), {})
    np.save(run_dir / R.EMBEDDINGS_NAME, np.ones((4, 3), dtype=np.float16))
    with pytest.raises(R.RunFileError, match=r"expected \(5, D\)"):
        R.Run.open(run_dir)
    np.save(run_dir / R.EMBEDDINGS_NAME, np.array([{"a": 1}] * 5, dtype=object))
    with pytest.raises(R.RunFileError, match="objects"):
        R.Run.open(run_dir)


def test_damage_after_open_is_a_run_file_error_on_read(tmp_path):
    run_dir = R.write_run(tmp_path / "r", make_predictions(5), np.ones((5, 3)), {})
    run = R.Run.open(run_dir)
    (run_dir / R.PREDICTIONS_NAME).write_bytes(b"PAR1 not really")
    (run_dir / R.EMBEDDINGS_NAME).write_bytes(b"\x93NUMPY broken")
    with pytest.raises(R.RunFileError, match="predictions.parquet"):
        run.predictions
    with pytest.raises(R.RunFileError, match="embeddings.npy"):
        run.embeddings


def test_resolve_run_dir_takes_dot_slash_as_a_path(tmp_path):
    assert R.resolve_run_dir("./mine") == R.Path("mine")
    assert R.resolve_run_dir(".") == R.Path(".")
    assert R.resolve_run_dir("mine") != R.Path("mine")
