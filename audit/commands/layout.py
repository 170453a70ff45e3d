"""`python -m audit layout RUN`: compute and cache a run's 2-D embedding layout (UMAP or PCA)."""
from __future__ import annotations

import sys
import time
from pathlib import Path


def configure_parser(parser) -> None:
    parser.add_argument("run", help="run folder (or the name of a run in the workspace's runs/)")
    parser.add_argument("--method", choices=("umap", "pca"), default="umap")
    parser.add_argument("--n-neighbors", type=int, default=None, help="UMAP neighbourhood size (default 15)")
    parser.add_argument("--min-dist", type=float, default=None, help="UMAP min_dist (default 0.1)")
    parser.add_argument("--metric", default=None, help="UMAP metric (default cosine)")
    parser.add_argument("--seed", default=None,
                        help="UMAP random seed (default 0); 'none' uses every core, not reproducible")
    parser.add_argument("--n-epochs", type=int, default=None, help="UMAP epochs (default: umap's own)")


def _resolve_run(value: str) -> Path:
    """The run folder; a truncated or corrupted embeddings.npy is one line (exit 2), not a trace."""
    from audit.cli import UsageError
    from audit.runs import EMBEDDINGS_NAME, RunFileError, npy_shape
    from audit.workspace import runs_dir

    path = Path(value).expanduser()
    if not path.is_dir() and (runs_dir() / value).is_dir():
        path = runs_dir() / value
    if not path.is_dir():
        raise UsageError(f"run folder not found: {value}")
    if (path / EMBEDDINGS_NAME).is_file():
        try:
            shape = npy_shape(path / EMBEDDINGS_NAME)
        except RunFileError as err:
            raise UsageError(str(err)) from None
        if len(shape) != 2:
            raise UsageError(f"{path / EMBEDDINGS_NAME} has shape {shape}, not (N, D)")
    return path


def _params(args) -> dict:
    from audit.cli import UsageError

    if args.method == "pca":
        return {}
    params = {"n_neighbors": args.n_neighbors, "min_dist": args.min_dist, "metric": args.metric,
              "n_epochs": args.n_epochs}
    params = {k: v for k, v in params.items() if v is not None}
    if args.seed is not None:
        if str(args.seed).lower() == "none":
            params["seed"] = None
        else:
            try:
                params["seed"] = int(args.seed)
            except ValueError:
                raise UsageError(f"--seed must be an integer or 'none', got {args.seed!r}") from None
    return params


def run(args) -> int:
    from audit import embedding_layout as el
    from audit.cli import UsageError

    run_dir = _resolve_run(args.run)
    params = _params(args)
    try:
        path = el.layout_path(run_dir, args.method, **params)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None

    start = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {done}/{total} {message}", file=sys.stderr, flush=True)

    from audit import jobs

    with jobs.hold(el.layout_job_dir(run_dir, args.method, **params), "python -m audit layout") as job:
        if not job.acquired:
            print("already being computed by another process; not starting a second one", file=sys.stderr)
            return 0

        def both(done: int, total: int, message: str) -> None:
            progress(done, total, message)
            job.progress(done, total, message)

        layout = el.run_layout(run_dir, args.method, progress=both, **params)
    print(f"{layout.shape[0]:,} x 2 {args.method} layout in {time.perf_counter() - start:.1f} s -> {path}",
          file=sys.stderr)
    print(path)
    return 0
