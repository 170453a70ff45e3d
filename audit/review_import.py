"""A relabel list made elsewhere (e.g. the fix lists teams of the original competition published)
-> review decisions, all or none.

The CSV (UTF-8, with or without BOM; header row required, names case-insensitive) has columns:

- `item`: an image path relative to the data root (`images/train/<person>/normal.jpg`), a person
  folder name (`000020_female_Asian_45`), or a person id (`000020`, `100k-000038`). A person (folder
  or id of a train person) stands for the person's gender and age; an id found only among eval
  images stands for each of those images.
- `field`: `mask`, `gender` or `age`. Mask is decided per image: give an image path.
- `value`: a code (mask 0..2, gender 0..1) or a readable value: `male`/`female` (`m`/`f`),
  `wear`/`incorrect`/`not wear` (also `mask`, `incorrect_mask`, `normal`, `not_wear`); for age, a
  whole number is an age in years (0..120), anything else a bin name (`<25`, `25-39`, `25–39`,
  `>=40`, `≥40`, `40+`).
- `note` (optional): kept with the decision.

Each row becomes a decision: "keep" when the value is the given one, else "set" (an age in years is
stored as `new_age`, its bin follows). Decisions carry the file's name as their `source` and the
given reviewer. Every row is checked first: unknown items, fields or impossible values are listed
with their line numbers (`RelabelListError`) and nothing is imported.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from audit import labels as L
from audit.reviews import MAX_AGE_YEARS, ReviewStore

REQUIRED_COLUMNS = ("item", "field", "value")
MASK_WORDS = {"wear": 0, "mask": 0, "worn": 0, "incorrect": 1, "incorrect_mask": 1, "incorrect mask": 1,
              "not wear": 2, "not_wear": 2, "notwear": 2, "normal": 2, "no mask": 2}
GENDER_WORDS = {"male": 0, "m": 0, "man": 0, "female": 1, "f": 1, "woman": 1}
ENCODING = "utf-8-sig"


class RelabelListError(ValueError):
    """The list has bad rows; `problems` holds (line, message) pairs. Nothing was imported."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.source, self.problems = source, problems
        super().__init__(f"{len(problems)} bad row{'s' if len(problems) != 1 else ''} in {source}; nothing imported "
                         f"(first: line {problems[0][0]}: {problems[0][1]})")

    def lines(self) -> list[str]:
        return [f"line {line}: {message}" for line, message in self.problems]


@dataclass
class RelabelPlan:
    """What a relabel list would record: `decisions` (dicts for `ReviewStore.record_many`) and the
    `problems` ((line, message), empty when the list is good)."""

    source: str
    decisions: list[dict] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


def _norm(text) -> str:
    return re.sub(r"\s+", " ", str(text or "").strip().lower())


def _age_bin_names(bins: L.AgeBins) -> dict[str, int]:
    lo, hi = bins.edges
    names = {}
    for code, label in enumerate(bins.labels):
        names[_norm(label)] = code
    names.update({f"<{lo}": 0, f"0-{lo - 1}": 0, f"under {lo}": 0,
                  f"{lo}-{hi - 1}": 1, f"{lo}–{hi - 1}": 1, f"{lo} - {hi - 1}": 1,
                  f">={hi}": 2, f"≥{hi}": 2, f"{hi}+": 2, f"{hi} and over": 2})
    return names


def parse_value(field_name: str, value, bins: L.AgeBins = L.DEFAULT_BINS) -> tuple[int, int | None]:
    """A cell of the `value` column -> (code, age in years or None); ValueError when impossible."""
    text = _norm(value)
    if not text:
        raise ValueError("empty value")
    if field_name == "mask":
        if text in MASK_WORDS:
            return MASK_WORDS[text], None
        if text.isdigit() and int(text) < L.N_MASK:
            return int(text), None
        raise ValueError(f"{value!r} is not a mask state (wear, incorrect, not wear or 0..2)")
    if field_name == "gender":
        if text in GENDER_WORDS:
            return GENDER_WORDS[text], None
        if text.isdigit() and int(text) < L.N_GENDER:
            return int(text), None
        raise ValueError(f"{value!r} is not a gender (male, female or 0..1)")
    if re.fullmatch(r"\d+(\.0+)?", text):
        years = int(float(text))
        if not 0 <= years <= MAX_AGE_YEARS:
            raise ValueError(f"age {years} is not 0..{MAX_AGE_YEARS} years")
        return bins.bin(years), years
    names = _age_bin_names(bins)
    if text in names:
        return names[text], None
    raise ValueError(f"{value!r} is not an age in years or an age bin ({', '.join(bins.labels)})")


def _read_rows(data) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """CSV bytes / text / path -> (header, [(line number, cells)]) with 1-based line numbers."""
    if isinstance(data, (bytes, bytearray)):
        text = bytes(data).decode(ENCODING)
    elif isinstance(data, Path) or (isinstance(data, str) and "\n" not in data and Path(data).is_file()):
        text = Path(data).read_text(encoding=ENCODING)
    else:
        text = str(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, start = [], 1
    for cells in reader:
        rows.append((start, cells))
        start = reader.line_num + 1
    if not rows:
        return [], []
    return [_norm(c) for c in rows[0][1]], rows[1:]


def plan_relabel_list(data, index, *, source: str, bins: L.AgeBins | None = None) -> RelabelPlan:
    """Check every row of a relabel list against `index` (a DatasetIndex) -> RelabelPlan.

    `data`: the CSV as bytes, text or a path. Nothing is written.
    """
    bins = bins or index.bins
    plan = RelabelPlan(source=source)
    try:
        header, rows = _read_rows(data)
    except UnicodeDecodeError:
        plan.problems.append((1, "the file is not UTF-8 text"))
        return plan
    except csv.Error as err:
        plan.problems.append((1, f"not a CSV file: {err}"))
        return plan
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        plan.problems.append((1, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                 f"(need item, field, value and optionally note)"))
        return plan
    col = {name: header.index(name) for name in (*REQUIRED_COLUMNS, "note") if name in header}

    images = index.images
    by_path = {r["path"]: r for r in images.to_dict("records")}
    train = images[images["split"] == "train"]
    first_photo = {r["person"]: r for r in train.drop_duplicates("person").to_dict("records")}
    person_ids: dict[str, list[str]] = {}
    for person, pid in zip(train.drop_duplicates("person")["person"], train.drop_duplicates("person")["person_id"]):
        person_ids.setdefault(str(pid), []).append(person)
    eval_rows = images[images["split"] == "eval"]
    eval_by_id: dict[str, list[dict]] = {}
    for r in eval_rows.to_dict("records"):
        eval_by_id.setdefault(str(r["person_id"]), []).append(r)

    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue  # blank line

        def cell(name: str, cells=cells) -> str:  # bound now: called within this iteration only
            i = col.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        item, field_name, value, note = cell("item"), _norm(cell("field")), cell("value"), cell("note")
        if field_name not in L.FIELDS:
            plan.problems.append((line, f"unknown field {cell('field')!r} (mask, gender or age)"))
            continue
        try:
            code, years = parse_value(field_name, value, bins)
        except ValueError as err:
            plan.problems.append((line, str(err)))
            continue
        key = item.replace("\\", "/").strip("/")
        # -> [(item key, given code, given age, split, person, path, kind)]
        targets = []
        if key in by_path:
            r = by_path[key]
            if field_name != "mask" and r["split"] == "train":
                p = first_photo[r["person"]]
                targets.append((r["person"], p, "person"))
            else:
                targets.append((key, r, "image"))
        elif key.rsplit("/", 1)[-1] in first_photo:
            person = key.rsplit("/", 1)[-1]
            targets.append((person, first_photo[person], "person"))
        elif key in person_ids and len(person_ids[key]) == 1:
            person = person_ids[key][0]
            targets.append((person, first_photo[person], "person"))
        elif key in person_ids:
            plan.problems.append((line, f"person id {item!r} names {len(person_ids[key])} train folders: "
                                        "give the folder name"))
            continue
        elif key in eval_by_id:
            targets += [(r["path"], r, "image") for r in eval_by_id[key]]
        else:
            plan.problems.append((line, f"unknown item {item!r} (not an image path, person folder or person id "
                                        "of this dataset)"))
            continue
        if field_name == "mask" and any(kind == "person" for _k, _r, kind in targets):
            plan.problems.append((line, f"mask is decided per image: give the image path, not {item!r}"))
            continue
        for item_key, r, _kind in targets:
            given = int(r[{"mask": "mask", "gender": "gender", "age": "age_bin"}[field_name]])
            given_age = int(r["age"])
            same = code == given and (years is None or years == given_age)
            plan.decisions.append(dict(
                item=item_key, field=field_name, decision="keep" if same else "set", given=given,
                new_value=None if same or years is not None else code,
                new_age=None if same else years, bins=bins, note=note, split=r["split"], person=r["person"],
                path=r["path"]))
    return plan


def import_relabel_list(store: ReviewStore, index, data, *, source: str, reviewer: str = "",
                        bins: L.AgeBins | None = None) -> list[int]:
    """Record every row of a relabel list as a decision, in one transaction; returns the row ids.
    RelabelListError (bad rows, with line numbers) leaves the store untouched."""
    plan = plan_relabel_list(data, index, source=source, bins=bins)
    if plan.problems:
        raise RelabelListError(source, plan.problems)
    return store.record_many(index.fingerprint, plan.decisions, reviewer=reviewer, source=source)


def plan_frame(plan: RelabelPlan, bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """The planned decisions as a table for a preview: item, field, decision, given, new, note."""
    from audit.export import value_name

    rows = [{"item": d["item"], "field": d["field"], "decision": d["decision"],
             "given": value_name(d["field"], d["given"], bins),
             "new": (f"age {d['new_age']}" if d.get("new_age") is not None else
                     value_name(d["field"], d["new_value"] if d["new_value"] is not None else d["given"], bins)),
             "note": d["note"]} for d in plan.decisions]
    return pd.DataFrame(rows, columns=["item", "field", "decision", "given", "new", "note"])
