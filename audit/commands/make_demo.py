"""`python -m audit make-demo OUT [--people N] [--eval M] [--seed S] [--like MANIFEST_DIR] [--like-limit K]
[--gender-flip R] [--age-shift R] [--mask-swap R] [--workers W] [--force]`.

Draws the built-in demo dataset into OUT (seed layout + truth.csv + demo.json), with a progress bar on
stderr and a one-paragraph summary on stdout. OUT must be empty, missing, or a previous demo (which is
replaced); anything else needs --force.
"""
from __future__ import annotations

import argparse

from audit.cli import TqdmProgress, UsageError


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate must be within [0, 1], got {text}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from audit.demo_data import NoiseRates

    d = NoiseRates()
    parser.add_argument("out", metavar="OUT", help="folder to write (empty, new, or a previous demo)")
    parser.add_argument("--people", type=int, default=60, help="train people, 7 photos each (default: 60)")
    parser.add_argument("--eval", dest="eval_images", type=int, default=120, help="eval images (default: 120)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    parser.add_argument("--like", metavar="MANIFEST_DIR", default=None,
                        help="reproduce the names and labels of a real manifest (train.csv + info.csv)")
    parser.add_argument("--like-limit", type=int, default=None, metavar="K",
                        help="with --like: only the first K train people and K eval images")
    parser.add_argument("--gender-flip", type=_rate, default=d.gender_flip,
                        help=f"fraction of people named with the wrong gender (default: {d.gender_flip})")
    parser.add_argument("--age-shift", type=_rate, default=d.age_shift,
                        help=f"fraction of people whose age label crosses a bin boundary (default: {d.age_shift})")
    parser.add_argument("--mask-swap", type=_rate, default=d.mask_swap,
                        help=f"fraction of train people with normal/incorrect_mask swapped (default: {d.mask_swap})")
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder that is not a demo")


def run(args) -> int:
    from audit.demo_data import NoiseRates, make_demo

    if args.people < 0 or args.eval_images < 0:
        raise UsageError("--people and --eval must be >= 0")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.like_limit is not None and (args.like is None or args.like_limit < 1):
        raise UsageError("--like-limit needs --like and a positive number")
    noise = NoiseRates(gender_flip=args.gender_flip, age_shift=args.age_shift, mask_swap=args.mask_swap)
    progress = TqdmProgress(desc="drawing faces", unit="img")
    try:
        info = make_demo(args.out, people=args.people, eval_images=args.eval_images, seed=args.seed,
                         like=args.like, like_limit=args.like_limit, noise=noise, workers=args.workers,
                         progress=progress, force=args.force)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    finally:
        progress.close()
    n = info.noise_counts
    print(f"Demo dataset in {info.root}: {info.train_people:,} train people ({info.train_people * 7:,} images) "
          f"+ {info.eval_images:,} eval images in {info.seconds:.1f} s. Injected noise: {n['gender']} gender flips, "
          f"{n['age']} age shifts, {n['mask']} mask swaps; truth in {info.truth_path}")
    return 0
