"""Helpers for tiny trained models and runs (owner: classifier work).

The fixtures built with them live in conftest.py: `tiny_training` (the TrainResult: metrics,
out-of-fold frame, which paths each fold saw), `tiny_checkpoint` (a model trained on `tiny_demo`:
1 epoch, 2 person-grouped folds, 64x48 input, from scratch; `model.pt`, `model.json` and
`oof.parquet` in one folder; the .pt path) and `tiny_run` (that checkpoint predicted over the whole
tiny demo, train rows out-of-fold; the run folder). Built once per session; treat them as read-only.
"""
from __future__ import annotations

TINY_ARCH = "mobilenetv3_small_050"
TINY_IMG_SIZE = (64, 48)


def tiny_train_config(**changes):
    from audit.training import TrainConfig

    args = dict(arch=TINY_ARCH, pretrained=False, epochs=1, folds=2, img_size=TINY_IMG_SIZE, batch_size=32,
                workers=0, seed=0)
    args.update(changes)
    return TrainConfig(**args)
