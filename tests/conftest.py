"""Shared fixtures, all defined here (pytest finds them without imports, so test modules never
import a fixture by name and ruff's F811 stays meaningful). The helpers behind them stay in their
own modules, importable by tests and benchmarks: `fixtures_demo` (tiny demo datasets),
`fixtures_run` (tiny trained runs), `fixtures_quality` (data-quality trees), `test_app_support`
(the app's tiny dataset and run, `page_test`)."""
import os
import sys
from pathlib import Path

import pytest

from fixtures_demo import make_tiny_demo
from fixtures_run import tiny_train_config
from test_app_support import AppData, write_seed_dataset, write_synthetic_run


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """No test writes into the repository's workspace/ or reads a user's dataset setting."""
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("MASK_AUDIT_DATA", raising=False)
    yield


@pytest.fixture(autouse=True)
def _main_module_restored():
    """AppTest runs a page as `__main__` and leaves it in sys.modules; a spawn child started later
    in the session (make_demo's drawing pool for `tiny_demo`) then runs that page as its own main
    module, dies, and the pool starts another for ever: the tiny_demo fixture hung after the app
    tests. Put the runner's `__main__` back after every test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


REAL_MANIFEST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "real-manifest")


@pytest.fixture
def real_manifest_dir():
    """../shared/data/real-manifest (train.csv, info.csv); the test skips where it is absent."""
    path = os.path.abspath(REAL_MANIFEST)
    if not os.path.isfile(os.path.join(path, "train.csv")):
        pytest.skip(f"real manifest not found at {path}")
    return path


# ----------------------------------------------------------------------------- tiny demo data

@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """Path of a tiny demo dataset (the data root holding images/ and truth.csv), built once per
    session: 24 train people x 7 + 48 eval images, seed 0, noise rates high enough that every noise
    kind occurs. Read-only (shared by the whole session); build your own with `make_tiny_demo`."""
    return make_tiny_demo(tmp_path_factory.mktemp("tiny_demo") / "demo")


# ----------------------------------------------------------------------------- tiny trained runs

@pytest.fixture(scope="session")
def tiny_training(tiny_demo, tmp_path_factory):
    """audit.training.TrainResult of the tiny model (checkpoint, card, oof, fold_train_paths):
    trained on `tiny_demo` (1 epoch, 2 person-grouped folds, 64x48 input, from scratch)."""
    from audit.dataset_index import index_dataset
    from audit.training import train_model

    index = index_dataset(tiny_demo)
    return train_model(index, tiny_train_config(bins=index.bins), tmp_path_factory.mktemp("tiny_weights") / "tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_training) -> Path:
    """Path of model.pt trained on the tiny demo (oof.parquet and model.json beside it); read-only."""
    return tiny_training.checkpoint


@pytest.fixture(scope="session")
def tiny_run(tiny_demo, tiny_checkpoint, tmp_path_factory) -> Path:
    """Folder of the run predicting the whole tiny demo with `tiny_checkpoint` (train rows
    out-of-fold; predictions, embeddings, meta); read-only."""
    from audit.dataset_index import index_dataset
    from audit.prediction import predict_run

    index = index_dataset(tiny_demo)
    return Path(predict_run(index, tiny_checkpoint, tmp_path_factory.mktemp("tiny_runs") / "tiny", workers=0))


# ----------------------------------------------------------------------------- the app's pages

@pytest.fixture(scope="session")
def app_data_session(tmp_path_factory) -> AppData:
    """A tiny seed-layout dataset (12 people, 24 eval images) with a synthetic run, once per session."""
    from audit.dataset_index import index_dataset

    base = tmp_path_factory.mktemp("app_data")
    root = base / "data"
    write_seed_dataset(root)
    index = index_dataset(root)
    ws = base / "workspace"
    run = write_synthetic_run(index, ws / "runs" / "synthetic")
    return AppData(root=root, run=run, workspace=ws, index=index)


@pytest.fixture
def app_data(app_data_session, monkeypatch) -> AppData:
    """The tiny dataset + run, with MASK_AUDIT_DATA and MASK_AUDIT_WORKSPACE pointing at them."""
    monkeypatch.setenv("MASK_AUDIT_DATA", str(app_data_session.root))
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(app_data_session.workspace))
    return app_data_session
