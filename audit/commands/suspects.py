"""`python -m audit suspects RUN [--top N] [--k K] [--second-opinion RUN2]`: run the label-noise
detectors on a run (with another run of the same images as a second opinion), write the merged
review queue to RUN/suspects.parquet and print the top of it."""
from __future__ import annotations

import os
import time
from pathlib import Path


def configure_parser(parser) -> None:
    parser.add_argument("run", help="run folder (or the name of a run in the workspace's runs/)")
    parser.add_argument("--top", type=int, default=20, help="how many suspects to print (default 20)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per image for the embedding detector")
    parser.add_argument("--second-opinion", metavar="RUN", default=None,
                        help="another run of the same images (another model, the pretrained backbone's run, or "
                             "imported predictions) whose disagreement with the labels joins the queue")


def write_suspects(run_dir: Path, queue) -> Path:
    """Write the queue as RUN/suspects.parquet atomically (a reader never sees half a file)."""
    from audit.runs import SUSPECTS_NAME

    target = Path(run_dir) / SUSPECTS_NAME
    tmp = target.with_name(f".{SUSPECTS_NAME}.{os.getpid()}.tmp")
    queue.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target


def format_queue(queue, bins, top: int = 20) -> str:
    """The first `top` rows as readable lines: rank, field, item, given -> suggested, score, evidence."""
    from audit.labels import field_value_names

    lines = []
    for row in queue.head(top).itertuples(index=False):
        names = field_value_names(row.field, bins)
        lines.append(
            f"{row.rank:>4}  {row.field:<6} {row.item}  {names[row.given]} -> {names[row.suggested]}  "
            f"score {row.score:.2f}  [{row.detectors or '-'}]\n        {row.evidence}")
    return "\n".join(lines)


def run(args) -> int:
    from audit.cli import UsageError
    from audit.noise.merge import find_suspects
    from audit.runs import NotARunError, Run, RunFileError, resolve_run_dir

    try:
        run_ = Run.open(resolve_run_dir(args.run))
    except NotARunError as err:
        raise UsageError(str(err)) from None
    if args.top < 0 or args.k < 1:
        raise UsageError("--top must be >= 0 and --k >= 1")
    t0 = time.perf_counter()
    other = None
    if args.second_opinion:
        try:
            other = Run.open(resolve_run_dir(args.second_opinion))
        except NotARunError as err:
            raise UsageError(f"--second-opinion: {err}") from None
        if other.path.resolve() == run_.path.resolve():
            raise UsageError("--second-opinion must be another run than RUN")
        try:
            shared = other.predictions["path"].isin(run_.predictions["path"]).sum()
        except RunFileError as err:
            raise UsageError(f"--second-opinion: {err}") from None
        if not shared:
            raise UsageError(f"--second-opinion {other.path} shares no image with {run_.path}: not the same data")
    try:
        queue = find_suspects(run_, k=args.k, second_opinion=other)
    except RunFileError as err:  # damage past the footer/header checks of Run.open
        raise UsageError(str(err)) from None
    path = write_suspects(run_.path, queue)
    seconds = time.perf_counter() - t0
    flagged = int(queue["flagged"].sum()) if len(queue) else 0
    print(f"{len(queue)} (item, field) pairs judged, {flagged} flagged as more likely wrong than right "
          f"({seconds:.1f} s); wrote {path}")
    if args.top and len(queue):
        print(format_queue(queue, run_.bins, args.top))
    return 0
