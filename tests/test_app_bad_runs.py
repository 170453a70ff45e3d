"""A run folder damaged after it was made (truncated parquet, corrupted embeddings) is one line on
every page that reads it, never a stack trace or Streamlit's generic error box."""
from __future__ import annotations

import shutil

import pytest

from test_app_support import AppData, page_test, write_seed_dataset, write_synthetic_run

PAGES = ("overview", "confusion", "samples", "embeddings", "label_noise")  # Export reads no run


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    from audit.dataset_index import index_dataset

    base = tmp_path_factory.mktemp("damaged")
    root = base / "data"
    write_seed_dataset(root, seed=6)
    index = index_dataset(root)
    good = write_synthetic_run(index, base / "workspace" / "runs" / "good")
    runs = {}
    for name, file, keep in (("cut_parquet", "predictions.parquet", 500), ("cut_embeddings", "embeddings.npy", 200)):
        run = shutil.copytree(good, base / "workspace" / "runs" / name)
        target = run / file
        target.write_bytes(target.read_bytes()[:keep])
        runs[name] = run
    return root, base / "workspace", index, runs


@pytest.mark.parametrize("which", ["cut_parquet", "cut_embeddings"])
@pytest.mark.parametrize("page", PAGES)
def test_a_damaged_run_is_one_line_on_every_page(damaged, which, page, monkeypatch):
    root, workspace, index, runs = damaged
    monkeypatch.setenv("MASK_AUDIT_DATA", str(root))
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(workspace))
    data = AppData(root=root, run=runs[which], workspace=workspace, index=index)
    at = page_test(page, data, embeddings_autostart_umap=False).run()
    assert not at.exception, at.exception
    messages = [m.value for m in list(at.error) + list(at.warning)]
    said = [m for m in messages if "truncated or corrupted" in m]
    assert said, messages
    assert all("\n" not in m and "Traceback" not in m for m in said)
