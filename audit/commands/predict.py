"""`python -m audit predict DATA --weights weights/NAME [--run NAME|PATH] [--batch-size B] [--device cpu|cuda]
[--workers N] [--threads T] [--no-reuse]`.

Predicts every indexed image (train and eval) with the checkpoint into a run folder (default: the
workspace's runs/<weights folder name>), indexing the data with the model's age bins. A run of
the same checkpoint and data is reused. A progress bar goes to stderr.
"""
from __future__ import annotations

import argparse

from audit.cli import TqdmProgress, UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="the dataset folder (seed or competition layout) or its parent")
    parser.add_argument("--weights", required=True, help="checkpoint: weights/NAME/model.pt or its folder")
    parser.add_argument("--run", default=None,
                        help="run NAME (or runs/NAME) in the workspace, or a folder path (default: the weights folder's name)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores; 0: none)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads on CPU (default: the cores the decoding processes leave, at least 1)")
    parser.add_argument("--no-reuse", action="store_true", help="recompute even if the run already holds these predictions")
    ray = parser.add_argument_group("engine", "where the prediction runs (the run files are the same)")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this process (default); ray: Ray Data actors (pip install -r requirements-ray.txt)")
    ray.add_argument("--address", default=None,
                     help="with --engine ray: auto or ray://HOST:10001 for an existing cluster (default: a local Ray)")
    ray.add_argument("--num-gpus-per-worker", type=float, default=0.0,
                     help="with --engine ray: GPUs per model actor (default 0: CPU actors)")
    ray.add_argument("--ray-workers", type=int, default=2, help="with --engine ray: model actors (default: 2)")
    ray.add_argument("--gpu-decode", action="store_true",
                     help="with --engine ray and GPUs: decode JPEGs on the GPU (faster; not bit-identical)")


def run(args) -> int:
    from audit.dataset_index import DatasetNotFound, index_dataset
    from audit.model import read_card, resolve_checkpoint
    from audit.prediction import predict_run
    from audit.runs import META_NAME, Run, RunFolderRefused, check_run_target, resolve_run_dir

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    checkpoint = resolve_checkpoint(args.weights)
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint not found: {checkpoint} (train one with `python -m audit train`)")
    try:
        card = read_card(checkpoint)
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise UsageError(f"cannot read the model card of {checkpoint}: {err}") from None
    try:
        index = index_dataset(args.data, bins=card.age_bins)
    except DatasetNotFound as err:
        raise UsageError(str(err)) from None
    if not len(index.images):
        raise UsageError(f"no usable images in {index.root} (see `python -m audit index {args.data}`)")
    run_dir = resolve_run_dir(args.run) if args.run else resolve_run_dir(checkpoint.parent.name)
    try:  # before minutes of prediction, not after
        check_run_target(run_dir, data_root=index.root)
    except RunFolderRefused as err:
        raise UsageError(str(err)) from None
    meta_path = run_dir / META_NAME
    before = meta_path.stat().st_mtime_ns if meta_path.is_file() else None

    progress = TqdmProgress(unit="img")
    try:
        ray_config = None
        if args.engine == "ray":
            from audit.ray_prediction import RayConfig, RayUnavailable, require_ray

            ray_config = RayConfig(address=args.address, workers=args.ray_workers, batch_size=args.batch_size,
                                   num_gpus_per_worker=args.num_gpus_per_worker, gpu_decode=args.gpu_decode).validate()
            try:
                require_ray()
            except RayUnavailable as err:
                raise UsageError(str(err)) from None
        elif args.address or args.num_gpus_per_worker or args.gpu_decode:
            raise UsageError("--address, --num-gpus-per-worker and --gpu-decode need --engine ray")
        path = predict_run(index, checkpoint, run_dir, batch_size=args.batch_size, device=args.device,
                           engine=args.engine, ray_config=ray_config,
                           workers=args.workers, threads=args.threads, progress=progress, reuse=not args.no_reuse)
    except ValueError as err:
        raise UsageError(str(err)) from None
    finally:
        progress.close()

    result = Run.open(path)
    meta = result.meta
    reused = before is not None and meta_path.stat().st_mtime_ns == before
    if reused:
        print(f"Reused {path}: it already holds this checkpoint's predictions for this data ({meta['n_images']:,} images)")
        return 0
    t = meta["timings"]
    print(f"Predicted {meta['n_images']:,} images on {meta['device']} in {t['predict_s']:.1f} s "
          f"({t['images_per_s']} img/s) into {path}")
    oof = meta["oof"]
    if oof.get("used"):
        eval_part = f"; {oof['eval_rows']:,} eval rows too" if oof.get("eval_rows") else "; eval rows: final model"
        print(f"Train rows: out-of-fold{eval_part}")
    else:
        print(f"Train rows: final model ({oof.get('reason')})")
    if meta["skipped"]:
        print(f"Skipped {len(meta['skipped'])} unreadable images, e.g. {meta['skipped'][0]['path']} ({meta['skipped'][0]['error']})")
    return 0
