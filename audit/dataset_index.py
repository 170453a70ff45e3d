"""Index a mask dataset folder: one row per usable image, and a list of data-quality findings.

Layouts (`audit.layouts`: seed, competition) are auto-detected by `detect_layout`; give the data
folder itself, or a folder that holds it as `data/` or `input/data/`; nothing deeper is searched, so
a folder of unrelated things is never indexed by a dataset found somewhere inside it. A person
folder holds 7 photos; train.csv has id, gender, race, age, path (= person folder) + provenance
columns; info.csv has ImageID (= file name), ans (18-class id) + provenance columns.

Either split may be missing (a finding). Names are parsed by `audit.name_parsing`. Labels come
from the names; a CSV adds provenance (dataset, author, license, license_url, photo_url) and is
checked against the names, which win where they disagree. Eval files whose names carry no labels
(the original competition used hash names) take their labels from info.csv's `ans`: mask, gender
and age bin follow from the class id; such rows have `age` -1, `race` "" and `mask_type`
"mask" / "incorrect_mask" / "normal", and their age bin is in whatever bins `ans` was made with.
The real info.csv's `ans` uses the default bins (<25, 25-39, >=40).

`source` is "GAN" (100k Faces) or "photo" (FFHQ), from the CSV `dataset` column, else from the id
prefix (`100k-`, `ffhq-`), else "unknown".

Cost: names and one stat per file (folder listings run on threads); 31,500 files index in about a
second of CPU (BENCHMARKS.md). `check_images=True` decodes every file on a thread pool. `progress`
is always called from the calling thread (safe for Streamlit widgets), every few hundred items.

Findings: a DataFrame (kind, path, detail); `path` is data-relative (POSIX). A finding never stops
the index: the offending file is skipped (or kept and flagged, where said) and the rest loads.
The kinds, stable strings:

    missing_split         a split's folder is absent (train or eval); path = the expected folder
    missing_csv           competition layout: train.csv / info.csv absent (labels from names only)
    csv_unreadable        a CSV cannot be parsed or lacks its key column (path/id, ImageID)
    csv_duplicate_row     two CSV rows for the same person folder / ImageID (the first is used)
    csv_invalid_value     a CSV cell that is not a valid gender / age / ans (0..17)
    hidden_file           dotfiles and dot-folders (`._x.jpg`, `.DS_Store`, `.ipynb_checkpoints`),
                          `__MACOSX`; skipped
    unknown_file          not an image by extension (`notes.txt`, `Thumbs.db`), a file where a
                          person folder belongs, or a folder where a file belongs; skipped
    empty_file            a zero-byte image file; skipped
    unparseable_person    a person folder whose name is not {id}_{gender}_{race}_{age}; its files
                          are skipped
    unparseable_name      an image whose name is not a train mask type (mask1..5, incorrect_mask,
                          normal) or, in eval, not {id}_{gender}_{race}_{age}_{mask_type}.{ext}
                          and not labelled by info.csv; skipped
    missing_files         a train person lacks some of mask1..mask5, incorrect_mask, normal
    extra_files           a train person has a slot twice (normal.jpg + normal.png) or a file
                          outside the 7 slots (mask.jpg); the files are kept
    duplicate_id          the same id in two train person folders, or two eval files with the
                          same id; kept
    id_in_train_and_eval  an id in both splits (leakage); kept
    csv_mismatch          a CSV row disagrees with the name (gender, race, age, or ans)
    ans_other_bins        info.csv's ans agrees with the names under other age bins than the
                          index's; ans is then compared under those bins (one finding)
    ans_placeholder       info.csv's ans is 0 everywhere (a submission template): ignored
    missing_from_csv      a person folder / eval file that the CSV lacks; kept
    csv_row_without_file  a CSV row whose person folder / eval file is absent
    broken_link           a symbolic link whose target does not exist; skipped (the rest of
                          its folder loads)
    outside_link          a symbolic link (file or folder) that points outside the data folder;
                          never followed, skipped
    special_file          a FIFO, socket or device where an image belongs; skipped (never opened)
    unreadable_file       a file whose details cannot be read (permissions); skipped
    unreadable_image      check_images: the file does not decode; dropped
    truncated_image       check_images: the file ends early; dropped
    unexpected_size       check_images: not 384x512 (w x h); kept
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import operator
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from audit.labels import (
    DEFAULT_BINS, BIN_PRESETS, GENDERS, GENDER_NAMES, IMAGE_EXTENSIONS, MASK_NAMES, N_CLASSES,
    EVAL_MASK_TYPES, TRAIN_MASK_TYPES, AgeBins, class_id, split_class,
)
from audit import layouts
from audit.file_io import path_problem
from audit.layouts import expected_layouts, get_layout, layout_of
from audit.name_parsing import (
    EVAL_PATTERN, PERSON_PATTERN, is_hidden, normalise_race, parse_eval_file, parse_gender,
    parse_person, parse_train_file, source_from_dataset, source_from_id, split_ext,
)

FINDING_KINDS = (
    "missing_split", "missing_csv", "csv_unreadable", "csv_duplicate_row", "csv_invalid_value",
    "hidden_file", "unknown_file", "empty_file", "unparseable_person", "unparseable_name",
    "missing_files", "extra_files", "duplicate_id", "id_in_train_and_eval", "csv_mismatch",
    "ans_other_bins", "ans_placeholder", "missing_from_csv", "csv_row_without_file",
    "unreadable_image", "truncated_image", "unexpected_size",
    "broken_link", "outside_link", "special_file", "unreadable_file",
)
EXPECTED_SIZE = (384, 512)  # (width, height) of every real image
IMAGE_COLUMNS = (
    "path", "split", "person", "person_id", "gender", "race", "age", "age_bin", "mask", "mask_type",
    "class_id", "ext", "source", "dataset", "author", "license", "license_url", "photo_url",
)
FINDING_COLUMNS = ("kind", "path", "detail")
# CSV column -> index column, for the provenance both CSVs carry.
PROVENANCE = {
    "dataset": "dataset", "original_author": "author", "photo_license": "license",
    "photo_license_url": "license_url", "original_photo_url": "photo_url",
}
EXPECTED_LAYOUTS = expected_layouts()
# How many subfolders `detect_layout` peeks into for a "did you mean" hint (a folder of 100,000
# unrelated entries must still answer at once).
_HINT_SUBFOLDERS = 200
_SLOTS = tuple(TRAIN_MASK_TYPES)
_NO_PROVENANCE = ("",) * len(PROVENANCE)
# Labels of an eval row taken from `ans` alone: the mask state's file stem.
_MASK_TYPE_OF_STATE = ("mask", "incorrect_mask", "normal")
# A scan row: the IMAGE_COLUMNS values, then the file size in bytes (bytes go into the fingerprint).
_ROW_COLUMNS = (*IMAGE_COLUMNS, "_size")
_AT = {name: i for i, name in enumerate(_ROW_COLUMNS)}
# A placeholder `ans` column needs this many rows before "all zero" is read as a template.
_PLACEHOLDER_MIN_ROWS = 10
# Report progress every this many person folders / images (a callback per item costs more than the scan).
_PROGRESS_EVERY = 200
# Person folders listed per thread task.
_LIST_BATCH = 64

Progress = Callable[[int, int, str], None]


class DatasetNotFound(ValueError):
    """The folder is not a mask dataset in either layout; the message is one line."""


@dataclass(frozen=True, eq=False)
class DatasetIndex:
    """The indexed dataset. `images`: one row per usable image, columns `IMAGE_COLUMNS`, sorted by
    (split, path). `findings`: columns kind, path, detail. `people`: train persons with at least one
    usable image. `fingerprint`: sha256 hex over sorted (path, file size, raw labels) of the files the
    name scan accepted (independent of bins and of check_images)."""

    root: Path
    layout: str
    images: pd.DataFrame
    findings: pd.DataFrame
    people: int
    fingerprint: str
    bins: AgeBins

    def counts(self) -> dict:
        """Image counts by split, mask, gender, age bin, race, source, ext, mask_type; findings by kind."""
        df = self.images

        def by(col, names=None):
            vc = df[col].value_counts().sort_index()
            return {(names[k] if names is not None else str(k)): int(v) for k, v in vc.items()}

        return {
            "split": {s: int((df["split"] == s).sum()) for s in ("train", "eval")},
            "mask": by("mask", MASK_NAMES),
            "gender": by("gender", GENDER_NAMES),
            "age_bin": by("age_bin", self.bins.labels),
            "race": by("race"),
            "source": by("source"),
            "ext": by("ext"),
            "mask_type": by("mask_type"),
            "findings": {k: int(v) for k, v in self.findings["kind"].value_counts().sort_index().items()},
        }

    def to_json_dict(self) -> dict:
        """What `python -m audit index --json` prints."""
        return {
            "images": int(len(self.images)),
            "people": int(self.people),
            "layout": self.layout,
            "root": str(self.root),
            "fingerprint": self.fingerprint,
            "bins": self.bins.to_dict(),
            "counts": self.counts(),
            "findings": self.findings.to_dict("records"),
        }


def shown_path(path) -> str:
    """A path for a one-line message: as is, or quoted with escapes when it holds line breaks or
    other control characters (a folder named with a newline must not break the message)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


# Why a path that is not a folder cannot be a dataset, by `audit.file_io.path_kind`; "folder" too,
# for one that stopped being a folder since it was looked at.
_NOT_A_FOLDER = {
    "broken_link": "{path} is a broken symbolic link (its target {detail} does not exist)",
    "missing": "{path} does not exist",
    "unreadable": "{path} cannot be read ({detail})",
    "fifo": "{path} is a FIFO (named pipe), not a folder",
    "file": "{path} is a file, not a folder",
    "folder": "{path} is not a folder",
    "other": "{path} is not a folder",
}


def _not_a_folder(root: Path) -> str:
    """Why `root` (not a folder) cannot be a dataset, in a few words."""
    return path_problem(root, _NOT_A_FOLDER, show=shown_path)


def detect_layout(root) -> tuple[Path, str]:
    """Folder the user gave -> (resolved data root, layout name: "seed" | "competition", see
    `audit.layouts`); DatasetNotFound otherwise.

    Looks at the folder, data/ and input/data/ under it, and the parent when the folder is one a
    layout names as inner (the seed layout's images/) - nowhere else, as its error message says.
    A dataset one level down is named in the error (so the user can pass it), never indexed silently."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFound(f"{_not_a_folder(root)}; {EXPECTED_LAYOUTS}")
    candidates = [root, root / "data", root / "input" / "data"]
    if any(root.name in layout.inner_folders for layout in layouts.LAYOUTS):
        candidates.append(root.parent)
    for folder in candidates:
        layout = layout_of(folder)
        if layout is not None:
            return folder.resolve(), layout.name
    found = []
    try:
        with os.scandir(root) as it:
            for entry in itertools.islice((e for e in it if not is_hidden(e.name) and e.is_dir()), _HINT_SUBFOLDERS):
                if layout_of(Path(entry.path)) is not None:
                    found.append(entry.name)
    except OSError:
        pass
    hint = f" (it holds one in {', '.join(shown_path(n) for n in sorted(found)[:3])}/: pass that folder)" if found else ""
    raise DatasetNotFound(f"{shown_path(root)} is not a mask dataset{hint}: {EXPECTED_LAYOUTS}")


class _Findings:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, kind: str, path: str, detail: str) -> None:
        assert kind in FINDING_KINDS, kind
        self.rows.append((kind, path, detail))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(FINDING_COLUMNS))


# One folder entry: (name, is_dir, size in bytes (-1 for folders), problem). `problem` is None or
# (finding kind, detail) for an entry that must be skipped: a broken or outside link, a FIFO...
Entry = tuple[str, bool, int, "tuple[str, str] | None"]


def _list_folder(path: str, root: str) -> list[Entry]:
    """A folder's entries sorted by name. `root`: the resolved data root; a symbolic link that
    resolves outside it is never followed. One bad entry never costs the rest of the folder."""
    import stat

    out = []
    with os.scandir(path) as it:
        for e in it:
            if e.is_symlink():  # d_type: free; only links pay for the resolve
                target = os.path.realpath(e.path)
                if not os.path.exists(target):
                    out.append((e.name, False, 0, ("broken_link", f"symbolic link to {target}, which does not exist")))
                    continue
                if os.path.commonpath([root, target]) != root:
                    out.append((e.name, False, 0, ("outside_link", f"symbolic link to {target}, outside the data folder; not followed")))
                    continue
            try:
                if e.is_dir():
                    out.append((e.name, True, -1, None))
                    continue
                st = e.stat()  # the size goes into the fingerprint and flags empty files
            except OSError as err:
                out.append((e.name, False, 0, ("unreadable_file", f"cannot read its details: {err.strerror or err}")))
                continue
            if not stat.S_ISREG(st.st_mode):
                out.append((e.name, False, 0, ("special_file", "a FIFO, socket or device, not a regular file; never opened")))
                continue
            out.append((e.name, False, st.st_size, None))
    out.sort()
    return out


def _split_folder(data_root: Path, rel: str) -> str | None:
    """Why a split folder must not be scanned (a link out of the data root), or None."""
    target = os.path.realpath(data_root / rel)
    if os.path.commonpath([str(data_root), target]) != str(data_root):
        return f"symbolic link to {target}, outside the data folder; not followed"
    return None


class _Csv:
    """A CSV as lists of strings: `col[name]` -> position, `rows` padded to the header's length.
    The csv module, not pandas: several times faster for these files, and short rows read as ""."""

    def __init__(self, header: list[str], rows: list[list[str]]):
        self.col = {h: i for i, h in enumerate(header)}
        n = len(header)
        self.rows = [r + [""] * (n - len(r)) if len(r) < n else r for r in rows]
        self._prov_idx = [self.col.get(c) for c in PROVENANCE]

    def get(self, row: list[str], name: str) -> str:
        i = self.col.get(name)
        return row[i].strip() if i is not None else ""

    def provenance(self, row: list[str]) -> tuple[str, ...]:
        return tuple([row[i].strip() if i is not None else "" for i in self._prov_idx])


def _read_csv(path: Path, rel: str, key_columns: tuple[str, ...], findings: _Findings) -> _Csv | None:
    """A CSV (a BOM tolerated, as export writes one), or None with a finding."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [r for r in reader if r]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        findings.add("csv_unreadable", rel, f"{type(err).__name__}: {err}")
        return None
    if not any(c in header for c in key_columns):
        findings.add("csv_unreadable", rel, f"no {' or '.join(key_columns)} column (columns: {', '.join(header)})")
        return None
    return _Csv(header, rows)


def _keyed_rows(table: _Csv, key: str, csv_rel: str, path_of: Callable[[str], str],
                findings: _Findings) -> dict[str, tuple[int, list[str], tuple[str, ...]]]:
    """CSV rows by key -> (1-based line number, row, provenance); later duplicates are findings."""
    out: dict[str, tuple[int, list[str], tuple[str, ...]]] = {}
    k_i = table.col[key]
    for i, row in enumerate(table.rows):
        k = row[k_i].strip()
        line = i + 2  # header is line 1 (these files never hold quoted newlines)
        if k in out:
            findings.add("csv_duplicate_row", path_of(k), f"{csv_rel} line {line} repeats line {out[k][0]} ({key} {k})")
            continue
        out[k] = (line, row, table.provenance(row))
    return out


def _source(person_id: str, dataset: str) -> str:
    return source_from_dataset(dataset) or source_from_id(person_id)


def _compare_person(table: _Csv, row: list[str], line: int, csv_rel: str, person, rel: str,
                    findings: _Findings) -> None:
    """train.csv row vs the folder name's gender, race, age."""
    where = f"{csv_rel} line {line}"
    if "gender" in table.col:
        try:
            g = parse_gender(table.get(row, "gender"))
        except ValueError as err:
            findings.add("csv_invalid_value", rel, f"{where}: {err}")
        else:
            if g != person.gender:
                findings.add("csv_mismatch", rel, f"{where}: gender {GENDERS[g]} in the CSV, {GENDERS[person.gender]} in the name")
    if "race" in table.col:
        race = normalise_race(table.get(row, "race"))
        if race != person.race:
            findings.add("csv_mismatch", rel, f"{where}: race {race} in the CSV, {person.race} in the name")
    if "age" in table.col:
        text = table.get(row, "age")
        age = _whole_number(text)
        if age is None or age < 0:
            findings.add("csv_invalid_value", rel, f"{where}: age {text!r} is not a whole number of years")
        elif age != person.age:
            findings.add("csv_mismatch", rel, f"{where}: age {age} in the CSV, {person.age} in the name")


def _whole_number(text: str) -> int | None:
    """'37' or '37.0' (a spreadsheet's round trip) -> 37; anything else -> None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _parse_ans(text: str) -> int | None:
    value = _whole_number(text)
    return value if value is not None and 0 <= value < N_CLASSES else None


class _Scan:
    """Accumulates rows: lists in _ROW_COLUMNS order (IMAGE_COLUMNS, age_bin/class_id filled later, + file
    size); read them by name through `_AT`."""

    def __init__(self):
        self.rows: list[list] = []


def _scan_train(data_root: Path, train_rel: str, csv_rel: str | None, findings: _Findings,
                progress: Progress | None, scan: _Scan, workers: int) -> dict[str, str]:
    """Train person folders -> rows; returns {person_id: first folder rel path} for the split check."""
    csv_rows = table = csv_key = None
    if csv_rel is not None:
        table = _read_split_csv(data_root, csv_rel, ("path", "id"),
                                "train.csv is absent: labels from folder names only, no provenance", findings)
        if table is not None:
            csv_key = "path" if "path" in table.col else "id"
            csv_rows = _keyed_rows(table, csv_key, csv_rel, lambda k: f"{train_rel}/{k}", findings)
    matched: set[str] = set()
    ids: dict[str, str] = {}
    train_dir = data_root / train_rel
    root = str(data_root)
    entries = _list_split(data_root, train_rel, findings)
    folders = [name for name, is_dir, _, problem in entries if is_dir and problem is None and not is_hidden(name)]
    total = len(entries)
    # Listing and stat-ing 2,700 folders is system calls: threads overlap them with the parsing below.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Consumed in order, one per non-hidden folder below, while later ones are still listed;
        # batches of folders per task, since a task costs more than listing one folder.
        paths = [str(train_dir / n) for n in folders]
        batches = pool.map(_try_list_folders, [paths[i:i + _LIST_BATCH] for i in range(0, len(paths), _LIST_BATCH)],
                           itertools.repeat(root))
        listings = itertools.chain.from_iterable(batches)
        for done, entry in enumerate(entries, 1):
            if progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
                progress(done, total, "scanning train folders")
            name = entry[0]
            rel = f"{train_rel}/{name}"
            if _skipped_entry(rel, entry, findings, want_folder=True, misplaced="a file where a person folder belongs"):
                continue
            files = next(listings)
            try:
                person = parse_person(name)
            except ValueError as err:
                findings.add("unparseable_person", rel, f"{err}; its files are skipped")
                continue
            if person.id in ids:
                findings.add("duplicate_id", rel, f"id {person.id} is also the folder {ids[person.id]}")
            else:
                ids[person.id] = rel
            prov = _NO_PROVENANCE
            if csv_rows is not None:
                key = name if csv_key == "path" else person.id
                hit = csv_rows.get(key)
                if hit is None:
                    findings.add("missing_from_csv", rel, f"no row in {csv_rel} for {csv_key} {key}")
                else:
                    matched.add(key)
                    line, row, prov = hit
                    _compare_person(table, row, line, csv_rel, person, rel, findings)
            if isinstance(files, OSError):
                findings.add("unknown_file", rel, f"cannot list the folder: {files}")
                continue
            _scan_person(rel, name, person, _source(person.id, prov[0]), prov, files, findings, scan)
    if csv_rows is not None:
        for key, (line, _row, _prov) in csv_rows.items():
            if key not in matched:
                findings.add("csv_row_without_file", f"{train_rel}/{key}" if csv_key == "path" else train_rel,
                             f"{csv_rel} line {line}: no person folder for {csv_key} {key}")
    return ids


def _try_list_folders(paths: list[str], root: str) -> list:
    out = []
    for path in paths:
        try:
            out.append(_list_folder(path, root))
        except OSError as err:  # unreadable folder: a finding, not a crash
            out.append(err)
    return out


def _list_split(data_root: Path, split_rel: str, findings: _Findings) -> list[Entry]:
    """A split folder's entries (`_list_folder`); none, with a missing_split finding, when it cannot be listed."""
    try:
        return _list_folder(str(data_root / split_rel), str(data_root))
    except OSError as err:  # e.g. no permission: the split is as good as missing
        findings.add("missing_split", split_rel, f"cannot list the folder: {err}")
        return []


def _read_split_csv(data_root: Path, csv_rel: str, key_columns: tuple[str, ...], absent: str,
                    findings: _Findings) -> _Csv | None:
    """A split's CSV (`_read_csv`), or None with a finding: missing_csv (detail `absent`) when there is none."""
    if not (data_root / csv_rel).is_file():
        findings.add("missing_csv", csv_rel, absent)
        return None
    return _read_csv(data_root / csv_rel, csv_rel, key_columns, findings)


def _skipped_entry(rel: str, entry: Entry, findings: _Findings, *, want_folder: bool, misplaced: str) -> bool:
    """True, with a finding, for a folder entry the scan does not read: one that `_list_folder`
    found a problem with, a hidden one, or a file where folders belong (`want_folder`) or a folder
    where files belong (an unknown_file finding, detail `misplaced`)."""
    name, is_dir, _size, problem = entry
    if problem is not None:
        findings.add(problem[0], rel, problem[1])
        return True
    if is_hidden(name):
        findings.add("hidden_file", rel, "hidden file or folder")
        return True
    if is_dir != want_folder:
        findings.add("unknown_file", rel, misplaced)
        return True
    return False


def _scan_person(rel: str, folder: str, person, source: str, prov: tuple[str, ...],
                 files: list[Entry], findings: _Findings, scan: _Scan) -> None:
    """One train person's files -> rows, and the 7-slot check (missing_files / extra_files)."""
    slots: dict[str, list[str]] = defaultdict(list)
    for entry in files:
        fname, _is_dir, size, _problem = entry
        frel = f"{rel}/{fname}"
        if _skipped_entry(frel, entry, findings, want_folder=False, misplaced="a folder inside a person folder"):
            continue
        try:
            mask_type, ext = parse_train_file(fname)
        except ValueError as err:
            if split_ext(fname)[1] not in IMAGE_EXTENSIONS:
                findings.add("unknown_file", frel, f"not an image ({', '.join(IMAGE_EXTENSIONS)})")
            else:
                findings.add("unparseable_name", frel, str(err))
            continue
        slots[mask_type].append(fname)
        if size == 0:
            findings.add("empty_file", frel, "zero bytes")
            continue
        scan.rows.append([frel, "train", folder, person.id, person.gender, person.race, person.age, -1,
                          EVAL_MASK_TYPES[mask_type], mask_type, -1, ext, source, *prov, size])
    missing = [s for s in _SLOTS if s not in slots]
    if missing:
        findings.add("missing_files", rel, f"missing {', '.join(missing)} (has {sum(map(len, slots.values()))} of 7)")
    extra = [f"{s}: {', '.join(names)}" if s in TRAIN_MASK_TYPES else f"{', '.join(names)} outside the 7 slots"
             for s, names in sorted(slots.items()) if len(names) > 1 or s not in TRAIN_MASK_TYPES]
    if extra:
        findings.add("extra_files", rel, "; ".join(extra))


def _ans_bins(ans: np.ndarray, ages: np.ndarray, bins: AgeBins) -> AgeBins:
    """ans (N,) and name ages (N,) years -> the bins (the index's, else a preset) under which the
    age bin encoded in ans agrees with the most names; ties keep the index's own bins."""
    best, best_hits = bins, -1
    for cand in (bins, *BIN_PRESETS.values()):
        hits = int((split_class(ans)[2] == cand.bin(ages)).sum())
        if hits > best_hits:
            best, best_hits = cand, hits
    return best


def _scan_eval(data_root: Path, eval_rel: str, csv_rel: str | None, bins: AgeBins, findings: _Findings,
               progress: Progress | None, scan: _Scan) -> None:
    """Eval files -> rows; labels from the name, else from info.csv's ans; CSV checked against names."""
    csv_rows = None
    use_ans = False
    if csv_rel is not None:
        table = _read_split_csv(data_root, csv_rel, ("ImageID",),
                                "info.csv is absent: labels from file names only, no provenance", findings)
        if table is not None:
            csv_rows = _keyed_rows(table, "ImageID", csv_rel, lambda k: f"{eval_rel}/{k}", findings)
            if "ans" in table.col:
                use_ans = True
                ans_i = table.col["ans"]
                if len(table.rows) >= _PLACEHOLDER_MIN_ROWS and all(r[ans_i].strip() == "0" for r in table.rows):
                    findings.add("ans_placeholder", csv_rel, "ans is 0 in every row (a submission template); ignored")
                    use_ans = False
    by_stem = {split_ext(k)[0]: k for k in csv_rows} if csv_rows is not None else {}
    matched: set[str] = set()
    # (ans, age from the name, row index, rel path, where): compared once the ans bins are known.
    ans_vs_name: list[tuple[int, int, int, str, str]] = []
    entries = _list_split(data_root, eval_rel, findings)
    total = len(entries)
    for done, entry in enumerate(entries, 1):
        if progress is not None and (done % (_PROGRESS_EVERY * 7) == 0 or done == total):
            progress(done, total, "scanning eval files")
        fname, _is_dir, size, _problem = entry
        rel = f"{eval_rel}/{fname}"
        if _skipped_entry(rel, entry, findings, want_folder=False, misplaced="a folder inside the eval folder"):
            continue
        stem, ext = split_ext(fname)
        if ext not in IMAGE_EXTENSIONS:
            findings.add("unknown_file", rel, f"not an image ({', '.join(IMAGE_EXTENSIONS)})")
            continue
        row = line = None
        prov = _NO_PROVENANCE
        if csv_rows is not None:
            key = fname if fname in csv_rows else by_stem.get(stem)
            if key is None:
                findings.add("missing_from_csv", rel, f"no row in {csv_rel} for ImageID {fname}")
            else:
                matched.add(key)
                line, row, prov = csv_rows[key]
        ans = None
        if row is not None and use_ans:
            text = row[ans_i].strip()
            ans = _parse_ans(text)
            if ans is None:
                findings.add("csv_invalid_value", rel, f"{csv_rel} line {line}: ans {text!r} is not a class id 0..17")
        try:
            name = parse_eval_file(fname)
        except ValueError as err:
            if ans is None:
                hint = "" if csv_rows is None else f"; no label in {csv_rel}"
                findings.add("unparseable_name", rel, f"{err}{hint}")
                continue
            name = None
        if size == 0:
            findings.add("empty_file", rel, "zero bytes")
            continue
        if name is not None:
            p = name.person
            if ans is not None:
                ans_vs_name.append((ans, p.age, len(scan.rows), rel, f"{csv_rel} line {line}"))
            scan.rows.append([rel, "eval", name.key, p.id, p.gender, p.race, p.age, -1,
                              EVAL_MASK_TYPES[name.mask_type], name.mask_type, -1, ext,
                              _source(p.id, prov[0]), *prov, size])
        else:
            m, g, a = split_class(ans)
            scan.rows.append([rel, "eval", stem, stem, g, "", -1, a, m, _MASK_TYPE_OF_STATE[m], -1, ext,
                              _source(stem, prov[0]), *prov, size])
    if csv_rows is not None:
        for key, (line, _row, _prov) in csv_rows.items():
            if key not in matched:
                findings.add("csv_row_without_file", f"{eval_rel}/{key}", f"{csv_rel} line {line}: no such file")
    if ans_vs_name:
        _check_ans(ans_vs_name, bins, csv_rel, findings, scan)


def _check_ans(pairs, bins: AgeBins, csv_rel: str, findings: _Findings, scan: _Scan) -> None:
    """pairs: (ans, name age, row index, rel path, CSV line label) -> csv_mismatch findings."""
    mask_at, gender_at = _AT["mask"], _AT["gender"]
    ans = np.array([p[0] for p in pairs], dtype=np.int64)
    ages = np.array([p[1] for p in pairs], dtype=np.int64)
    ans_bins = _ans_bins(ans, ages, bins)
    if ans_bins != bins:
        findings.add("ans_other_bins", csv_rel,
                     f"ans matches the names under age bins {ans_bins.describe()}, not the index's {bins.describe()}")
    name_bin = ans_bins.bin(ages)
    for (a, age, i, rel, where), nb in zip(pairs, name_bin):
        row_mask, row_gender = scan.rows[i][mask_at], scan.rows[i][gender_at]
        expect = class_id(row_mask, row_gender, int(nb))
        if a == expect:
            continue
        m, g, b = split_class(a)
        parts = []
        if m != row_mask:
            parts.append(f"mask {MASK_NAMES[m]} vs {MASK_NAMES[row_mask]}")
        if g != row_gender:
            parts.append(f"gender {GENDERS[g]} vs {GENDERS[row_gender]}")
        if b != nb:
            parts.append(f"age bin {ans_bins.labels[b]} vs age {age}")
        findings.add("csv_mismatch", rel, f"{where}: ans {a} but the name says class {expect} ({'; '.join(parts)})")


def _check_one(path: str, expected: tuple[int, int] | None) -> tuple[str, str] | None:
    from PIL import Image, ImageFile  # only --check-images pays for PIL

    try:
        with Image.open(path) as im:
            fmt = im.format
            im.load()  # full decode: Image.open alone reads only the header
            size = im.size
    except Exception as err:  # whatever a broken file makes PIL raise, it is a finding
        text = f"{type(err).__name__}: {err}"
        return ("truncated_image" if "truncated" in str(err).lower() else "unreadable_image", text)
    # Someone set Pillow's process-wide LOAD_TRUNCATED_IMAGES: load() then pads a cut file
    # silently, so look for the format's end marker instead.
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _ends_cleanly(path, fmt):
        return ("truncated_image", f"no {fmt} end marker (file cut short)")
    if expected is not None and tuple(size) != tuple(expected):
        return ("unexpected_size", f"{size[0]}x{size[1]} (w x h), expected {expected[0]}x{expected[1]}")
    return None


def _ends_cleanly(path: str, fmt: str | None) -> bool:
    """JPEG: an EOI marker (FF D9) in the last 1 KiB; PNG: an IEND chunk there; others: True."""
    marker = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt or "")
    if marker is None:
        return True
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 1024))
        return marker in fh.read()


def find_bad_images(root: Path, paths: list[str], *, expected_size=EXPECTED_SIZE, workers: int | None = None,
                 progress: Progress | None = None) -> list[tuple[str, str, str]]:
    """Decode every image (data-relative paths) in parallel -> [(kind, path, detail)] for bad ones.

    Threads, not processes: Pillow releases the GIL while it decodes, and threads need no
    pickling or spawn (safe under Streamlit)."""
    workers = workers or os.cpu_count() or 1
    total = len(paths)
    out = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_check_one, [str(root / p) for p in paths], [expected_size] * total)
        for done, (rel, res) in enumerate(zip(paths, results), 1):
            if res is not None:
                out.append((res[0], rel, res[1]))
            if progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
                progress(done, total, "checking images")
    return out


def _fingerprint(rows: list[list]) -> str:
    """sha256 hex over rows in their (sorted) order: path, size, gender, race, age, mask_type, and
    the age bin only where it is the label itself (ans-only rows), so bins do not change it."""
    h = hashlib.sha256()
    path, size, gender, race, age, mask_type, age_bin = (
        _AT[c] for c in ("path", "_size", "gender", "race", "age", "mask_type", "age_bin"))
    for r in rows:
        h.update(f"{r[path]}\t{r[size]}\t{r[gender]}\t{r[race]}\t{r[age]}\t{r[mask_type]}\t"
                 f"{r[age_bin] if r[age] < 0 else ''}\n".encode())
    return h.hexdigest()


def index_dataset(root, *, bins: AgeBins = DEFAULT_BINS, check_images: bool = False, workers: int | None = None,
                  progress: Progress | None = None, expected_size: tuple[int, int] | None = EXPECTED_SIZE) -> DatasetIndex:
    """Index the dataset at `root` (the data folder or a folder above it; see `detect_layout`).

    bins: age bins for `age_bin` / `class_id`. check_images: decode every image on `workers`
    threads (default: all cores) and flag unreadable, truncated and wrongly sized ones
    (`expected_size` = (width, height) in pixels, None to skip the size check).
    progress: optional `progress(done, total, message)`. Raises DatasetNotFound (a ValueError)."""
    data_root, layout = detect_layout(root)
    findings = _Findings()
    scan = _Scan()
    where = get_layout(layout)
    train_rel, eval_rel, train_csv, eval_csv = where.train_images, where.eval_images, where.train_csv, where.eval_csv
    train_ids: dict[str, str] = {}
    train_out, eval_out = _split_folder(data_root, train_rel), _split_folder(data_root, eval_rel)
    if train_out:
        findings.add("outside_link", train_rel, train_out)
    elif (data_root / train_rel).is_dir():
        train_ids = _scan_train(data_root, train_rel, train_csv, findings, progress, scan, workers or os.cpu_count() or 1)
    else:
        findings.add("missing_split", train_rel, f"no train folder ({PERSON_PATTERN}/<mask_type>.<ext> inside)")
    n_train_rows = len(scan.rows)
    if eval_out:
        findings.add("outside_link", eval_rel, eval_out)
    elif (data_root / eval_rel).is_dir():
        _scan_eval(data_root, eval_rel, eval_csv, bins, findings, progress, scan)
    else:
        findings.add("missing_split", eval_rel, f"no eval folder ({EVAL_PATTERN} inside)")

    # Eval ids: repeated within eval, or shared with a train person (leakage).
    first_eval: dict[str, str] = {}
    id_at, path_at = _AT["person_id"], _AT["path"]
    for r in scan.rows[n_train_rows:]:
        pid, rel = r[id_at], r[path_at]
        if pid in first_eval:
            findings.add("duplicate_id", rel, f"eval id {pid} is also {first_eval[pid]}")
        else:
            first_eval[pid] = rel
            if pid in train_ids:
                findings.add("id_in_train_and_eval", rel, f"id {pid} is also the train person {train_ids[pid]}")

    # Sort once in Python, by (split, path) = eval rows then train rows, each by path: cheaper than
    # sorting the frame's arrow strings.
    by_path = operator.itemgetter(path_at)
    rows = sorted(scan.rows[n_train_rows:], key=by_path) + sorted(scan.rows[:n_train_rows], key=by_path)
    fingerprint = _fingerprint(rows)
    images = pd.DataFrame(rows, columns=list(_ROW_COLUMNS)).drop(columns="_size")
    if check_images and len(images):
        bad = find_bad_images(data_root, images["path"].tolist(), expected_size=expected_size,
                              workers=workers, progress=progress)
        for kind, rel, detail in bad:
            findings.add(kind, rel, detail)
        dropped = {rel for kind, rel, _ in bad if kind != "unexpected_size"}
        if dropped:
            images = images[~images["path"].isin(dropped)].copy()
    images = _finish(images, bins)
    people = int(images.loc[images["split"] == "train", "person"].nunique())
    return DatasetIndex(data_root, layout, images, findings.frame(), people, fingerprint, bins)


def _finish(images: pd.DataFrame, bins: AgeBins) -> pd.DataFrame:
    """Fill age_bin (named rows) and class_id, fix dtypes; rows come sorted by (split, path)."""
    for col in ("gender", "age", "age_bin", "mask"):
        images[col] = images[col].astype(np.int64)
    named = images["age"].to_numpy() >= 0
    age_bin = images["age_bin"].to_numpy().copy()
    age_bin[named] = bins.bin(images["age"].to_numpy()[named])
    images["age_bin"] = age_bin.astype(np.int64)
    images["class_id"] = np.asarray(class_id(images["mask"].to_numpy(), images["gender"].to_numpy(),
                                             images["age_bin"].to_numpy()), dtype=np.int64)
    return images.reset_index(drop=True)
