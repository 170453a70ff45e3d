"""Time `index_dataset` on a full-scale name tree built from the real manifests (no pixels).

    python benchmarks/bench_index.py [--manifest ../shared/data/real-manifest] [--repeats 3]

Writes, in a temporary folder, the seed layout and the competition layout (with train.csv and
info.csv copied) with a 1-byte file per image: 2,700 people x 7 train files + 12,600 eval files.
Times `index_dataset` (no --check-images) on each, `--repeats` times, and prints best and median
seconds. The page cache is warm (the tree was just written), as it is on a second run of the app.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.dataset_index import index_dataset  # noqa: E402
from audit.labels import TRAIN_MASK_TYPES  # noqa: E402

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-manifest"


def build_name_tree(manifest: Path, out: Path, layout: str) -> Path:
    """Write the real names as 1-byte files under `out` in `layout`; returns `out`.

    Train files get the extension of the person's source as in eval (.jpg for 100k, .png for ffhq)."""
    train = pd.read_csv(manifest / "train.csv", dtype=str, keep_default_na=False)
    info = pd.read_csv(manifest / "info.csv", dtype=str, keep_default_na=False)
    if layout == "seed":
        train_dir, eval_dir = out / "images" / "train", out / "images" / "eval"
    else:
        train_dir, eval_dir = out / "train" / "images", out / "eval" / "images"
    for folder in train["path"]:
        d = train_dir / folder
        d.mkdir(parents=True)
        ext = "jpg" if folder.startswith("100k-") else "png"
        for stem in TRAIN_MASK_TYPES:
            (d / f"{stem}.{ext}").write_bytes(b"x")
    eval_dir.mkdir(parents=True)
    for name in info["ImageID"]:
        (eval_dir / name).write_bytes(b"x")
    if layout == "competition":
        shutil.copy(manifest / "train.csv", out / "train" / "train.csv")
        shutil.copy(manifest / "info.csv", out / "eval" / "info.csv")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("seed", "competition"):
            root = build_name_tree(args.manifest, Path(tmp) / layout, layout)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                index = index_dataset(root)
                times.append(time.perf_counter() - t0)
            print(f"{layout:12s} images={len(index.images):,} people={index.people:,} "
                  f"findings={len(index.findings)} best={min(times):.3f}s median={statistics.median(times):.3f}s "
                  f"(cores={os.cpu_count()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
