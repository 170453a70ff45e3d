"""`python -m audit demo [--people N] [--eval M] [--seed S] [--epochs E] [--folds K] [--use-committed]
[--no-pretrained | --pretrained-file F] [--weights-out DIR] [--force]`.

The whole pipeline on the built-in demo, in the workspace: draw the demo dataset
(workspace/demo, unless a complete demo of the same size and seed is there), train the demo model
with person-grouped out-of-fold predictions (workspace/weights/demo, unless the checkpoint there
was trained on the same data with the same settings), and predict it into workspace/runs/demo.
`--use-committed` predicts with the committed weights/demo checkpoint instead of training.
The demo model is fine-tuned from the domain-pretrained backbone (weights/pretrained/model.pt, made
by `python -m audit pretrain`) when it is there; `--no-pretrained` trains from scratch.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from audit.cli import TqdmProgress, UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from audit.commands.train import add_training_arguments
    from audit.demo_recipe import DEMO_EVAL_IMAGES, DEMO_PEOPLE, DEMO_SEED, demo_train_config

    parser.add_argument("--people", type=int, default=DEMO_PEOPLE,
                        help=f"demo train people, 7 photos each (default: {DEMO_PEOPLE})")
    parser.add_argument("--eval", dest="eval_images", type=int, default=DEMO_EVAL_IMAGES,
                        help=f"demo eval images (default: {DEMO_EVAL_IMAGES})")
    parser.add_argument("--data-seed", type=int, default=DEMO_SEED, help=f"seed of the demo drawing (default: {DEMO_SEED})")
    add_training_arguments(parser, demo_train_config())
    parser.add_argument("--arch", default=None,
                        help="timm architecture (default: the pretrained checkpoint's, else test_resnet)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--no-pretrained", action="store_true",
                       help="train from scratch (default: fine-tune from weights/pretrained/model.pt when present)")
    start.add_argument("--pretrained-file", metavar="F", default=None,
                       help="fine-tune from this Mask Audit checkpoint (default: weights/pretrained/model.pt)")
    parser.add_argument("--use-committed", action="store_true",
                        help="predict with the committed weights/demo checkpoint instead of training")
    parser.add_argument("--weights-out", default=None, metavar="DIR",
                        help="where the trained demo checkpoint goes (default: workspace/weights/demo)")
    parser.add_argument("--force", action="store_true", help="redraw the data, retrain and repredict even when current")


def _demo_is_current(root: Path, people: int, eval_images: int, seed: int) -> bool:
    from audit.demo_data import DEMO_VERSION, read_demo_meta

    meta = read_demo_meta(root)
    return meta is not None and bool(meta.get("complete")) and meta.get("version") == DEMO_VERSION and meta.get("like") is None \
        and meta.get("people") == people \
        and meta.get("eval_images") == eval_images and meta.get("seed") == seed


def _checkpoint_is_current(checkpoint: Path, index, config) -> bool:
    from audit.model import oof_path, read_card

    if not checkpoint.is_file():
        return False
    try:
        card = read_card(checkpoint)
    except (OSError, ValueError):
        return False
    from audit.training import training_code_fingerprint

    wanted = config.to_dict()
    return card.data_fingerprint == index.fingerprint and card.train_config == wanted \
        and card.versions.get("training_code") == training_code_fingerprint() \
        and (config.folds == 0 or oof_path(checkpoint).is_file())


def demo_config_from_args(args, bins):
    """The demo's TrainConfig: fine-tuned from the domain-pretrained checkpoint (--pretrained-file, or
    weights/pretrained/model.pt when present) unless --no-pretrained; explicit options win."""
    from audit.commands.train import config_from_args
    from audit.model import pretrained_card
    from audit.demo_recipe import default_pretrained_file, demo_train_config

    start = None if args.no_pretrained else (args.pretrained_file or default_pretrained_file())
    if start is not None:
        if not Path(start).is_file():
            raise UsageError(f"--pretrained-file not found: {start}")
        if pretrained_card(start) is None:
            raise UsageError(f"{start} is not a Mask Audit checkpoint (python -m audit pretrain makes one)")
    defaults = demo_train_config(pretrained_file=start)
    arch = args.arch or defaults.arch
    if start is not None and arch != defaults.arch:
        raise UsageError(f"{start} was trained as {defaults.arch!r}, not {arch!r}: drop --arch or pass --no-pretrained")
    return config_from_args(args, arch=arch, pretrained=start is not None,
                            pretrained_file=str(start) if start is not None else None, bins=bins, defaults=defaults)


def run(args) -> int:
    from audit import workspace
    from audit.commands.train import print_summary
    from audit.dataset_index import index_dataset
    from audit.demo_data import make_demo
    from audit.model import read_card
    from audit.prediction import predict_run
    from audit.training import train_model

    if args.people < 1 or args.eval_images < 0:
        raise UsageError("--people must be >= 1 and --eval >= 0")
    t0 = time.perf_counter()
    timings = {}
    root = workspace.demo_data_dir()
    if args.force or not _demo_is_current(root, args.people, args.eval_images, args.data_seed):
        progress = TqdmProgress(desc="drawing demo faces", unit="img")
        make_demo(root, people=args.people, eval_images=args.eval_images, seed=args.data_seed, force=True,
                  progress=progress)
        progress.close()
        print(f"demo data: drew {args.people} people x 7 + {args.eval_images} eval images into {root}", file=sys.stderr)
    else:
        print(f"demo data: {root} is current", file=sys.stderr)
    timings["data_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    index = index_dataset(root)
    timings["index_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    if args.use_committed:
        checkpoint = workspace.DEMO_WEIGHTS / "model.pt"
        if not checkpoint.is_file():
            raise UsageError(f"no committed demo checkpoint at {checkpoint}; run without --use-committed to train one")
        card = read_card(checkpoint)
        print(f"model: the committed {checkpoint} ({card.arch})", file=sys.stderr)
    else:
        config = demo_config_from_args(args, index.bins)
        out = Path(args.weights_out) if args.weights_out else workspace.workspace_dir() / "weights" / "demo"
        checkpoint = out / "model.pt"
        if not args.force and _checkpoint_is_current(checkpoint, index, config):
            print(f"model: {checkpoint} was trained on this data with these settings; reusing it", file=sys.stderr)
        else:
            command = "python -m audit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
                if sys.argv[1:2] == ["demo"] else None
            result = train_model(index, config, out, how_to_reproduce=command)
            print_summary(result, out=sys.stderr)
            checkpoint = result.checkpoint
    timings["train_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    progress = TqdmProgress(desc="predicting", unit="img")
    run_dir = predict_run(index, checkpoint, workspace.runs_dir() / "demo", progress=progress, reuse=not args.force)
    from audit.model import pretrained_card

    start = read_card(checkpoint).train_config.get("pretrained_file")
    if start and Path(start).is_file() and pretrained_card(start) is not None:
        # The pretrained model never saw the demo's labels: its run is the second opinion
        # (`python -m audit suspects runs/demo --second-opinion runs/demo-pretrained`).
        other = predict_run(index, start, workspace.runs_dir() / "demo-pretrained", progress=progress,
                            reuse=not args.force)
        print(f"second-opinion run: {other}", file=sys.stderr)
    progress.close()
    timings["predict_s"] = time.perf_counter() - t1
    total = time.perf_counter() - t0

    card_metrics = read_card(checkpoint).metrics
    metrics = card_metrics.get("eval") or {}
    print(f"run: {run_dir}")
    if metrics.get("n"):
        how = " (out-of-fold)" if card_metrics.get("eval_source") == "out-of-fold" else ""
        print(f"demo model on the demo eval images{how}: macro F1 {metrics['macro_f1']:.3f}, mask {metrics['mask_acc']:.3f}, "
              f"gender {metrics['gender_acc']:.3f}, age {metrics['age_acc']:.3f}")
    print("time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items()) + f"; total {total:.0f} s")
    print("next: streamlit run app.py")
    return 0
