"""Fit the merged queue's weights for every field, with the second-opinion detectors, on runs of
seeds that are NOT reported; print the weights and their scores on the test runs.

    python benchmarks/fit_merge_weights_independent.py --fit DIR [DIR ...] --test DIR [DIR ...] [--run-alone]

--run-alone: leave the second opinion's detectors out (audit.noise.merge.SECOND_OPINION_DETECTORS)
and fit the table for a run without one (audit.noise.merge.PRIMARY_WEIGHTS).

Each DIR is a `python -m audit bench-noise --keep DIR` folder: DIR/run (the fine-tuned model's run),
DIR/run_pretrained (the second opinion), DIR/data/truth.csv. Per field, coordinate ascent over
each detector's weight in WEIGHT_GRID (two passes, starting from 1.0 each), maximising the mean
AUPRC over the --fit runs. Prints the fitted weights as a Python dict (for
audit.noise.merge.DEFAULT_WEIGHTS) and a markdown table: cleanlab, merged with the current
DEFAULT_WEIGHTS and merged with the fitted weights, per run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.demo_data import read_truth  # noqa: E402
from audit.noise.confident_learning import confident_learning  # noqa: E402
from audit.noise.merge import SECOND_OPINION_DETECTORS, merge_queue, run_detectors  # noqa: E402
from audit.noise.scoring import score_detector, truth_items  # noqa: E402
from audit.runs import Run  # noqa: E402

WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def load(folder: str, run_alone: bool = False) -> dict:
    base = Path(folder)
    run, other = Run.open(base / "run"), Run.open(base / "run_pretrained")
    truth = read_truth(base / "data" / "truth.csv")
    frames = run_detectors(run.predictions, run.embeddings, bins=run.bins, second_opinion=other)
    if run_alone:
        frames = {n: f for n, f in frames.items() if n not in SECOND_OPINION_DETECTORS}
    baseline = confident_learning(run.predictions, person_agg="max", bins=run.bins)
    return {"name": base.name, "frames": frames, "baseline": baseline,
            "items": truth_items(run.predictions, truth, bins=run.bins)}


def auprc(run: dict, field: str, weights: dict | None) -> float:
    frames = {n: f[f["field"] == field] for n, f in run["frames"].items()}
    return score_detector(merge_queue(frames, weights=weights), run["items"], field, "merged")["auprc"]


def fit_field(runs: list[dict], field: str) -> tuple[dict, float]:
    names = sorted({n for r in runs for n, f in r["frames"].items() if (f["field"] == field).any()})
    w = {(n, field): 1.0 for n in names}
    best = float(np.mean([auprc(r, field, w) for r in runs]))
    for _ in range(2):
        for n in names:
            for v in WEIGHT_GRID:
                trial = {**w, (n, field): v}
                if not any(trial.values()):
                    continue
                s = float(np.mean([auprc(r, field, trial) for r in runs]))
                if s > best + 1e-6:
                    w, best = trial, s
    return w, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", nargs="+", required=True)
    ap.add_argument("--test", nargs="+", required=True)
    ap.add_argument("--run-alone", action="store_true", help="fit without the second opinion's detectors")
    args = ap.parse_args()
    fit, test = [load(f, args.run_alone) for f in args.fit], [load(f, args.run_alone) for f in args.test]
    fitted = {}
    for field in ("mask", "gender", "age"):
        w, s = fit_field(fit, field)
        fitted.update(w)
        print(f"{field}: fitted mean AUPRC on the fit runs {s:.3f}")
    print("\nFITTED = {" + ", ".join(f"{k!r}: {v:g}" for k, v in sorted(fitted.items(), key=lambda kv: kv[0][::-1]))
          + "}\n")
    print("| run | field | cleanlab | merged, weights before | merged, fitted |")
    print("|---|---|---|---|---|")
    for role, r in [("fit", r) for r in fit] + [("test", r) for r in test]:
        for field in ("mask", "gender", "age"):
            base = score_detector(r["baseline"], r["items"], field, "cleanlab")["auprc"]
            print(f"| {role}: {r['name']} | {field} | {base:.3f} | {auprc(r, field, None):.3f} | "
                  f"{auprc(r, field, fitted):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
