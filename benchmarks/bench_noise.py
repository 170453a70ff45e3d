"""Score the label-noise detectors over several seeds: `python benchmarks/bench_noise.py
[--seeds 0 1 2] [--people 300 --eval 300 --epochs 8 --folds 3 --arch A --img-size H W] [--out results.json]`,
or rescore runs kept earlier (`bench-noise --keep DIR`): `--runs DIR/run:DIR/data/truth.csv ...`.

Each seed runs `python -m audit bench-noise --json` in its own process (a fresh demo dataset with
its own injected noise, training with out-of-fold predictions, prediction, detectors, scoring)
and records its wall time. Prints a Markdown table per field: every detector's AUROC, AUPRC,
precision@k and recall@k as mean (min-max) over the seeds, then the per-seed AUPRC of the
cleanlab baseline and the merged queue.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
ORDER = ["cleanlab", "cleanlab_mean", "person_level", "mask_slots", "neighbours", "age_residual", "merged"]


def run_seed(seed, args, existing: str | None = None) -> tuple[pd.DataFrame, dict, float]:
    cmd = [sys.executable, "-m", "audit", "bench-noise", "--json"]
    if existing:  # RUN:TRUTH of a kept run: detectors + scoring only
        run, truth = existing.split(":", 1)
        cmd += ["--run", run, "--truth", truth]
    else:
        cmd += ["--seed", str(seed), "--people", str(args.people), "--eval", str(args.eval),
                "--epochs", str(args.epochs), "--folds", str(args.folds)]
        if args.arch:
            cmd += ["--arch", args.arch]
        if args.img_size:
            cmd += ["--img-size", *map(str, args.img_size)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    payload = json.loads(out.stdout)
    df = pd.DataFrame(payload["results"])
    df["seed"] = seed
    return df, {**payload.get("timings", {}), "model": payload.get("model", {})}, wall


def markdown(all_rows: pd.DataFrame) -> str:
    lines = []
    for field in ["mask", "gender", "age"]:
        part = all_rows[all_rows["field"] == field]
        if part.empty:
            continue
        n_items = part["n_items"].iloc[0]
        noisy = "/".join(str(int(x)) for x in part.groupby("seed")["n_noisy"].first())
        lines += [f"**{field}** ({n_items} items per seed; noisy per seed: {noisy})", "",
                  "| detector | AUROC | AUPRC | precision@k | recall@k |", "|---|---|---|---|---|"]
        for det in sorted(part["detector"].unique(), key=lambda d: ORDER.index(d) if d in ORDER else 99):
            d = part[part["detector"] == det]
            cells = []
            for key in ["auroc", "auprc", "precision_at_k", "recall_at_k"]:
                v = d[key].astype(float)
                cells.append(f"{v.mean():.3f} ({v.min():.3f}–{v.max():.3f})")
            name = f"**{det}**" if det in ("cleanlab", "merged") else det
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    per_seed = all_rows[all_rows["detector"].isin(["cleanlab", "merged"])].pivot_table(
        index=["field", "seed"], columns="detector", values="auprc")
    lines += ["AUPRC per seed, baseline vs merged:", "", "| field | seed | cleanlab | merged |", "|---|---|---|---|"]
    for (field, seed), row in per_seed.iterrows():
        lines.append(f"| {field} | {seed} | {row['cleanlab']:.3f} | {row['merged']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--arch", default=None, help="timm architecture (default: the demo model's)")
    ap.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    ap.add_argument("--out", default=None, help="also write all rows + timings as JSON here")
    ap.add_argument("--runs", nargs="+", default=None, metavar="RUN:TRUTH",
                    help="score these kept runs instead of building new ones (labelled by RUN's parent folder)")
    args = ap.parse_args()
    frames, timings = [], {}
    jobs = [(Path(spec.split(":", 1)[0]).resolve().parent.name, spec) for spec in args.runs] if args.runs \
        else [(seed, None) for seed in args.seeds]
    for seed, existing in jobs:
        df, t, wall = run_seed(seed, args, existing)
        frames.append(df)
        timings[seed] = {**t, "wall_s": round(wall, 1)}
        print(f"seed {seed}: {wall:.0f} s {t}", file=sys.stderr, flush=True)
        if args.out:  # after every seed, so a later failure keeps what was measured
            Path(args.out).write_text(json.dumps(
                {"rows": pd.concat(frames).to_dict("records"), "timings": timings, "args": vars(args)}, indent=1))
    rows = pd.concat(frames, ignore_index=True)
    print(markdown(rows))
    print("\nModel per seed (out-of-fold train, given labels): " + "; ".join(
        f"seed {s}: " + ", ".join(f"{k} {v:.3f}" for k, v in t.get("model", {}).get("train (out-of-fold)", {}).items()
                                  if k != "n") for s, t in timings.items()))
    print("\nTime per seed (s): " + "; ".join(
        f"seed {s}: {t['wall_s']:.0f} (demo {t.get('demo_s')}, train {t.get('train_s')}, predict {t.get('predict_s')}, "
        f"detect+score {t.get('detect_and_score_s')})" for s, t in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
