"""Shared fixtures. Each fixture family lives in its own module so owners don't collide."""
from fixtures_demo import *  # noqa: F401,F403  tiny demo datasets (audit.demo_data)
from fixtures_run import *  # noqa: F401,F403  tiny trained runs (audit.training / audit.prediction)

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """No test writes into the repository's workspace/ or reads a user's dataset setting."""
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("MASK_AUDIT_DATA", raising=False)
    yield


REAL_MANIFEST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "real-manifest")


@pytest.fixture
def real_manifest_dir():
    """../shared/data/real-manifest (train.csv, info.csv); the test skips where it is absent."""
    path = os.path.abspath(REAL_MANIFEST)
    if not os.path.isfile(os.path.join(path, "train.csv")):
        pytest.skip(f"real manifest not found at {path}")
    return path
