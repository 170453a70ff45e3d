"""Options the CLI commands share (issue #12 item 6): one `--bins` option, and `train --out`, which
never writes over someone's files (the rule run folders follow)."""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import threading

import pytest

from audit.cli import COMMANDS, UsageError, bins_from_args, main
from audit.labels import COMPETITION_BINS, DEFAULT_BINS, AgeBins
from test_prediction_import import write_tiny_dataset

# command -> the positional arguments it needs before options (review takes an action first).
BINS_COMMANDS = {
    "index": ["DATA"],
    "train": ["DATA"],
    "import-predictions": ["DATA", "preds.csv"],
    "export": ["DATA"],
    "review": ["import", "DATA", "list.csv"],
}


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).configure_parser(parser)
    return parser


def test_every_command_with_bins_uses_the_shared_option():
    """Each command's --bins reads to the same AgeBins; none parses it by hand, none is left out."""
    for command, positionals in BINS_COMMANDS.items():
        args = _parser(command).parse_args([*positionals, "--bins", "competition"])
        assert bins_from_args(args) == COMPETITION_BINS, command
        assert bins_from_args(_parser(command).parse_args(positionals)) == DEFAULT_BINS, command
    sources = {command: inspect.getsource(importlib.import_module(module)) for command, (module, _) in COMMANDS.items()}
    assert {command for command, text in sources.items() if "add_bins_option(" in text} == set(BINS_COMMANDS)
    assert not [command for command, text in sources.items() if '"--bins"' in text]  # none parses it by hand


def test_bins_from_args_parses_edges_and_refuses_bad_ones_as_one_line():
    assert bins_from_args(argparse.Namespace(bins="30,60")) == AgeBins(30, 60, "custom")
    for bad in ("40,30", "young", "1,2,3"):
        with pytest.raises(UsageError) as err:
            bins_from_args(argparse.Namespace(bins=bad))
        assert "\n" not in str(err.value) and "age bin" in str(err.value)


@pytest.mark.parametrize("command", list(BINS_COMMANDS))
def test_a_bad_bins_spec_exits_2_before_any_work(tmp_path, capsys, command):
    positionals = [str(tmp_path / "missing") if p == "DATA" else p if p == "import" else str(tmp_path / p)
                   for p in BINS_COMMANDS[command]]
    assert main([command, *positionals, "--bins", "60,30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: age bin edges must satisfy 0 < lo < hi")
    assert sorted(os.listdir(tmp_path)) == []  # nothing written


# ----------------------------------------------------------------------------- train --out

@pytest.fixture(scope="module")
def our_checkpoint_folder(tmp_path_factory):
    """A folder holding a Mask Audit checkpoint (untrained weights: only the files matter here)."""
    from audit.model import create_model, save_checkpoint

    folder = tmp_path_factory.mktemp("ours") / "weights"
    model = create_model("mobilenetv3_small_050", pretrained=False, img_size=(64, 48))
    save_checkpoint(model, model.card, folder)
    (folder / "oof.parquet").write_bytes(b"PAR1")
    return folder


def _refused(tmp_path, capsys, out) -> str:
    data = write_tiny_dataset(tmp_path / "data")
    assert main(["train", str(data), "--no-pretrained", "--epochs", "1", "--folds", "2", "--workers", "0",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --out ")
    return err


def test_train_out_refuses_someone_elses_model_pt(tmp_path, capsys):
    theirs = tmp_path / "their_model"
    theirs.mkdir()
    (theirs / "model.pt").write_bytes(b"someone's weights")
    (theirs / "notes.txt").write_text("mine")
    err = _refused(tmp_path, capsys, theirs)
    assert "is not a Mask Audit checkpoint" in err
    assert (theirs / "model.pt").read_bytes() == b"someone's weights" and sorted(os.listdir(theirs)) == [
        "model.pt", "notes.txt"]


@pytest.mark.parametrize("make", ["workspace", "dot_pt_in_someones_folder", "inside_the_data", "a_file"])
def test_train_out_refuses_folders_that_are_not_checkpoint_folders(tmp_path, capsys, make, monkeypatch):
    if make == "workspace":
        out = tmp_path / "ws"
        out.mkdir()
        (out / "reviews.sqlite").write_bytes(b"decisions")
    elif make == "dot_pt_in_someones_folder":
        (tmp_path / "papers").mkdir()
        (tmp_path / "papers" / "thesis.pdf").write_bytes(b"%PDF")
        out = tmp_path / "papers" / "new.pt"
    elif make == "inside_the_data":
        out = tmp_path / "data" / "weights"
    else:
        out = tmp_path / "a_file"
        out.write_text("x")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    _refused(tmp_path, capsys, out)
    assert not (tmp_path / "data" / "weights").exists()
    assert all(p.read_bytes() == b for p, b in before.items())


def test_train_out_accepts_absent_empty_and_our_checkpoint_folders(tmp_path, our_checkpoint_folder):
    from audit.commands.train import check_weights_target

    check_weights_target(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_weights_target(tmp_path / "empty")
    check_weights_target(our_checkpoint_folder)  # retraining into weights/<name> replaces it
    check_weights_target(our_checkpoint_folder / "model.pt")
    (our_checkpoint_folder / "history.json").write_text("{}")  # what pretrain adds
    check_weights_target(our_checkpoint_folder)
    with pytest.raises(UsageError, match="inside the dataset"):
        check_weights_target(tmp_path / "d" / "w", data_root=tmp_path / "d")


# ----------------------------------------------------------------------------- predict reads safely

def test_prediction_never_blocks_on_a_fifo_swapped_in_after_indexing(tmp_path):
    """A FIFO where an indexed image was would block Image.open in a worker for ever; it is
    skipped with one line that says to re-index."""
    from audit import prediction as P
    from audit.dataset_index import index_dataset
    from audit.model import create_model

    root = write_tiny_dataset(tmp_path / "data")
    index = index_dataset(root)
    victim = index.images["path"].iloc[0]
    os.unlink(root / victim)
    os.mkfifo(root / victim)
    model = create_model("mobilenetv3_small_050", pretrained=False, img_size=(64, 48))
    paths = index.images["path"].tolist()
    result = {}
    worker = threading.Thread(target=lambda: result.update(P.predict_paths(model, model.card, root, paths, workers=0)),
                              daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # blocked in open(): let it go, then fail
        fd = os.open(root / victim, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(timeout=10)
        pytest.fail("predict_paths opened the FIFO")
    assert not result["ok"][0] and result["ok"][1:].all()
    assert "re-index" in result["errors"][0] and "FIFO" in result["errors"][0]
