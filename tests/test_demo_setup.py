"""audit/demo_setup.py: the first start's demo is made once, an unfinished one is redone, and
nothing it did not draw is ever deleted."""
from __future__ import annotations

import json

from audit.cli import main

TINY = ["prepare-demo", "--people", "3", "--eval", "4", "--workers", "1"]


def _mark_unfinished(demo):
    meta = json.loads((demo / "demo.json").read_text())
    meta["complete"] = False
    (demo / "demo.json").write_text(json.dumps(meta))


def test_an_unfinished_demo_is_redone_and_foreign_files_are_never_deleted(capsys):
    from audit import demo_setup, workspace

    assert main(TINY) == 0
    demo = workspace.demo_data_dir()
    assert demo_setup.demo_is_ready() and (demo_setup.demo_run_dir() / "suspects.parquet").is_file()
    _mark_unfinished(demo)
    assert main(TINY) == 0  # cleared file by file and drawn again
    assert json.loads((demo / "demo.json").read_text())["complete"]
    _mark_unfinished(demo)
    (demo / "images" / "mine.txt").write_text("someone's notes")
    assert main(TINY) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert (demo / "images" / "mine.txt").read_text() == "someone's notes"
