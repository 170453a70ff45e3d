"""Tables for BENCHMARKS.md from kept `bench-noise` folders, scored with the current detectors and
merge weights (so runs made before a weight fit are rescored with the fitted weights).

    python benchmarks/bench_noise_tables.py DIR [DIR ...] [--no-second-opinion]

Each DIR is a `python -m audit bench-noise --seed S --keep DIR` folder (DIR/run, DIR/run_pretrained,
DIR/data/truth.csv). Prints: per field, every detector's AUROC / AUPRC / precision@k / recall@k as
mean (min-max) over the folders; per folder AUPRC of cleanlab, the merged queue and the queue of
the primary run's detectors alone; flagged vs truly wrong counts; and both runs' accuracy against
the TRUE labels (train images, out-of-fold for the fine-tuned run; eval images).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_noise  # noqa: E402
from audit.labels import DEFAULT_BINS  # noqa: E402
from audit.noise_bench import score_existing  # noqa: E402

bench_noise.ORDER = ["cleanlab", "cleanlab_mean", "person_level", "mask_slots", "neighbours", "age_residual",
                     "second_opinion", "ensemble", "simifeat", "age_likelihood", "merged_primary", "merged"]


def true_accuracy(run_dir: Path, truth_path: Path) -> dict:
    from audit.demo_data import read_truth
    from audit.runs import Run

    p = Run.open(run_dir).predictions
    t = read_truth(truth_path).set_index("path").loc[p["path"].to_numpy()]
    out = {}
    for split in ("train", "eval"):
        sel = (p["split"] == split).to_numpy()
        if not sel.any():
            continue
        out[split] = {
            "mask": float((p["pred_mask"].to_numpy()[sel] == t["true_mask"].to_numpy()[sel]).mean()),
            "gender": float((p["pred_gender"].to_numpy()[sel] == t["true_gender"].to_numpy()[sel]).mean()),
            "age_bin": float((p["pred_age_bin"].to_numpy()[sel]
                              == DEFAULT_BINS.bin(t["true_age"].to_numpy()[sel])).mean()),
            "age_mae": float(np.nanmean(np.abs(p["pred_age"].to_numpy()[sel] - t["true_age"].to_numpy()[sel]))),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--no-second-opinion", dest="second_opinion", action="store_false")
    args = ap.parse_args()
    frames, lines = [], []
    for d in map(Path, args.dirs):
        other = d / "run_pretrained" if args.second_opinion and (d / "run_pretrained").is_dir() else None
        res = score_existing(d / "run", d / "data" / "truth.csv", second_opinion_dir=other)
        df = res.results.copy()
        df["seed"] = d.name
        frames.append(df)
        c = res.counts
        acc = true_accuracy(d / "run", d / "data" / "truth.csv")
        acc2 = true_accuracy(other, d / "data" / "truth.csv") if other else {}
        fmt = lambda a: ", ".join(f"{s}: mask {v['mask']:.3f} gender {v['gender']:.3f} age bins {v['age_bin']:.3f} "
                                  f"MAE {v['age_mae']:.1f} y" for s, v in a.items())
        lines.append(f"| {d.name} | {c['flagged']} | {c['true_errors']} | "
                     + " / ".join(f"{c['flagged_' + f]}/{c['true_errors_' + f]}" for f in ("mask", "gender", "age"))
                     + f" | {fmt(acc)} | {fmt(acc2)} |")
    rows = pd.concat(frames, ignore_index=True)
    print(bench_noise.markdown(rows))
    piv = rows[rows["detector"].isin(["cleanlab", "merged_primary", "merged"])].pivot_table(
        index=["field", "seed"], columns="detector", values="auprc")
    print("\n| field | seed | cleanlab | merged, primary run's detectors only | merged, with the second opinion |")
    print("|---|---|---|---|---|")
    for (field, seed), r in piv.iterrows():
        print(f"| {field} | {seed} | {r.get('cleanlab', float('nan')):.3f} | {r.get('merged_primary', float('nan')):.3f} "
              f"| {r.get('merged', float('nan')):.3f} |")
    print("\n| seed | flagged | truly wrong | mask / gender / age (flagged/wrong) | fine-tuned run vs TRUE labels "
          "(train out-of-fold; eval) | pretrained run (second opinion) vs TRUE labels |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
