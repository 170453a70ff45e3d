"""Bad input at the CLI (issue #11): each is one line on stderr, exit code 2, nothing half-written.

Runs cut short or corrupted (`suspects`, `layout`); the item paths of prediction CSVs with `..`
and symlinks; run meta pointing somewhere odd. Data folders and CSVs have their own files
(test_dataset_index.py, test_prediction_import.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from audit import runs as R
from audit.cli import main as cli_main
from test_runs import make_predictions


def _one_line_exit_2(capsys, argv) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def _run(tmp_path, n=20):
    return R.write_run(tmp_path / "run", make_predictions(n), np.random.default_rng(0).normal(size=(n, 8)),
                       {"source": "predict"})


@pytest.mark.parametrize("command", ["suspects", "layout"])
def test_truncated_predictions(tmp_path, capsys, command):
    run_dir = _run(tmp_path)
    path = run_dir / R.PREDICTIONS_NAME
    path.write_bytes(path.read_bytes()[:300])
    before = sorted(p.name for p in run_dir.iterdir())
    argv = [command, str(run_dir)] + (["--method", "pca"] if command == "layout" else [])
    if command == "suspects":
        assert "predictions.parquet cannot be read" in _one_line_exit_2(capsys, argv)
    else:  # the layout needs only the embeddings: it may go on, but must not trip over the parquet
        assert cli_main(argv) == 0
    new_files = sorted(set(p.name for p in run_dir.iterdir()) - set(before))
    assert all(n.startswith("layout_pca_") for n in new_files), new_files  # no suspects.parquet


@pytest.mark.parametrize("command", ["suspects", "layout"])
@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x93NUMPY" + b"\x00" * 40])
def test_corrupted_embeddings(tmp_path, capsys, command, damage):
    run_dir = _run(tmp_path)
    path = run_dir / R.EMBEDDINGS_NAME
    path.write_bytes(damage(path.read_bytes()))
    before = sorted(p.name for p in run_dir.iterdir())
    argv = [command, str(run_dir)] + (["--method", "pca"] if command == "layout" else [])
    assert "embeddings.npy" in _one_line_exit_2(capsys, argv)
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_suspects_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert "not a run folder" in _one_line_exit_2(capsys, ["suspects", str(tmp_path / "x")])


def test_odd_run_meta_is_not_trusted_to_write_or_delete(tmp_path, capsys):
    """meta.json's data_root / checkpoint pointing at someone's folder: suspects and layout write
    into the run folder and nowhere else."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    meta = {"source": "predict", "data_root": str(victim), "checkpoint": str(victim / "keep.txt")}
    run_dir = R.write_run(tmp_path / "runs" / "r", make_predictions(30), np.random.default_rng(1).normal(size=(30, 8)), meta)
    assert cli_main(["suspects", str(run_dir), "--top", "0"]) == 0
    assert cli_main(["layout", str(run_dir), "--method", "pca"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "workspace") == ["runs", "victim"]


def test_a_library_refusal_a_command_forgot_to_catch_is_still_one_line(monkeypatch, capsys):
    from audit.commands import index as index_cmd

    def refuse(args):
        raise R.RunFolderRefused("/x is not a Mask Audit run\n(second line folded)")

    monkeypatch.setattr(index_cmd, "run", refuse)
    assert "error: /x is not a Mask Audit run (second line folded)" == _one_line_exit_2(capsys, ["index", "/x"])

    def bug(args):
        raise KeyError("a real bug")

    monkeypatch.setattr(index_cmd, "run", bug)
    with pytest.raises(KeyError):  # anything else is a bug and keeps its trace
        cli_main(["index", "/x"])
