import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from audit import labels as L
from audit import prediction as P
from audit import runs as R
from audit.dataset_index import index_dataset
from audit.model import create_model, load_checkpoint, save_checkpoint
from test_prediction_import import write_tiny_dataset

ARCH = "mobilenetv3_small_050"
IMG_SIZE = (64, 48)  # (H, W): small input keeps CPU tests fast


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("pred") / "data", size=(96, 128))
    return index_dataset(root)


def make_checkpoint(folder, index=None, seed=0):
    torch.manual_seed(seed)
    model = create_model(ARCH, pretrained=False, img_size=IMG_SIZE)
    card = model.card.replace(data_fingerprint=index.fingerprint if index is not None else "")
    return save_checkpoint(model, card, folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_data):
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny", tiny_data)


@pytest.fixture(scope="module")
def base_run(tiny_data, checkpoint, tmp_path_factory):
    """(run, progress calls) of the module checkpoint over the tiny data."""
    calls = []
    path = P.predict_run(tiny_data, checkpoint, tmp_path_factory.mktemp("runs") / "base", workers=0, batch_size=8,
                         progress=lambda done, total, msg: calls.append((done, total)))
    return R.Run.open(path), calls


def test_run_is_complete_and_row_aligned(tiny_data, checkpoint, base_run):
    run, calls = base_run
    df = run.predictions
    n = len(tiny_data.images)
    assert list(df.columns) == R.prediction_columns()
    assert list(df["path"]) == list(tiny_data.images["path"])
    pd.testing.assert_frame_equal(df[list(R.INDEX_COLUMNS)], tiny_data.images[list(R.INDEX_COLUMNS)])
    for cols in (R.P_MASK, R.P_GENDER, R.P_AGE, R.P_CLASS):
        p = df[list(cols)].to_numpy()
        assert np.isfinite(p).all() and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert (df["fold"] == -1).all()
    assert df["pred_age"].notna().all()
    card = load_checkpoint(checkpoint, device="cpu")[1]
    assert run.embeddings.shape == (n, card.embedding_dim) and run.embeddings.dtype == np.float16
    assert np.isfinite(run.embeddings.astype(np.float32)).all() and np.abs(run.embeddings).sum() > 0
    meta = run.meta
    assert meta["source"] == "predict" and meta["data_fingerprint"] == tiny_data.fingerprint
    assert meta["checkpoint_sha256"] and meta["versions"]["torch"] and meta["timings"]["predict_s"] > 0
    assert meta["oof"]["used"] is False and "final model" in meta["oof"]["reason"]
    assert meta["skipped"] == [] and meta["n_images"] == n
    assert calls[0] == (0, n) and calls[-1] == (n, n)


def test_single_images_use_the_same_path(tiny_data, checkpoint, base_run):
    run = base_run[0]
    model, card = load_checkpoint(checkpoint, device="cpu")
    rows = run.predictions.iloc[[0, 5, 22]]
    images = [Image.open(tiny_data.root / p) for p in rows["path"]]
    out = P.predict_images(model, card, images)
    assert out["class"].shape == (3, 18) and out["embedding"].shape == (3, card.embedding_dim)
    np.testing.assert_allclose(out["mask"], rows[list(R.P_MASK)].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(out["class"], rows[list(R.P_CLASS)].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(out["age_reg"], rows["pred_age"].to_numpy(), atol=1e-2)
    np.testing.assert_allclose(out["embedding"], run.embeddings[[0, 5, 22]].astype(np.float32), atol=2e-2, rtol=1e-2)


def test_out_of_fold_probabilities_fill_train_rows(tiny_data, tmp_path):
    ckpt = make_checkpoint(tmp_path / "w", tiny_data)
    train = tiny_data.images[tiny_data.images["split"] == "train"]
    # OOF for all train images but the last person's: those fall back to the final model
    covered = train[train["person"] != train["person"].iloc[-1]]
    rng = np.random.default_rng(0)
    oof = pd.DataFrame({"path": covered["path"].to_numpy(), "fold": rng.integers(0, 3, len(covered))})
    for cols in (R.P_MASK, R.P_GENDER, R.P_AGE):
        p = rng.random((len(covered), len(cols)))
        oof[list(cols)] = p / p.sum(axis=1, keepdims=True)
    oof["pred_age"] = rng.uniform(15, 70, len(covered))
    oof.to_parquet(tmp_path / "w" / "oof.parquet")

    run = R.Run.open(P.predict_run(tiny_data, ckpt, tmp_path / "run", workers=0))
    df = run.predictions.set_index("path")
    got = df.loc[oof["path"]]
    assert (got["fold"].to_numpy() == oof["fold"].to_numpy()).all()
    for cols in (R.P_MASK, R.P_GENDER, R.P_AGE):
        np.testing.assert_allclose(got[list(cols)].to_numpy(), oof[list(cols)].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(got["pred_age"], oof["pred_age"], atol=1e-3)
    expected = L.class_probs_from_heads(oof[list(R.P_MASK)], oof[list(R.P_GENDER)], oof[list(R.P_AGE)])
    np.testing.assert_allclose(got[list(R.P_CLASS)].to_numpy(), expected, atol=1e-6)
    uncovered = df[(df["split"] == "eval") | ~df.index.isin(oof["path"])]
    assert (uncovered["fold"] == -1).all() and len(uncovered) == 7 + 4
    assert run.meta["oof"]["used"] and run.meta["oof"]["rows"] == len(oof) and run.meta["oof"]["missing_rows"] == 7
    # embeddings exist for every row (from the final model) even where probabilities are OOF
    assert run.embeddings.shape[0] == len(df)


def test_oof_of_other_data_is_ignored(tiny_data, tmp_path):
    ckpt = make_checkpoint(tmp_path / "w", None)  # card fingerprint "" != the data's
    train = tiny_data.images[tiny_data.images["split"] == "train"]
    oof = pd.DataFrame({"path": train["path"], "fold": 0})
    for cols in (R.P_MASK, R.P_GENDER, R.P_AGE):
        oof[list(cols)] = 1.0 / len(cols)
    oof.to_parquet(tmp_path / "w" / "oof.parquet")
    run = R.Run.open(P.predict_run(tiny_data, ckpt, tmp_path / "run", workers=0))
    assert not run.meta["oof"]["used"] and "other data" in run.meta["oof"]["reason"]
    assert (run.predictions["fold"] == -1).all()


def test_existing_run_is_reused(tiny_data, checkpoint, base_run, tmp_path, monkeypatch):
    path = base_run[0].path
    stamp = (path / "meta.json").stat().st_mtime_ns
    created = R.Run.open(path).meta["created"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed a run that should have been reused")

    monkeypatch.setattr(P, "predict_paths", must_not_run)
    assert P.predict_run(tiny_data, checkpoint, path, workers=0, batch_size=3) == path
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    assert R.Run.open(path).meta["created"] == created
    with pytest.raises(AssertionError, match="recomputed"):
        P.predict_run(tiny_data, checkpoint, path, workers=0, reuse=False)
    monkeypatch.undo()
    # another checkpoint (different weights -> different sha256) is recomputed into a copy of the run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    other = make_checkpoint(tmp_path / "other", tiny_data, seed=1)
    P.predict_run(tiny_data, other, copy, workers=0)
    meta = R.Run.open(copy).meta
    assert meta["checkpoint"] == str(other.resolve()) and meta["created"] >= created


def test_unreadable_images_are_skipped_and_listed(tmp_path, checkpoint):
    root = write_tiny_dataset(tmp_path / "data", size=(96, 128))
    broken = "images/eval/100002_female_Asian_19_normal.jpg"
    (root / broken).write_bytes(b"not a jpeg at all")
    index = index_dataset(root)
    assert broken in set(index.images["path"])
    run = R.Run.open(P.predict_run(index, checkpoint, tmp_path / "run", workers=0))
    assert broken not in set(run.predictions["path"])
    assert len(run.predictions) == len(index.images) - 1 == run.embeddings.shape[0]
    assert [s["path"] for s in run.meta["skipped"]] == [broken]
    assert "UnidentifiedImageError" in run.meta["skipped"][0]["error"]


def test_age_bins_must_match_the_model(tmp_path, checkpoint):
    index = index_dataset(write_tiny_dataset(tmp_path / "data"), bins=L.COMPETITION_BINS)
    with pytest.raises(ValueError, match="model's bins"):
        P.predict_run(index, checkpoint, tmp_path / "run", workers=0)
    assert not (tmp_path / "run").exists()


def test_device_choice(tiny_data, checkpoint, tmp_path):
    assert P.resolve_device("cpu").type == "cpu"
    assert P.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        P.resolve_device("gpu")
    if torch.cuda.is_available():
        return
    with pytest.raises(ValueError, match="no CUDA GPU"):
        P.predict_run(tiny_data, checkpoint, tmp_path / "run", device="cuda", workers=0)


@pytest.mark.slow
def test_worker_processes_give_the_same_run(tiny_data, checkpoint, tmp_path):
    a = R.Run.open(P.predict_run(tiny_data, checkpoint, tmp_path / "a", workers=0, batch_size=5))
    b = R.Run.open(P.predict_run(tiny_data, checkpoint, tmp_path / "b", workers=2, batch_size=7))
    pd.testing.assert_frame_equal(a.predictions, b.predictions, atol=1e-5)
    np.testing.assert_allclose(a.embeddings.astype(np.float32), b.embeddings.astype(np.float32), atol=1e-2)


@pytest.mark.slow
def test_cli_predicts_then_reuses(tiny_data, checkpoint, tmp_path):
    cmd = [sys.executable, "-m", "audit", "predict", str(tiny_data.root), "--weights", str(checkpoint.parent),
           "--run", str(tmp_path / "runs" / "tiny"), "--workers", "0", "--batch-size", "16"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"Predicted {len(tiny_data.images)} images" in done.stdout
    meta = json.loads((tmp_path / "runs" / "tiny" / "meta.json").read_text())
    assert meta["batch_size"] == 16
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Reused" in again.stdout
    missing = subprocess.run(cmd[:6] + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr


@pytest.mark.slow
def test_tiny_demo_end_to_end_run(tiny_demo, tiny_checkpoint, tiny_run):
    """Trained checkpoint (with oof.parquet) -> run: train and eval rows out-of-fold, everything aligned."""
    index = index_dataset(tiny_demo)
    run = R.Run.open(tiny_run)
    df = run.predictions
    assert list(df["path"]) == list(index.images["path"]) and run.embeddings.shape[0] == len(df)
    oof = pd.read_parquet(tiny_checkpoint.parent / "oof.parquet").set_index("path")
    train = df[df["split"] == "train"]
    ev = df[df["split"] == "eval"]
    meta = run.meta["oof"]
    assert meta["used"] and meta["rows"] == len(df) == len(oof) and meta["eval_rows"] == len(ev) > 0
    assert "missing_rows" not in meta
    rows = df.set_index("path")
    assert (rows["fold"].to_numpy() == oof.loc[rows.index, "fold"].to_numpy()).all()
    assert set(train["fold"]) == {0, 1} == set(ev["fold"])
    np.testing.assert_allclose(rows[list(R.P_MASK)].to_numpy(), oof.loc[rows.index, list(R.P_MASK)].to_numpy(), atol=1e-6)
    # a person's photos share one fold (folds split people)
    assert (train.groupby("person")["fold"].nunique() == 1).all()
    np.testing.assert_allclose(df[list(R.P_CLASS)].sum(axis=1), 1.0, atol=1e-4)
