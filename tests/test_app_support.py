"""Shared set-up for the app's page tests (AppTest): a tiny seed-layout dataset with a run.

The images are small flat-colour pictures and the predictions are drawn from a seeded
generator around the given labels, so the pages have real folders, a real index, a real run
(predictions, embeddings, suspects) to show, without training a model. The `app_data` fixture
(conftest.py) is built from these helpers; page tests import `page_test` (and the helpers) from here.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RACES = ("Asian", "White", "Black", "LatinoHispanic")
TRAIN_FILES = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
EVAL_MASK_TYPES = ("mask", "mask2", "incorrect_mask", "normal")


@dataclass
class AppData:
    root: Path        # the dataset folder (seed layout)
    run: Path         # a run folder of that dataset
    workspace: Path   # MASK_AUDIT_WORKSPACE
    index: object     # its DatasetIndex


def write_seed_dataset(root: Path, *, people: int = 12, eval_images: int = 24, seed: int = 0) -> None:
    """Tiny seed layout: `people` train folders of 7 photos and `eval_images` eval files."""
    rng = np.random.default_rng(seed)
    for p in range(people):
        gender = ("male", "female")[p % 2]
        race = RACES[p % len(RACES)]
        age = int(rng.integers(18, 70))
        folder = root / "images" / "train" / f"{p:06d}_{gender}_{race}_{age}"
        folder.mkdir(parents=True)
        for name in TRAIN_FILES:
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            Image.new("RGB", (48, 64), colour).save(folder / f"{name}.jpg", quality=80)
    ev = root / "images" / "eval"
    ev.mkdir(parents=True)
    for i in range(eval_images):
        gender = ("male", "female")[i % 2]
        race = RACES[(i // 2) % len(RACES)]
        age = int(rng.integers(18, 70))
        pid = f"ffhq-{i:05d}" if i % 3 == 0 else f"100k-{i:06d}"
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        Image.new("RGB", (48, 64), colour).save(ev / f"{pid}_{gender}_{race}_{age}_{EVAL_MASK_TYPES[i % 4]}.png")


def _near(codes: np.ndarray, k: int, rng, right: float) -> np.ndarray:
    """(N, k) probabilities that put most mass on `codes` for a `right` fraction of rows."""
    n = len(codes)
    target = np.where(rng.random(n) < right, codes, rng.integers(0, k, n))
    logits = rng.normal(0, 0.5, (n, k))
    logits[np.arange(n), target] += 3.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def write_synthetic_run(index, run_dir: Path, *, seed: int = 0, suspects: bool = True) -> Path:
    """A run of `index` with seeded predictions near the labels, random embeddings, suspects."""
    from audit.runs import Run, finish_predictions, write_run

    rng = np.random.default_rng(seed)
    df = index.images.copy()
    df["fold"] = np.where(df["split"] == "train", rng.integers(0, 3, len(df)), -1)
    preds = finish_predictions(
        df,
        _near(df["mask"].to_numpy(), 3, rng, 0.95),
        _near(df["gender"].to_numpy(), 2, rng, 0.85),
        _near(df["age_bin"].to_numpy(), 3, rng, 0.7),
        pred_age=df["age"].to_numpy() + rng.normal(0, 6, len(df)),
    )
    emb = rng.normal(size=(len(df), 16)).astype(np.float32)
    meta = {"checkpoint": "weights/demo/model.pt", "checkpoint_sha256": "0" * 64, "data_root": str(index.root),
            "data_fingerprint": index.fingerprint, "bins": index.bins.to_dict(), "versions": {},
            "timings": {}, "source": "predict"}
    write_run(run_dir, preds, emb, meta)
    if suspects:
        from audit.noise.merge import find_suspects
        queue = find_suspects(Run.open(run_dir))
        queue.to_parquet(run_dir / "suspects.parquet", index=False)
    return run_dir


def run_copy(data: AppData, folder: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A copy of the run at `folder`, less the run files named in `without` (a run that lacks them)."""
    shutil.copytree(data.run, folder)
    for name in without:
        (folder / name).unlink()
    return folder


def apply_bulk(at, prefix: str, choice: str, *, states: str, field: str | None = None) -> None:
    """A page's bulk decision (widget keys `<prefix>_bulk_*`) switched on, `field` chosen where the
    page asks, `choice` picked; its confirmation must state `states` (the count) before it is
    ticked and applied, without an exception."""
    at.toggle(key=f"{prefix}_bulk_on").set_value(True).run()
    if field is not None:
        at.radio(key=f"{prefix}_bulk_field").set_value(field).run()
    at.selectbox(key=f"{prefix}_bulk_choice").set_value(choice).run()
    box = at.checkbox(key=f"{prefix}_bulk_confirm")
    assert states in box.label
    box.check().run()
    at.button(key=f"{prefix}_bulk_apply").click().run()
    assert not at.exception, at.exception


def page_test(page: str, data: AppData, *, run: bool = True, timeout: float = 30, **state):
    """An AppTest of `pages/<page>.py` with the dataset (and run) chosen in session state."""
    from streamlit.testing.v1 import AppTest

    repo = Path(__file__).resolve().parent.parent
    at = AppTest.from_file(str(repo / "pages" / f"{page}.py"), default_timeout=timeout)
    at.session_state["data_dir"] = str(data.root)
    at.session_state["run_dir"] = str(data.run) if run else ""
    for key, value in state.items():
        at.session_state[key] = value
    return at


os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
