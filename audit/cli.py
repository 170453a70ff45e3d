"""`python -m audit <command>`: batch work without the UI.

Each command lives in its own module exposing `configure_parser(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `index` never pays for torch or umap.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays out of `python -m audit --help`
    from audit.labels import AgeBins

# name -> (module, one-line help)
COMMANDS = {
    "index": ("audit.commands.index", "index a dataset folder and list data-quality findings"),
    "make-demo": ("audit.commands.make_demo", "draw the built-in demo dataset (procedural faces)"),
    "train": ("audit.commands.train", "train a classifier with person-grouped out-of-fold predictions"),
    "predict": ("audit.commands.predict", "predict every image of a dataset into a run folder"),
    "import-predictions": ("audit.commands.import_predictions", "turn a CSV of predictions made elsewhere into a run"),
    "prepare-demo": ("audit.commands.prepare_demo", "draw the demo dataset and predict its run (the app's first start)"),
    "demo": ("audit.commands.demo", "build the demo dataset, train the demo model and predict, in the workspace"),
    "suspects": ("audit.commands.suspects", "run the label-noise detectors on a run and write the review queue"),
    "bench-noise": ("audit.commands.bench_noise", "score the label-noise detectors against the demo's known noise"),
    "layout": ("audit.commands.layout", "compute the 2-D embedding layout (UMAP, PCA) of a run"),
    "export": ("audit.commands.export", "write the relabeling CSV and corrected manifests from recorded reviews"),
    "review": ("audit.commands.review", "import a relabel list (CSV of item, field, value, note) as review decisions"),
    "quality": ("audit.commands.quality", "find duplicates, split leaks, strangers in a person's folder and unusable images"),
    "bench-quality": ("audit.commands.bench_quality", "score the data-quality checks against the demo's planted defects"),
    "pretrain": ("audit.commands.pretrain", "domain pretraining for the demo: a backbone on many drawn identities' true labels"),
    "serve": ("audit.commands.serve", "serve a checkpoint over HTTP (LitServe): /predict, /card, /health"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


# Library errors that are one line meant for the user (bad input, refused folders). A command
# that lets one through still exits 2 with that line, not a trace. By name: no heavy imports here.
USER_ERRORS = (
    "audit.dataset_index.DatasetNotFound", "audit.runs.NotARunError", "audit.runs.RunFolderRefused",
    "audit.model.CheckpointError", "audit.prediction_import.PredictionImportError",
    "audit.thumbnails.ImageUnavailable",
)


def _is_user_error(err: BaseException) -> bool:
    return any(f"{cls.__module__}.{cls.__qualname__}" in USER_ERRORS for cls in type(err).__mro__)


def add_bins_option(parser: argparse.ArgumentParser, meaning: str = "age bins") -> None:
    """The one `--bins` option of every command that indexes data with age bins; `meaning` starts
    its help ("age bins the CSV's classes use"). Read it back with `bins_from_args(args)`."""
    parser.add_argument("--bins", default="default", metavar="default|competition|LO,HI",
                        help=f"{meaning}: default (<25, 25-39, >=40), competition (the original competition's "
                             "<30, 30-59, >=60) or LO,HI, edges in years (default: default)")


def bins_from_args(args) -> AgeBins:
    """`args.bins` -> AgeBins; a bad spec is a UsageError (one line, exit 2)."""
    from audit.labels import parse_bins

    try:
        return parse_bins(args.bins)
    except ValueError as err:
        raise UsageError(str(err)) from None


class TqdmProgress:
    """The library's `progress(done, total, message)` -> a tqdm bar on stderr; a new bar whenever
    the message changes (indexing reports several stages). `desc`: a fixed label instead of the
    messages. `disable=None`: no bar when stderr is not a terminal (CI logs, pipes)."""

    def __init__(self, *, desc: str | None = None, unit: str = "it", leave: bool = True,
                 disable: bool | None = False):
        self._options = dict(file=sys.stderr, unit=unit, leave=leave, disable=disable, dynamic_ncols=True)
        self._desc = desc
        self._bar = None
        self._message = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        from audit.jobs import current_reporter

        reporter = current_reporter()  # started by the app: its page shows this progress too
        if reporter is not None:
            reporter.progress(done, total, self._desc or message)

        if self._bar is None or (self._desc is None and message != self._message):
            self.close()
            self._bar = tqdm(total=total, desc=self._desc or message, **self._options)
            self._message = message
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        build_parser().parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m audit {name}", description=help_text)
    module.configure_parser(parser)
    args = parser.parse_args(rest)

    def body() -> int:
        try:
            return int(module.run(args) or 0)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:
            if not _is_user_error(err):
                raise
            # a library's one-line refusal that the command did not catch: still no trace
            print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    from audit.jobs import run_command_as_job  # a no-op wrapper unless the app started this as a job

    return run_command_as_job(" ".join(["python -m audit", *argv]), body)
