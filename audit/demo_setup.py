"""The app's first start: the built-in demo dataset and its run, made once in the workspace.

`prepare_demo_workspace()` draws the demo (the size and seed `python -m audit demo` trains on, so
the committed model's out-of-fold predictions apply) beside its final place and renames it in
when complete, then predicts the demo run with the committed `weights/demo`. It is what
`python -m audit prepare-demo` runs and what the app starts as a background job (audit/jobs.py).

Killed at any point (server, worker, power), it leaves nothing that blocks the next start: the
finished demo and run appear by atomic renames only, and the next call, holding the job's lock,
removes the temporaries a killed build left behind before it starts over.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from audit import workspace

JOB_NAME = "prepare-demo"
DEMO_RUN_NAME = "demo"
# The domain-pretrained model's run over the demo: the second opinion in the demo's review queue.
SECOND_OPINION_RUN_NAME = "demo-pretrained"
# Temporaries of a build in progress (demo_setup here, audit.runs.write_run for the run):
# `.demo.building-*` in the workspace, `.demo.partial-*` / `.demo.old-*` in runs/.
_BUILDING_PREFIX = f".{workspace.DEMO_DIR_NAME}.building-"
_RUN_TEMP_PREFIXES = tuple(f".{name}.{part}-" for name in (DEMO_RUN_NAME, SECOND_OPINION_RUN_NAME)
                           for part in ("partial", "old"))

Progress = Callable[[int, int, str], None]


def demo_run_dir() -> Path:
    return workspace.runs_dir() / DEMO_RUN_NAME


def demo_weights() -> Path:
    return workspace.DEMO_WEIGHTS / "model.pt"


def jobs_root() -> Path:
    return workspace.workspace_dir() / "jobs"


def demo_job_dir() -> Path:
    return jobs_root() / JOB_NAME


def demo_is_built(root: Path | None = None) -> bool:
    """True when `root` (default: the workspace's demo) holds a complete demo."""
    from audit.demo_data import read_demo_meta

    root = root or workspace.demo_data_dir()
    meta = read_demo_meta(root)
    return meta is not None and bool(meta.get("complete")) and (root / "images").is_dir()


def demo_run_is_ready() -> bool:
    from audit.runs import META_NAME, PREDICTIONS_NAME

    run = demo_run_dir()
    return (run / PREDICTIONS_NAME).is_file() and (run / META_NAME).is_file()


def demo_is_ready() -> bool:
    """Dataset drawn and, where the committed model is present, its run predicted with its queue."""
    from audit.runs import SUSPECTS_NAME

    if not demo_is_built():
        return False
    return not demo_weights().is_file() or (demo_run_is_ready() and (demo_run_dir() / SUSPECTS_NAME).is_file())


def remove_stale_temporaries() -> list[Path]:
    """Delete what a killed build left: only names this module and write_run make for the demo.

    Call it only while holding the job's lock (no other build is running then).
    """
    removed = []
    ws = workspace.workspace_dir()
    runs = workspace.runs_dir()
    candidates = [p for p in ws.glob(_BUILDING_PREFIX + "*")]
    if runs.is_dir():
        candidates += [p for prefix in _RUN_TEMP_PREFIXES for p in runs.glob(prefix + "*")]
    for path in candidates:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prepare_demo_argv() -> list[str]:
    """What the app runs after `python -m audit` on a first start (tests ask for a smaller demo)."""
    return [JOB_NAME]


def prepare_demo_workspace(*, progress: Progress | None = None, workers: int | None = None,
                           people: int | None = None, eval_images: int | None = None) -> Path | None:
    """Draw the demo dataset if needed, then predict its run and find its label-noise suspects if
    needed; returns the run folder (None when the committed model is absent). Idempotent: a finished demo costs nothing.
    people / eval_images: the demo's size, default the one the committed model was trained on."""
    from audit.demo_recipe import DEMO_EVAL_IMAGES, DEMO_PEOPLE, DEMO_SEED

    people = DEMO_PEOPLE if people is None else people
    eval_images = DEMO_EVAL_IMAGES if eval_images is None else eval_images
    report = progress or (lambda done, total, message: None)
    remove_stale_temporaries()
    root = workspace.demo_data_dir()
    if not demo_is_built(root):
        from audit.demo_data import make_demo, prepare_output, read_demo_meta

        if root.exists() and read_demo_meta(root) is None:
            raise FileExistsError(f"{root} exists and is not a demo dataset: move it away or set "
                                  f"{workspace.WORKSPACE_ENV} to another folder")
        tmp = root.parent / f"{_BUILDING_PREFIX}{uuid.uuid4().hex[:8]}"
        try:
            make_demo(tmp, people=people, eval_images=eval_images, seed=DEMO_SEED, workers=workers,
                      progress=lambda done, total, _m: report(done, total, "Drawing demo faces"))
            if root.exists():  # an unfinished demo of ours (read_demo_meta said so above)
                # cleared file by file, refused (one line) if anything in it is not the demo's;
                # the empty folder left is then replaced by the finished one
                prepare_output(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not demo_weights().is_file():
        return None
    run_dir = demo_run_dir()
    if not demo_run_is_ready():
        from audit.dataset_index import index_dataset
        from audit.prediction import predict_run

        report(0, 1, "Indexing the demo images")
        index = index_dataset(root.resolve())
        predict_run(index, demo_weights(), run_dir,
                    progress=lambda done, total, _m: report(done, total, "Predicting the demo images"))
    from audit.runs import Run

    run = Run.open(run_dir)
    if run.suspects is None:  # the Label noise page opens on a queue, as every other page on data
        from audit.noise.merge import find_suspects

        second = _second_opinion_run(root, report)
        report(0, 1, "Finding label-noise suspects")
        run.write_suspects(find_suspects(run, second_opinion=second))
        report(1, 1, "Finding label-noise suspects")
    return run_dir


def second_opinion_dir() -> Path:
    return workspace.runs_dir() / SECOND_OPINION_RUN_NAME


def _second_opinion_run(root: Path, report: Progress):
    """The domain-pretrained model's run over the demo (it never saw the demo's labels: evidence
    independent of them), when weights/demo was fine-tuned from it; else None."""
    from audit.model import pretrained_card, read_card
    from audit.runs import Run
    from audit.demo_recipe import default_pretrained_file

    start = default_pretrained_file()
    if start is None or not read_card(demo_weights()).train_config.get("pretrained_file") \
            or pretrained_card(start) is None:
        return None
    from audit.dataset_index import index_dataset
    from audit.prediction import predict_run

    index = index_dataset(root.resolve())
    predict_run(index, start, second_opinion_dir(),
                progress=lambda done, total, _m: report(done, total, "Predicting with the pretrained model"))
    return Run.open(second_opinion_dir())
