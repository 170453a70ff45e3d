"""`python -m audit review import DATA CSV [--reviewer NAME] [--reviews FILE] [--bins ...]`.

Imports a relabel list (columns item, field, value, optional note; see `audit.review_import`) as
review decisions for DATA, with the CSV's file name as their source. Every row is checked first:
bad rows are printed with their line numbers and nothing is imported (exit code 2).
`python -m audit export DATA` then lists the imported decisions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit.cli import UsageError, add_bins_option, bins_from_args


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    imp = sub.add_parser("import", help="import a relabel list (CSV) as decisions, all or none")
    imp.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    imp.add_argument("csv", metavar="CSV", help="the relabel list: columns item, field, value and optionally note")
    imp.add_argument("--reviewer", default="", help="the name the decisions carry (default: none)")
    imp.add_argument("--reviews", metavar="FILE", default=None,
                     help="review store (default: workspace/reviews.sqlite)")
    add_bins_option(imp, "age bins the labels are read with")


def run(args) -> int:
    from audit.dataset_index import index_dataset
    from audit.review_import import RelabelListError, import_relabel_list
    from audit.reviews import ReviewStore
    from audit.workspace import workspace_dir

    bins = bins_from_args(args)
    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise UsageError(f"no relabel list at {csv_path}")
    try:
        index = index_dataset(args.data, bins=bins)
    except ValueError as err:  # DatasetNotFound
        raise UsageError(str(err)) from None
    store = ReviewStore(Path(args.reviews) if args.reviews else workspace_dir() / "reviews.sqlite")
    try:
        ids = import_relabel_list(store, index, csv_path.read_bytes(), source=csv_path.name,
                                  reviewer=args.reviewer, bins=bins)
    except RelabelListError as err:
        for line in err.lines():
            print(line, file=sys.stderr)
        raise UsageError(str(err)) from None
    except UnicodeDecodeError:
        raise UsageError(f"{csv_path} is not UTF-8 text") from None
    print(f"Imported {len(ids):,} decisions from {csv_path.name} into {store.path} "
          f"(dataset {index.root}, fingerprint {index.fingerprint[:12]})")
    return 0
