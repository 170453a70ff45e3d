"""The run folder: one checkpoint (or one imported CSV) x one dataset, as files.

A run is a folder (see docs/ARCHITECTURE.md, "A run"):

    predictions.parquet   one row per predicted image, index columns + fold + probabilities + preds
    embeddings.npy        float16 (N, D), row-aligned with predictions (absent for imported runs)
    meta.json             what made it: checkpoint hash, data fingerprint, bins, versions, timings
    layout_<m>_<k>.npy    float32 (N, 2) 2-D layouts (audit/embedding_layout.py)
    suspects.parquet      the merged review queue (`python -m audit suspects`)

`write_run` writes the first three atomically: into a hidden temporary folder beside the target,
renamed into place only when complete, so a crash never leaves a half-written run. Replacing a
run drops its layouts and suspects with it: they were computed from the old predictions.

Nothing of a user's is ever replaced: `write_run` fills a new or empty folder, or replaces a run of
this project (meta.json of RUN_FORMAT + predictions.parquet) that holds nothing but run files
(`RUN_FILE_SUFFIXES`); any other folder (someone's files, a dataset, a workspace, `.`) is refused
with `RunFolderRefused` before anything is written, and a replace deletes only run files.
`Run.open` checks the files' structure (parquet footer, .npy header and size) so a truncated or
corrupted run is `RunFileError`, one line, instead of a parser's trace later.
`finish_predictions` is the one place that derives the 18-class columns from per-head
probabilities.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from audit.file_io import OutputFolderRefused, output_folder_entries, write_atomic
from audit.labels import (
    AGE_FIELD,
    CLASS_PROB_COLUMNS,
    DEFAULT_BINS,
    FIELD_INFO,
    GENDER_FIELD,
    MASK_FIELD,
    N_CLASSES,
    AgeBins,
    class_probs_from_heads,
    head_probs_from_classes,
    split_class,
)

RUN_FORMAT = "mask-audit-run/1"
PREDICTIONS_NAME = "predictions.parquet"
EMBEDDINGS_NAME = "embeddings.npy"
META_NAME = "meta.json"
SUSPECTS_NAME = "suspects.parquet"

# Columns copied from DatasetIndex.images, in this order.
INDEX_COLUMNS = (
    "path", "split", "person", "person_id", "gender", "race", "age", "age_bin",
    "mask", "mask_type", "class_id", "source",
)
P_MASK, P_GENDER, P_AGE = MASK_FIELD.prob_columns, GENDER_FIELD.prob_columns, AGE_FIELD.prob_columns
P_CLASS = CLASS_PROB_COLUMNS
PRED_COLUMNS = (*(f.pred_column for f in FIELD_INFO.values()), "pred_class", "confidence", "pred_age")
# Rows of p_class must sum to 1 within this.
PROB_SUM_TOLERANCE = 1e-3


# What the project writes into a run folder (and its temporaries, `*.tmp`): a replace deletes these
# and nothing else, and a run holding anything else is not replaced.
RUN_FILE_SUFFIXES = (".parquet", ".npy", ".json", ".lock", ".log", ".tmp")


class NotARunError(ValueError):
    """A folder that is not a run (missing, or without meta.json / predictions.parquet)."""


class RunFileError(NotARunError):
    """A run whose files are truncated or corrupted (predictions.parquet, embeddings.npy); one line."""


class RunFolderRefused(ValueError):
    """An output folder that is not ours to fill or replace (someone's files, a dataset, a workspace);
    nothing was written. One line."""


def prediction_columns() -> list[str]:
    """Every column of predictions.parquet, in order."""
    return [*INDEX_COLUMNS, "fold", *P_MASK, *P_GENDER, *P_AGE, *P_CLASS, *PRED_COLUMNS]


def finish_predictions(df: pd.DataFrame, p_mask, p_gender, p_age, pred_age=None) -> pd.DataFrame:
    """Index rows + per-head probabilities -> the complete predictions frame.

    df: N rows holding INDEX_COLUMNS and `fold`. p_mask (N,3), p_gender (N,2), p_age (N,3):
    probabilities (each row sums to 1). pred_age: (N,) years, or None -> NaN.
    p_class = p_mask x p_gender x p_age (the heads are independent given the image).
    """
    p_mask, p_gender, p_age = (np.asarray(p, dtype=np.float64) for p in (p_mask, p_gender, p_age))
    for field, p in zip(FIELD_INFO.values(), (p_mask, p_gender, p_age)):
        _check_shape(field.prob_prefix.rstrip("_"), p, len(df), field.n_codes)
    p_class = class_probs_from_heads(p_mask, p_gender, p_age)
    return _assemble(df, p_mask, p_gender, p_age, p_class, pred_age)


def finish_predictions_from_classes(df: pd.DataFrame, p_class, pred_age=None) -> pd.DataFrame:
    """Like `finish_predictions`, from 18-class probabilities (N,18); heads are their marginals."""
    p_class = np.asarray(p_class, dtype=np.float64)
    _check_shape("p_class", p_class, len(df), N_CLASSES)
    p_mask, p_gender, p_age = head_probs_from_classes(p_class)
    return _assemble(df, p_mask, p_gender, p_age, p_class, pred_age)


def _check_shape(name: str, arr: np.ndarray, n: int, k: int) -> None:
    if arr.shape != (n, k):
        raise ValueError(f"{name} must have shape ({n}, {k}), got {arr.shape}")


def _assemble(df, p_mask, p_gender, p_age, p_class, pred_age) -> pd.DataFrame:
    n = len(df)
    missing = [c for c in (*INDEX_COLUMNS, "fold") if c not in df.columns]
    if missing:
        raise ValueError(f"prediction rows lack index columns {missing}")
    out = df.loc[:, [*INDEX_COLUMNS, "fold"]].reset_index(drop=True).copy()
    out["fold"] = out["fold"].astype(np.int64)
    columns = {}
    for names, arr in ((P_MASK, p_mask), (P_GENDER, p_gender), (P_AGE, p_age), (P_CLASS, p_class)):
        for j, name in enumerate(names):
            columns[name] = arr[:, j].astype(np.float32)
    # The per-attribute predictions are the parts of the 18-class prediction, so the attribute
    # confusion matrices agree with the 18-class one (for product-form probabilities this is
    # the same as each head's argmax).
    pred_class = p_class.argmax(axis=1).astype(np.int64) if n else np.zeros(0, np.int64)
    for field, codes in zip(FIELD_INFO.values(), split_class(pred_class)):
        columns[field.pred_column] = np.asarray(codes, dtype=np.int64)
    columns["pred_class"] = pred_class
    columns["confidence"] = (p_class.max(axis=1) if n else np.zeros(0)).astype(np.float32)
    if pred_age is None:
        columns["pred_age"] = np.full(n, np.nan, dtype=np.float32)
    else:
        pred_age = np.asarray(pred_age, dtype=np.float32)
        if pred_age.shape != (n,):
            raise ValueError(f"pred_age must have shape ({n},), got {pred_age.shape}")
        columns["pred_age"] = pred_age
    return pd.concat([out, pd.DataFrame(columns)], axis=1)


# ---------------------------------------------------------------- reading


class Run:
    """An existing run folder. Predictions, embeddings and suspects load on first access.

    .path (Path), .name, .meta (dict), .predictions (DataFrame, N rows), .embeddings
    (float16 (N, D) or None), .has_embeddings, .suspects (DataFrame or None), .bins (AgeBins).
    """

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta
        self._suspects_cache: tuple[float, pd.DataFrame] | None = None

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path).expanduser()
        if not path.is_dir():
            raise NotARunError(f"run folder not found: {path}")
        meta_path = path / META_NAME
        if not meta_path.is_file() or not (path / PREDICTIONS_NAME).is_file():
            raise NotARunError(
                f"{path} is not a run folder (needs {META_NAME} and {PREDICTIONS_NAME}); "
                "make one with `python -m audit predict` or `python -m audit import-predictions`"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise NotARunError(f"{meta_path} cannot be read: {err}") from err
        if not isinstance(meta, dict):
            raise NotARunError(f"{meta_path} does not hold a JSON object")
        run = cls(path, meta)
        run.check_files()
        return run

    def check_files(self) -> None:
        """Cheap structural checks (the parquet footer, the .npy header and file size; no data read).

        Raises RunFileError naming the file and how to remake it: a run cut short by a full disk or
        a copy must give one line, not a parser's trace on first use.
        """
        import pyarrow.parquet as pq

        pred_path = self.path / PREDICTIONS_NAME
        try:
            n_rows = pq.read_metadata(pred_path).num_rows
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a cut or foreign file
            raise RunFileError(_unreadable(pred_path, err)) from None
        if self.has_embeddings:
            emb_path = self.path / EMBEDDINGS_NAME
            shape = npy_shape(emb_path)
            if len(shape) != 2 or shape[0] != n_rows:
                raise RunFileError(f"{emb_path} has shape {shape}, but {PREDICTIONS_NAME} has {n_rows} rows "
                                   f"(expected ({n_rows}, D)); {_REMAKE}")

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """Raises RunFileError when the file does not read (corrupted inside, past the footer check)."""
        path = self.path / PREDICTIONS_NAME
        try:
            return pd.read_parquet(path)
        except Exception as err:  # pyarrow's errors vary by where the file is damaged
            raise RunFileError(_unreadable(path, err)) from None

    @property
    def has_embeddings(self) -> bool:
        return (self.path / EMBEDDINGS_NAME).is_file()

    @cached_property
    def embeddings(self) -> np.ndarray | None:
        """float16 (N, D) pooled backbone features, row-aligned with `predictions`; None if absent."""
        if not self.has_embeddings:
            return None
        path = self.path / EMBEDDINGS_NAME
        try:
            emb = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise RunFileError(_unreadable(path, err)) from None
        if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating):
            raise RunFileError(f"{path} holds {emb.dtype} {emb.shape}, not (N, D) floats; {_REMAKE}")
        return emb

    @property
    def suspects_path(self) -> Path:
        return self.path / SUSPECTS_NAME

    @property
    def suspects(self) -> pd.DataFrame | None:
        """The review queue, or None before `python -m audit suspects` ran; re-read when it changes."""
        try:
            mtime = self.suspects_path.stat().st_mtime
        except FileNotFoundError:
            return None
        if self._suspects_cache is None or self._suspects_cache[0] != mtime:
            self._suspects_cache = (mtime, pd.read_parquet(self.suspects_path))
        return self._suspects_cache[1]

    def write_suspects(self, queue: pd.DataFrame) -> Path:
        """Write the review queue as suspects.parquet atomically (a reader never sees half a file)."""
        write_atomic(self.suspects_path, lambda fh: queue.to_parquet(fh, index=False))
        self._suspects_cache = None
        return self.suspects_path

    def layout_path(self, method: str, key: str) -> Path:
        """Where a float32 (N, 2) 2-D layout of this run's embeddings lives."""
        return self.path / f"layout_{method}_{key}.npy"

    @property
    def bins(self) -> AgeBins:
        bins = self.meta.get("bins")
        return AgeBins.from_dict(bins) if bins else DEFAULT_BINS

    @property
    def source(self) -> str:
        """"predict" or "import"."""
        return str(self.meta.get("source", "predict"))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, source={self.source!r})"


_REMAKE = "remake the run with `python -m audit predict` or `python -m audit import-predictions`"


def _unreadable(path: Path, err: Exception) -> str:
    text = " ".join(str(err).split())[:160] or type(err).__name__
    return f"{path} cannot be read (truncated or corrupted: {text}); {_REMAKE}"


def npy_shape(path: Path) -> tuple:
    """The shape in an .npy header, checked against the file size; RunFileError (one line) for a
    file that is cut short, longer than its header says, not an .npy, or holds Python objects."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fh)
            data_start = fh.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError) as err:
        raise RunFileError(_unreadable(path, err)) from None
    if dtype.hasobject:
        raise RunFileError(f"{path} holds Python objects, not numbers; {_REMAKE}")
    expected = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise RunFileError(f"{path} is {size:,} bytes but its header promises {expected:,} "
                           f"(truncated or corrupted); {_REMAKE}")
    return tuple(shape)


def resolve_run_dir(value: str | Path) -> Path:
    """A CLI's --run value -> folder. A bare name `NAME` or `runs/NAME` is the run NAME in the
    workspace's runs folder (where the app lists runs), as the docs write it; any other path
    (`./out/x`, `./x`, `/data/runs/x`) is taken as given."""
    from audit.workspace import runs_dir

    text = str(value)
    path = Path(text).expanduser()
    parts = path.parts
    # pathlib drops a leading "./", so look at the text: `./mine` means the folder here.
    explicit = text.startswith(("./", "../", "~", os.sep)) or text in (".", "..")
    if not explicit and not path.is_absolute() and (len(parts) == 1 or (len(parts) == 2 and parts[0] == "runs")) \
            and parts[-1] not in (".", ".."):
        return runs_dir() / parts[-1]
    return path


def list_runs(runs_dir: str | Path | None = None) -> list[tuple[str, dict]]:
    """(name, meta) of every run folder under `runs_dir` (default: the workspace's), by name.

    Folders without a readable meta.json (and hidden ones, e.g. half-written temporaries) are skipped.
    """
    if runs_dir is None:
        from audit.workspace import runs_dir as default_runs_dir

        runs_dir = default_runs_dir()
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for child in sorted(runs_dir.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            run = Run.open(child)
        except NotARunError:
            continue
        found.append((child.name, run.meta))
    return found


# ---------------------------------------------------------------- writing


def write_run(run_dir: str | Path, predictions: pd.DataFrame, embeddings: np.ndarray | None, meta: dict) -> Path:
    """Write a complete run folder atomically, replacing any run already at `run_dir`.

    predictions: N rows with every `prediction_columns()` column. embeddings: (N, D), stored as
    float16, or None (imported runs). meta: JSON-able dict; `format`, `created`, `n_images` and
    `has_embeddings` are filled in. Returns the run folder.
    Raises RunFolderRefused (nothing written) when `run_dir` holds anything but a run of ours
    (`check_run_target`).
    """
    run_dir = Path(run_dir).expanduser().absolute()
    check_run_target(run_dir)
    predictions = _check_predictions(predictions)
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(predictions):
            raise ValueError(f"embeddings must be ({len(predictions)}, D), got {embeddings.shape}")
        embeddings = embeddings.astype(np.float16, copy=False)
    meta = dict(meta)
    meta.setdefault("format", RUN_FORMAT)
    meta.setdefault("created", datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    meta["n_images"] = int(len(predictions))
    meta["has_embeddings"] = embeddings is not None
    if embeddings is not None:
        meta["embedding_dim"] = int(embeddings.shape[1])
    meta_text = json.dumps(meta, indent=2, default=_json_default) + "\n"  # fail before touching disk

    parent = run_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{run_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        predictions.to_parquet(tmp / PREDICTIONS_NAME, index=False)
        if embeddings is not None:
            np.save(tmp / EMBEDDINGS_NAME, embeddings)
        # meta.json last: Run.open needs it, so a folder holding it is complete.
        (tmp / META_NAME).write_text(meta_text, encoding="utf-8")
        _fsync_dir(tmp)
        # Checked again right before the swap: another process may have filled the folder meanwhile.
        check_run_target(run_dir)
        old = None
        if run_dir.exists():
            old = parent / f".{run_dir.name}.old-{uuid.uuid4().hex[:8]}"
            run_dir.rename(old)
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder, never the target
        raise
    if old is not None:
        _remove_run_files(old)
    return run_dir


def is_run_folder(path: str | Path) -> bool:
    """A run of this project: meta.json of RUN_FORMAT (a JSON object) beside predictions.parquet."""
    path = Path(path)
    try:
        meta = json.loads((path / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == RUN_FORMAT and (path / PREDICTIONS_NAME).is_file()


# Why a run cannot be written at a folder, by `audit.file_io.OutputFolderRefused.kind`.
_RUN_FOLDER_REFUSALS = {
    "inside_data": "{run_dir} is the dataset {data_root} or a folder inside it: a run is never written into the "
                   "data folder; choose a folder outside it (nothing was written)",
    "link": "{run_dir} is a symbolic link; give a real folder for the run (nothing was written)",
    "not_a_folder": "{run_dir} exists and is not a folder; choose another run folder (nothing was written)",
    "unlistable": "{run_dir} cannot be listed ({error}); choose another run folder",
}


def check_run_target(run_dir: str | Path, *, data_root: str | Path | None = None) -> None:
    """Raise RunFolderRefused unless a run may be written at `run_dir`: it is absent, an empty
    folder, or a run of this project holding nothing but run files (`RUN_FILE_SUFFIXES`), and
    (given `data_root`) it does not lie inside the dataset, whose folders are the user's.

    A folder of someone's files, a dataset, a workspace (reviews.sqlite), `.`, a file or a
    symbolic link are refused with one line; nothing is written or deleted.
    """
    run_dir = Path(run_dir).expanduser()
    try:
        listed = output_folder_entries(run_dir, data_root=data_root)
    except OutputFolderRefused as why:
        raise RunFolderRefused(_RUN_FOLDER_REFUSALS[why.kind].format(run_dir=run_dir, data_root=data_root,
                                                                     error=why.error)) from None
    if not listed:
        return
    # what a run never holds: folders, links, other files
    entries = [name for name, regular in listed if not (regular and name.endswith(RUN_FILE_SUFFIXES))]
    if not is_run_folder(run_dir):
        raise RunFolderRefused(
            f"{run_dir} exists and is not a Mask Audit run ({_what_it_holds(run_dir)}); it is never replaced: "
            "choose a new or empty folder (nothing was written)")
    if entries:
        more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
        raise RunFolderRefused(
            f"{run_dir} is a run but also holds {', '.join(entries[:3])}{more}, which a run never holds; "
            "move them out or choose another folder (nothing was written)")


def _what_it_holds(path: Path) -> str:
    """A few words on what a refused folder is, for the message."""
    if (path / "reviews.sqlite").exists():
        return "it is a workspace: reviews.sqlite holds review decisions"
    if (path / "images" / "train").is_dir() or (path / "train" / "images").is_dir() or (path / "images" / "eval").is_dir():
        return "it holds a dataset"
    if (path / ".git").exists():
        return "it is a git repository"
    names = sorted(p.name for p in path.iterdir())
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"it holds {', '.join(names[:3])}{more}"


def _remove_run_files(folder: Path) -> None:
    """Delete a replaced run: its run files, then the folder if that left it empty. Anything else
    (put there between the check and the swap) stays where it is, in the hidden `.old-` folder."""
    with os.scandir(folder) as it:
        ours = [e.path for e in it if e.is_file(follow_symlinks=False) and e.name.endswith(RUN_FILE_SUFFIXES)]
    for path in ours:
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


def _check_predictions(df: pd.DataFrame) -> pd.DataFrame:
    cols = prediction_columns()
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    df = df.loc[:, cols].reset_index(drop=True)
    if df["path"].duplicated().any():
        dup = df.loc[df["path"].duplicated(), "path"].head(3).tolist()
        raise ValueError(f"predictions hold duplicated paths, e.g. {dup}")
    p = df.loc[:, list(P_CLASS)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(p).all(axis=1) | (np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} prediction rows have p_class not summing to 1, e.g. {df.loc[bad, 'path'].head(3).tolist()}")
    return df


def _fsync_dir(folder: Path) -> None:
    """Flush the files of `folder` to disk before the rename makes them visible."""
    for child in folder.iterdir():
        try:
            fd = os.open(child, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, AgeBins):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
