"""2-D layouts of a run's embeddings: UMAP (slow, cached in the run) and PCA (instant fallback).

A run folder holds `embeddings.npy`, float16 (N, D), row-aligned with `predictions.parquet`.
Layouts are float32 (N, 2) arrays, row i = image i, saved as `layout_<method>_<key>.npy` where the
key hashes the embeddings file's content, the method and its parameters, so a changed run or a
changed setting never shows a stale picture.

`umap` is imported only inside `umap_layout`: its first import compiles numba code (~25 s), which
must never happen at app start. The app shows `pca_layout` at once, calls
`start_layout_in_background` (a `python -m audit layout RUN` job, audit/jobs.py, so compilation and
compute stay out of the Streamlit process and stop with it) and polls `layout_status` until "ready".
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from audit import jobs
from audit.file_io import write_atomic
from audit.runs import EMBEDDINGS_NAME

METHODS = ("umap", "pca")
# metrics whose neighbour graph we compute exactly with BLAS instead of umap's NN-descent
EXACT_KNN_METRICS = ("cosine", "euclidean")
# Above this many rows UMAP is fitted on a sample and the rest placed by their neighbours in it
# (`umap_layout`). Neither the exact search over all rows (N^2: 13 minutes at 315,000 rows, then
# killed for memory) nor umap's own NN-descent over all rows (38 minutes on the loaded 2-core box,
# then killed for memory at 21.8 GB, BENCHMARKS.md) fits there. Full scale (31,500) is fitted whole.
EXACT_KNN_MAX_ROWS = 60_000
# The sample UMAP is fitted on above EXACT_KNN_MAX_ROWS (deterministic: default_rng(seed or 0)).
UMAP_FIT_ROWS = 50_000
# A placed row sits at the distance-weighted mean of this many nearest sampled rows' positions.
PLACE_NEIGHBOURS = 5
# Bump when the layout computation changes in a way that makes old cached files wrong.
LAYOUT_VERSION = 1

# progress(done, total, message), the convention of audit.dataset_index
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class UmapParams:
    """umap-learn settings that change the picture (and so the cache key)."""

    # neighbourhood size: larger keeps more global structure
    n_neighbors: int = 15
    # how tightly points may pack in 2-D
    min_dist: float = 0.1
    # distance in embedding space; cosine suits pooled CNN/ViT features
    metric: str = "cosine"
    # random seed; None lets umap use every core but the picture then varies between runs
    seed: int | None = 0
    # optimisation epochs; None = umap's default (200 for large N, 500 for small)
    n_epochs: int | None = None


@dataclass(frozen=True)
class PcaParams:
    """PCA has no settings; the dataclass keeps the keying uniform."""


_PARAM_TYPES = {"umap": UmapParams, "pca": PcaParams}
_NONE_IS_A_VALUE = {"seed", "n_epochs"}


def layout_params(method: str, **params) -> UmapParams | PcaParams:
    """Normalise keyword settings for `method` (defaults filled in); TypeError for unknown names."""
    if method not in _PARAM_TYPES:
        raise ValueError(f"unknown layout method {method!r}; choose one of {', '.join(METHODS)}")
    cls = _PARAM_TYPES[method]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise TypeError(f"{method} layout has no parameter(s) {', '.join(unknown)}")
    # None means "the default" for settings where None has no meaning of its own; for `seed`
    # (unseeded) and `n_epochs` (umap's own choice) None is a value.
    cleaned = {k: v for k, v in params.items() if v is not None or k in _NONE_IS_A_VALUE}
    p = cls(**cleaned)
    if isinstance(p, UmapParams):
        p = dataclasses.replace(
            p,
            n_neighbors=int(p.n_neighbors),
            min_dist=float(p.min_dist),
            seed=None if p.seed is None else int(p.seed),
            n_epochs=None if p.n_epochs is None else int(p.n_epochs),
        )
        if p.n_neighbors < 2:
            raise ValueError("n_neighbors must be at least 2")
        if not 0.0 <= p.min_dist <= 1.0:
            raise ValueError("min_dist must be within [0, 1]")
    return p


# ---------------------------------------------------------------- the computations


def _clean(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) any float -> (N, D) float32 with non-finite values (float16 overflow) set to 0."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    x = x.astype(np.float32, copy=True)
    if not np.isfinite(x).all():
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return x


def pca_layout(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) float32 first two principal components.

    Rows are L2-normalised first so the picture resembles the cosine-metric UMAP that replaces it.
    Computed through the D x D covariance (one GEMM + a small eigh): ~0.1 s for 31,500 x 576.
    Signs are fixed (largest loading positive) so the layout is deterministic.
    """
    x = _clean(embeddings)
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)
    x -= x.mean(axis=0, keepdims=True)
    cov = (x.T @ x).astype(np.float64) / max(n - 1, 1)
    values, vectors = np.linalg.eigh(cov)  # ascending
    k = min(2, d)
    top = vectors[:, ::-1][:, :k]
    flip = np.sign(top[np.abs(top).argmax(axis=0), np.arange(k)])
    top = top * np.where(flip == 0, 1.0, flip)
    out[:, :k] = x @ top.astype(np.float32)
    return out


def exact_knn(embeddings: np.ndarray, k: int, *, metric: str = "cosine", chunk: int = 512,
              progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by chunked matrix products (BLAS), each row's own index first.

    (N, D) -> (indices (N, k) int64, distances (N, k) float32). metric: "cosine" (1 - cos) or
    "euclidean". For 31,500 x 1024 this is 2 TFLOP of GEMM in 512-row chunks (~200 MB peak each):
    faster than umap's NN-descent on 2 cores, deterministic, and it skips compiling pynndescent.
    """
    return nearest_in(embeddings, None, k, metric=metric, chunk=chunk, progress=progress)


def umap_layout(
    embeddings: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int | None = 0,
    n_epochs: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) float32 UMAP layout.

    Imports umap here (first import in a process: ~25 s of numba compilation). For cosine and
    euclidean up to EXACT_KNN_MAX_ROWS rows the neighbour graph is computed exactly by `exact_knn`
    and handed to umap; above it, UMAP is fitted on UMAP_FIT_ROWS sampled rows and the others are
    placed by their nearest sampled rows (`_umap_of_sample_placing_the_rest`); other metrics use
    umap's own approximate search. n_neighbors is clipped to N - 1 for tiny runs; below 4 rows
    UMAP is undefined and the PCA layout is returned. With a seed, umap's optimisation runs
    single-threaded (its reproducibility rule); seed=None uses all cores.
    """
    p = layout_params("umap", n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                      seed=seed, n_epochs=n_epochs)
    x = _clean(embeddings)
    n = x.shape[0]
    if n < 4:
        return pca_layout(x)
    if n > EXACT_KNN_MAX_ROWS and p.metric in EXACT_KNN_METRICS and UMAP_FIT_ROWS < n:
        return _umap_of_sample_placing_the_rest(x, p, progress)
    k = min(p.n_neighbors, n - 1)
    knn = (None, None, None)
    if p.metric in EXACT_KNN_METRICS and n <= EXACT_KNN_MAX_ROWS:
        indices, dists = exact_knn(x, k, metric=p.metric, progress=progress)
        knn = (indices, dists, None)
    if progress:
        progress(0, 2, "loading umap (numba compilation on first use)")
    import warnings

    import umap  # lazy: ~25 s of numba compilation on first import

    reducer = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        min_dist=p.min_dist,
        metric=p.metric,
        n_epochs=p.n_epochs,
        random_state=p.seed,
        # umap forces one thread when seeded and warns about it; say it ourselves instead.
        n_jobs=1 if p.seed is not None else -1,
        low_memory=True,
        precomputed_knn=knn,
        verbose=False,
    )
    if progress:
        progress(1, 2, f"UMAP of {n:,} x {x.shape[1]} embeddings")
    with warnings.catch_warnings():
        # "n_jobs overridden", "no search index: transform unavailable", spectral-init fallbacks:
        # none is the user's concern.
        warnings.simplefilter("ignore", UserWarning)
        result = reducer.fit_transform(x)
    if progress:
        progress(2, 2, "UMAP done")
    return np.ascontiguousarray(result, dtype=np.float32)


def _umap_of_sample_placing_the_rest(x: np.ndarray, p: UmapParams, progress: Progress | None) -> np.ndarray:
    """(N, D) float32 -> (N, 2): UMAP of UMAP_FIT_ROWS sampled rows (exact neighbours), every other
    row at the distance-weighted mean of its PLACE_NEIGHBOURS nearest sampled rows' positions.

    Memory stays O(sample + chunk x sample) and time near-linear in N (one pass of chunked matrix
    products against the sample); a row that duplicates a sampled row lands on it.
    """
    n = x.shape[0]
    rng = np.random.default_rng(0 if p.seed is None else p.seed)
    fitted = np.sort(rng.choice(n, size=UMAP_FIT_ROWS, replace=False))
    rest = np.setdiff1d(np.arange(n), fitted, assume_unique=True)
    if progress:
        progress(0, 2, f"UMAP of a {len(fitted):,}-row sample of {n:,}; the rest placed by neighbours")
    out = np.empty((n, 2), dtype=np.float32)
    out[fitted] = umap_layout(x[fitted], **dataclasses.asdict(p), progress=progress)
    indices, dists = nearest_in(x[fitted], x[rest], PLACE_NEIGHBOURS, metric=p.metric)
    weights = 1.0 / (dists + 1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    out[rest] = np.einsum("ik,ikj->ij", weights, out[fitted][indices])
    if progress:
        progress(2, 2, f"placed {len(rest):,} rows by their nearest sampled neighbours")
    return out


def nearest_in(reference: np.ndarray, query: np.ndarray | None, k: int, *, metric: str = "cosine",
               chunk: int = 1024, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `reference` (R, D) for each row of `query` (Q, D), by chunked BLAS;
    `query` None: the reference's own rows, each row's own index first (`exact_knn`).

    -> (indices into reference (Q, k) int64, distances (Q, k) float32), nearest first. metric:
    "cosine" (1 - cos) or "euclidean". Peak memory ~ chunk x R float32 (200 MB at 1024 x 50,000).
    """
    if metric not in EXACT_KNN_METRICS:
        raise ValueError(f"nearest neighbours support {EXACT_KNN_METRICS}, not {metric!r}")
    itself = query is None
    ref = _clean(reference)
    qry = ref if itself else _clean(query)
    k = int(min(k, ref.shape[0]))
    if metric == "cosine":
        for a in ((ref,) if itself else (ref, qry)):
            norms = np.linalg.norm(a, axis=1, keepdims=True)
            a /= np.where(norms > 0, norms, 1.0)
    else:
        sq_ref = np.einsum("ij,ij->i", ref, ref)
    indices = np.empty((qry.shape[0], k), dtype=np.int64)
    dists = np.empty((qry.shape[0], k), dtype=np.float32)
    starts = range(0, qry.shape[0], chunk)
    for step, start in enumerate(starts):
        q = qry[start:start + chunk]
        d = q @ ref.T
        if metric == "cosine":
            np.subtract(1.0, d, out=d)
        else:
            d *= -2.0
            d += np.einsum("ij,ij->i", q, q)[:, None]
            d += sq_ref[None, :]
        np.maximum(d, 0.0, out=d)  # rounding can make near-duplicates slightly negative
        if itself:
            rows = np.arange(len(q))
            d[rows, rows + start] = -1.0  # the point itself comes first, even among duplicates
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < ref.shape[0] else np.tile(np.arange(k), (len(q), 1))
        part_d = np.take_along_axis(d, part, axis=1)
        order = np.argsort(part_d, axis=1, kind="stable")
        indices[start:start + len(q)] = np.take_along_axis(part, order, axis=1)
        dists[start:start + len(q)] = np.take_along_axis(part_d, order, axis=1)
        if progress:
            progress(step + 1, len(starts), "exact nearest neighbours")
    if itself:
        dists[:, 0] = 0.0
    if metric == "euclidean":
        np.sqrt(dists, out=dists)
    return indices, dists


def compute_layout(embeddings: np.ndarray, method: str = "umap", *, progress: Progress | None = None,
                   **params) -> np.ndarray:
    """Dispatch to `umap_layout` / `pca_layout`: (N, D) -> (N, 2) float32."""
    p = layout_params(method, **params)
    if method == "pca":
        return pca_layout(embeddings)
    return umap_layout(embeddings, progress=progress, **dataclasses.asdict(p))


# ---------------------------------------------------------------- the cache in the run folder

# path -> ((size, mtime_ns), sha256): hashing 36 MB costs ~30 ms, but the app asks on every rerun.
_FINGERPRINTS: dict[str, tuple[tuple[int, int], str]] = {}


def embeddings_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / EMBEDDINGS_NAME


def embeddings_fingerprint(path: str | Path) -> str:
    """sha256 of the embeddings file's bytes (memoised on size + mtime within the process)."""
    path = Path(path)
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns)
    cached = _FINGERPRINTS.get(str(path.resolve()))
    if cached and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    _FINGERPRINTS[str(path.resolve())] = (stamp, value)
    return value


def layout_key(method: str, params: UmapParams | PcaParams | dict, embeddings_fingerprint: str) -> str:
    """16 hex chars identifying (method, normalised parameters, embeddings content)."""
    if isinstance(params, dict):
        params = layout_params(method, **params)
    payload = json.dumps(
        {"v": LAYOUT_VERSION, "method": method, "params": dataclasses.asdict(params),
         "embeddings": embeddings_fingerprint},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _require_embeddings(run_dir: str | Path) -> Path:
    path = embeddings_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: this run has no embeddings (imported runs have none), so no layout"
        )
    return path


def layout_path(run_dir: str | Path, method: str = "umap", **params) -> Path:
    """Where the layout for these settings lives (whether or not it exists yet)."""
    p = layout_params(method, **params)
    key = layout_key(method, p, embeddings_fingerprint(_require_embeddings(run_dir)))
    return Path(run_dir) / f"layout_{method}_{key}.npy"


def _n_rows(run_dir: str | Path) -> int:
    # mmap reads only the .npy header
    return int(np.load(embeddings_path(run_dir), mmap_mode="r").shape[0])


def _read_layout(path: Path, n_rows: int) -> np.ndarray | None:
    try:
        arr = np.load(path)
    except (OSError, ValueError, EOFError):
        return None
    if arr.shape != (n_rows, 2):
        return None  # not row-aligned with this run: treat as absent
    return arr.astype(np.float32, copy=False)


def cached_layout(run_dir: str | Path, method: str = "umap", **params) -> np.ndarray | None:
    """The cached (N, 2) float32 layout for these settings, or None; never computes.

    None also when the run has no embeddings.
    """
    if not embeddings_path(run_dir).is_file():
        return None
    path = layout_path(run_dir, method, **params)
    if not path.is_file():
        return None
    return _read_layout(path, _n_rows(run_dir))


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Readers never see half a layout file."""
    write_atomic(path, lambda fh: np.save(fh, array))


def run_layout(run_dir: str | Path, method: str = "umap", *, progress: Progress | None = None,
               **params) -> np.ndarray:
    """The (N, 2) float32 layout of a run, computed once and cached in the run folder."""
    run_dir = Path(run_dir)
    path = layout_path(run_dir, method, **params)
    emb = np.load(_require_embeddings(run_dir))
    if path.is_file():
        cached = _read_layout(path, emb.shape[0])
        if cached is not None:
            if progress:
                progress(1, 1, f"cached: {path.name}")
            return cached
    result = compute_layout(emb, method, progress=progress, **params)
    if result.shape != (emb.shape[0], 2):
        raise RuntimeError(f"layout has shape {result.shape}, expected {(emb.shape[0], 2)}")
    _save_atomic(path, result)
    return result


# ---------------------------------------------------------------- computing in the background
#
# A background layout is a job (audit/jobs.py) named after the layout file: its flock says it is
# running, it dies with the server, and its log says why it failed.


def layout_job_dir(run_dir: str | Path, method: str = "umap", **params) -> Path:
    """The job folder (in the workspace) of computing this layout of this run."""
    from audit.workspace import workspace_dir

    path = layout_path(run_dir, method, **params).resolve()
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:16]
    return workspace_dir() / "jobs" / f"layout-{method}-{digest}"


def layout_status(run_dir: str | Path, method: str = "umap", **params) -> str:
    """"ready" (cached), "running" (a live process computes it) or "missing"."""
    if not embeddings_path(run_dir).is_file():
        return "missing"
    path = layout_path(run_dir, method, **params)
    if path.is_file() and _read_layout(path, _n_rows(run_dir)) is not None:
        return "ready"
    return "running" if jobs.job_status(layout_job_dir(run_dir, method, **params)).active else "missing"


def layout_log(run_dir: str | Path, method: str = "umap", **params) -> str:
    """The background process's output (progress, or why it failed); "" when there is none."""
    try:
        folder = layout_job_dir(run_dir, method, **params)
        return (folder / jobs.LOG_NAME).read_text(errors="replace")
    except OSError:
        return ""


def layout_command(run_dir: str | Path, method: str = "umap", **params) -> list[str]:
    """The `python -m audit layout` arguments that compute these settings (after `python -m audit`)."""
    p = layout_params(method, **params)
    cmd = ["layout", str(Path(run_dir).resolve()), "--method", method]
    if isinstance(p, UmapParams):
        cmd += ["--n-neighbors", str(p.n_neighbors), "--min-dist", repr(p.min_dist),
                "--metric", p.metric, "--seed", "none" if p.seed is None else str(p.seed)]
        if p.n_epochs is not None:
            cmd += ["--n-epochs", str(p.n_epochs)]
    return cmd


def start_layout_in_background(run_dir: str | Path, method: str = "umap", **params) -> str:
    """Start computing the layout as a `python -m audit layout` job; returns at once.

    Returns "ready" (nothing to do) or "running" (started now or already running); at most one
    process per (run, settings). Raises FileNotFoundError when the run has no embeddings.
    """
    _require_embeddings(run_dir)
    status = layout_status(run_dir, method, **params)
    if status != "missing":
        return status
    jobs.start_job(layout_job_dir(run_dir, method, **params), layout_command(run_dir, method, **params))
    return "running"


# ---------------------------------------------------------------- which points a map draws

# The most points the Embeddings page draws by default. A browser without a GPU draws WebGL in
# software: 31,500 points took ~2 s to show (BENCHMARKS.md, "App page speed"), 315,000 far more.
MAX_DRAWN_POINTS = 20_000
# Share of the drawn points that may go to kept rows (errors, suspects) when they are more than
# fit: the rest is an even sample of everything else, so the clusters' shapes stay visible.
KEPT_SHARE = 0.75


def points_to_draw(keep: np.ndarray, score: np.ndarray, cap: int = MAX_DRAWN_POINTS, *,
                   kept_share: float = KEPT_SHARE, seed: int = 0) -> np.ndarray:
    """Which of N points to draw: sorted row numbers, at most `cap` of them; deterministic.

    keep: (N,) bool, rows to draw whenever they fit (the model's errors, flagged suspects);
    score: (N,) float, their order of precedence when they do not (highest first, ties by row).
    All N when N <= cap. Otherwise every kept row if they fit in `cap * kept_share`, else the
    `cap * kept_share` highest-scored ones; the remaining places go to an even random sample
    (numpy's default_rng(seed)) of the other rows.
    """
    keep = np.asarray(keep, dtype=bool)
    n = len(keep)
    if n <= cap:
        return np.arange(n)
    kept = np.flatnonzero(keep)
    room = int(cap * kept_share)
    if len(kept) > room:
        order = np.lexsort((kept, -np.asarray(score, dtype=float)[kept]))
        kept = kept[order[:room]]
    others = np.flatnonzero(~np.isin(np.arange(n), kept))
    rng = np.random.default_rng(seed)
    sample = rng.choice(others, size=min(cap - len(kept), len(others)), replace=False)
    return np.sort(np.concatenate([kept, sample]))
