"""Fixtures that train tiny models and predict tiny runs (owner: classifier work).

`tiny_training`: the TrainResult behind it (metrics, out-of-fold frame, which paths each fold saw).
`tiny_checkpoint`: a model trained on `tiny_demo` (1 epoch, 2 person-grouped folds, 64x48 input,
from scratch): `model.pt`, `model.json` and `oof.parquet` in one folder; returns the .pt path.
`tiny_run`: that checkpoint predicted over the whole tiny demo (train rows out-of-fold); returns
the run folder. Both are built once per session; treat them as read-only.
"""
from __future__ import annotations

from pathlib import Path

import pytest

TINY_ARCH = "mobilenetv3_small_050"
TINY_IMG_SIZE = (64, 48)


def tiny_train_config(**changes):
    from audit.training import TrainConfig

    args = dict(arch=TINY_ARCH, pretrained=False, epochs=1, folds=2, img_size=TINY_IMG_SIZE, batch_size=32,
                workers=0, seed=0)
    args.update(changes)
    return TrainConfig(**args)


@pytest.fixture(scope="session")
def tiny_training(tiny_demo, tmp_path_factory):
    """audit.training.TrainResult of the tiny model (checkpoint, card, oof, fold_train_paths)."""
    from audit.dataset_index import index_dataset
    from audit.training import train_model

    index = index_dataset(tiny_demo)
    return train_model(index, tiny_train_config(bins=index.bins), tmp_path_factory.mktemp("tiny_weights") / "tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_training) -> Path:
    """Path of model.pt trained on the tiny demo (oof.parquet and model.json beside it)."""
    return tiny_training.checkpoint


@pytest.fixture(scope="session")
def tiny_run(tiny_demo, tiny_checkpoint, tmp_path_factory) -> Path:
    """Folder of the run predicting the tiny demo with `tiny_checkpoint` (predictions, embeddings, meta)."""
    from audit.dataset_index import index_dataset
    from audit.prediction import predict_run

    index = index_dataset(tiny_demo)
    return Path(predict_run(index, tiny_checkpoint, tmp_path_factory.mktemp("tiny_runs") / "tiny", workers=0))
