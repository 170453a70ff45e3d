"""audit/model.py: heads, data config, pretrained failures, checkpoints, preprocessing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from audit.labels import COMPETITION_BINS
from audit.model import (
    ModelCard,
    PretrainedWeightsUnavailable,
    checkpoint_sha256,
    create_eval_transform,
    create_model,
    create_train_transform,
    crop_box,
    load_checkpoint,
    load_rgb,
    oof_path,
    read_card,
    resolve_checkpoint,
    save_checkpoint,
)

ARCH = "mobilenetv3_small_050"


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return create_model(ARCH, pretrained=False, img_size=(64, 48))


def test_heads_and_embedding_shapes(small_model):
    x = torch.randn(5, 3, 64, 48)
    small_model.eval()
    with torch.no_grad():
        out = small_model(x)
        out2, emb = small_model.forward_with_embedding(x)
        emb2 = small_model.embed(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"mask": (5, 3), "gender": (5, 2), "age": (5, 3), "age_reg": (5,)}
    assert emb.shape == (5, small_model.card.embedding_dim) and small_model.card.embedding_dim > 0
    assert torch.allclose(emb, emb2)
    for key in out:
        assert torch.allclose(out[key], out2[key])
    # the age regression is in years, centred on adult ages even untrained
    assert (out["age_reg"] > 0).all() and (out["age_reg"] < 100).all()
    # the backbone is the timm model (Grad-CAM picks its layer there) and gives pooled features
    assert small_model.backbone.num_classes == 0


def test_card_follows_timm_data_config_not_constants():
    from timm.data import resolve_model_data_config

    model = create_model("test_vit", pretrained=False, bins=COMPETITION_BINS)
    config = resolve_model_data_config(model.backbone)
    card = model.card
    assert card.input_size == tuple(config["input_size"]) == (3, 160, 160)
    assert card.mean == tuple(config["mean"]) == (0.5, 0.5, 0.5)
    assert card.std == tuple(config["std"])
    assert card.interpolation == config["interpolation"]
    assert card.age_bins == COMPETITION_BINS
    # img_size overrides the input size, also for a token model that fixes it at construction
    model = create_model("test_vit", pretrained=False, img_size=(64, 48))
    assert model.card.input_size == (3, 64, 48)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 48))["mask"].shape == (1, 3)


def test_eval_transform_uses_the_cards_size_and_normalisation():
    card = create_model("test_vit", pretrained=False, img_size=(40, 30)).card
    img = Image.new("RGB", (384, 512), (255, 0, 128))
    x = create_eval_transform(card)(img)
    assert x.shape == (3, 40, 30) and x.dtype == torch.float32
    expected = (torch.tensor([255, 0, 128]) / 255.0 - 0.5) / 0.5  # test_vit: mean = std = 0.5
    assert torch.allclose(x[:, 20, 15], expected, atol=1e-3)
    # ImageNet statistics for an ImageNet model
    card2 = create_model(ARCH, pretrained=False, img_size=(40, 30)).card
    y = create_eval_transform(card2)(img)
    assert torch.allclose(y[:, 20, 15], (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(card2.mean)) / torch.tensor(card2.std), atol=1e-3)


def test_eval_transform_decodes_large_jpegs_reduced(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "face.jpg"
    Image.fromarray(rng.integers(0, 255, (512, 384, 3), dtype=np.uint8)).save(path, quality=90)
    card = create_model(ARCH, pretrained=False, img_size=(64, 48)).card
    img = Image.open(path)
    x = create_eval_transform(card)(img)
    assert x.shape == (3, 64, 48)
    assert img.size == (48, 64)  # draft() picked the 1/8 DCT scale: no full-size decode
    # a PNG (no draft) gives the same shape
    Image.open(path).save(tmp_path / "face.png")
    assert create_eval_transform(card)(Image.open(tmp_path / "face.png")).shape == (3, 64, 48)


def test_crop_keeps_the_central_fraction_before_resizing(tmp_path):
    # a red frame around a green centre: a 0.5 crop sees only green, the whole image both
    img = Image.new("RGB", (384, 512), (255, 0, 0))
    img.paste((0, 255, 0), crop_box(img.size, 0.5))
    assert crop_box((384, 512), 0.5) == (96, 128, 288, 384)
    assert crop_box((384, 512), 1.0) == (0, 0, 384, 512)
    cropped = np.asarray(load_rgb(img, (64, 48), "bilinear", crop=0.5))
    assert cropped.shape == (64, 48, 3) and (cropped[..., 1] > 250).all() and (cropped[..., 0] < 5).all()
    whole = np.asarray(load_rgb(img, (64, 48), "bilinear"))
    assert whole[0, 0, 0] > 250 and whole[32, 24, 1] > 250
    # the card carries it to the transforms; a JPEG is drafted no smaller than the crop needs
    card = create_model(ARCH, pretrained=False, img_size=(64, 48), crop=0.5).card
    assert card.crop == 0.5 and ModelCard.from_json(card.to_json()).crop == 0.5
    img.save(tmp_path / "frame.jpg", quality=95)
    jpeg = Image.open(tmp_path / "frame.jpg")
    x = create_eval_transform(card)(jpeg)
    assert x.shape == (3, 64, 48) and jpeg.size[0] >= 96  # not drafted below W / crop
    green = (torch.tensor([0.0, 1.0, 0.0]) - torch.tensor(card.mean)) / torch.tensor(card.std)
    assert torch.allclose(x[:, 0, 0], green, atol=0.1)
    # cards written before the field existed read as the whole image
    old = card.to_dict()
    old.pop("crop")
    assert ModelCard.from_dict(old).crop == 1.0
    for bad in (0.0, 0.1, 1.5):
        with pytest.raises(ValueError, match="crop"):
            create_model(ARCH, pretrained=False, crop=bad)


def test_train_transform_augments_but_keeps_shape():
    card = create_model(ARCH, pretrained=False, img_size=(64, 48)).card
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (128, 96, 3), dtype=np.uint8))
    tf = create_train_transform(card)
    torch.manual_seed(0)
    a, b = tf(img.copy()), tf(img.copy())
    assert a.shape == b.shape == (3, 64, 48)
    assert not torch.allclose(a, b)  # random augmentation
    e1, e2 = create_eval_transform(card)(img.copy()), create_eval_transform(card)(img.copy())
    assert torch.equal(e1, e2)


def test_pretrained_download_failure_says_how_to_go_on(monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        create_model(ARCH, pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert "--no-pretrained" in message and "--pretrained-file" in message and ARCH in message
    # without pretrained weights nothing is fetched
    assert create_model(ARCH, pretrained=False).card.pretrained == "none"


def test_unknown_architecture_is_a_value_error():
    with pytest.raises(ValueError, match="unknown timm architecture"):
        create_model("no_such_net_42", pretrained=False)


def test_pretrained_file_loads_the_backbone_weights(tmp_path):
    import timm

    torch.manual_seed(3)
    source = timm.create_model(ARCH, pretrained=False)  # with its ImageNet classifier, as a download would be
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = create_model(ARCH, pretrained_file=path)
    got = model.backbone.state_dict()
    for key, value in source.state_dict().items():
        if key in got:
            assert torch.equal(got[key], value), key
    assert model.card.pretrained == str(path)
    with pytest.raises(FileNotFoundError):
        create_model(ARCH, pretrained_file=tmp_path / "missing.pth")


def test_checkpoint_round_trip(small_model, tmp_path):
    card = small_model.card.replace(data_fingerprint="abc", folds=3, epochs=2, metrics={"eval": {"macro_f1": 0.5}},
                                    how_to_reproduce="python -m audit train X")
    path = save_checkpoint(small_model, card, tmp_path / "w")
    assert path == tmp_path / "w" / "model.pt" == resolve_checkpoint(tmp_path / "w")
    assert oof_path(path) == tmp_path / "w" / "oof.parquet"
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk["arch"] == ARCH and on_disk["input_size"] == [3, 64, 48] and on_disk["bins"]["lo"] == 25
    assert ModelCard.from_json(path.with_suffix(".json").read_text()) == card == read_card(path)
    model, loaded = load_checkpoint(path, device="cpu")
    assert loaded == card and not model.training
    x = torch.randn(3, 3, 64, 48)
    small_model.eval()
    with torch.no_grad():
        a, b = small_model(x), model(x)
    for key in a:  # weights are stored fp16
        assert torch.allclose(a[key], b[key], atol=0.05, rtol=0.02), key
    assert checkpoint_sha256(path) == checkpoint_sha256(tmp_path / "w")
    assert len(checkpoint_sha256(path)) == 64
    assert path.stat().st_size < 2_000_000  # fp16 keeps it small


def test_load_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a Mask Audit checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.pt")


# ---- a checkpoint that is not one is a one-line CheckpointError (issue #11) -------------------

def _damaged_checkpoints(small_model, folder):
    """name -> a model.pt that must be refused in one line."""
    good = save_checkpoint(small_model, small_model.card, folder / "good")
    data = good.read_bytes()
    out = {}
    for name, content in {
        "text": b"this is not a checkpoint\n",
        "empty": b"",
        "cut_short": data[: len(data) // 3],
        "cut_at_the_end": data[:-100],
    }.items():
        (folder / name).mkdir()
        (folder / name / "model.pt").write_bytes(content)
        out[name] = folder / name / "model.pt"
    (folder / "pickle").mkdir()
    torch.save({"format": "mask-audit-checkpoint/1", "card": small_model.card.to_dict(),
                "state_dict": {}, "evil": object()}, folder / "pickle" / "model.pt")
    out["pickle"] = folder / "pickle" / "model.pt"  # weights_only refuses arbitrary objects
    (folder / "other_weights").mkdir()
    other = create_model("resnet18", pretrained=False, img_size=(64, 48))
    torch.save({"format": "mask-audit-checkpoint/1", "card": small_model.card.to_dict(),
                "state_dict": other.state_dict()}, folder / "other_weights" / "model.pt")
    out["other_weights"] = folder / "other_weights" / "model.pt"
    return out


def test_damaged_checkpoints_are_one_line_checkpoint_errors(small_model, tmp_path):
    from audit.model import CheckpointError

    for name, path in _damaged_checkpoints(small_model, tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path, device="cpu")
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg and len(msg) < 400, (name, msg)
        assert isinstance(err.value, ValueError)


def test_predict_cli_refuses_a_damaged_checkpoint_with_exit_2(small_model, tmp_path):
    import subprocess
    import sys

    from test_prediction_import import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data")
    for name in ("text", "cut_short"):
        path = _damaged_checkpoints(small_model, tmp_path / name)[name]
        path.with_suffix(".json").write_text(small_model.card.to_json())  # the card beside it still reads
        done = subprocess.run([sys.executable, "-m", "audit", "predict", str(data), "--weights", str(path),
                               "--run", str(tmp_path / "run"), "--workers", "0"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "not a readable checkpoint" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "run").exists()
