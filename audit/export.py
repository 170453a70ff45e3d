"""Export review decisions: the relabeling list and corrected copies of the manifests.

What is written (all CSV, UTF-8 with BOM so Excel shows Korean text; pandas' default quoting, so
commas, quotes and newlines in notes or provenance survive a round trip):

- `relabel.csv`: every current decision (the latest per item and field, see `audit.reviews`),
  one row per item and field, columns `RELABEL_COLUMNS`. `changed` is True where the decided value
  differs from the given one (accept/set); keep and skip rows are listed too, so the file is the
  complete record of what a person looked at. Filter `changed` for the relabeling itself.
- `train.csv`: the dataset's train.csv with corrected `gender` / `age` for people whose
  person-level decision changed them, plus `corrected_path` (the folder name the corrected labels
  imply; the folders themselves are never renamed) and `changed_fields`. All other cells are
  copied as text, unchanged (ids like `000001` keep their zeros).
- `info.csv`: the dataset's info.csv with `ans` recomputed from the corrected mask, gender and age
  bin of changed images, plus `corrected_ImageID` and `changed_fields`.
- `images.csv`: one row per indexed image with its given and corrected mask, gender, age, age bin
  and class id — what a training script needs to train on the corrected labels without touching
  the images.
- `history.csv`: every decision ever recorded for the dataset (the audit trail).

A note or reviewer name that starts like a spreadsheet formula (`=`, `+`, `-`, `@`) is written with
a leading apostrophe, so opening the CSV in Excel shows it as text instead of running it.

Where the dataset has no train.csv / info.csv (the seed layout, or a competition folder without
them), the same shape is generated from the index, provenance columns empty where unknown.

Age: decisions hold age bin codes (plus an exact age when a reviewer typed one). A corrected
manifest needs years, so a bin-only age change writes the age in the new bin nearest to the given
age (e.g. given 24 under <25 | 25–39 | ≥40 and decided "25–39" -> 25), and says so in
`new_age_source` ("bin"); a typed age is written as typed ("reviewer"). A decision made with
"keep the given age, mark the bin only" (`keep_age`) changes the bin and no age: `new_age` is the
given age, `new_age_source` "kept", train.csv keeps its age and folder name and lists `age_bin` in
`changed_fields`. `manifest_preview` says, before anything is written, which folders and eval
files the corrected manifests rename and which ages they set.

Nothing here renames, moves or rewrites an image: the export only reads the dataset's CSVs.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from audit import labels as L
from audit.layouts import get_layout
from audit.reviews import FILE_EXCLUDE, FILE_FIELD, ReviewStore, bins_from_text
from audit.workspace import workspace_dir

ENCODING = "utf-8-sig"
RELABEL_COLUMNS = [
    "path", "item", "item_kind", "split", "person", "person_id", "field",
    "given", "given_name", "new", "new_name", "given_age", "new_age", "new_age_source",
    "changed", "decision", "detectors", "score", "note", "reviewer", "time",
]
# train.csv as the post-competition download ships it.
TRAIN_CSV_COLUMNS = [
    "id", "gender", "race", "age", "path", "original_photo_url", "original_author", "photo_license",
    "photo_license_url", "dataset", "dataset_license", "dataset_license_url",
]
INFO_CSV_COLUMNS = [
    "ImageID", "ans", "original_photo_url", "original_author", "photo_license", "photo_license_url",
    "dataset", "dataset_license", "dataset_license_url",
]
# CSV provenance column -> index column.
PROVENANCE = {
    "original_photo_url": "photo_url", "original_author": "author", "photo_license": "license",
    "photo_license_url": "license_url", "dataset": "dataset",
}
# Columns a reviewer types into; exported with a guard against spreadsheet formulas.
FREE_TEXT_COLUMNS = ("note", "reviewer")


def value_name(field: str, code, bins: L.AgeBins = L.DEFAULT_BINS) -> str:
    """A field's code -> the word a manifest uses: 'female', 'incorrect', '25–39' ('' for none)."""
    if code is None or pd.isna(code):
        return ""
    code = int(code)
    if field == "mask":
        return L.MASK_STATES[code]
    if field == "gender":
        return L.GENDERS[code]
    return bins.labels[code]


# Ages the dataset holds (adults); the open-ended bins are bounded by these for a default age.
PLAUSIBLE_AGES = (18, 70)


def age_bin_range(code: int, bins: L.AgeBins = L.DEFAULT_BINS) -> tuple[int, int]:
    """(lowest, highest) age in years of bin `code` a reviewer may type (inclusive)."""
    lo = (min(PLAUSIBLE_AGES[0], bins.lo - 1), bins.lo, bins.hi)[int(code)]
    hi = (bins.lo - 1, bins.hi - 1, max(PLAUSIBLE_AGES[1], bins.hi + 10))[int(code)]
    return lo, hi


def age_bin_middle(code: int, bins: L.AgeBins = L.DEFAULT_BINS) -> int:
    """The default age in years offered for bin `code`: its middle (e.g. 25–39 -> 32)."""
    lo, hi = age_bin_range(code, bins)
    return (lo + hi) // 2


def age_in_bin(age: int, code: int, bins: L.AgeBins) -> int:
    """The age in years nearest to `age` that falls in bin `code` (the age itself if it does)."""
    lo = (0, bins.lo, bins.hi)[code]
    hi = (bins.lo - 1, bins.hi - 1, 10**6)[code]
    return int(min(max(int(age), lo), hi))


def _item_lookup(images: pd.DataFrame) -> tuple[dict, dict]:
    """{image path: (split, person, person_id, age)} and, for train people,
    {person key: (folder, person_id, age)} from the first photo. Plain dicts built from lists:
    per-row pandas lookups on 31,500 rows cost milliseconds each."""
    cols = [images[c].tolist() for c in ("path", "split", "person", "person_id", "age")]
    by_path, people = {}, {}
    for path, split, person, person_id, age in zip(*cols):
        by_path[path] = (split, person, person_id, int(age))
        if split == "train" and person not in people:
            people[person] = (path.rsplit("/", 1)[0], person_id, int(age))
    return by_path, people


def relabel_frame(store: ReviewStore, fingerprint: str, index_images: pd.DataFrame) -> pd.DataFrame:
    """Current decisions of a dataset joined with its index: one row per (item, field),
    columns `RELABEL_COLUMNS`, ordered by path then field.

    `path` is the image path, or for a person item the person's folder (e.g.
    `images/train/<person>`); `item_kind` "image", "person" or "missing" (not in the index any
    more: the data changed since the decision). `given`/`new` are codes, `*_name` their words.
    """
    latest = store.latest(fingerprint)
    latest = latest[latest["field"] != FILE_FIELD]  # keep / exclude a file: excluded_files() lists those
    by_path, people = _item_lookup(index_images)
    rows = []
    for rec in latest.itertuples(index=False):
        field, bins = rec.field, bins_from_text(rec.bins)
        if rec.item in by_path:
            split, person, person_id, given_age = by_path[rec.item]
            kind, path = "image", rec.item
        elif rec.item in people:
            path, person_id, given_age = people[rec.item]
            kind, split, person = "person", "train", rec.item
        else:
            kind, path, split, person, person_id = "missing", rec.path or rec.item, rec.split, rec.person, ""
            given_age = -1
        given = rec.given
        new = rec.new_value
        changed = bool(rec.decision in ("accept", "set") and not pd.isna(new) and (pd.isna(given) or int(new) != int(given)))
        new_age, age_source = pd.NA, ""
        if field == "age" and not pd.isna(new):
            if not pd.isna(rec.new_age):
                new_age, age_source = int(rec.new_age), "reviewer"
            elif given_age >= 0 and getattr(rec, "keep_age", False):
                new_age, age_source = given_age, "kept"
            elif given_age >= 0:
                new_age = age_in_bin(given_age, int(new), bins) if changed else given_age
                age_source = "bin" if changed else "given"
        rows.append({
            "path": path, "item": rec.item, "item_kind": kind, "split": split, "person": person,
            "person_id": person_id, "field": field,
            "given": given, "given_name": value_name(field, given, bins),
            "new": new, "new_name": value_name(field, new, bins),
            "given_age": given_age if field == "age" and given_age >= 0 else pd.NA,
            "new_age": new_age, "new_age_source": age_source, "changed": changed,
            "decision": rec.decision, "detectors": rec.detectors, "score": rec.score,
            "note": rec.note, "reviewer": rec.reviewer, "time": rec.created,
        })
    frame = pd.DataFrame(rows, columns=RELABEL_COLUMNS)
    for col in ("given", "new", "given_age", "new_age"):
        frame[col] = frame[col].astype("Int64")
    frame["changed"] = frame["changed"].astype(bool)
    frame["score"] = frame["score"].astype("float64")
    return frame.sort_values(["path", "field"], kind="stable").reset_index(drop=True)


# A cell a spreadsheet may run as a formula: = + - @ after any whitespace (Unicode spaces and
# line breaks included), or a leading tab / CR / LF.
_FORMULA_START = r"\s*[=+\-@]|[\t\r\n]"


def guard_formulas(frame: pd.DataFrame, columns=FREE_TEXT_COLUMNS) -> pd.DataFrame:
    """A copy whose free-text cells (`columns`, typed by reviewers) that a spreadsheet would run as a
    formula (starting with = + - @, also after leading spaces or line breaks, which spreadsheets
    skip; or with tab, CR, LF) start with an apostrophe instead, which Excel and LibreOffice show
    as text (OWASP "CSV injection"). Other columns - manifests, paths, provenance - are left
    exactly as they are."""
    out = frame.copy()
    for col in columns:
        if col not in out.columns:
            continue
        text = out[col]
        risky = text.notna() & text.astype(str).str.match(_FORMULA_START)
        if risky.any():
            out[col] = text.astype(object).where(~risky, "'" + text.astype(str))
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8-with-BOM CSV bytes (what a download button serves), free text guarded
    against spreadsheet formulas (`guard_formulas`)."""
    buf = io.StringIO()
    guard_formulas(frame).to_csv(buf, index=False, lineterminator="\r\n")  # CRLF: what Excel writes and expects
    return buf.getvalue().encode(ENCODING)


def write_relabel_csv(frame: pd.DataFrame, path) -> Path:
    """Write any export frame as CSV (UTF-8 with BOM) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(csv_bytes(frame))
    tmp.replace(path)
    return path


def read_export_csv(path) -> pd.DataFrame:
    """Read an exported CSV back with every cell as text, exactly as written."""
    return pd.read_csv(path, encoding=ENCODING, dtype=str, keep_default_na=False)


# -- corrected labels per image ------------------------------------------------------------------

def corrected_images(decisions: pd.DataFrame, index_images: pd.DataFrame,
                     bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """Per indexed image (index order): given and corrected labels.

    Columns path, split, person, person_id, mask_type, mask, gender, age, age_bin, class_id,
    corrected_mask, corrected_gender, corrected_age, corrected_age_bin, corrected_class_id,
    changed_fields (';'-joined). A person decision applies to all of the person's train photos; an
    image decision to that image, and wins over its person's. Only `changed` decisions apply.
    Age: the corrected age is the decision's `new_age` and its bin under `bins` (the index's);
    where the age is unknown (hash-named eval files) the decision's bin code is taken as it is.
    """
    cols = ["path", "split", "person", "person_id", "mask_type", "mask", "gender", "age", "age_bin", "class_id"]
    out = index_images[cols].copy().reset_index(drop=True)
    # Plain arrays and dicts: only the rows a decision touches are visited (31,500 rows, a few
    # hundred decisions; per-cell pandas access would cost seconds).
    ages = out["age"].to_numpy(dtype=np.int64)
    corrected = {f: out[f].to_numpy(dtype=np.int64).copy() for f in ("mask", "gender", "age", "age_bin")}
    changed_fields: dict[int, set] = {}
    row_of_path = {p: i for i, p in enumerate(out["path"].tolist())}
    rows_of_person: dict[str, list[int]] = {}
    for i, (split, person) in enumerate(zip(out["split"].tolist(), out["person"].tolist())):
        if split == "train":
            rows_of_person.setdefault(person, []).append(i)
    live = decisions[decisions["changed"]] if len(decisions) else decisions
    # Person decisions first, image decisions after, so an image's own decision wins.
    for kind in ("person", "image"):
        for d in live[live["item_kind"] == kind].itertuples(index=False):
            if kind == "image":
                rows = [row_of_path[d.item]] if d.item in row_of_path else []
            else:
                rows = rows_of_person.get(d.item, [])
            for r in rows:
                if d.field == "age":
                    if getattr(d, "new_age_source", "") == "kept":
                        corrected["age_bin"][r] = int(d.new)  # the bin only; the age in years stays
                    elif ages[r] >= 0 and not pd.isna(d.new_age):
                        corrected["age"][r] = int(d.new_age)
                        corrected["age_bin"][r] = bins.bin(int(d.new_age))
                    else:
                        corrected["age_bin"][r] = int(d.new)
                else:
                    corrected[d.field][r] = int(d.new)
                changed_fields.setdefault(r, set()).add(d.field)
    for f, values in corrected.items():
        out[f"corrected_{f}"] = values
    out["corrected_class_id"] = L.class_id(corrected["mask"], corrected["gender"], corrected["age_bin"]).astype("int64")
    names = [""] * len(out)
    for r, fields in changed_fields.items():
        names[r] = ";".join(f for f in L.FIELDS if f in fields)
    out["changed_fields"] = names
    return out


# -- corrected manifests -------------------------------------------------------------------------

def _read_manifest(path: Path, columns: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=ENCODING)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return frame if columns[0] in frame.columns else None


def _folder_name(path: str) -> str:
    return path.rsplit("/", 2)[-2]


def _generated_train_csv(images: pd.DataFrame) -> pd.DataFrame:
    """train.csv in the download's shape, from the index (one row per train person)."""
    train = images[images["split"] == "train"].drop_duplicates("person")
    frame = pd.DataFrame({
        "id": train["person_id"].astype(str),
        "gender": train["gender"].map(lambda g: L.GENDERS[int(g)]),
        "race": train["race"].astype(str),
        "age": train["age"].astype(str),
        "path": train["path"].map(_folder_name),
    })
    for csv_col, idx_col in PROVENANCE.items():
        frame[csv_col] = train[idx_col].astype(str) if idx_col in train else ""
    frame["dataset_license"] = ""
    frame["dataset_license_url"] = ""
    return frame[TRAIN_CSV_COLUMNS].reset_index(drop=True)


def _generated_info_csv(images: pd.DataFrame) -> pd.DataFrame:
    """info.csv in the download's shape, from the index (one row per eval image)."""
    ev = images[images["split"] == "eval"]
    frame = pd.DataFrame({"ImageID": ev["path"].map(lambda p: p.rsplit("/", 1)[-1]),
                          "ans": ev["class_id"].astype(str)})
    for csv_col, idx_col in PROVENANCE.items():
        frame[csv_col] = ev[idx_col].astype(str) if idx_col in ev else ""
    frame["dataset_license"] = ""
    frame["dataset_license_url"] = ""
    return frame[INFO_CSV_COLUMNS].reset_index(drop=True)


def _person_key(person_id: str, gender: int, race: str, age: int) -> str:
    return f"{person_id}_{L.GENDERS[int(gender)]}_{race}_{int(age)}"


def corrected_manifests(data_root, layout: str, decisions: pd.DataFrame, index_images: pd.DataFrame,
                        *, bins: L.AgeBins = L.DEFAULT_BINS) -> dict[str, pd.DataFrame]:
    """Corrected copies of the manifests: {"train.csv", "info.csv", "images.csv"} -> DataFrame.

    `decisions`: `relabel_frame` output; `index_images`: `DatasetIndex.images` of `data_root`
    (its `layout`, a name in `audit.layouts`). The layout's CSVs are read as text and only the
    cells of changed people/images are rewritten; CSVs the layout lacks or the folder misses are
    generated from the index. `bins`: the bins of the index (what `ans` is made with; the real
    info.csv uses the default bins).
    """
    data_root = Path(data_root)
    where = get_layout(layout)
    images = corrected_images(decisions, index_images, bins)
    train_img = images[images["split"] == "train"]

    # train.csv: one row per person folder; person-level gender/age changes only (a photo's own
    # change cannot be said in a per-person file; images.csv has it).
    train_csv = _read_manifest(data_root / where.train_csv, TRAIN_CSV_COLUMNS) if where.train_csv else None
    if train_csv is None:
        train_csv = _generated_train_csv(index_images)
    train_csv = train_csv.copy()
    person_changes = decisions[decisions["changed"] & (decisions["item_kind"] == "person")] if len(decisions) else decisions
    by_folder = {}
    for d in person_changes.itertuples(index=False):
        by_folder.setdefault(d.path.rsplit("/", 1)[-1], []).append(d)
    person_rows = train_img.drop_duplicates("person").set_index("person")
    folder_col = "path" if "path" in train_csv.columns else None
    folders = train_csv[folder_col].tolist() if folder_col else [""] * len(train_csv)
    gender_col = train_csv["gender"].tolist() if "gender" in train_csv.columns else None
    age_col = train_csv["age"].tolist() if "age" in train_csv.columns else None
    corrected_path, changed_col = list(folders), [""] * len(train_csv)
    for i, folder in enumerate(folders):
        if folder not in by_folder:
            continue
        fields = []
        for d in by_folder[folder]:
            if d.field == "gender" and gender_col is not None:
                gender_col[i] = L.GENDERS[int(d.new)]
                fields.append("gender")
            elif d.field == "age" and d.new_age_source == "kept":
                fields.append("age_bin")  # the bin changes, the age in years and the folder stay
            elif d.field == "age" and age_col is not None and not pd.isna(d.new_age):
                age_col[i] = str(int(d.new_age))
                fields.append("age")
        if not fields:
            continue
        changed_col[i] = ";".join(f for f in (*L.FIELDS, "age_bin") if f in fields)
        if fields == ["age_bin"]:
            continue
        p = person_rows.loc[by_folder[folder][0].item]
        race = train_csv.at[i, "race"] if "race" in train_csv.columns else p["race"]
        pid = train_csv.at[i, "id"] if "id" in train_csv.columns else p["person_id"]
        gender = gender_col[i] if gender_col is not None else L.GENDERS[int(p["gender"])]
        age = age_col[i] if age_col is not None else p["age"]
        try:
            corrected_path[i] = _person_key(pid, L.GENDERS.index(str(gender).lower()), race, int(age))
        except ValueError:  # a CSV cell that is not a gender / age: leave the folder name
            pass
    if gender_col is not None:
        train_csv["gender"] = gender_col
    if age_col is not None:
        train_csv["age"] = age_col
    train_csv["corrected_path"] = corrected_path
    train_csv["changed_fields"] = changed_col

    # info.csv: one row per eval file; ans recomputed where an image's labels changed.
    info_csv = _read_manifest(data_root / where.eval_csv, INFO_CSV_COLUMNS) if where.eval_csv else None
    if info_csv is None:
        info_csv = _generated_info_csv(index_images)
    info_csv = info_csv.copy()
    ev = images[(images["split"] == "eval") & (images["changed_fields"] != "")].copy()
    ev["ImageID"] = ev["path"].map(lambda p: p.rsplit("/", 1)[-1])
    changed_eval = {r["ImageID"]: r for r in ev.drop_duplicates("ImageID").to_dict("records")}
    image_ids = info_csv["ImageID"].tolist()
    ans_col = info_csv["ans"].tolist() if "ans" in info_csv.columns else None
    corrected_id, changed_col = list(image_ids), [""] * len(info_csv)
    for i, image_id in enumerate(image_ids):
        r = changed_eval.get(image_id)
        if r is None:
            continue
        if ans_col is not None:
            ans_col[i] = str(int(r["corrected_class_id"]))
        changed_col[i] = r["changed_fields"]
        corrected_id[i] = _corrected_image_id(image_id, r)
    if ans_col is not None:
        info_csv["ans"] = ans_col
    info_csv["corrected_ImageID"] = corrected_id
    info_csv["changed_fields"] = changed_col
    return {"train.csv": train_csv, "info.csv": info_csv, "images.csv": images}


def _corrected_image_id(image_id: str, r) -> str:
    """The eval file name the corrected labels imply (`{id}_{gender}_{race}_{age}_{mask_type}.{ext}`),
    or the name itself where it carries no labels (hash names) or the age is unknown."""
    from audit.name_parsing import parse_eval_file

    try:
        parsed = parse_eval_file(image_id)
    except ValueError:
        return image_id
    mask_type = parsed.mask_type
    if int(r["corrected_mask"]) != int(r["mask"]):
        mask_type = {0: "mask", 1: "incorrect_mask", 2: "normal"}[int(r["corrected_mask"])]
    age = int(r["corrected_age"]) if int(r["corrected_age"]) >= 0 else parsed.person.age
    key = _person_key(parsed.person.id, int(r["corrected_gender"]), parsed.person.race, age)
    return f"{key}_{mask_type}.{image_id.rsplit('.', 1)[-1]}"


def manifest_preview(data_root, layout: str, decisions: pd.DataFrame, index_images: pd.DataFrame,
                     *, bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """What the corrected manifests will say, before anything is written: one row per person
    folder or eval file they rename, or whose age in years they set.

    Columns `kind` ("person folder" / "eval file"), `old` (folder or file name), `new` (the name
    the corrected labels imply; equal to `old` when only the age bin changes), `renamed` (bool),
    `given_age`, `new_age` (years; NA for eval files without an age), `age_source` ("reviewer",
    "bin", "kept"), `changed_fields`. Nothing is renamed on disk either way.
    """
    manifests = corrected_manifests(data_root, layout, decisions, index_images, bins=bins)
    ages = {}
    if len(decisions):
        for d in decisions[(decisions["field"] == "age") & decisions["changed"]].itertuples(index=False):
            ages[d.path.rsplit("/", 1)[-1] if d.item_kind == "person" else d.path.rsplit("/", 1)[-1]] = (
                d.given_age, d.new_age, d.new_age_source)
    rows = []
    train = manifests["train.csv"]
    folders = train["path"].tolist() if "path" in train.columns else [""] * len(train)
    for folder, new, fields in zip(folders, train["corrected_path"], train["changed_fields"]):
        if fields:
            given_age, new_age, source = ages.get(folder, (pd.NA, pd.NA, ""))
            rows.append({"kind": "person folder", "old": folder, "new": new, "renamed": new != folder,
                         "given_age": given_age, "new_age": new_age, "age_source": source,
                         "changed_fields": fields})
    info = manifests["info.csv"]
    for image_id, new, fields in zip(info["ImageID"], info["corrected_ImageID"], info["changed_fields"]):
        if fields:
            given_age, new_age, source = ages.get(image_id, (pd.NA, pd.NA, ""))
            rows.append({"kind": "eval file", "old": image_id, "new": new, "renamed": new != image_id,
                         "given_age": given_age, "new_age": new_age, "age_source": source,
                         "changed_fields": fields})
    frame = pd.DataFrame(rows, columns=["kind", "old", "new", "renamed", "given_age", "new_age", "age_source",
                                        "changed_fields"])
    for col in ("given_age", "new_age"):
        frame[col] = frame[col].astype("Int64")
    frame["renamed"] = frame["renamed"].astype(bool)
    return frame


# -- everything at once --------------------------------------------------------------------------

def exports_dir() -> Path:
    return workspace_dir() / "exports"


def export_all(store: ReviewStore, index, out_dir=None) -> dict[str, Path]:
    """Write relabel.csv, train.csv, info.csv, images.csv and history.csv for `index` (a
    DatasetIndex) into `out_dir` (default `workspace/exports/<UTC timestamp>/`); returns
    name -> path. Never touches the dataset folder."""
    if out_dir is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
        out_dir = exports_dir() / stamp
    out_dir = Path(out_dir)
    if out_dir.resolve().is_relative_to(Path(index.root).resolve()):
        raise ValueError(f"export folder {out_dir} lies inside the dataset {index.root}; choose another")
    out_dir.mkdir(parents=True, exist_ok=True)
    decisions = relabel_frame(store, index.fingerprint, index.images)
    frames = {"relabel.csv": decisions}
    frames.update(corrected_manifests(index.root, index.layout, decisions, index.images, bins=index.bins))
    frames["history.csv"] = store.history(index.fingerprint)
    excluded = excluded_files(store, index.fingerprint, index.images)
    frames = leave_out_excluded(frames, excluded)
    return {name: write_relabel_csv(frame, out_dir / name) for name, frame in frames.items()}


# -- excluded files (data-quality decisions, audit.quality) ------------------------------------------

EXCLUDED_COLUMNS = ["path", "split", "person", "note", "reviewer", "time"]


def excluded_files(store: ReviewStore, fingerprint: str, index_images: pd.DataFrame) -> pd.DataFrame:
    """Files whose current data-quality decision is "exclude" (field `file`, value FILE_EXCLUDE):
    columns EXCLUDED_COLUMNS, by path. Paths no longer in the index are listed too (split "")."""
    latest = store.latest(fingerprint)
    rows = latest[(latest["field"] == FILE_FIELD) & (latest["new_value"] == FILE_EXCLUDE)]
    split_of = dict(zip(index_images["path"].tolist(), index_images["split"].tolist()))
    person_of = dict(zip(index_images["path"].tolist(), index_images["person"].tolist()))
    frame = pd.DataFrame({
        "path": rows["item"].astype(str).tolist(),
        "split": [split_of.get(p, "") for p in rows["item"]],
        "person": [person_of.get(p, "") for p in rows["item"]],
        "note": rows["note"].tolist(), "reviewer": rows["reviewer"].tolist(), "time": rows["created"].tolist(),
    }, columns=EXCLUDED_COLUMNS)
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def leave_out_excluded(frames: dict[str, pd.DataFrame], excluded: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The corrected manifests without the excluded files, plus "excluded_files.csv" (only when a
    file is excluded): images.csv drops their rows, info.csv their eval rows, train.csv a person
    only when all of the person's photos are excluded (and says which were, in `excluded_files`).
    The images are never touched."""
    out = dict(frames)
    gone = set(excluded["path"])
    if gone:
        out["excluded_files.csv"] = excluded
    images = frames.get("images.csv")
    if images is not None:
        out["images.csv"] = images[~images["path"].isin(gone)].reset_index(drop=True)
    info = frames.get("info.csv")
    gone_eval = {p.rsplit("/", 1)[-1] for p in excluded.loc[excluded["split"] == "eval", "path"]}
    if info is not None and "ImageID" in info.columns:
        out["info.csv"] = info[~info["ImageID"].isin(gone_eval)].reset_index(drop=True)
    train = frames.get("train.csv")
    if train is not None and images is not None and "path" in train.columns:
        in_train = images[images["split"] == "train"]
        folder = in_train["path"].str.rsplit("/", n=2).str[-2]
        per_folder = in_train.assign(_folder=folder, _gone=in_train["path"].isin(gone)).groupby("_folder")
        names = per_folder.apply(lambda g: ";".join(p.rsplit("/", 1)[-1] for p in g.loc[g["_gone"], "path"]),
                                 include_groups=False) if len(in_train) else pd.Series(dtype=str)
        all_gone = per_folder["_gone"].all() if len(in_train) else pd.Series(dtype=bool)
        train = train.copy()
        train["excluded_files"] = train["path"].map(names).fillna("")
        out["train.csv"] = train[~train["path"].map(all_gone).fillna(False).astype(bool)].reset_index(drop=True)
    return out
