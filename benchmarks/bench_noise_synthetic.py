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

from audit.noise.bench import score_run  # noqa: E402
from test_noise_synthetic import make_predictions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--gender-sharpness", type=float, default=1.5, help="person-level gender logit scale")
    ap.add_argument("--age-sd", type=float, default=7.0, help="age error scale (years)")
    args = ap.parse_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
