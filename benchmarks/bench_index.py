"""Time `index_dataset` on a full-scale name tree built from the real manifests (no pixels).

    python benchmarks/bench_index.py [--manifest ../shared/data/real-manifest] [--repeats 3]

Writes, in a temporary folder, the seed layout and the competition layout (with train.csv and
info.csv copied) with a 1-byte file per image: 2,700 people x 7 train files + 12,600 eval files.
Times `index_dataset` (no --check-images) on each, `--repeats` times, and prints best and median
wall seconds, the process CPU seconds of the best run, and the 1-minute load average (other work on
a shared box stretches wall time, not CPU time). The page cache is warm (the tree was just written).

With --check-images N it also times `index_dataset(check_images=True)` on a pixel tree of N people
(7 JPEGs each, ~24 KB) + N eval PNGs (~175 KB), 384x512, for 1 thread and for all cores.
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


def build_pixel_tree(out: Path, people: int) -> Path:
    """Seed layout with real-sized 384x512 images: smooth noise, JPEG q90 in train, PNG in eval."""
    import io

    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (512, 384, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(3))
    jpg, png = io.BytesIO(), io.BytesIO()
    img.save(jpg, "JPEG", quality=90)
    img.save(png, "PNG")
    for i in range(people):
        d = out / "images" / "train" / f"ffhq-{i:05d}_female_White_30"
        d.mkdir(parents=True)
        for stem in TRAIN_MASK_TYPES:
            (d / f"{stem}.jpg").write_bytes(jpg.getvalue())
    (out / "images" / "eval").mkdir(parents=True)
    for i in range(people):
        (out / "images" / "eval" / f"ffhq-9{i:04d}_male_Asian_40_mask.png").write_bytes(png.getvalue())
    return out


def _timed(fn, repeats: int) -> tuple[list[float], float, object]:
    """Wall seconds of each run, CPU seconds of the fastest, the last result."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus[walls.index(min(walls))], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-images", type=int, default=0, metavar="N",
                        help="also time --check-images on N people x 7 JPEG + N eval PNG")
    args = parser.parse_args()
    print(f"cores={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("seed", "competition"):
            root = build_name_tree(args.manifest, Path(tmp) / layout, layout)
            walls, cpu, index = _timed(lambda: index_dataset(root), args.repeats)
            print(f"{layout:12s} images={len(index.images):,} people={index.people:,} "
                  f"findings={len(index.findings)} best={min(walls):.3f}s median={statistics.median(walls):.3f}s "
                  f"cpu(best)={cpu:.3f}s load1={os.getloadavg()[0]:.1f}")
        if args.check_images:
            root = build_pixel_tree(Path(tmp) / "pixels", args.check_images)
            for workers in (1, os.cpu_count()):
                walls, cpu, index = _timed(lambda: index_dataset(root, check_images=True, workers=workers),
                                           args.repeats)
                n = len(index.images)
                print(f"check-images workers={workers} images={n:,} findings={len(index.findings)} "
                      f"best={min(walls):.2f}s ({n / min(walls):.0f} img/s) median={statistics.median(walls):.2f}s "
                      f"cpu(best)={cpu:.2f}s load1={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
