"""Fixtures that draw tiny demo datasets (owner: demo-data work).

`tiny_demo`: a session-wide demo (24 train people x 7 + 48 eval images, seed 0) whose noise rates
are high enough that every noise kind occurs; its truth is at `tiny_demo / "truth.csv"`.
Treat it as read-only (it is shared by the whole session); build your own with `make_tiny_demo`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from audit.demo_data import NoiseRates, make_demo

TINY_NOISE = NoiseRates(gender_flip=0.15, age_shift=0.2, mask_swap=0.1)


def make_tiny_demo(path, **kw) -> Path:
    """Draw a tiny demo into `path` (24 people + 48 eval, seed 0, TINY_NOISE unless overridden)."""
    args = dict(people=24, eval_images=48, seed=0, noise=TINY_NOISE, workers=2)
    args.update(kw)
    make_demo(path, **args)
    return Path(path)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """Path of a tiny demo dataset (the data root holding images/ and truth.csv), built once per session."""
    return make_tiny_demo(tmp_path_factory.mktemp("tiny_demo") / "demo")
