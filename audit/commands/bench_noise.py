"""`python -m audit bench-noise [--people N --eval M --seed S --epochs E --no-eval-in-folds]
[--no-pretrained | --pretrained-file F] [--no-second-opinion] [--json]`: score the label-noise
detectors and the merged queue against a demo dataset's known noise. The model is fine-tuned from
the domain-pretrained checkpoint (weights/pretrained/model.pt) when present, and that checkpoint's
own predictions are the second-opinion run."""
from __future__ import annotations

import json
import sys


def configure_parser(parser) -> None:
    parser.add_argument("--people", type=int, default=300, help="train people in the demo (default 300)")
    parser.add_argument("--eval", type=int, default=300, dest="eval_images", help="eval images (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="demo and training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs per model (default: 12 from scratch, fewer when fine-tuning)")
    parser.add_argument("--folds", type=int, default=3, help="out-of-fold folds (default 3)")
    parser.add_argument("--no-eval-in-folds", dest="eval_in_folds", action="store_false",
                        help="train on the train people only (default: eval images join the folds, as in `train`)")
    parser.add_argument("--arch", default=None, help="timm architecture (default: the demo model's)")
    parser.add_argument("--img-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="training input size (default: the demo model's)")
    parser.add_argument("--crop", type=float, default=None,
                        help="central fraction of each image the model sees (default: the demo model's)")
    parser.add_argument("--workers", type=int, default=None, help="processes for drawing and loading")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the demo data, checkpoint and run in DIR (default: a temp dir, removed)")
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-scale smoke run (few people, 1 epoch, 2 folds); numbers mean nothing")
    parser.add_argument("--run", default=None, help="score this existing run instead of building one (needs --truth)")
    parser.add_argument("--truth", default=None, help="the demo's truth.csv, with --run")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="train from scratch (default: fine-tune from weights/pretrained/model.pt when present)")
    parser.add_argument("--pretrained-file", default=None, metavar="F",
                        help="the pretrained checkpoint to fine-tune from and use as the second opinion")
    parser.add_argument("--no-second-opinion", dest="second_opinion", action="store_false",
                        help="leave out the second-opinion run (the pretrained model's own predictions)")
    parser.add_argument("--second-opinion-run", default=None, metavar="RUN",
                        help="with --run: another run of the same demo to use as the second opinion")
    parser.add_argument("--json", action="store_true", help='print {"results": [...]} as JSON only')


def run(args) -> int:
    from audit.cli import UsageError
    from audit.noise_bench import BenchConfig, format_results, run_bench, score_existing

    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if args.run or args.truth:
        from pathlib import Path

        from audit.runs import NotARunError, resolve_run_dir

        if not (args.run and args.truth):
            raise UsageError("--run and --truth go together")
        if not Path(args.truth).is_file():
            raise UsageError(f"truth file not found: {args.truth}")
        try:
            result = score_existing(resolve_run_dir(args.run), args.truth,
                                    second_opinion_dir=resolve_run_dir(args.second_opinion_run)
                                    if args.second_opinion_run else None)
        except (NotARunError, ValueError) as err:
            raise UsageError(str(err)) from None
        _print(result, args, format_results)
        return 0
    if args.tiny:
        cfg = BenchConfig(people=12, eval_images=6, seed=args.seed, epochs=1, folds=2,
                          arch=args.arch or "mobilenetv3_small_050",
                          img_size=tuple(args.img_size) if args.img_size else (64, 48), workers=args.workers,
                          pretrained=False, second_opinion=False)
    else:
        if args.people < 4 or args.eval_images < 0 or (args.epochs is not None and args.epochs < 1) or args.folds < 2:
            raise UsageError("need --people >= 4, --eval >= 0, --epochs >= 1, --folds >= 2")
        if args.pretrained_file:
            from pathlib import Path

            from audit.model import pretrained_card

            if not Path(args.pretrained_file).is_file() or pretrained_card(args.pretrained_file) is None:
                raise UsageError(f"--pretrained-file {args.pretrained_file} is not a Mask Audit checkpoint")
        try:
            cfg = BenchConfig(people=args.people, eval_images=args.eval_images, seed=args.seed, epochs=args.epochs,
                              folds=args.folds, eval_in_folds=args.eval_in_folds, arch=args.arch,
                              img_size=tuple(args.img_size) if args.img_size else None, crop=args.crop,
                              workers=args.workers, pretrained=args.pretrained, pretrained_file=args.pretrained_file,
                              second_opinion=args.second_opinion)
        except ValueError as err:
            raise UsageError(str(err)) from None
    result = run_bench(cfg, work_dir=args.keep, log=log)
    _print(result, args, format_results)
    return 0


def _print(result, args, format_results) -> None:
    if args.json:
        print(json.dumps(result.to_json_dict()))
    else:
        print(format_results(result.results))
        print("timings (s): " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
        if "flagged" in result.counts:
            print(f"flagged {result.counts['flagged']} items; truly wrong labels {result.counts['true_errors']} ("
                  + ", ".join(f"{f} {result.counts.get('flagged_' + f)}/{result.counts.get('true_errors_' + f)}"
                              for f in ("mask", "gender", "age")) + ")")
        for split, m in result.model.items():
            print(f"model, {split}: " + ", ".join(f"{k} {v}" for k, v in m.items()))
