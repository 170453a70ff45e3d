"""`python -m audit index ROOT [--check-images] [--json] [--bins default|competition|LO,HI] [--workers N]`.

Prints a summary (counts, findings by kind, the first few findings), or with --json one JSON object
on stdout: {"images", "people", "layout", "root", "fingerprint", "bins", "counts", "findings"}.
Progress bars go to stderr. A folder that is not a dataset: one-line error, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from audit.cli import TqdmProgress, UsageError, add_bins_option, bins_from_args

SHOW_FINDINGS = 15


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("--check-images", action="store_true",
                        help="decode every image: flag unreadable, truncated and wrongly sized ones")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_bins_option(parser)
    parser.add_argument("--workers", type=int, default=None, help="threads for --check-images (default: all cores)")


def _summary(index) -> str:
    c = index.counts()
    lines = [
        f"Dataset: {index.root} ({index.layout} layout); age bins {index.bins.describe()}",
        f"Images: {len(index.images):,} (train {c['split']['train']:,} from {index.people:,} people; "
        f"eval {c['split']['eval']:,})",
    ]
    for key, title in (("mask", "Mask"), ("gender", "Gender"), ("age_bin", "Age"), ("race", "Race"),
                       ("source", "Source"), ("ext", "Extension")):
        lines.append(f"{title}: " + ", ".join(f"{k or '(none)'} {v:,}" for k, v in c[key].items()))
    lines.append(f"Fingerprint: {index.fingerprint[:16]}")
    f = index.findings
    if not len(f):
        lines.append("Findings: none")
        return "\n".join(lines)
    lines.append(f"Findings: {len(f):,} (" + ", ".join(f"{k} {v:,}" for k, v in c["findings"].items()) + ")")
    width = max(len(k) for k in f["kind"].head(SHOW_FINDINGS))
    for kind, path, detail in f.head(SHOW_FINDINGS).itertuples(index=False, name=None):
        lines.append(f"  {kind:<{width}}  {path}  {detail}")
    if len(f) > SHOW_FINDINGS:
        lines.append(f"  ... {len(f) - SHOW_FINDINGS:,} more (--json lists them all)")
    return "\n".join(lines)


def run(args) -> int:
    from audit.dataset_index import DatasetNotFound, index_dataset

    bins = bins_from_args(args)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    progress = TqdmProgress(leave=False, disable=None)
    try:
        index = index_dataset(args.root, bins=bins, check_images=args.check_images, workers=args.workers,
                              progress=progress)
    except DatasetNotFound as err:
        raise UsageError(str(err)) from None
    finally:
        progress.close()
    if args.json:
        json.dump(index.to_json_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(_summary(index))
    return 0
