"""benchmarks/bench_pretrain_arch.py backs BENCHMARKS.md's "what limits gender": its --read mode
redraws each held-out identity's look to compare the reader with the drawing's femininity latent.
If that redraw fell out of step with `draw_identities` (a changed rng call order), the latent would
belong to someone else and the oracle row would be a coin flip; this fails then."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_pretrain_arch  # noqa: E402

from audit.model import create_model, save_checkpoint  # noqa: E402
from audit.pretraining import PRETRAIN_SEED, draw_identities  # noqa: E402


def test_variants_register_once_and_differ_from_test_resnet():
    bench_pretrain_arch.register_variants()
    bench_pretrain_arch.register_variants()  # a second call is harmless
    sizes = {arch: sum(p.numel() for p in create_model(arch, pretrained=False, img_size=(24, 18)).parameters())
             for arch in ("test_resnet", "deep_test_resnet", "wide_test_resnet", "os16_test_resnet")}
    assert sizes["deep_test_resnet"] > sizes["test_resnet"]
    assert sizes["wide_test_resnet"] > sizes["test_resnet"]
    assert sizes["os16_test_resnet"] == sizes["test_resnet"]  # same weights, a finer last stage


def test_read_checkpoint_lines_the_reader_up_with_the_drawn_latent(tmp_path):
    x, y = draw_identities(PRETRAIN_SEED, 32000, 32080, photos=2, size=(24, 18), crop=0.7,
                           interpolation="bilinear")
    model = create_model("test_resnet", pretrained=False, img_size=(24, 18), crop=0.7)
    path = save_checkpoint(model, model.card, tmp_path / "reader.pt")
    report = bench_pretrain_arch.read_checkpoint(str(path), x, y)
    assert report["photos"] == 160 and report["gender_masked"]["n"] == int((y[:, 0] == 0).sum())
    # the latent's sign reads gender ~96% of the time when it is the identity's own latent, ~50% if not
    assert report["latent_sign_oracle"]["acc"] > 0.85
    errors = round((1 - report["gender"]["acc"]) * 160)
    assert report["errors_where_the_latent_is_right"] + report["errors_where_the_latent_is_wrong"] == errors
    assert sum(v["n"] for v in report["by_race"].values()) == 160
    assert sum(v["n"] for v in report["by_source"].values()) == 160
    assert 0 <= report["gender_flip_averaged"]["acc"] <= 1


@pytest.mark.parametrize("arch", ["deep_test_resnet"])
def test_a_variant_trains_through_the_pretraining_loop(arch):
    import numpy as np

    from audit.pretraining import PretrainConfig, fit_arrays

    bench_pretrain_arch.register_variants()
    x, y = draw_identities(PRETRAIN_SEED, 0, 16, photos=2, size=(24, 18), crop=0.7, interpolation="bilinear")
    config = PretrainConfig(identities=16, arch=arch, img_size=(24, 18), epochs=1, batch_size=8)
    model = create_model(arch, pretrained=False, img_size=(24, 18), crop=0.7)
    history = fit_arrays(model, config, x, y, x[:8], y[:8], log=lambda _: None)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
