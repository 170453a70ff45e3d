"""Fit the merged queue's detector weights on some scored runs, test them on others.

    python benchmarks/fit_merge_weights.py --fit RUN:TRUTH [RUN:TRUTH ...] --test RUN:TRUTH [...]

Each RUN is a run folder of a demo dataset (e.g. from `python -m audit bench-noise --keep DIR`:
DIR/run and DIR/data/truth.csv). For gender and age, every weight combination on a small grid
(per detector, relative to person_level = 1) and both ways of aggregating cleanlab's image
scores per person inside the merge (max, mean) is scored by AUPRC on the --fit runs; the
combination with the best mean AUPRC is then scored on the --test runs beside the declared
weights (audit.noise.merge.DEFAULT_WEIGHTS) and the cleanlab baseline (max-aggregated, as
`bench-noise` scores it). Fit and test runs should come from different seeds, or the test
numbers flatter the fit. Prints markdown tables.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.demo_data import read_truth  # noqa: E402
from audit.noise.confident_learning import confident_learning  # noqa: E402
from audit.noise.merge import DEFAULT_WEIGHTS, merge_queue, run_detectors  # noqa: E402
from audit.noise.scoring import score_detector, truth_items  # noqa: E402
from audit.runs import Run  # noqa: E402

GRID = {
    "gender": {"cleanlab": (0.0, 0.25, 0.5, 1.0, 2.0), "neighbours": (0.0, 0.15, 0.25, 0.5, 1.0)},
    "age": {"cleanlab": (0.0, 0.25, 0.5, 1.0), "neighbours": (0.0, 0.15, 0.25, 0.5),
            "age_residual": (0.0, 0.25, 0.5, 1.0, 2.0)},
}


def load(spec: str) -> dict:
    run_dir, truth_path = spec.split(":", 1)
    run = Run.open(run_dir)
    truth = read_truth(truth_path)
    preds = run.predictions
    frames = run_detectors(preds, run.embeddings, bins=run.bins, cleanlab_person_agg="max")
    # The declared/fitted columns below merge with each candidate's own aggregation.
    mean_cl = confident_learning(preds, person_agg="mean", bins=run.bins)
    return {"name": run_dir, "frames": frames, "cleanlab_mean": mean_cl,
            "items": truth_items(preds, truth, bins=run.bins)}


def merged_auprc(run: dict, field: str, weights: dict, agg: str) -> float:
    frames = dict(run["frames"])
    if agg == "mean":
        frames["cleanlab"] = run["cleanlab_mean"]
    frames = {name: f[f["field"] == field] for name, f in frames.items()}
    queue = merge_queue(frames, weights=weights)
    return score_detector(queue, run["items"], field, "merged")["auprc"]


def combos(field: str):
    names = list(GRID[field])
    for values in itertools.product(*(GRID[field][n] for n in names)):
        w = {(n, field): v for n, v in zip(names, values)}
        w[("person_level", field)] = 1.0
        for agg in ("max", "mean"):
            yield w, agg


def describe(w: dict, agg: str) -> str:
    return ", ".join(f"{d} {v:g}" for (d, _), v in sorted(w.items())) + f"; cleanlab per person: {agg}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", nargs="+", required=True, metavar="RUN:TRUTH")
    parser.add_argument("--test", nargs="+", required=True, metavar="RUN:TRUTH")
    args = parser.parse_args()
    fit = [load(s) for s in args.fit]
    test = [load(s) for s in args.test]
    # "declared": the weights shipped before the fit (first session), for comparison.
    declared = {**DEFAULT_WEIGHTS, ("neighbours", "gender"): 0.25, ("cleanlab", "gender"): 0.25}
    for field in ("gender", "age"):
        best, best_score = None, -1.0
        for w, agg in combos(field):
            s = float(np.mean([merged_auprc(r, field, w, agg) for r in fit]))
            if s > best_score + 1e-9:
                best, best_score = (w, agg), s
        print(f"\n### {field}\n\nbest on the fit runs (mean AUPRC {best_score:.3f}): {describe(*best)}\n")
        print("| run | cleanlab (baseline) | merged, first-session weights | merged, fitted weights |")
        print("|---|---|---|---|")
        for r in fit + test:
            base = score_detector(r["frames"]["cleanlab"], r["items"], field, "cleanlab")["auprc"]
            dec = merged_auprc(r, field, declared, "max")
            fitted = merged_auprc(r, field, best[0], best[1])
            role = "fit" if r in fit else "test"
            print(f"| {role}: {r['name']} | {base:.3f} | {dec:.3f} | {fitted:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
