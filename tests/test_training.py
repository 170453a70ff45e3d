"""audit/training.py and the train / demo commands: person-grouped folds, out-of-fold probabilities,
the written checkpoint, reproducibility."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from audit.labels import DEFAULT_BINS
from audit.model import load_checkpoint, oof_path, read_card
from audit.demo_recipe import DEMO_CROP, demo_train_config
from audit.training import (
    OOF_COLUMNS,
    P_AGE,
    P_GENDER,
    P_MASK,
    TrainConfig,
    class_weights,
    default_command,
    head_metrics,
    person_folds,
    train_model,
    warmup_cosine,
)
from fixtures_run import tiny_train_config


def _images(n_people: int, seed: int = 0, n_eval: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_people):
        gender, age_bin = int(rng.integers(2)), int(rng.integers(3))
        for k in range(7):
            rows.append({"path": f"images/train/p{p}/{k}.jpg", "split": "train", "person": f"p{p}_x",
                         "gender": gender, "age_bin": age_bin})
    for e in range(n_eval):
        rows.append({"path": f"images/eval/e{e}.jpg", "split": "eval", "person": f"e{e}_x",
                     "gender": 0, "age_bin": 0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_person_folds_never_split_a_person(k):
    images = _images(40)
    folds = person_folds(images, k, seed=1)
    train = images["split"] == "train"
    assert (folds[~train.to_numpy()] == -1).all()
    assert set(folds[train.to_numpy()]) == set(range(k))
    per_person = pd.Series(folds[train.to_numpy()]).groupby(images.loc[train, "person"].to_numpy()).nunique()
    assert (per_person == 1).all()  # all 7 photos of a person in one fold
    people = {f: set(images.loc[train.to_numpy() & (folds == f), "person"]) for f in range(k)}
    for a in range(k):
        for b in range(a + 1, k):
            assert not people[a] & people[b]
    sizes = [len(people[f]) for f in range(k)]
    assert max(sizes) - min(sizes) <= 3
    assert np.array_equal(folds, person_folds(images, k, seed=1))  # seeded
    assert not np.array_equal(folds, person_folds(images, k, seed=2))


def test_person_folds_need_enough_people():
    with pytest.raises(ValueError, match="at least 5 train people"):
        person_folds(_images(3), 5)


def test_class_weights_and_schedule():
    w = class_weights(np.array([0] * 5 + [1] + [2]), 3)
    assert w[1] == pytest.approx(w[2]) and w[1] == pytest.approx(5 * w[0])
    assert class_weights(np.array([0, 0, 1]), 3)[2] == 1.0  # absent class: neutral
    f = warmup_cosine(100)
    assert f(0) < f(10) and f(14) == pytest.approx(1.0) and f(99) < 0.05
    assert warmup_cosine(1)(0) == 1.0  # one-step training still works


def test_head_metrics_macro_f1():
    labels = np.array([[0, 0, 0, 20], [2, 1, 2, 50], [1, 0, 1, 30]])
    probs = {"mask": np.eye(3)[[0, 2, 1]], "gender": np.eye(2)[[0, 1, 1]], "age": np.eye(3)[[0, 2, 1]],
             "age_reg": np.array([20.0, 40.0, 30.0])}
    m = head_metrics(labels, probs)
    assert m["mask_acc"] == 1.0 and m["gender_acc"] == pytest.approx(2 / 3, abs=1e-3) and m["age_acc"] == 1.0
    assert m["accuracy"] == pytest.approx(2 / 3, abs=1e-3) and 0 < m["macro_f1"] < 1
    assert m["age_mae"] == pytest.approx(10 / 3, abs=0.01)


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(folds=1)
    with pytest.raises(ValueError):
        TrainConfig(balance="magic")
    assert TrainConfig(img_size=[96, 72]).img_size == (96, 72)
    assert TrainConfig().to_dict()["bins"] == DEFAULT_BINS.to_dict()
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(crop=0)
    # the whole image unless asked; the demo model crops, and the reproduce command says so
    assert TrainConfig().crop == 1.0 and "--crop" not in default_command(TrainConfig())
    assert demo_train_config().crop == DEMO_CROP < 1
    assert f"--crop {DEMO_CROP}" in default_command(demo_train_config())
    # eval joins the folds unless asked not to, and the reproduce command says so
    assert TrainConfig().eval_in_folds and "--no-eval-in-folds" not in default_command(TrainConfig())
    assert "--no-eval-in-folds" in default_command(TrainConfig(eval_in_folds=False))


def test_cached_pixels_are_cropped_once(tiny_demo):
    """Training's decode cache holds load_rgb's output (cropped + resized); the dataset must give
    the model exactly what the eval transform makes of the file, not a second crop of the crop."""
    from PIL import Image

    from audit.dataset_index import index_dataset
    from audit.model import create_eval_transform, create_model
    from audit.training import _Images, _labels, decode_images

    rows = index_dataset(tiny_demo).images.head(3).reset_index(drop=True)
    card = create_model("test_resnet", pretrained=False, img_size=(64, 48), crop=0.6).card
    paths = rows["path"].tolist()
    cache = decode_images(tiny_demo, paths, card.image_size, card.interpolation, crop=card.crop)
    tf = create_eval_transform(card)
    cached = _Images(tiny_demo, paths, _labels(rows), tf, cache=cache)
    from_files = _Images(tiny_demo, paths, _labels(rows), tf)
    for i in range(len(rows)):
        with Image.open(tiny_demo / paths[i]) as img:
            expected = tf(img)
        assert torch.allclose(cached[i][0], expected, atol=1e-6)
        assert torch.allclose(from_files[i][0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="load_rgb"):
        tf.from_prepared(Image.new("RGB", (96, 128)))


def test_device_is_not_part_of_the_model_config_and_feeds_a_gpu_with_more_loaders(monkeypatch):
    # Where a model trained does not change what it is: a CUDA-trained checkpoint and a CPU one
    # of the same settings compare equal (the demo command reuses a checkpoint on that basis).
    assert TrainConfig(device="cuda").to_dict() == TrainConfig(device="cpu").to_dict()
    assert "device" not in TrainConfig().to_dict()
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert TrainConfig().num_workers(torch.device("cpu")) == 2
    assert TrainConfig().num_workers(torch.device("cuda")) == 8
    assert TrainConfig(workers=3).num_workers(torch.device("cuda")) == 3
    if not torch.cuda.is_available():
        from audit.training import train_model

        with pytest.raises(ValueError, match="no CUDA GPU"):
            train_model(None, TrainConfig(device="cuda"), "unused")


@pytest.mark.slow
def test_oof_rows_come_from_a_model_that_did_not_see_the_person(tiny_training, tiny_demo):
    from audit.dataset_index import index_dataset

    index = index_dataset(tiny_demo)
    images = index.images
    oof = pd.read_parquet(oof_path(tiny_training.checkpoint))
    assert list(oof.columns) == list(OOF_COLUMNS)
    # every train and eval image, once (eval joins the folds by default)
    assert sorted(oof["path"]) == sorted(images["path"])
    assert (images["split"] == "eval").any()
    for cols in (P_MASK, P_GENDER, P_AGE):
        np.testing.assert_allclose(oof[list(cols)].sum(axis=1), 1.0, atol=1e-4)
    assert np.isfinite(oof["pred_age"]).all()
    seen = tiny_training.fold_train_paths
    assert set(seen) == {0, 1} == set(oof["fold"])
    person_of = dict(zip(images["path"], images["split"] + "/" + images["person"]))
    split_of = dict(zip(images["path"], images["split"]))
    for f, paths in seen.items():
        trained_people = {person_of[p] for p in paths}
        predicted = oof[oof["fold"] == f]
        # the model of fold f predicted these rows, train and eval, and trained on none of their people
        assert {split_of[p] for p in predicted["path"]} == {"train", "eval"}
        assert not {person_of[p] for p in predicted["path"]} & trained_people
        assert not set(predicted["path"]) & set(paths)
    # and every other image, train or eval, was in its training set
    assert set(oof.loc[oof["fold"] != 0, "path"]) == set(seen[0])


@pytest.mark.slow
def test_eval_kept_out_of_training_when_asked(tiny_demo, tmp_path):
    from audit.dataset_index import index_dataset

    index = index_dataset(tiny_demo)
    result = train_model(index, tiny_train_config(eval_in_folds=False), tmp_path / "w")
    train = index.images[index.images["split"] == "train"]
    oof = pd.read_parquet(oof_path(result.checkpoint))
    assert sorted(oof["path"]) == sorted(train["path"])  # train images only
    for paths in result.fold_train_paths.values():
        assert all(p.startswith("images/train/") for p in paths)
    assert read_card(result.checkpoint).metrics["eval"]["n"] == int((index.images["split"] == "eval").sum())


def test_eval_rows_fold_apart_from_train_people():
    images = _images(12, n_eval=0)
    n_eval = 9
    ev = pd.DataFrame({"path": [f"images/eval/{i}.jpg" for i in range(n_eval)], "split": "eval",
                       "person": [f"e{i}" for i in range(n_eval)], "gender": [i % 2 for i in range(n_eval)],
                       "age_bin": [i % 3 for i in range(n_eval)]})
    both = pd.concat([images, ev], ignore_index=True)
    without = person_folds(both, 3, seed=1)
    with_eval = person_folds(both, 3, seed=1, include_eval=True)
    train = (both["split"] == "train").to_numpy()
    # the train people's folds do not depend on eval joining
    assert np.array_equal(without[train], with_eval[train]) and (without[~train] == -1).all()
    # every fold gets its share of the eval images
    assert sorted(np.bincount(with_eval[~train], minlength=3)) == [3, 3, 3]
    # fewer eval people than folds: eval stays out
    assert (person_folds(both.iloc[:len(images) + 2], 3, seed=1, include_eval=True)[len(images):] == -1).all()


@pytest.mark.slow
def test_checkpoint_and_card_describe_the_training(tiny_training, tiny_demo):
    from audit.dataset_index import index_dataset

    index = index_dataset(tiny_demo)
    card = read_card(tiny_training.checkpoint)
    assert card.data_fingerprint == index.fingerprint
    assert card.folds == 2 and card.epochs == 1 and card.arch == tiny_train_config().arch
    assert card.input_size == (3, 64, 48)
    assert card.train_config["img_size"] == [64, 48] and card.train_config["pretrained"] is False
    n_train = int((index.images["split"] == "train").sum())
    n_eval = int((index.images["split"] == "eval").sum())
    assert card.metrics["oof"]["n"] == n_train and card.metrics["eval"]["n"] == n_eval
    assert card.metrics["eval_source"] == "out-of-fold" and card.train_config["eval_in_folds"] is True
    for key in ("macro_f1", "mask_acc", "gender_acc", "age_acc"):
        assert 0.0 <= card.metrics["oof"][key] <= 1.0
    assert card.how_to_reproduce.startswith("python -m audit train ")
    assert card.train_device == "cpu" or card.train_device.startswith("cuda (")
    assert "--no-pretrained" in card.how_to_reproduce and "--img-size 64 48" in card.how_to_reproduce
    model, loaded = load_checkpoint(tiny_training.checkpoint, device="cpu")
    assert loaded.data_fingerprint == index.fingerprint
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 48))
    assert out["mask"].shape == (2, 3)


@pytest.mark.slow
def test_training_is_reproducible_on_cpu(tiny_demo, tmp_path):
    from audit.dataset_index import index_dataset

    index = index_dataset(tiny_demo)
    config = tiny_train_config(folds=0, workers=1, img_size=(32, 24))
    a = train_model(index, config, tmp_path / "a")
    b = train_model(index, config, tmp_path / "b")
    assert a.oof is None and not oof_path(a.checkpoint).exists()
    sa = torch.load(a.checkpoint, weights_only=True)["state_dict"]
    sb = torch.load(b.checkpoint, weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.card.metrics == b.card.metrics
    c = train_model(index, tiny_train_config(folds=0, workers=1, img_size=(32, 24), seed=1), tmp_path / "c")
    sc = torch.load(c.checkpoint, weights_only=True)["state_dict"]
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


@pytest.mark.slow
def test_train_command(tiny_demo, tmp_path, capsys):
    from audit.cli import main

    out = tmp_path / "w"
    rc = main(["train", str(tiny_demo), "--arch", "mobilenetv3_small_050", "--epochs", "1", "--folds", "2",
               "--img-size", "32", "24", "--crop", "0.8", "--no-pretrained", "--workers", "0",
               "--no-eval-in-folds", "--out", str(out)])
    assert rc == 0
    assert (out / "model.pt").is_file() and (out / "model.json").is_file() and (out / "oof.parquet").is_file()
    shown = capsys.readouterr().out
    assert "macro F1" in shown and "eval, held out" in shown
    card = json.loads((out / "model.json").read_text())
    assert card["folds"] == 2 and card["input_size"] == [3, 32, 24] and card["crop"] == 0.8
    assert "--crop 0.8" in card["how_to_reproduce"] and "--no-eval-in-folds" in card["how_to_reproduce"]
    assert card["train_config"]["eval_in_folds"] is False and card["metrics"]["eval_source"] == "final model, held out"


def test_train_command_usage_errors(tiny_demo, tmp_path, capsys, monkeypatch):
    from audit.cli import main

    assert main(["train", str(tiny_demo), "--arch", "no_such_net", "--out", str(tmp_path / "x")]) == 2
    assert "unknown timm architecture" in capsys.readouterr().err
    assert main(["train", str(tiny_demo), "--no-pretrained", "--folds", "1000", "--out", str(tmp_path / "x")]) == 2
    assert "train people" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nowhere"), "--no-pretrained"]) == 2
    capsys.readouterr()

    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    assert main(["train", str(tiny_demo), "--epochs", "1", "--folds", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--no-pretrained" in err and "--pretrained-file" in err
    assert not (tmp_path / "x" / "model.pt").exists()


@pytest.mark.slow
def test_demo_command_end_to_end_and_reuse(tmp_path, capsys):
    from audit import workspace
    from audit.cli import main
    from audit.runs import Run

    args = ["demo", "--people", "6", "--eval", "8", "--epochs", "1", "--folds", "2", "--img-size", "32", "24",
            "--workers", "0"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "run:" in out.out
    run = Run.open(workspace.runs_dir() / "demo")
    assert len(run.predictions) == 6 * 7 + 8
    train = run.predictions[run.predictions["split"] == "train"]
    assert (train["fold"] >= 0).all()  # out-of-fold for every train image
    checkpoint = workspace.workspace_dir() / "weights" / "demo" / "model.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert main(args) == 0  # current data, model and run: nothing recomputed
    assert "reusing" in capsys.readouterr().err
    assert checkpoint.stat().st_mtime_ns == stamp
    # A checkpoint made by other training code (an edited augmentation, say) is not reused.
    import json

    from audit.training import training_code_fingerprint

    card_path = checkpoint.with_suffix(".json")
    card = json.loads(card_path.read_text())
    assert card["versions"]["training_code"] == training_code_fingerprint()
    card["versions"]["training_code"] = "0" * 16
    card_path.write_text(json.dumps(card))
    assert main(args) == 0
    assert "reusing" not in capsys.readouterr().err
    assert checkpoint.stat().st_mtime_ns != stamp
