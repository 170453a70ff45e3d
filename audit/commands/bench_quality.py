"""`python -m audit bench-quality [--people N] [--eval M] [--seed S] [--scale K] [--no-run] [--json]`:
draw a demo with planted data-quality defects, run the quality checks, and score precision and
recall per kind against the demo's quality_truth.csv.

Scoring is per finding and per planted defect: a finding of kind K is right when it names a
defect planted for K (group kinds: its group holds the spoiled file and the picture it copies;
other kinds: its path is the spoiled file); a planted defect is found when a finding of its kind
is right about it. precision = right findings / findings of K, recall = found / planted for K.
The person checks use the embeddings of the committed demo model (weights/demo) predicted over
the drawn data, unless --no-run.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

SCORE_COLUMNS = ("kind", "planted", "findings", "right_findings", "found", "precision", "recall")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=300, help="train people to draw (default 300)")
    parser.add_argument("--eval", type=int, default=400, help="eval images to draw (default 400)")
    parser.add_argument("--seed", type=int, default=1, help="demo seed (default 1; the committed demo uses 0)")
    parser.add_argument("--scale", type=float, default=4.0,
                        help="multiply the demo's default defect rates by this (default 4: more defects to score)")
    parser.add_argument("--no-run", action="store_true", help="skip the person checks (no model, no embeddings)")
    parser.add_argument("--out", default=None, help="where to draw (default: workspace/bench_quality/...)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def score_findings(findings, truth):
    """Precision and recall per planted kind (and per kind with findings): DataFrame SCORE_COLUMNS.
    `findings`: audit.quality FINDING_COLUMNS; `truth`: read_quality_truth()."""
    import numpy as np
    import pandas as pd

    from audit.quality import GROUP_KINDS, QUALITY_KINDS

    rows = []
    kinds = [k for k in QUALITY_KINDS if k in set(truth["kind"]) or k in set(findings["kind"])]
    for kind in kinds:
        planted = truth[truth["kind"] == kind]
        found = findings[findings["kind"] == kind]
        groups = [{path, *related} for path, related in zip(found["path"], found["related"])]
        right = np.zeros(len(found), dtype=bool)
        hit = 0
        for target, related, how in zip(planted["path"], planted["related"], planted["how"]):
            if how == "face_leak":  # the leaked face's group names the eval image and any photo of the person
                match = [k for k, g in enumerate(groups) if target in g and g.intersection(related)]
            elif kind in GROUP_KINDS:
                wanted = {target, *related}
                match = [k for k, g in enumerate(groups) if wanted <= g]
            else:
                match = [k for k, p in enumerate(found["path"]) if p == target]
            right[match] = True
            hit += bool(match)
        rows.append({
            "kind": kind, "planted": int(len(planted)), "findings": int(len(found)),
            "right_findings": int(right.sum()), "found": int(hit),
            "precision": float(right.mean()) if len(found) else float("nan"),
            "recall": hit / len(planted) if len(planted) else float("nan"),
        })
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def run(args) -> int:
    from audit.cli import UsageError
    from audit.dataset_index import index_dataset
    from audit.demo_data import QualityDefects, make_demo, read_quality_truth
    from audit.quality import quality_report
    from audit.workspace import DEMO_WEIGHTS, workspace_dir

    if args.people < 2 or args.eval < 2:
        raise UsageError("--people and --eval must be at least 2")
    if not 0 < args.scale <= 50:
        raise UsageError(f"--scale must be within (0, 50], got {args.scale}")
    base = QualityDefects()
    try:
        defects = replace(base, **{k: min(0.5, v * args.scale) for k, v in asdict(base).items()})
    except ValueError as err:
        raise UsageError(str(err)) from None
    name = f"seed{args.seed}_{args.people}x{args.eval}"
    out = Path(args.out) if args.out else workspace_dir() / "bench_quality" / name
    t0 = time.perf_counter()
    try:
        make_demo(out, people=args.people, eval_images=args.eval, seed=args.seed, quality=defects)
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    t_draw = time.perf_counter() - t0
    index = index_dataset(out)
    run_ = None
    t_predict = 0.0
    if not args.no_run:
        from audit.prediction import predict_run
        from audit.runs import Run

        checkpoint = DEMO_WEIGHTS / "model.pt"
        if not checkpoint.is_file():
            raise UsageError(f"{checkpoint} not found: the person checks need it (or pass --no-run)")
        t1 = time.perf_counter()
        run_ = Run.open(predict_run(index, checkpoint, out.parent / (out.name + "_run"), workers=0))
        t_predict = time.perf_counter() - t1
    report = quality_report(index, run=run_, reuse=False)
    scores = score_findings(report.findings, read_quality_truth(out))
    result = {
        "people": args.people, "eval_images": args.eval, "seed": args.seed, "scale": args.scale,
        "images": report.images, "embeddings_from": report.embeddings_from,
        "seconds": {"draw": round(t_draw, 2), "predict": round(t_predict, 2),
                    **{k: round(v, 2) for k, v in report.seconds.items()}},
        "kinds": [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                  for row in scores.to_dict("records")],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"bench-quality: {report.images:,} images ({args.people} people + {args.eval} eval, seed {args.seed}, "
          f"defect rates x{args.scale:g}); person checks: {report.embeddings_from}")
    print(f"{'kind':<18} {'planted':>7} {'findings':>8} {'right':>6} {'found':>6} {'precision':>9} {'recall':>7}")
    for r in result["kinds"]:
        p = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        rc = "-" if r["recall"] is None else f"{r['recall']:.2f}"
        print(f"{r['kind']:<18} {r['planted']:>7} {r['findings']:>8} {r['right_findings']:>6} {r['found']:>6} "
              f"{p:>9} {rc:>7}")
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in result["seconds"].items()))
    return 0
