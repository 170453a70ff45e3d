"""A hard-linked S× replica of the full-scale dataset and a synthetic run over it, for page and layout speed.

    python benchmarks/make_scale_replica.py OUT --scale S [--manifest ../shared/data/real-manifest]

Writes
- `OUT/source/`: a tiny demo drawn by `make_demo(like=manifest, like_limit=8)` (8 people x 7 + 8
  eval files), the only pixels;
- `OUT/data/images/{train,eval}/`: the real manifest's names (2,700 train people x 7 files + 12,600
  eval files = 31,500) S times; replica r > 0 renames each id `ID` to `ID-r<r>` (so people stay
  distinct). Every file is a hard link to one of the drawn images of its kind (train person photo,
  eval .png, eval .jpg), round robin (a file system allows ~65,000 links per inode). Names carry
  the labels; the pages and `index_dataset` read names, the Embeddings page decodes no image.
- `OUT/ws/runs/scale<S>/`: a run in `audit.runs.write_run`'s format (predictions.parquet,
  embeddings.npy float16 (N, 96), meta.json) bound to the index's fingerprint. It is synthetic,
  made for the 1x rows and replicated:
  * per-head probabilities peaked on the given label, with seeded mistakes (mask 4%, gender 7%,
    age 18% of rows: ~27% of images have a wrong 18-class prediction), like
    tests/test_browser_e2e.synthetic_run;
  * 96-d embeddings with realistic clusters: mask, gender and age-bin directions summed (so classes
    that share a mask type sit near each other), a per-person offset shared by a person's 7 photos,
    per-image noise, and a wrong prediction pulled 60% towards its predicted class; ReLU'd like
    pooled CNN features;
  * replica r > 0 has the same predictions and embeddings + N(0, 0.05) noise (the issue's 10x was
    "its run replicated" too).
  Then `python -m audit suspects` makes its queue (not run here: time it apart).

Prints the counts and the seconds each step took.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

TRAIN_SLOTS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
EMBEDDING_DIM = 96  # the committed demo model's pooled width
_REPLICA = re.compile(r"-r(\d+)$")


def _renamed(person_id: str, replica: int) -> str:
    return person_id if replica == 0 else f"{person_id}-r{replica}"


def build_tree(out: Path, manifest: Path, scale: int) -> Path:
    """The hard-linked tree under OUT/data; returns the data root."""
    from audit.demo_data import make_demo

    source = out / "source"
    if not (source / "demo.json").is_file():
        make_demo(source, like=manifest, like_limit=8, workers=1)
    drawn = {"train": sorted((source / "images" / "train").glob("*/*.jpg")),
             "png": sorted((source / "images" / "eval").glob("*.png")),
             "jpg": sorted((source / "images" / "eval").glob("*.jpg"))
             or sorted((source / "images" / "train").glob("*/*.jpg"))}
    train = pd.read_csv(manifest / "train.csv", usecols=["id", "path"])
    info = pd.read_csv(manifest / "info.csv", usecols=["ImageID"])
    root = out / "data"
    counter = 0

    def link(kind: str, target: Path) -> None:
        nonlocal counter
        files = drawn[kind]
        os.link(files[counter % len(files)], target)
        counter += 1

    for r in range(scale):
        train_dir = root / "images" / "train"
        eval_dir = root / "images" / "eval"
        train_dir.mkdir(parents=True, exist_ok=True)
        eval_dir.mkdir(parents=True, exist_ok=True)
        for pid, folder in zip(train["id"], train["path"]):
            person = train_dir / folder.replace(pid, _renamed(pid, r), 1)
            if person.is_dir():
                continue
            person.mkdir()
            for slot in TRAIN_SLOTS:
                link("train", person / f"{slot}.jpg")
        for name in info["ImageID"]:
            pid = name.split("_", 1)[0]
            target = eval_dir / name.replace(pid, _renamed(pid, r), 1)
            if not target.exists():
                link("png" if name.endswith(".png") else "jpg", target)
    return root


def _head(rng, given: np.ndarray, k: int, wrong_rate: float) -> np.ndarray:
    # the browser test's made-up head (tests/ is on sys.path above)
    from test_browser_e2e import synthetic_head_probs

    return synthetic_head_probs(rng, given, k, wrong_rate)


def synthetic_run(index, run_dir: Path, *, seed: int = 0, dim: int = EMBEDDING_DIM) -> Path:
    """Predictions + clustered embeddings for the 1x rows of `index`, replicated (module docstring)."""
    from audit.labels import N_AGE_BINS, N_GENDER, N_MASK, split_class
    from audit.runs import INDEX_COLUMNS, finish_predictions, write_run

    images = index.images.reset_index(drop=True)
    replica = images["person_id"].str.extract(_REPLICA, expand=False).fillna("0").astype(int).to_numpy()
    base_key = images["path"].str.replace(r"-r\d+_", "_", regex=True)
    base_rows = np.flatnonzero(replica == 0)
    first = pd.Series(np.arange(len(base_rows)), index=base_key.iloc[base_rows].to_numpy())
    source_row = first.reindex(base_key.to_numpy()).to_numpy()  # each row's 1x row, as a position in `base`
    if np.isnan(source_row.astype(float)).any():
        raise ValueError("every replica row needs its 1x row")
    source_row = source_row.astype(int)
    base = images.iloc[base_rows].reset_index(drop=True)
    n = len(base)
    rng = np.random.default_rng(seed)
    p_mask = _head(rng, base["mask"].to_numpy(), N_MASK, 0.04)
    p_gender = _head(rng, base["gender"].to_numpy(), N_GENDER, 0.07)
    p_age = _head(rng, base["age_bin"].to_numpy(), N_AGE_BINS, 0.18)
    pred_age = base["age"].to_numpy() + rng.normal(0, 5, n)

    directions = {name: rng.normal(0, 1, (k, dim)) for name, k in (("mask", N_MASK), ("gender", N_GENDER),
                                                                   ("age", N_AGE_BINS))}

    def centre(cls: np.ndarray) -> np.ndarray:
        m, g, a = split_class(cls)
        return 2.2 * directions["mask"][m] + 1.6 * directions["gender"][g] + 1.2 * directions["age"][a]

    given = base["class_id"].to_numpy()
    pred = (p_mask.argmax(1) * 6 + p_gender.argmax(1) * 3 + p_age.argmax(1))
    person_offset = pd.Series(list(rng.normal(0, 0.6, (base["person"].nunique(), dim))),
                              index=base["person"].unique())
    emb = centre(given) + np.stack(person_offset.loc[base["person"]].to_numpy()) + rng.normal(0, 0.7, (n, dim))
    wrong = pred != given
    emb[wrong] += 0.6 * (centre(pred[wrong]) - centre(given[wrong]))
    emb = np.maximum(emb + 1.0, 0.0).astype(np.float32)

    # the replicated run, row-aligned with the index
    rows = images.loc[:, list(INDEX_COLUMNS)].copy()
    fold = np.where(base["split"] == "train", rng.integers(0, 3, n), -1)
    rows["fold"] = fold[source_row]
    preds = finish_predictions(rows, p_mask[source_row], p_gender[source_row], p_age[source_row],
                               pred_age=pred_age[source_row])
    full = emb[source_row]
    noisy = replica > 0
    full[noisy] += rng.normal(0, 0.05, (int(noisy.sum()), dim)).astype(np.float32)
    meta = {"checkpoint": None, "data_root": str(index.root), "data_fingerprint": index.fingerprint,
            "bins": index.bins.to_dict(), "source": "predict",
            "note": "synthetic run for benchmarks/make_scale_replica.py (clustered embeddings, replicated)"}
    return write_run(run_dir, preds, full, meta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--manifest", type=Path, default=REPO.parent / "shared" / "data" / "real-manifest")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from audit.dataset_index import index_dataset

    t = time.perf_counter()
    root = build_tree(args.out, args.manifest, args.scale)
    print(f"tree: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    index = index_dataset(root)
    print(f"index: {len(index.images):,} images, {len(index.findings)} findings, {time.perf_counter() - t:.1f} s",
          flush=True)
    t = time.perf_counter()
    run = synthetic_run(index, args.out / "ws" / "runs" / f"scale{args.scale}", seed=args.seed)
    preds = pd.read_parquet(run / "predictions.parquet", columns=["class_id", "pred_class"])
    print(f"run: {run} ({len(preds):,} rows, {int((preds['class_id'] != preds['pred_class']).sum()):,} wrong), "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
