"""`python -m audit train DATA --arch NAME [--epochs E] [--folds K] [--no-eval-in-folds] [--img-size H W]
[--crop C] [--batch-size B] [--lr LR] [--seed S] [--no-pretrained | --pretrained-file F]
[--bins default|competition|LO,HI] [--balance weights|sampler|none] [--workers W] [--out weights/NAME]`.

Trains K person-grouped fold models (keeping every train and eval image's out-of-fold probabilities)
and a final model on all of them; writes OUT/model.pt, OUT/model.json (the model card) and
OUT/oof.parquet. With --no-eval-in-folds, eval images stay out of all training (a held-out test).
Per-epoch progress bars (loss, validation macro F1) go to stderr, a summary to stdout.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from audit.cli import UsageError, add_bins_option, bins_from_args


# Options whose default depends on the starting point (a domain-pretrained checkpoint's card, or the
# from-scratch recipe): parsed as None and filled by config_from_args.
LATE_DEFAULTS = ("epochs", "img_size", "crop", "lr")


def add_training_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The options `train` and `demo` share; `defaults` is a TrainConfig (shown in the help; epochs,
    input size, crop and learning rate follow a Mask Audit --pretrained-file's card unless given)."""
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per model (default: {defaults.epochs}; "
                        "fewer when fine-tuning from a pretrained checkpoint)")
    parser.add_argument("--folds", type=int, default=defaults.folds,
                        help=f"person-grouped folds for out-of-fold predictions; 0 = none (default: {defaults.folds})")
    parser.add_argument("--no-eval-in-folds", dest="eval_in_folds", action="store_false",
                        help="keep eval images out of all training, as a held-out test of the final model "
                             "(default: they join the folds, so fold models see more people and every "
                             "labelled image gets an out-of-fold probability)")
    size = defaults.img_size
    parser.add_argument("--img-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="model input height and width in pixels (default: a pretrained checkpoint's, else "
                             + (f"{size[0]} {size[1]})" if size else "the architecture's)"))
    parser.add_argument("--crop", type=float, default=None,
                        help="central fraction of each image's height and width the model sees, 0.2-1 "
                             f"(default: a pretrained checkpoint's, else {defaults.crop:g})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"(default: {defaults.batch_size})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak AdamW learning rate (default: {defaults.lr}; lower when fine-tuning)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                        help=f"(default: {defaults.weight_decay})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"(default: {defaults.seed})")
    parser.add_argument("--balance", choices=("weights", "sampler", "none"), default=defaults.balance,
                        help="class imbalance: per-head loss weights, a balanced sampler, or none (default: weights)")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-loading processes (default: min(2, cores) on CPU, min(8, cores) on a GPU)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from audit.training import TrainConfig

    d = TrainConfig()
    parser.add_argument("data", metavar="DATA", help="dataset folder (seed or competition layout, or its parent)")
    parser.add_argument("--arch", default=None,
                        help=f"timm architecture name (default: a Mask Audit --pretrained-file's, else {d.arch})")
    add_training_arguments(parser, d)
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--no-pretrained", action="store_true", help="train from scratch (no ImageNet weights)")
    weights.add_argument("--pretrained-file", metavar="F", default=None,
                         help="start from this local file: a Mask Audit checkpoint (e.g. weights/pretrained/model.pt "
                              "from `python -m audit pretrain`: backbone and heads, its input size and crop) or a "
                              "timm/torch state dict of the backbone")
    add_bins_option(parser)
    parser.add_argument("--out", default=None, help="output folder (default: weights/<arch>)")


def config_from_args(args, *, arch: str, pretrained: bool, pretrained_file, bins, defaults=None):
    """argparse options -> TrainConfig; options left unset (LATE_DEFAULTS) come from `defaults`
    (a TrainConfig: the demo recipe, or one shaped by a pretrained checkpoint's card)."""
    from audit.training import TrainConfig

    defaults = defaults or TrainConfig()
    if args.workers is not None and args.workers < 0:
        raise UsageError("--workers must be >= 0")
    if args.img_size is not None and min(args.img_size) < 16:
        raise UsageError("--img-size must be at least 16 16")
    late = {name: getattr(args, name) if getattr(args, name, None) is not None else getattr(defaults, name)
            for name in LATE_DEFAULTS}
    try:
        return TrainConfig(arch=arch, pretrained=pretrained, pretrained_file=pretrained_file, epochs=late["epochs"],
                           folds=args.folds, eval_in_folds=args.eval_in_folds,
                           img_size=tuple(late["img_size"]) if late["img_size"] else None, crop=late["crop"],
                           batch_size=args.batch_size, lr=late["lr"], weight_decay=args.weight_decay, seed=args.seed,
                           workers=args.workers, bins=bins, balance=args.balance, device=args.device)
    except ValueError as err:
        raise UsageError(str(err)) from None


# What a checkpoint folder of ours holds (model.pt, model.json, oof.parquet; pretrain's history.json;
# .tmp partners of atomic writes): a folder holding anything else is someone's.
CHECKPOINT_FILE_SUFFIXES = (".pt", ".json", ".parquet", ".tmp")
# Why `--out` cannot receive weights, by `audit.file_io.OutputFolderRefused.kind`.
_WEIGHTS_FOLDER_REFUSALS = {
    "inside_data": "--out {out} is inside the dataset {data_root}: weights are never written into the data "
                   "folder; choose a folder outside it",
    "link": "--out {out} is a symbolic link; give a real folder for the weights",
    "not_a_folder": "--out {out}: {folder} exists and is not a folder; choose another",
    "unlistable": "--out {out} cannot be listed ({error}); choose another folder",
}


def _is_our_checkpoint(path: Path) -> bool:
    from audit.model import read_card

    try:
        read_card(path)  # model.json beside it, else the .pt's embedded card (format checked)
    except Exception:  # any failure to read a card (no card, wrong format, bad JSON) means not ours
        return False
    return path.is_file() and not path.is_symlink()


def check_weights_target(out: Path, *, data_root: Path | None = None) -> None:
    """UsageError unless `--out` (a folder, or a .pt path in one) may receive a checkpoint: the
    folder is absent, empty, or a checkpoint folder of ours (a Mask Audit model.pt and nothing but
    checkpoint files), and not inside the data folder. Someone's model.pt, a workspace or `.` is
    never written over (the same rule as run folders); nothing is written before this passes."""
    from audit.file_io import OutputFolderRefused, output_folder_entries
    from audit.model import CHECKPOINT_NAME, resolve_checkpoint

    checkpoint = resolve_checkpoint(out)
    folder = checkpoint.parent
    try:
        entries = output_folder_entries(folder, data_root=data_root, links=(checkpoint,))
    except OutputFolderRefused as why:
        raise UsageError(_WEIGHTS_FOLDER_REFUSALS[why.kind].format(out=out, folder=folder, data_root=data_root,
                                                                   error=why.error)) from None
    if not entries:
        return
    foreign = [name for name, regular in entries if not regular or Path(name).suffix not in CHECKPOINT_FILE_SUFFIXES]
    ours = [c for c in {checkpoint, folder / CHECKPOINT_NAME} if c.exists() and _is_our_checkpoint(c)]
    if checkpoint.exists() and checkpoint not in ours:
        raise UsageError(f"--out {out}: {checkpoint} is not a Mask Audit checkpoint; it is never written over: "
                         "choose a new or empty folder (nothing was written)")
    if foreign or not ours:
        shown = ", ".join((foreign or [name for name, _ in entries])[:3]) + (" ..." if len(foreign or entries) > 3 else "")
        raise UsageError(f"--out {out} holds files that are not a Mask Audit checkpoint ({shown}); nothing is "
                         "written over them: choose a new or empty folder (nothing was written)")


def print_summary(result, out=None) -> None:
    m = result.card.metrics

    def line(name, d):
        if not d or not d.get("n"):
            return
        print(f"  {name:<16} n={d['n']:<6} macro F1 {d['macro_f1']:.3f}  mask {d['mask_acc']:.3f}  "
              f"gender {d['gender_acc']:.3f}  age {d['age_acc']:.3f}"
              + (f"  age MAE {d['age_mae']:.1f} y" if "age_mae" in d else ""), file=out)

    print(f"checkpoint: {result.checkpoint} ({result.card.arch}, input {result.card.input_size[1]}x"
          f"{result.card.input_size[2]}, trained in {result.seconds:.0f} s)", file=out)
    line("train, oof", m.get("oof"))
    line("eval, oof" if m.get("eval_source") == "out-of-fold" else "eval, held out", m.get("eval"))


def run(args) -> int:
    from audit.dataset_index import DatasetNotFound, index_dataset
    from audit.model import PretrainedFileMismatch, PretrainedWeightsUnavailable
    from audit.training import train_model
    from audit.workspace import WEIGHTS_DIR

    bins = bins_from_args(args)
    if args.pretrained_file and not Path(args.pretrained_file).is_file():
        raise UsageError(f"--pretrained-file not found: {args.pretrained_file}")
    from audit.model import pretrained_card
    from audit.training import TrainConfig

    defaults = TrainConfig()
    start_card = pretrained_card(args.pretrained_file) if args.pretrained_file else None
    if start_card is not None:  # a Mask Audit checkpoint: fine-tune at the input it was trained at
        defaults = TrainConfig(arch=start_card.arch, img_size=start_card.image_size, crop=start_card.crop)
    arch = args.arch or defaults.arch
    config = config_from_args(args, arch=arch, pretrained=not args.no_pretrained,
                              pretrained_file=args.pretrained_file, bins=bins, defaults=defaults)
    import timm

    if not timm.is_model(arch):
        raise UsageError(f"unknown timm architecture {arch!r} (python -c 'import timm; print(timm.list_models())')")
    if start_card is not None and start_card.arch != arch:
        raise UsageError(f"{args.pretrained_file} was trained as {start_card.arch!r}, not {arch!r}: "
                         f"use --arch {start_card.arch} or another --pretrained-file")
    try:
        index = index_dataset(args.data, bins=bins)
    except DatasetNotFound as err:
        raise UsageError(str(err)) from None
    train_people = index.images.loc[index.images["split"] == "train", "person"].nunique()
    if train_people == 0:
        raise UsageError(f"no train images in {index.root}")
    if config.folds > train_people:
        raise UsageError(f"--folds {config.folds} needs at least {config.folds} train people; the data has {train_people}")
    out = Path(args.out).expanduser() if args.out else WEIGHTS_DIR / arch
    check_weights_target(out, data_root=index.root)
    command = "python -m audit train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if sys.argv[1:2] == ["train"] else None
    try:
        result = train_model(index, config, out, how_to_reproduce=command)
    except (PretrainedWeightsUnavailable, PretrainedFileMismatch) as err:
        raise UsageError(str(err)) from None
    print_summary(result)
    return 0
