"""Time the embedding layouts at full scale: `python benchmarks/bench_layout.py [--dims 576 512]`.

Data: a float16 Gaussian mixture shaped like a full-scale run (31,500 rows = 2,700 x 7 train +
12,600 eval; D = the demo model's embedding width from weights/demo/model.json when present, else
576 and 512), 18 clusters like the 18 classes, with unequal spreads so the layout has work to do.

Reports, separately: `import umap` (numba compilation), a 300-row warm-up fit (compiles the
remaining lazily-jitted functions), the full-scale UMAP as `audit.embedding_layout.umap_layout`
runs it (and variants with --variants), PCA, and the round trip through the run-folder cache.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def mixture(n: int, d: int, *, clusters: int = 18, seed: int = 0) -> np.ndarray:
    """(n, d) float16 Gaussian mixture; ReLU'd and scaled like pooled CNN features."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    spread = rng.uniform(0.4, 1.2, size=clusters).astype(np.float32)
    x = centers[labels] + spread[labels, None] * rng.normal(size=(n, d)).astype(np.float32)
    return np.maximum(x, 0).astype(np.float16)


def demo_dims() -> list[int]:
    """The demo model's embedding width: from its card when committed, else by building the demo
    architecture (random weights) and reading D off it; 576 and 512 if neither works."""
    card = REPO / "weights" / "demo" / "model.json"
    if card.is_file():
        dim = int(json.loads(card.read_text()).get("embedding_dim") or 0)
        if dim:
            return [dim]
    try:
        from audit.model import create_model
        from audit.demo_recipe import DEMO_ARCH, DEMO_IMG_SIZE

        return [create_model(DEMO_ARCH, pretrained=False, img_size=DEMO_IMG_SIZE).card.embedding_dim]
    except Exception as err:  # noqa: BLE001  the benchmark still runs without the model code
        print(f"could not build the demo model ({err}); using D=576 and 512")
        return [576, 512]


def timed(fn, *args, **kwargs):
    """-> (result, wall seconds, this process's CPU seconds over all threads). On a shared,
    overloaded box the wall time mostly measures the neighbours; CPU time is what the work cost."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=31_500)
    parser.add_argument("--dims", type=int, nargs="*", default=None)
    parser.add_argument("--variants", action="store_true",
                        help="also time umap settings the module does not use (n_jobs, init, epochs)")
    args = parser.parse_args()
    dims = args.dims or demo_dims()

    from audit import embedding_layout as el

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}")
    t0, c0 = time.perf_counter(), time.process_time()
    import umap  # noqa: F401
    t_import, c_import = time.perf_counter() - t0, time.process_time() - c0
    # 2,000 rows go through the same code path as 31,500 (precomputed exact kNN), so this
    # compiles every numba function the full-scale fit needs.
    _, t_warm, c_warm = timed(el.umap_layout, mixture(2000, 64, seed=1))
    print(f"compilation: import umap {t_import:.1f} s wall ({c_import:.1f} s CPU) + 2,000-row warm-up "
          f"fit {t_warm:.1f} s wall ({c_warm:.1f} s CPU)")

    for d in dims:
        x = mixture(args.n, d)
        print(f"\n== N={args.n:,} D={d} float16 ==")
        _, t_pca, c_pca = timed(el.pca_layout, x)
        print(f"pca_layout: {t_pca:.2f} s wall, {c_pca:.2f} s CPU")
        _, t_knn, c_knn = timed(el.exact_knn, x, 15)
        print(f"exact_knn (k=15, cosine): {t_knn:.1f} s wall, {c_knn:.1f} s CPU")
        layout, t_umap, c_umap = timed(el.umap_layout, x)
        assert layout.shape == (args.n, 2) and np.isfinite(layout).all()
        print(f"umap_layout (module defaults: seed=0, cosine, n_neighbors=15; includes the kNN): "
              f"{t_umap:.1f} s wall, {c_umap:.1f} s CPU")

        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "embeddings.npy", x)
            _, t_first, _ = timed(el.run_layout, tmp, "pca")
            _, t_hit, _ = timed(el.run_layout, tmp, "pca")
            _, t_cached, _ = timed(el.cached_layout, tmp, "umap")
            print(f"run_layout pca: first {t_first:.2f} s, cache hit {t_hit:.3f} s; "
                  f"cached_layout miss (umap) {t_cached:.3f} s")

        if args.variants:
            for name, kw in {"seed=None (all cores)": dict(seed=None),
                             "n_epochs=100": dict(n_epochs=100)}.items():
                _, t, c = timed(el.umap_layout, x, **kw)
                print(f"variant {name}: {t:.1f} s wall, {c:.1f} s CPU")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
