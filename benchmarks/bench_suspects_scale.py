"""How `suspects` grows with the data: the full-scale replica's size vs 10x, synthetic runs.

    python benchmarks/bench_suspects_scale.py [--scales 1 10] [--dim 96] [--second-opinion]

A synthetic run shaped like the full-scale replica (2,700 train people x 7 + 12,600 eval images =
31,500 rows; tests/test_noise_synthetic.make_predictions, embeddings of `--dim` dimensions like the
demo model's 96) is replicated S times with distinct people and paths, and
`audit.noise.merge.find_suspects` is timed on it (every detector + the merge + calibrated flags).
With --second-opinion a second synthetic run of the same rows is the second opinion (adds the
second_opinion, ensemble and simifeat detectors). pynndescent's one-off JIT compile is timed
apart (a warm-up call on 70,000 random rows) so the table shows the steady cost. Wall and CPU
seconds (this process, all its threads) are printed: on a shared, loaded box the CPU time is the
steadier figure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def replicate(df: pd.DataFrame, emb: np.ndarray, times: int, rng) -> tuple[pd.DataFrame, np.ndarray]:
    parts, embs = [], []
    for t in range(times):
        part = df.copy()
        part["path"] = part["path"].str.replace("images/", f"images/r{t}/", regex=False)
        part["person"] = f"r{t}-" + part["person"]
        parts.append(part)
        embs.append(emb.astype(np.float32) + rng.normal(0, 0.05, emb.shape).astype(np.float32))
    return pd.concat(parts, ignore_index=True), np.concatenate(embs)


def main() -> None:
    from audit.noise.merge import find_suspects
    from audit.noise.neighbours import nearest_other_people
    from test_noise_synthetic import make_predictions

    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--second-opinion", action="store_true")
    args = ap.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(0)
    nearest_other_people(rng.normal(size=(70_000, 8)).astype(np.float32), np.arange(70_000).astype(str), k=5,
                         approximate=True)
    print(f"pynndescent warm-up (JIT compile + 70,000 rows): wall {time.perf_counter() - t0:.1f} s, "
          f"CPU {time.process_time() - c0:.1f} s", flush=True)
    df, emb, _ = make_predictions(people=2700, eval_images=12600, seed=0, gender_flips=108, age_moves=216,
                                  mask_swaps=40, dim=args.dim)
    other_df, other_emb, _ = make_predictions(people=2700, eval_images=12600, seed=0, gender_flips=108,
                                              age_moves=216, mask_swaps=40, dim=args.dim)
    base = None
    for s in args.scales:
        d, e = replicate(df, emb, s, rng)
        run = SimpleNamespace(predictions=d, embeddings=e, meta={})
        other = None
        if args.second_opinion:
            od, oe = replicate(other_df, other_emb, s, rng)
            other = SimpleNamespace(predictions=od, embeddings=oe, name="other")
        t, c = time.perf_counter(), time.process_time()
        queue = find_suspects(run, second_opinion=other)
        sec, cpu = time.perf_counter() - t, time.process_time() - c
        base = base or cpu
        print(f"scale {s}x: {len(d):,} rows, {len(queue):,} queue items, {int(queue['flagged'].sum()):,} flagged: "
              f"wall {sec:.1f} s, CPU {cpu:.1f} s ({cpu / base:.1f}x the first's CPU)", flush=True)


if __name__ == "__main__":
    main()
