"""`python -m audit quality DATA [--run RUN | --pretrained] [--json] [--workers N] [--again]`: duplicates, split
leaks, strangers among a person's photos and images no one can label (see `audit.quality`).

Findings are written into the workspace (keyed by the data fingerprint) and reused until the data,
the run or the thresholds change. `--json` prints exactly
`{"images": N, "findings": [{"kind", "path", "detail", "related", "score"}, ...]}` on stdout.
"""
from __future__ import annotations

import argparse
import json

from audit.cli import TqdmProgress, UsageError

SHOW_PER_KIND = 5


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("--run", default=None,
                        help="a run of this dataset (folder or name in the workspace's runs/): its embeddings "
                             "find a stranger among a person's photos")
    parser.add_argument("--pretrained", action="store_true",
                        help="without --run: embed the images with the committed domain-pretrained backbone "
                             "(weights/pretrained, a run kept in the workspace) for the face distances")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: all cores)")
    parser.add_argument("--again", action="store_true", help="recompute instead of reusing the workspace's findings")


def _summary(report, index) -> str:
    from audit.quality import KIND_TITLES, counts_by_kind

    counts = counts_by_kind(report.findings)
    lines = [f"Checked {report.images:,} images of {index.root}"
             + (" (reused from the workspace)" if report.reused else f" in {report.seconds.get('total', 0):.1f} s"),
             f"Person checks: {report.embeddings_from}"]
    if not counts:
        lines.append("Findings: none")
        return "\n".join(lines)
    lines.append("Findings: " + ", ".join(f"{kind} {n:,}" for kind, n in counts.items()))
    for kind in counts:
        rows = report.findings[report.findings["kind"] == kind]
        lines.append(f"{KIND_TITLES.get(kind, kind)}:")
        for row in rows.head(SHOW_PER_KIND).itertuples(index=False):
            extra = f" (+{len(row.related)} related)" if len(row.related) else ""
            lines.append(f"  {row.path}  {row.detail}{extra}")
        if len(rows) > SHOW_PER_KIND:
            lines.append(f"  ... {len(rows) - SHOW_PER_KIND:,} more (--json lists them all)")
    return "\n".join(lines)


def _pretrained_run(index, progress):
    """The pretrained backbone's run over this data, predicted once into the workspace."""
    from audit.prediction import predict_run
    from audit.quality import quality_dir
    from audit.runs import Run
    from audit.demo_recipe import default_pretrained_file

    checkpoint = default_pretrained_file()
    if checkpoint is None:
        raise UsageError("--pretrained: weights/pretrained/model.pt is not there; pass --run RUN instead")
    try:
        folder = predict_run(index, checkpoint, quality_dir(index.fingerprint) / "pretrained_run", workers=0,
                             progress=progress)
    except ValueError as err:  # e.g. other age bins than the backbone's
        raise UsageError(f"--pretrained: {err}") from None
    return Run.open(folder)


def run(args) -> int:
    from audit.dataset_index import DatasetNotFound, index_dataset
    from audit.quality import RunFromOtherData, quality_report

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    try:
        index = index_dataset(args.data)
    except DatasetNotFound as err:
        raise UsageError(str(err)) from None
    run_ = None
    if args.run:
        from audit.runs import NotARunError, Run, resolve_run_dir

        try:
            run_ = Run.open(resolve_run_dir(args.run))
        except NotARunError as err:
            raise UsageError(str(err)) from None
    progress = TqdmProgress(unit="img", disable=None)
    if args.pretrained and run_ is None:
        run_ = _pretrained_run(index, progress)
    try:
        report = quality_report(index, run=run_, workers=args.workers, progress=progress, reuse=not args.again)
    except RunFromOtherData as err:
        raise UsageError(str(err)) from None
    finally:
        progress.close()
    if args.json:
        print(json.dumps(report.to_json_dict()))
    else:
        print(_summary(report, index))
    return 0
