"""Benchmark the demo dataset: per-image draw/encode cost, and a whole `make_demo` build.

    python benchmarks/bench_make_demo.py --draw-only                       # per-image costs
    python benchmarks/bench_make_demo.py --like ../shared/data/real-manifest  # full scale (31,500 images)
    python benchmarks/bench_make_demo.py --people 60 --eval 120            # the small default demo

Prints one JSON object: wall seconds, CPU seconds (this process + drawing workers), images/s,
bytes written, and the machine's load average before/after (the dev box is shared, so a loaded
machine stretches wall time; CPU seconds are the steadier figure).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from audit import face_drawing  # noqa: E402
from audit.demo_data import make_demo  # noqa: E402


def per_image_costs(n: int = 300, seed: int = 0) -> dict:
    """CPU milliseconds per image to sample + draw, to encode JPEG (q90), and to encode PNG (level 1)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        source = "photo" if i % 2 else "GAN"
        look = face_drawing.sample_look(rng, gender=i % 2, age=float(rng.integers(16, 61)),
                                        race=face_drawing.RACES[i % 6], source=source)
        items.append((look, face_drawing.sample_shot(rng, mask=i % 3, split="eval" if i % 2 else "train")))
    t = time.process_time()
    images = [face_drawing.draw_face(look, shot) for look, shot in items]
    draw = (time.process_time() - t) / n * 1000
    out = {"draw_ms": round(draw, 2), "n": n}
    for name, kw in (("jpeg_q90", dict(format="JPEG", quality=90)), ("png_level1", dict(format="PNG", compress_level=1))):
        t = time.process_time()
        size = 0
        for im in images:
            buf = io.BytesIO()
            im.save(buf, **kw)
            size += buf.tell()
        out[f"{name}_ms"] = round((time.process_time() - t) / n * 1000, 2)
        out[f"{name}_kb"] = round(size / n / 1000, 1)
    return out


def cue_ceilings(n: int = 1500, seed: int = 0) -> dict:
    """How separable the labels are from the cue strengths the faces are DRAWN with (a proxy ceiling).

    Samples n train-like people (the demo's label distribution, no label noise) and fits logistic
    regressions (5-fold CV) on the drawn parameters: age bin from wrinkles/sag/grey, gender from
    the femininity latent + long hair + beard, gender from hair + beard alone. A CNN sees these
    cues only through pixels (and masks hide the mouth region), so expect it below these figures.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from audit.demo_data import NoiseRates, _plan
    from audit.labels import DEFAULT_BINS

    plan = _plan(people=n, eval_images=0, seed=seed, like=None, like_limit=None, noise=NoiseRates(0, 0, 0))
    rng = np.random.default_rng(seed)
    looks = [face_drawing.sample_look(rng, gender=p.true_gender, age=p.true_age, race=p.race, source=p.source)
             for p in plan]
    age_bin = DEFAULT_BINS.bin([p.true_age for p in plan])
    gender = np.array([p.true_gender for p in plan])
    x_age = np.array([[lk.wrinkles, lk.sag, lk.grey] for lk in looks])
    hair_beard = np.array([[lk.hair_style in ("long", "bob", "bun"), lk.beard != "none"] for lk in looks], float)
    x_gender = np.c_[[lk.fem for lk in looks], hair_beard]

    def cv(x, y):
        return round(float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=5).mean()), 3)

    return {"n": n, "age_bin_from_age_cues": cv(x_age, age_bin),
            "age_bin_from_apparent_age": round(float(np.mean(DEFAULT_BINS.bin([lk.apparent_age for lk in looks]) == age_bin)), 3),
            "gender_from_all_gender_cues": cv(x_gender, gender), "gender_from_hair_and_beard": cv(hair_beard, gender)}


def build(args) -> dict:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_demo_")) / "demo"
    load0 = os.getloadavg()
    r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    info = make_demo(out, people=args.people, eval_images=args.eval, like=args.like, workers=args.workers,
                     seed=args.seed, force=True)
    wall = time.perf_counter() - t0
    r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((r0s, r1s), (r0c, r1c)) for f in ("ru_utime", "ru_stime"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    result = {
        "images": info.images, "train_people": info.train_people, "eval_images": info.eval_images,
        "workers": args.workers or os.cpu_count(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "images_per_s": round(info.images / wall, 1), "cpu_ms_per_image": round(cpu / info.images * 1000, 2),
        "bytes": size, "loadavg_before": [round(x, 1) for x in load0],
        "loadavg_after": [round(x, 1) for x in os.getloadavg()], "out": str(out),
    }
    if not args.keep and not args.out:
        shutil.rmtree(out.parent, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draw-only", action="store_true", help="only the per-image costs")
    ap.add_argument("--like", default=None, help="a real manifest folder: full scale")
    ap.add_argument("--people", type=int, default=60)
    ap.add_argument("--eval", type=int, default=120)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="where to build (default: a temporary folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary build")
    args = ap.parse_args()
    result = {"per_image": per_image_costs(), "cue_ceilings": cue_ceilings()}
    if not args.draw_only:
        result["build"] = build(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
