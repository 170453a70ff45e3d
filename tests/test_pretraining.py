"""Domain pretraining (audit/pretraining.py, `python -m audit pretrain`) and fine-tuning from it.

Every model here is tiny and trains for a fraction of a second: the point is the plumbing (drawing,
disjoint seeds, checkpoint + card, loading into the architecture the card names, one-line errors).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audit.cli import main as cli_main

TINY = dict(identities=6, val_identities=2, photos=2, arch="test_resnet", img_size=(32, 24), crop=0.7, epochs=1,
            batch_size=4)


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    """A pretrained checkpoint made in seconds: 6 identities x 2 photos, 1 epoch, 32x24."""
    from audit.pretraining import PretrainConfig, pretrain

    base = tmp_path_factory.mktemp("pretrained")
    pretrain(PretrainConfig(**TINY), base / "out", work_dir=base / "work", workers=1, log=lambda m: None)
    return base / "out" / "model.pt"


def test_drawing_is_deterministic_with_true_labels():
    from audit.pretraining import PRETRAIN_SEED, draw_identities

    a_px, a_y = draw_identities(PRETRAIN_SEED, 3, 5, photos=2, size=(32, 24), crop=0.7)
    b_px, b_y = draw_identities(PRETRAIN_SEED, 3, 5, photos=2, size=(32, 24), crop=0.7)
    assert a_px.shape == (4, 32, 24, 3) and a_px.dtype == np.uint8
    assert np.array_equal(a_px, b_px) and np.array_equal(a_y, b_y)
    assert list(a_y[:, 4]) == [3, 3, 4, 4]  # identity index per photo
    assert (a_y[0::2, 0] == 0).all() and np.isin(a_y[1::2, 0], (1, 2)).all()  # masked, then not / incorrect
    assert a_y[0, 1] == a_y[1, 1] and a_y[0, 3] == a_y[1, 3]  # one identity: one gender, one age


def test_drawn_chunks_of_another_drawing_are_never_reused(tmp_path, monkeypatch):
    """A chunk drawn before a drawing change must not feed a pretraining after it: the chunk folder
    names the drawing version."""
    from audit import face_drawing
    from audit.pretraining import PretrainConfig, draw_folder

    config = PretrainConfig(**TINY)
    now = draw_folder(tmp_path, config, "bilinear")
    monkeypatch.setattr(face_drawing, "DRAWING_VERSION", face_drawing.DRAWING_VERSION + 1)
    assert draw_folder(tmp_path, config, "bilinear") != now
    assert f"_v{face_drawing.DRAWING_VERSION}_" in draw_folder(tmp_path, config, "bilinear").name


def test_seed_in_the_demo_range_is_refused():
    from audit.pretraining import PretrainConfig

    with pytest.raises(ValueError, match="pick one >= 1000"):
        PretrainConfig(seed=3)


def test_pretrain_writes_checkpoint_card_and_history(tiny_pretrained):
    from audit.model import read_card

    card = read_card(tiny_pretrained)
    assert card.arch == "test_resnet" and card.input_size == (3, 32, 24) and card.crop == 0.7
    assert card.metrics["complete"] is True
    assert {"gender_acc", "age_acc", "age_mae"} <= set(card.metrics["held_out_true_labels"])
    assert "pretrain" in card.how_to_reproduce or card.how_to_reproduce == ""
    assert card.train_config["pretraining"]["identities"] == 6
    history = json.loads((tiny_pretrained.parent / "history.json").read_text())
    assert len(history) == 1 and "val" in history[0]
    state = torch.load(tiny_pretrained, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


def test_resume_continues_from_the_last_epoch(tmp_path):
    from audit.pretraining import PretrainConfig, pretrain

    logs = []
    cfg = PretrainConfig(**{**TINY, "epochs": 2})
    pretrain(cfg, tmp_path / "out", work_dir=tmp_path / "work", log=logs.append)
    again = []
    pretrain(cfg, tmp_path / "out2", work_dir=tmp_path / "work", log=again.append)
    assert any("resuming after epoch 2" in m for m in again)
    assert not any(m.startswith("drawing") for m in again)  # the drawn chunks were reused


def test_pretrained_file_loads_backbone_and_heads(tiny_pretrained):
    from audit.model import create_model, load_checkpoint

    model = create_model("test_resnet", pretrained_file=tiny_pretrained, img_size=(32, 24), crop=0.7)
    reference, _ = load_checkpoint(tiny_pretrained, device="cpu")
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a.float(), b.float()), name
    assert model.card.pretrained == str(tiny_pretrained)


def test_mismatched_architecture_is_a_one_line_error(tiny_pretrained):
    from audit.model import PretrainedFileMismatch, create_model

    with pytest.raises(PretrainedFileMismatch) as err:
        create_model("resnet10t", pretrained_file=tiny_pretrained)
    assert "\n" not in str(err.value) and "test_resnet" in str(err.value)


def test_train_cli_mismatch_exits_2(tiny_pretrained, tiny_demo, capsys):
    rc = cli_main(["train", str(tiny_demo), "--arch", "resnet10t", "--pretrained-file", str(tiny_pretrained),
                   "--epochs", "1", "--folds", "0", "--img-size", "32", "24", "--workers", "0",
                   "--out", str(tiny_pretrained.parent.parent / "never")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "test_resnet" in err


def test_pretrain_cli_refuses_a_folder_of_other_files(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert cli_main(["pretrain", "--out", str(tmp_path / "mine"), "--identities", "2"]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert "error:" in capsys.readouterr().err


def _demo_args(*extra):
    import argparse

    from audit.commands import demo

    parser = argparse.ArgumentParser()
    demo.configure_parser(parser)
    return parser.parse_args(list(extra))


def test_demo_fine_tunes_from_a_pretrained_file_at_its_input(tiny_pretrained):
    from audit.commands.demo import demo_config_from_args
    from audit.labels import DEFAULT_BINS
    from audit.demo_recipe import DEMO_EPOCHS, DEMO_FINETUNE_EPOCHS, DEMO_FINETUNE_LR

    config = demo_config_from_args(_demo_args("--pretrained-file", str(tiny_pretrained)), DEFAULT_BINS)
    assert config.pretrained_file == str(tiny_pretrained) and config.img_size == (32, 24) and config.crop == 0.7
    assert config.epochs == DEMO_FINETUNE_EPOCHS and config.lr == DEMO_FINETUNE_LR
    explicit = demo_config_from_args(_demo_args("--pretrained-file", str(tiny_pretrained), "--epochs", "2"), DEFAULT_BINS)
    assert explicit.epochs == 2
    scratch = demo_config_from_args(_demo_args("--no-pretrained"), DEFAULT_BINS)
    assert scratch.pretrained_file is None and not scratch.pretrained and scratch.epochs == DEMO_EPOCHS


def test_demo_refuses_an_arch_its_pretrained_file_is_not(tiny_pretrained):
    from audit.cli import UsageError
    from audit.commands.demo import demo_config_from_args
    from audit.labels import DEFAULT_BINS

    with pytest.raises(UsageError, match="test_resnet"):
        demo_config_from_args(_demo_args("--pretrained-file", str(tiny_pretrained), "--arch", "resnet10t"),
                              DEFAULT_BINS)
