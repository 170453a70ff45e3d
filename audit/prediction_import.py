"""Predictions made elsewhere (a CSV) -> a run the app can audit (no embeddings).

Accepted CSVs (UTF-8, a BOM is fine; extra columns are ignored and listed in meta):

- the competition submission: `ImageID,ans`. ImageID is the eval file name, `ans` the 18-class
  id (0..17); the probabilities become one-hot.
- an image id plus probabilities. The id column is `ImageID` or `path`: the data-relative path
  (`images/eval/x.jpg`, `train/images/<person>/mask1.jpg`) or, where it names one image only,
  the file name. Then either 18 class columns (`p_class_0..17`, or `0..17`) or the per-head
  columns `p_mask_0..2, p_gender_0..1, p_age_0..2` (18-class = product of heads). Optional
  `fold` (int, default -1) and `pred_age` (years, default NaN).

Coverage rule: each split (train, eval) is either covered completely or absent. A submission
normally covers eval only, and the run then holds eval rows only (`meta["splits"]`). An image
missing from a split that the CSV otherwise covers is an error, as are unknown ids, ids given
twice, missing or non-numeric values (NaN, inf), probabilities outside [0, 1] or whose rows (per
head) do not sum to 1 within 1e-3, a `pred_age` outside 0..120 years. Errors are
`PredictionImportError` naming the first offending rows (up to 5, with CSV line numbers; the
header is line 1); nothing is written then.

The file is read with the csv module, not pandas: a row with more or fewer cells than the header
is an error naming its own line (pandas shifts such a row's cells into other columns, or takes
the first column as an index), and line numbers stay true across blank lines and quoted line
breaks. Something that is not a regular file (a folder, a FIFO, which would block a reader), bytes
that are not UTF-8 and NUL bytes are refused in one line.
"""
from __future__ import annotations

import csv
import io
import platform
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from audit.labels import FIELD_INFO, N_CLASSES
from audit.runs import P_AGE, P_CLASS, P_GENDER, P_MASK, PROB_SUM_TOLERANCE, finish_predictions, finish_predictions_from_classes, write_run
from audit.file_io import file_sha256, path_problem

# How many offending rows an error message lists.
MAX_LISTED = 5
ID_COLUMNS = ("ImageID", "path")
DIGIT_CLASS_COLUMNS = tuple(str(i) for i in range(N_CLASSES))
HEAD_COLUMNS = (*P_MASK, *P_GENDER, *P_AGE)
OPTIONAL_COLUMNS = ("fold", "pred_age")
# Plausible predicted ages in years; anything else is a unit or column mix-up.
PRED_AGE_RANGE = (0.0, 120.0)
# pandas attrs key of the CSV line of each row (header = line 1).
LINES_ATTR = "csv_lines"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class PredictionImportError(ValueError):
    """A CSV that cannot become a run; the message lists the first offending rows."""


@dataclass(frozen=True)
class _Format:
    name: str  # "submission", "class_probs" or "head_probs"
    id_column: str
    value_columns: tuple[str, ...]


def import_predictions(index, csv_path: str | Path, run_dir: str | Path) -> Path:
    """Turn `csv_path` into a run at `run_dir` for the dataset `index` (a DatasetIndex).

    Returns the run folder. Raises PredictionImportError (nothing written) for a bad CSV.
    """
    csv_path = Path(csv_path).expanduser()
    table = read_prediction_csv(csv_path)
    predictions, info = predictions_from_table(index, table)
    meta = {
        "source": "import",
        "csv": str(csv_path.resolve()),
        "csv_sha256": file_sha256(csv_path),
        "csv_format": info["format"],
        "ignored_columns": info["ignored_columns"],
        "splits": info["splits"],
        "checkpoint": None,
        "checkpoint_sha256": None,
        "data_root": str(Path(index.root).resolve()),
        "data_fingerprint": index.fingerprint,
        "bins": index.bins.to_dict(),
        "oof": {"used": False, "reason": "imported predictions: whether train rows are out-of-fold is unknown"},
        "versions": {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__},
        "timings": {},
    }
    return write_run(run_dir, predictions, None, meta)


# Why a path cannot be read as a CSV file, by `audit.file_io.path_kind` (a regular file can).
_NOT_A_CSV_FILE = {
    "broken_link": "{path} is a broken symbolic link (its target does not exist)",
    "missing": "CSV not found: {path}",
    "unreadable": "{path} cannot be read ({detail})",
    "folder": "{path} is a folder, not a CSV file",
    "fifo": "{path} is a FIFO (named pipe), not a CSV file; save the predictions to a file first",
    "other": "{path} is not a regular file (a socket or device), not a CSV file",
}


def read_prediction_csv(csv_path: str | Path) -> pd.DataFrame:
    """The CSV as strings (validation converts), with each row's CSV line number in
    `table.attrs[LINES_ATTR]`; raises PredictionImportError when unreadable or ragged."""
    csv_path = Path(csv_path)
    problem = path_problem(csv_path, _NOT_A_CSV_FILE)
    if problem:
        raise PredictionImportError(problem)
    try:
        data = csv_path.read_bytes()
    except OSError as err:
        raise PredictionImportError(f"{csv_path} cannot be read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise PredictionImportError(
            f"{csv_path.name} is not UTF-8 text: line {line} holds the byte 0x{data[err.start]:02x}; "
            "save it as UTF-8 (CSV UTF-8 in Excel)") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise PredictionImportError(f"{csv_path.name} is not a readable CSV: line {line} holds a NUL byte (a binary file?)")
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rows, lines = None, [], []
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank lines, as pandas skips them
            if header is None:
                header = [c.strip() for c in cells]
                continue
            line = reader.line_num - _line_span(cells) + 1
            if len(cells) != len(header):
                raise PredictionImportError(
                    f"{csv_path.name} line {line} has {len(cells)} cells but the header has {len(header)} "
                    f"({', '.join(header[:6])}{', ...' if len(header) > 6 else ''}): fix that row (a stray or missing comma?)")
            rows.append(cells)
            lines.append(line)
    except csv.Error as err:
        raise PredictionImportError(f"{csv_path.name} is not a readable CSV: line {reader.line_num}: {err}") from None
    if header is None:
        raise PredictionImportError(f"{csv_path.name} is not a readable CSV: it is empty (no header line)")
    if not rows:
        raise PredictionImportError(f"{csv_path.name} has no data rows")
    table = pd.DataFrame(rows, columns=header, dtype=str)
    table.attrs[LINES_ATTR] = lines
    return table


def _line_span(cells: list[str]) -> int:
    """How many physical lines a parsed row spans (quoted cells may hold line breaks: CR LF, CR or
    LF, each one line, as the reader counts them)."""
    return 1 + sum(len(_LINE_BREAK.findall(c)) for c in cells)


def predictions_from_table(index, table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Validate a CSV table (strings) against the index -> (predictions frame, info dict)."""
    fmt = _detect_format(table)
    lines = np.asarray(table.attrs.get(LINES_ATTR) or np.arange(len(table)) + 2)  # header is line 1
    rows = _match_ids(index, table[fmt.id_column], lines)  # (len(table),) index row positions
    images = index.images
    predicted_splits = sorted(set(images["split"].to_numpy()[rows]))
    _check_coverage(images, rows, predicted_splits)

    optional = {}
    for col in OPTIONAL_COLUMNS:
        if col in table.columns:
            optional[col] = _numbers(table, (col,), lines)[:, 0]
    if "fold" in optional:
        fold = optional["fold"]
        bad = np.flatnonzero(fold != np.round(fold))
        if len(bad):
            raise PredictionImportError(_listing("fold must be a whole number", table, lines, bad, ("fold",)))
        fold = fold.astype(np.int64)
    else:
        fold = np.full(len(table), -1, dtype=np.int64)

    order = np.argsort(rows, kind="stable")  # the index's order
    base = images.iloc[rows[order]].reset_index(drop=True).copy()
    base["fold"] = fold[order]
    pred_age = optional.get("pred_age")
    if pred_age is not None:
        lo, hi = PRED_AGE_RANGE
        bad = np.flatnonzero((pred_age < lo) | (pred_age > hi))
        if len(bad):
            raise PredictionImportError(_listing(f"pred_age must be years within {lo:g}..{hi:g}", table, lines, bad, ("pred_age",)))
        pred_age = pred_age[order]

    if fmt.name == "submission":
        ans = _numbers(table, ("ans",), lines)[:, 0]
        bad = np.flatnonzero((ans != np.round(ans)) | (ans < 0) | (ans >= N_CLASSES))
        if len(bad):
            raise PredictionImportError(_listing(f"ans must be a class id 0..{N_CLASSES - 1}", table, lines, bad, ("ans",)))
        p_class = np.eye(N_CLASSES)[ans.astype(np.int64)]
        predictions = finish_predictions_from_classes(base, p_class[order], pred_age)
    elif fmt.name == "class_probs":
        p_class = _probabilities(table, fmt.value_columns, lines, "the 18 class probabilities")
        predictions = finish_predictions_from_classes(base, p_class[order], pred_age)
    else:
        heads = []
        for field in FIELD_INFO.values():
            name = field.prob_prefix.rstrip("_")  # "p_mask"
            heads.append(_probabilities(table, field.prob_columns, lines, f"the {name} probabilities")[order])
        predictions = finish_predictions(base, *heads, pred_age)
    used = {fmt.id_column, *fmt.value_columns, *optional}
    info = {
        "format": fmt.name,
        "splits": predicted_splits,
        "ignored_columns": [c for c in table.columns if c not in used],
    }
    return predictions, info


def _detect_format(table: pd.DataFrame) -> _Format:
    cols = list(table.columns)
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise PredictionImportError(f"columns appear more than once: {dupes}")
    ids = [c for c in ID_COLUMNS if c in cols]
    if not ids:
        raise PredictionImportError(f"no image id column: expected `ImageID` or `path`; found columns {cols[:12]}")
    if len(ids) > 1:
        raise PredictionImportError("both `ImageID` and `path` columns: keep one of them as the image id")
    id_column = ids[0]
    candidates = {
        "class_probs": [c for c in P_CLASS if c in cols] or [c for c in DIGIT_CLASS_COLUMNS if c in cols],
        "head_probs": [c for c in HEAD_COLUMNS if c in cols],
    }
    present = [name for name, found in candidates.items() if found]
    if len(present) > 1:
        raise PredictionImportError("the CSV has both 18-class and per-head probability columns: keep one kind")
    if present:
        name = present[0]
        if name == "class_probs":
            expected = P_CLASS if candidates[name][0].startswith("p_class_") else DIGIT_CLASS_COLUMNS
        else:
            expected = HEAD_COLUMNS
        missing = [c for c in expected if c not in cols]
        if missing:
            raise PredictionImportError(f"probability columns missing: {missing}")
        return _Format(name, id_column, tuple(expected))
    if "ans" in cols:
        return _Format("submission", id_column, ("ans",))
    raise PredictionImportError(
        f"no prediction columns: expected `ans` (submission), `p_class_0..17` (or `0..17`) or "
        f"`p_mask_0..2, p_gender_0..1, p_age_0..2`; found columns {cols[:12]}"
    )


def _normalise_id(text: str) -> str:
    text = text.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def _match_ids(index, ids: pd.Series, lines: np.ndarray) -> np.ndarray:
    """Image ids -> positions in index.images; unknown, ambiguous and repeated ids are errors."""
    paths = index.images["path"].tolist()
    by_path = {p: i for i, p in enumerate(paths)}
    by_name: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i, p in enumerate(paths):
        name = PurePosixPath(p).name
        if name in by_name:
            ambiguous.add(name)
        by_name[name] = i
    rows = np.empty(len(ids), dtype=np.int64)
    unknown, unclear = [], []
    for k, raw in enumerate(ids.tolist()):
        key = _normalise_id(raw)
        if key in by_path:
            rows[k] = by_path[key]
        elif key in by_name and key not in ambiguous:
            rows[k] = by_name[key]
        elif key in ambiguous:
            unclear.append(k)
        else:
            unknown.append(k)
    if unknown:
        raise PredictionImportError(_id_listing(
            f"{len(unknown)} image ids match no image of the dataset at {index.root}", ids, lines, unknown))
    if unclear:
        raise PredictionImportError(_id_listing(
            f"{len(unclear)} image ids are file names shared by several images; use the data-relative path",
            ids, lines, unclear))
    seen: dict[int, int] = {}
    repeated = []
    for k, r in enumerate(rows):
        if r in seen:
            repeated.append(k)
        else:
            seen[r] = k
    if repeated:
        detail = "; ".join(f"line {lines[k]}: {ids.iloc[k]!r} (also line {lines[seen[rows[k]]]})"
                           for k in repeated[:MAX_LISTED])
        raise PredictionImportError(f"{len(repeated)} image ids appear more than once: {detail}{_more(repeated)}")
    return rows


def _check_coverage(images: pd.DataFrame, rows: np.ndarray, splits: list[str]) -> None:
    covered = np.zeros(len(images), dtype=bool)
    covered[rows] = True
    for split in splits:
        missing = np.flatnonzero((images["split"].to_numpy() == split) & ~covered)
        if len(missing):
            names = images["path"].to_numpy()[missing[:MAX_LISTED]]
            raise PredictionImportError(
                f"{len(missing)} {split} images have no prediction (a split is either covered completely "
                f"or absent): {', '.join(map(str, names))}{_more(missing)}")


def _numbers(table: pd.DataFrame, cols, lines: np.ndarray) -> np.ndarray:
    """Columns of strings -> float array (N, len(cols)); empty or non-numeric cells are errors."""
    values = np.empty((len(table), len(cols)), dtype=np.float64)
    for j, col in enumerate(cols):
        values[:, j] = pd.to_numeric(table[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad_cells = ~np.isfinite(values)
    bad = np.flatnonzero(bad_cells.any(axis=1))
    if len(bad):
        parts = []
        for k in bad[:MAX_LISTED]:
            cells = ", ".join(f"{col}={table.iloc[k][col]!r}" for j, col in enumerate(cols) if bad_cells[k, j])
            parts.append(f"line {lines[k]}: {_row_id(table, k)!r} ({cells})")
        raise PredictionImportError(f"{len(bad)} rows: values are missing or not numbers: " + "; ".join(parts) + _more(bad))
    return values


def _probabilities(table: pd.DataFrame, cols, lines: np.ndarray, what: str) -> np.ndarray:
    p = _numbers(table, cols, lines)
    outside = np.flatnonzero(((p < 0) | (p > 1)).any(axis=1))
    if len(outside):
        raise PredictionImportError(_listing(f"{what} must lie in [0, 1]", table, lines, outside, cols))
    off = np.flatnonzero(np.abs(p.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE)
    if len(off):
        sums = p.sum(axis=1)
        detail = "; ".join(f"line {lines[k]}: {_row_id(table, k)!r} sums to {sums[k]:.6g}"
                           for k in off[:MAX_LISTED])
        raise PredictionImportError(
            f"{len(off)} rows: {what} do not sum to 1 (tolerance {PROB_SUM_TOLERANCE}): {detail}{_more(off)}")
    return p


def _row_id(table: pd.DataFrame, k: int) -> str:
    id_col = next((c for c in ID_COLUMNS if c in table.columns), table.columns[0])
    return table.iloc[k][id_col]


def _listing(problem: str, table: pd.DataFrame, lines: np.ndarray, bad, cols) -> str:
    parts = []
    for k in list(bad)[:MAX_LISTED]:
        values = ", ".join(f"{c}={table.iloc[k][c]!r}" for c in cols if c in table.columns)
        if len(values) > 120:
            values = values[:117] + "..."
        parts.append(f"line {lines[k]}: {_row_id(table, k)!r} ({values})")
    return f"{len(bad)} rows: {problem}: " + "; ".join(parts) + _more(bad)


def _id_listing(problem: str, ids: pd.Series, lines: np.ndarray, bad: list[int]) -> str:
    return problem + ": " + "; ".join(f"line {lines[k]}: {ids.iloc[k]!r}" for k in bad[:MAX_LISTED]) + _more(bad)


def _more(items) -> str:
    extra = len(items) - MAX_LISTED
    return f" (and {extra} more)" if extra > 0 else ""


