"""`python -m audit prepare-demo`: draw the built-in demo dataset and predict its run in the
workspace, once (what the app's first start runs in the background; see audit/demo_setup.py).

Safe to run while the app builds the same thing: one process builds, a second one says so and
exits; a build killed part-way is cleaned up and redone by the next call.
"""
from __future__ import annotations

import sys


def configure_parser(parser) -> None:
    from audit.demo_recipe import DEMO_EVAL_IMAGES, DEMO_PEOPLE

    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: all cores)")
    parser.add_argument("--people", type=int, default=DEMO_PEOPLE,
                        help=f"train people, 7 photos each (default: {DEMO_PEOPLE}, what weights/demo saw)")
    parser.add_argument("--eval", dest="eval_images", type=int, default=DEMO_EVAL_IMAGES,
                        help=f"eval images (default: {DEMO_EVAL_IMAGES})")


def run(args) -> int:
    from audit import demo_setup, jobs
    from audit.cli import TqdmProgress, UsageError

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.people < 1 or args.eval_images < 0:
        raise UsageError("--people must be >= 1 and --eval >= 0")
    size = dict(workers=args.workers, people=args.people, eval_images=args.eval_images)
    progress = TqdmProgress(unit="img", disable=None)
    try:
        if jobs.current_reporter() is not None:  # started by the app: its job already holds the lock
            run_dir = demo_setup.prepare_demo_workspace(progress=progress, **size)
        else:
            with jobs.JobReporter(demo_setup.demo_job_dir(), "python -m audit prepare-demo") as job:
                if not job.acquired:
                    raise UsageError("the demo is being prepared by another process (the app?); wait for it")
                run_dir = demo_setup.prepare_demo_workspace(progress=_both(progress, job.progress), **size)
                job.finish()
    except (FileExistsError, ValueError) as err:
        raise UsageError(str(err)) from None
    finally:
        progress.close()
    print(f"demo ready: {run_dir or 'dataset only (no committed model in weights/demo)'}", file=sys.stderr)
    return 0


def _both(*callbacks):
    def progress(done: int, total: int, message: str = "") -> None:
        for callback in callbacks:
            callback(done, total, message)
    return progress
