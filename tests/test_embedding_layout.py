import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audit import embedding_layout as el
from audit.cli import main as cli_main


def _clustered(n=300, d=32, k=3, seed=0):
    """(n, d) float16 mixture of k well-separated clusters and the (n,) cluster labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    labels = rng.integers(0, k, size=n)
    x = centers[labels] + rng.normal(size=(n, d))
    return np.maximum(x, 0).astype(np.float16), labels


def _run(tmp_path, n=300, d=32, seed=0, name="run"):
    run = tmp_path / name
    run.mkdir()
    x, labels = _clustered(n, d, seed=seed)
    np.save(run / "embeddings.npy", x)
    return run, x, labels


def _knn_label_agreement(layout, labels, k=5):
    """Share of each point's k nearest 2-D neighbours with its own cluster label."""
    dist = ((layout[:, None, :] - layout[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    nn = np.argsort(dist, axis=1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def test_pca_layout_is_row_aligned_and_deterministic():
    x, labels = _clustered(200, 16)
    a = el.pca_layout(x)
    assert a.shape == (200, 2) and a.dtype == np.float32
    assert np.array_equal(a, el.pca_layout(x))
    perm = np.random.default_rng(1).permutation(200)
    # Row i of the layout belongs to row i of the embeddings: permuting rows permutes the layout.
    np.testing.assert_allclose(el.pca_layout(x[perm]), a[perm], rtol=1e-4, atol=1e-4)
    assert _knn_label_agreement(a, labels) > 0.95
    assert a.std(axis=0).min() > 0


def test_pca_layout_edge_cases():
    assert el.pca_layout(np.zeros((0, 8), np.float16)).shape == (0, 2)
    assert np.array_equal(el.pca_layout(np.ones((1, 8), np.float16)), np.zeros((1, 2), np.float32))
    one_dim = el.pca_layout(np.arange(10, dtype=np.float16)[:, None] - 4.5)
    assert one_dim.shape == (10, 2) and np.all(one_dim[:, 1] == 0)
    with_inf = np.ones((5, 4), np.float16)
    with_inf[0, 0] = np.inf
    assert np.isfinite(el.pca_layout(with_inf)).all()
    with pytest.raises(ValueError):
        el.pca_layout(np.zeros(5))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_knn_matches_brute_force(metric):
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    x = rng.normal(size=(257, 12)).astype(np.float16)
    x[5] = x[4]  # a duplicate: each of the pair must still list itself first
    idx, dist = el.exact_knn(x, 8, metric=metric, chunk=50)
    assert idx.shape == dist.shape == (257, 8) and dist.dtype == np.float32
    assert np.array_equal(idx[:, 0], np.arange(257)) and np.all(dist[:, 0] == 0)
    ref_d, ref_i = NearestNeighbors(n_neighbors=8, metric=metric, algorithm="brute").fit(
        x.astype(np.float32)).kneighbors(x.astype(np.float32))
    np.testing.assert_allclose(dist[:, 1:], ref_d[:, 1:], atol=1e-4)
    assert (idx[:, 1:] == ref_i[:, 1:]).mean() > 0.99  # ties may order differently
    assert set(idx[4, :2]) == {4, 5} and set(idx[5, :2]) == {4, 5}
    assert np.all(np.diff(dist, axis=1) >= -1e-6)
    with pytest.raises(ValueError):
        el.exact_knn(x, 3, metric="manhattan")


def test_params_are_normalised_and_checked():
    assert el.layout_params("umap") == el.layout_params("umap", n_neighbors=15, min_dist=0.1)
    assert el.layout_params("umap", n_neighbors=None) == el.layout_params("umap")
    assert el.layout_params("umap", seed=None).seed is None
    with pytest.raises(TypeError):
        el.layout_params("umap", perplexity=30)
    with pytest.raises(TypeError):
        el.layout_params("pca", n_neighbors=5)
    with pytest.raises(ValueError):
        el.layout_params("tsne")
    with pytest.raises(ValueError):
        el.layout_params("umap", n_neighbors=1)


def test_layout_key_depends_on_method_params_and_content():
    base = el.layout_key("umap", {}, "abc")
    assert base == el.layout_key("umap", el.layout_params("umap", n_neighbors=15), "abc")
    assert len(base) == 16
    assert base != el.layout_key("umap", {"n_neighbors": 30}, "abc")
    assert base != el.layout_key("umap", {"min_dist": 0.5}, "abc")
    assert base != el.layout_key("umap", {}, "abd")
    assert base != el.layout_key("pca", {}, "abc")


def test_run_layout_caches_in_the_run_and_hits_the_cache(tmp_path, monkeypatch):
    run, x, _ = _run(tmp_path)
    assert el.cached_layout(run, "pca") is None
    first = el.run_layout(run, "pca")
    assert first.shape == (300, 2) and first.dtype == np.float32
    files = sorted(p.name for p in run.glob("layout_*.npy"))
    assert len(files) == 1 and files[0].startswith("layout_pca_")
    assert files[0] == el.layout_path(run, "pca").name
    np.testing.assert_array_equal(el.cached_layout(run, "pca"), first)

    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(el, "compute_layout", boom)
    np.testing.assert_array_equal(el.run_layout(run, "pca"), first)
    assert el.cached_layout(run, "umap") is None  # other method: not there, and not computed


def test_changed_embeddings_miss_the_old_cache(tmp_path):
    run, x, _ = _run(tmp_path)
    old = el.run_layout(run, "pca")
    old_path = el.layout_path(run, "pca")
    y, _ = _clustered(300, 32, seed=5)
    np.save(run / "embeddings.npy", y)
    assert el.layout_path(run, "pca") != old_path
    assert el.cached_layout(run, "pca") is None
    assert not np.array_equal(el.run_layout(run, "pca"), old)


def test_a_layout_of_the_wrong_length_is_not_served(tmp_path):
    run, _, _ = _run(tmp_path)
    np.save(el.layout_path(run, "pca"), np.zeros((10, 2), np.float32))
    assert el.cached_layout(run, "pca") is None
    assert el.layout_status(run, "pca") == "missing"
    assert el.run_layout(run, "pca").shape == (300, 2)


def test_run_without_embeddings(tmp_path):
    run = tmp_path / "imported"
    run.mkdir()
    assert el.cached_layout(run) is None
    assert el.layout_status(run) == "missing"
    with pytest.raises(FileNotFoundError):
        el.run_layout(run, "pca")
    with pytest.raises(FileNotFoundError):
        el.start_layout_in_background(run)
    assert cli_main(["layout", str(run), "--method", "pca"]) == 2
    assert cli_main(["layout", str(tmp_path / "nope"), "--method", "pca"]) == 2


def _hold_job_lock(folder: Path) -> subprocess.Popen:
    """Another process holding a job's flock (as a computing `python -m audit layout` would)."""
    folder.mkdir(parents=True, exist_ok=True)
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder / "lock")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_layout_status_follows_the_job_lock(tmp_path):
    run, _, _ = _run(tmp_path)
    assert el.layout_status(run) == "missing"
    proc = _hold_job_lock(el.layout_job_dir(run))
    try:
        assert el.layout_status(run) == "running"
        # A second start must not spawn another process while one holds the lock.
        assert el.start_layout_in_background(run) == "running"
        assert not (el.layout_job_dir(run) / "log.txt").exists()
    finally:
        proc.kill()
        proc.wait()
    # Killed without finishing: the kernel dropped the lock, nothing stale is left to clean.
    assert el.layout_status(run) == "missing"
    np.save(el.layout_path(run), np.zeros((300, 2), np.float32))
    assert el.layout_status(run) == "ready"


def test_background_layout_runs_in_a_subprocess_and_becomes_ready(tmp_path):
    run, x, _ = _run(tmp_path)
    assert el.start_layout_in_background(run, "pca") == "running"
    assert el.layout_status(run, "pca") in ("running", "ready")
    deadline = time.time() + 60
    while el.layout_status(run, "pca") != "ready" and time.time() < deadline:
        time.sleep(0.2)
    assert el.layout_status(run, "pca") == "ready", el.layout_log(run, "pca")
    layout = el.cached_layout(run, "pca")
    np.testing.assert_allclose(layout, el.pca_layout(x), rtol=1e-5, atol=1e-5)
    assert "pca layout" in el.layout_log(run, "pca")
    assert el.start_layout_in_background(run, "pca") == "ready"
    # The child was reaped: no <defunct> process is left under this one.
    from audit import jobs
    jobs.stop_own_jobs()
    assert not jobs._children


def test_cli_computes_and_refuses_a_second_computer(tmp_path, capsys):
    run, x, _ = _run(tmp_path)
    assert cli_main(["layout", str(run), "--method", "pca"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(el.layout_path(run, "pca"))
    assert el.layout_status(run, "pca") == "ready"
    assert cli_main(["layout", str(run), "--seed", "abc"]) == 2

    proc = _hold_job_lock(el.layout_job_dir(run, "umap", n_neighbors=7))
    try:
        # Another live process computes it: the CLI must not start a second (and never imports umap).
        assert cli_main(["layout", str(run), "--n-neighbors", "7"]) == 0
        assert "already being computed" in capsys.readouterr().err
        assert el.cached_layout(run, "umap", n_neighbors=7) is None
    finally:
        proc.kill()
        proc.wait()


def test_layout_command_round_trips_the_settings(tmp_path):
    run, _, _ = _run(tmp_path)
    cmd = ["python", "-m", "audit"] + el.layout_command(run, "umap", n_neighbors=30, min_dist=0.25, seed=None,
                                                         n_epochs=50)
    assert cmd[1:4] == ["-m", "audit", "layout"]
    from audit.commands import layout as layout_cmd
    import argparse

    parser = argparse.ArgumentParser()
    layout_cmd.configure_parser(parser)
    args = parser.parse_args(cmd[4:])
    params = layout_cmd._params(args)
    assert el.layout_params("umap", **params) == el.layout_params(
        "umap", n_neighbors=30, min_dist=0.25, seed=None, n_epochs=50)


@pytest.mark.slow
def test_umap_layout_small_run(tmp_path):
    """The only test importing umap (~25 s of numba compilation on a cold cache)."""
    run, x, labels = _run(tmp_path, n=300, d=32)
    layout = el.run_layout(run, "umap", n_neighbors=10, n_epochs=100)
    assert layout.shape == (300, 2) and layout.dtype == np.float32
    assert np.isfinite(layout).all()
    assert _knn_label_agreement(layout, labels) > 0.9
    assert el.layout_status(run, "umap", n_neighbors=10, n_epochs=100) == "ready"
    assert el.layout_status(run, "umap") == "missing"  # other settings, other file
    # Seeded: the same settings give the same picture.
    again = el.umap_layout(x, n_neighbors=10, n_epochs=100)
    np.testing.assert_allclose(again, layout, atol=1e-4)
    # Tiny inputs do not crash umap.
    assert el.umap_layout(x[:3]).shape == (3, 2)
    assert el.umap_layout(x[:8], n_neighbors=15).shape == (8, 2)


def test_large_runs_fit_a_sample_and_place_the_rest(monkeypatch):
    """Above EXACT_KNN_MAX_ROWS UMAP is fitted on UMAP_FIT_ROWS sampled rows (exact neighbours, on
    the sample only) and every other row is placed among its nearest sampled rows."""
    sizes = []
    real_exact_knn = el.exact_knn
    monkeypatch.setattr(el, "exact_knn", lambda x, *a, **k: sizes.append(len(x)) or real_exact_knn(x, *a, **k))
    monkeypatch.setattr(el, "EXACT_KNN_MAX_ROWS", 100)
    monkeypatch.setattr(el, "UMAP_FIT_ROWS", 80)
    x, _ = _clustered(n=300, d=8)
    layout = el.umap_layout(x, n_neighbors=10, n_epochs=20)
    assert layout.shape == (300, 2) and np.isfinite(layout).all()
    assert sizes == [80]
    assert np.array_equal(layout, el.umap_layout(x, n_neighbors=10, n_epochs=20))  # deterministic


def test_nearest_in_matches_brute_force():
    rng = np.random.default_rng(0)
    ref, qry = rng.normal(size=(200, 6)).astype(np.float32), rng.normal(size=(50, 6)).astype(np.float32)
    idx, dist = el.nearest_in(ref, qry, 4, metric="euclidean", chunk=16)
    full = np.linalg.norm(qry[:, None, :] - ref[None, :, :], axis=2)
    assert np.array_equal(idx, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4], atol=1e-4)
