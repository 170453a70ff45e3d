"""`python -m audit pretrain [--out weights/pretrained] [--identities N] [--epochs E] [--arch A]
[--img-size H W] [--crop C] [--work-dir DIR] [--workers W] [--threads T] [--no-resume]`.

Domain pretraining for the demo (audit/pretraining.py): draws N procedural identities from seeds no
demo, test or benchmark uses, trains the classifier's backbone and heads on their TRUE labels and
writes OUT/model.pt (fp16) + OUT/model.json (the card, with how to reproduce) + OUT/history.json
(per-epoch held-out metrics) after every epoch. The drawn pixels and a resume state stay in the
work folder (default: workspace/pretrain), so a killed run continues where it stopped.
`train --pretrained-file OUT/model.pt` fine-tunes from it; `demo` and `bench-noise` do by default.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from audit.cli import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from audit.pretraining import PretrainConfig

    d = PretrainConfig()
    parser.add_argument("--out", default="weights/pretrained", help="output folder (default: %(default)s)")
    parser.add_argument("--identities", type=int, default=d.identities, help="training identities (default: %(default)s)")
    parser.add_argument("--val-identities", type=int, default=d.val_identities,
                        help="held-out identities for the per-epoch check (default: %(default)s)")
    parser.add_argument("--photos", type=int, default=d.photos, help="photos per identity (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="(default: %(default)s)")
    parser.add_argument("--arch", default=d.arch, help="timm architecture (default: %(default)s)")
    parser.add_argument("--img-size", type=int, nargs=2, metavar=("H", "W"), default=list(d.img_size),
                        help="model input in pixels (default: %(default)s)")
    parser.add_argument("--crop", type=float, default=d.crop, help="central fraction kept (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="drawing seed, >= 1000 (default: %(default)s; demos, tests and benchmarks use seeds below 1000)")
    parser.add_argument("--work-dir", default=None, help="drawn pixels + resume state (default: workspace/pretrain)")
    parser.add_argument("--workers", type=int, default=2, help="drawing processes (spawn) (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start afresh even when the work folder holds a resume state of this configuration")


def run(args) -> int:
    import timm

    from audit import workspace
    from audit.pretraining import PretrainConfig, pretrain

    if not timm.is_model(args.arch):
        raise UsageError(f"unknown timm architecture {args.arch!r}")
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if min(args.img_size) < 16:
        raise UsageError("--img-size must be at least 16 16")
    try:
        config = PretrainConfig(identities=args.identities, val_identities=args.val_identities, photos=args.photos,
                                arch=args.arch, img_size=tuple(args.img_size), crop=args.crop, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads)
        from audit.model import validate_crop

        validate_crop(args.crop)
    except ValueError as err:
        raise UsageError(str(err)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(p.name not in ("model.pt", "model.json", "history.json") for p in out.iterdir()):
        raise UsageError(f"--out {out} holds files other than a pretrained checkpoint; choose an empty folder")
    work_dir = Path(args.work_dir) if args.work_dir else workspace.workspace_dir() / "pretrain"
    command = "python -m audit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["pretrain"] else "python -m audit pretrain (called from Python)"
    card = pretrain(config, out, work_dir=work_dir, workers=args.workers, how_to_reproduce=command,
                    log=lambda m: print(m, file=sys.stderr, flush=True), resume=args.resume)
    v = card.metrics.get("held_out_true_labels", {})
    print(f"checkpoint: {out / 'model.pt'} ({card.arch}, {card.input_size[1]}x{card.input_size[2]}, "
          f"{card.epochs} epochs, {card.train_seconds:.0f} s); held-out gender {v.get('gender_acc')}, "
          f"age bins {v.get('age_acc')}, age MAE {v.get('age_mae')} y")
    return 0
