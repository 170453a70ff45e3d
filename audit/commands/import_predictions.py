"""`python -m audit import-predictions DATA CSV [--run NAME|PATH] [--bins default|competition|LO,HI]`.

Turns a CSV of predictions made elsewhere (the competition's `ImageID,ans` submission, or an image
id plus 18-class or per-head probabilities; see audit/prediction_import.py) into a run without
embeddings. A bad CSV: one error naming the first offending rows, exit code 2, nothing written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from audit.cli import UsageError, add_bins_option, bins_from_args


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("csv", metavar="CSV", help="ImageID,ans submission, or image id + p_class_0..17 / 0..17 / per-head columns")
    parser.add_argument("--run", default=None,
                        help="run NAME (or runs/NAME) in the workspace, or a folder path (default: the CSV's file stem)")
    add_bins_option(parser, "age bins the CSV's classes use (the competition's submissions: competition)")


def run(args) -> int:
    from audit.dataset_index import DatasetNotFound, index_dataset
    from audit.prediction_import import PredictionImportError, import_predictions
    from audit.runs import RunFolderRefused, check_run_target, resolve_run_dir

    bins = bins_from_args(args)
    try:
        index = index_dataset(args.data, bins=bins)
    except DatasetNotFound as err:
        raise UsageError(str(err)) from None
    run_dir = resolve_run_dir(args.run if args.run else Path(args.csv).stem)
    try:
        check_run_target(run_dir, data_root=index.root)
        path = import_predictions(index, args.csv, run_dir)
    except (PredictionImportError, RunFolderRefused) as err:
        raise UsageError(str(err)) from None
    from audit.runs import Run

    imported = Run.open(path)
    print(f"Imported {imported.meta['n_images']:,} predictions ({imported.meta['csv_format']}, "
          f"splits: {', '.join(imported.meta['splits'])}) into {path}")
    if imported.meta["ignored_columns"]:
        print(f"Ignored columns: {', '.join(imported.meta['ignored_columns'])}")
    return 0
