"""`python -m audit export DATA [--out DIR] [--reviews FILE] [--bins default|competition|LO,HI]`.

Indexes DATA, reads the decisions recorded for it (matched by the data fingerprint) from the
workspace's review store, and writes relabel.csv, the corrected train.csv / info.csv, images.csv
and history.csv (see `audit.export`) into DIR (default `workspace/exports/<UTC timestamp>/`).
Prints the files written and the decisions by field and kind. The images are never touched.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from audit.cli import UsageError, add_bins_option, bins_from_args


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="folder to write into (default: workspace/exports/<UTC timestamp>/)")
    parser.add_argument("--reviews", metavar="FILE", default=None,
                        help="review store (default: workspace/reviews.sqlite)")
    add_bins_option(parser, "age bins the labels are read with")


# `export_all` writes CSV files only, relabel.csv always: a folder holding our relabel.csv and
# nothing but CSV files (and `.tmp` partners) is an earlier export and may be written again; any
# other non-empty folder is someone's and is refused.
RELABEL_NAME = "relabel.csv"


def check_export_folder(out: Path) -> None:
    """UsageError unless `out` is absent, empty, or an earlier export (relabel.csv with our header
    and nothing but CSV files): `--out .`, a workspace or a folder of someone's CSVs is never
    written over."""
    from audit.export import RELABEL_COLUMNS

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} is not a folder; give a new or empty folder")
    if not out.exists():
        return
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as err:
        raise UsageError(f"--out {out} cannot be listed ({err.strerror or err})") from None
    if not names:
        return
    foreign = [n for n in names if not (n.startswith(".") and n.endswith(".tmp"))
               and not (n.endswith(".csv") and (out / n).is_file() and not (out / n).is_symlink())]
    try:
        with open(out / RELABEL_NAME, encoding="utf-8-sig") as fh:
            ours = fh.readline().strip() == ",".join(RELABEL_COLUMNS)
    except (OSError, UnicodeDecodeError):
        ours = False
    if foreign or not ours:
        shown = ", ".join(foreign[:3] or names[:3]) + (" ..." if len(foreign or names) > 3 else "")
        raise UsageError(f"--out {out} holds files that are not an export of Mask Audit ({shown}); "
                         "nothing is written over them: choose a new or empty folder")


def run(args) -> int:
    from audit.dataset_index import index_dataset
    from audit.export import export_all
    from audit.reviews import ReviewStore
    from audit.workspace import workspace_dir

    bins = bins_from_args(args)
    if args.out is not None:
        check_export_folder(Path(args.out).expanduser())
    reviews = Path(args.reviews) if args.reviews else workspace_dir() / "reviews.sqlite"
    if args.reviews and not reviews.is_file():
        raise UsageError(f"no review store at {reviews}")
    try:
        index = index_dataset(args.data, bins=bins)
    except ValueError as err:  # DatasetNotFound: not a dataset folder
        raise UsageError(str(err)) from None
    import sqlite3

    try:
        store = ReviewStore(reviews)
    except sqlite3.DatabaseError as err:  # e.g. "file is not a database"
        raise UsageError(f"{reviews} is not a review store ({err}); give the workspace's reviews.sqlite") from None
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
    for path in paths.values():
        print(f"wrote {path}")
    return 0
