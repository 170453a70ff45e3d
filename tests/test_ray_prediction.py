"""`predict --engine ray` (audit/ray_prediction.py): Ray Data in local mode with 2 CPU actors writes
the same run as the default in-process path. Skipped, with the reason, where Ray is not installed
(it is optional: requirements-ray.txt)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.ray_prediction import RayConfig

REPO = Path(__file__).resolve().parents[1]


def test_ray_config_checks():
    with pytest.raises(ValueError, match="ray-workers"):
        RayConfig(workers=0).validate()
    with pytest.raises(ValueError, match="GPU JPEG"):
        RayConfig(gpu_decode=True).validate()
    with pytest.raises(ValueError, match="address"):
        RayConfig(address="not an address").validate()
    assert RayConfig(address="auto").validate().address == "auto"


def test_ray_options_need_the_ray_engine(tiny_demo, tmp_path, capsys):
    from audit.cli import main

    code = main(["predict", str(tiny_demo), "--weights", str(REPO / "weights" / "demo"), "--run",
                 str(tmp_path / "run"), "--address", "auto"])
    assert code == 2 and "need --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _same_run(a: Path, b: Path) -> None:
    pa, pb = pd.read_parquet(a / "predictions.parquet"), pd.read_parquet(b / "predictions.parquet")
    assert list(pa["path"]) == list(pb["path"])
    floats = [c for c in pa.columns if c.startswith("p_")] + ["confidence", "pred_age"]
    np.testing.assert_allclose(pa[floats].to_numpy(), pb[floats].to_numpy(), atol=1e-5)
    for col in ("fold", "pred_class", "pred_mask", "pred_gender", "pred_age_bin", "class_id"):
        assert (pa[col].to_numpy() == pb[col].to_numpy()).all(), col
    ea, eb = np.load(a / "embeddings.npy"), np.load(b / "embeddings.npy")
    assert ea.shape == eb.shape
    np.testing.assert_allclose(ea.astype(np.float32), eb.astype(np.float32), atol=2e-3, rtol=2e-3)
    ma, mb = json.loads((a / "meta.json").read_text()), json.loads((b / "meta.json").read_text())
    assert ma["oof"] == mb["oof"] and ma["skipped"] == mb["skipped"]
    assert mb["engine"]["engine"] == "ray" and mb["engine"]["workers"] == 2


@pytest.mark.slow
def test_ray_engine_writes_the_same_run_as_the_default_path(tiny_demo, tiny_checkpoint, tiny_run, tmp_path):
    """Out-of-fold rows, final-model rows, embeddings and meta as the in-process path (tiny_run)."""
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    from audit.dataset_index import index_dataset
    from audit.prediction import predict_run

    index = index_dataset(tiny_demo)
    out = predict_run(index, tiny_checkpoint, tmp_path / "ray_run", engine="ray",
                      ray_config=RayConfig(workers=2, batch_size=32))
    _same_run(tiny_run, out)
    assert json.loads((out / "meta.json").read_text())["oof"]["used"]


@pytest.mark.slow
def test_ray_engine_cli_skips_unreadable_files_like_the_default(tmp_path, monkeypatch):
    """`python -m audit predict ... --engine ray` through the CLI, with a truncated JPEG in the data."""
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    from fixtures_demo import make_tiny_demo

    from audit.cli import main

    data = make_tiny_demo(tmp_path / "demo", people=3, eval_images=6)
    victim = sorted((data / "images" / "train").rglob("mask2.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:300])
    weights = str(REPO / "weights" / "demo")
    assert main(["predict", str(data), "--weights", weights, "--run", str(tmp_path / "local"), "--workers", "0"]) == 0
    assert main(["predict", str(data), "--weights", weights, "--run", str(tmp_path / "ray"), "--engine", "ray",
                 "--ray-workers", "2", "--batch-size", "8"]) == 0
    _same_run(tmp_path / "local", tmp_path / "ray")
    skipped = json.loads((tmp_path / "ray" / "meta.json").read_text())["skipped"]
    assert [s["path"] for s in skipped] == [victim.relative_to(data).as_posix()]


def test_jpeg_bytes_path_decodes_in_the_actor_close_to_the_cpu_path(tiny_demo):
    """The --gpu-decode stages without Ray or a GPU: decode tasks pass JPEG bytes, the actor decodes
    them with torchvision (on CPU here, device="cuda" on a GPU actor) and crops/resizes like the card.
    Close to the PIL path, not identical (full decode + tensor resize)."""
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    from audit.model import read_card
    from audit.ray_prediction import HeadsPredictor, decode_images

    weights = REPO / "weights" / "demo" / "model.pt"
    card = read_card(weights).to_dict()
    files = sorted((tiny_demo / "images").rglob("*"))
    paths = [f.relative_to(tiny_demo).as_posix() for f in files if f.suffix in (".jpg", ".png")][:12]
    batch = {"pos": np.arange(len(paths)), "path": np.asarray(paths, dtype=object)}
    predictor = HeadsPredictor(weights.read_bytes(), use_gpu=False, threads=1)
    on_cpu = predictor(decode_images(batch, root=str(tiny_demo), card=card))
    as_bytes = decode_images(batch, root=str(tiny_demo), card=card, gpu_jpeg=True)
    is_jpeg = np.asarray([p.endswith(".jpg") for p in paths])
    assert is_jpeg.any() and (~is_jpeg).any()
    assert all(bool(d) == j for d, j in zip(as_bytes["jpeg"], is_jpeg))
    decoded = predictor(as_bytes)
    for head in ("mask", "gender", "age"):
        np.testing.assert_allclose(decoded[head][~is_jpeg], on_cpu[head][~is_jpeg], atol=1e-6)  # PNGs: same path
        np.testing.assert_allclose(decoded[head][is_jpeg], on_cpu[head][is_jpeg], atol=0.15)


def test_decode_stage_refuses_what_the_default_path_refuses(tmp_path):
    """A path escaping the data folder and a FIFO are rows with ok=False and a one-line reason
    (never an open that blocks), as in audit.prediction."""
    import os

    from audit.model import read_card
    from audit.ray_prediction import decode_images

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    os.mkfifo(root / "images" / "pipe.jpg")
    card = read_card(REPO / "weights" / "demo" / "model.pt").to_dict()
    out = decode_images({"pos": np.arange(3), "path": np.asarray(["images/pipe.jpg", "../outside.jpg",
                                                                  "images/gone.png"], dtype=object)},
                        root=str(root), card=card)
    assert not out["ok"].any()
    assert all(e and "\n" not in e for e in out["error"])
    assert out["x"].shape == (3, *card["input_size"]) and not out["x"].any()  # the card's (C, H, W)
