"""Detectors on SIMULATED out-of-fold predictions (no images, no training):
`python benchmarks/bench_noise_synthetic.py [--seeds 0 1 2] [--people 300]`.

The simulator is the test helper `tests/test_noise_synthetic.make_predictions`: per-person
appearance shared by the 7 photos plus per-photo noise, a mask head with a margin, an age
regression with person- and photo-level error, embeddings mixing identity and label cues, and
planted noise at the demo's default rates (4% gender flips, 8% ages across a boundary, 1.5% of
people with normal/incorrect_mask swapped). It checks the detectors' logic at a realistic noise
rate; it says nothing about how a real model's probabilities behave (bench_noise.py does).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from audit.noise_bench import score_run  # noqa: E402
from test_noise_synthetic import make_predictions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--gender-sharpness", type=float, default=1.5, help="person-level gender logit scale")
    ap.add_argument("--age-sd", type=float, default=7.0, help="age error scale (years)")
    ap.add_argument("--time-full-scale", action="store_true",
                    help="instead: time every detector + the merge on a full-scale run (2,700 x 7 + 12,600 rows)")
    ap.add_argument("--dim", type=int, default=1280, help="embedding width for --time-full-scale")
    args = ap.parse_args()
    if args.time_full_scale:
        return time_full_scale(args.dim)
    frames = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        n = args.people
        df, emb, truth = make_predictions(
            people=n, eval_images=args.eval, seed=seed, gender_flips=max(1, round(0.04 * n)),
            age_moves=max(1, round(0.08 * n)), mask_swaps=max(1, round(0.015 * n)),
            gender_sharpness=args.gender_sharpness, age_sd=args.age_sd)
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        res, _queue = score_run(df, emb, truth)
        res["seed"] = seed
        frames.append(res)
        train = df[df["split"] == "train"]
        acc = {h: float((train[g] == train[p]).mean()) for h, g, p in
               (("mask", "mask", "pred_mask"), ("gender", "gender", "pred_gender"), ("age", "age_bin", "pred_age_bin"))}
        print(f"seed {seed}: simulate {t_sim:.1f} s, detect+score {time.perf_counter() - t0:.1f} s; "
              f"per-photo accuracy vs given labels {acc}", file=sys.stderr)
    rows = pd.concat(frames, ignore_index=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_noise import markdown

    print(markdown(rows))
    return 0


def time_full_scale(dim: int) -> int:
    """Wall time of each detector and of the merge on a simulated full-scale run."""
    from audit.noise.age_residual import age_residual
    from audit.noise.confident_learning import confident_learning
    from audit.noise.mask_slots import mask_slots
    from audit.noise.merge import merge_queue
    from audit.noise.neighbours import neighbours
    from audit.noise.person_level import person_level

    df, emb, _truth = make_predictions(people=2700, eval_images=12600, seed=0, gender_flips=108, age_moves=216,
                                       mask_swaps=40, dim=dim)
    steps = {
        "cleanlab": lambda: confident_learning(df), "person_level": lambda: person_level(df),
        "mask_slots": lambda: mask_slots(df), "neighbours": lambda: neighbours(df, emb),
        "age_residual": lambda: age_residual(df),
    }
    frames, total = {}, 0.0
    for name, fn in steps.items():
        t0 = time.perf_counter()
        frames[name] = fn()
        dt = time.perf_counter() - t0
        total += dt
        print(f"{name}: {dt:.1f} s")
    t0 = time.perf_counter()
    queue = merge_queue(frames)
    dt = time.perf_counter() - t0
    total += dt
    print(f"merge: {dt:.1f} s ({len(queue)} queue rows)\ntotal: {total:.1f} s for {len(df)} images, D={dim}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
