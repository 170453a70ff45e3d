"""Helpers that draw tiny demo datasets (owner: demo-data work).

The `tiny_demo` fixture (conftest.py) is `make_tiny_demo` run once per session; its truth is at
`tiny_demo / "truth.csv"`. Build your own with `make_tiny_demo`.
"""
from __future__ import annotations

from pathlib import Path

from audit.demo_data import NoiseRates, make_demo

TINY_NOISE = NoiseRates(gender_flip=0.15, age_shift=0.2, mask_swap=0.1)


def make_tiny_demo(path, **kw) -> Path:
    """Draw a tiny demo into `path` (24 people + 48 eval, seed 0, TINY_NOISE unless overridden)."""
    args = dict(people=24, eval_images=48, seed=0, noise=TINY_NOISE, workers=2)
    args.update(kw)
    make_demo(path, **args)
    return Path(path)

