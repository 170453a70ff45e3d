"""`python -m audit export DATA [--out DIR] [--reviews FILE] [--bins default|competition|LO,HI]`.

Indexes DATA, reads the decisions recorded for it (matched by the data fingerprint) from the
workspace's review store, and writes relabel.csv, the corrected train.csv / info.csv, images.csv
and history.csv (see `audit.export`) into DIR (default `workspace/exports/<UTC timestamp>/`).
Prints the files written and the decisions by field and kind. The images are never touched.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from audit.cli import UsageError
from audit.labels import parse_bins


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="folder to write into (default: workspace/exports/<UTC timestamp>/)")
    parser.add_argument("--reviews", metavar="FILE", default=None,
                        help="review store (default: workspace/reviews.sqlite)")
    parser.add_argument("--bins", default="default",
                        help="age bins the labels are read with: default, competition or LO,HI (default: default)")


def run(args) -> int:
    from audit.dataset_index import index_dataset
    from audit.export import export_all
    from audit.reviews import ReviewStore
    from audit.workspace import workspace_dir

    try:
        bins = parse_bins(args.bins)
    except ValueError as err:
        raise UsageError(str(err)) from None
    reviews = Path(args.reviews) if args.reviews else workspace_dir() / "reviews.sqlite"
    if args.reviews and not reviews.is_file():
        raise UsageError(f"no review store at {reviews}")
    try:
        index = index_dataset(args.data, bins=bins)
    except ValueError as err:  # DatasetNotFound: not a dataset folder
        raise UsageError(str(err)) from None
    store = ReviewStore(reviews)
    try:
        paths = export_all(store, index, args.out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    counts = store.counts(index.fingerprint)
    print(f"Dataset: {index.root} ({index.layout} layout), fingerprint {index.fingerprint[:12]}")
    if counts.empty:
        others = [f for f in store.fingerprints() if f != index.fingerprint]
        hint = (f"; {reviews} holds decisions for {len(others)} other dataset version(s) — "
                "did the data change since the review?") if others else ""
        print(f"No decisions recorded for this dataset in {reviews}{hint}")
    else:
        print("Decisions: " + ", ".join(f"{f} {d} {n}" for f, d, n in counts.itertuples(index=False)))
    for name, path in paths.items():
        print(f"wrote {path}")
    return 0
