"""Pure parsers for the mask dataset's folder and file names (no I/O).

Names (see ../shared/data/real-manifest/README.md):

- person folder ``{id}_{gender}_{race}_{age}``, e.g. ``100k-000038_female_White_18``,
  ``ffhq-13643_female_LatinoHispanic_37``, ``000001_male_Asian_45``, ``003397-1_female_Asian_20``.
  Ids never hold an underscore, so the id and gender are read from the left and the age from the
  right; whatever lies between is the race, which may hold spaces or underscores
  (``Middle_Eastern``, ``Latino Hispanic``) and is mapped onto the real set's spelling when it is
  one of its six races.
- train file ``{mask_type}.{ext}`` with mask_type ``mask1``..``mask5``, ``incorrect_mask``,
  ``normal`` (a plain ``mask`` is also read, the index flags it as an extra photo).
- eval file ``{id}_{gender}_{race}_{age}_{mask_type}.{ext}`` with mask_type ``mask``,
  ``mask1``..``mask5``, ``incorrect_mask`` or ``normal``.
- ``ext`` is jpg, jpeg or png in any case; mask types and genders are read in any case too.

Every parser raises ``ValueError`` with a one-line reason when a name does not fit.
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple

from audit.labels import EVAL_MASK_TYPES, GENDERS, IMAGE_EXTENSIONS

PERSON_PATTERN = "{id}_{gender}_{race}_{age}"
EVAL_PATTERN = "{id}_{gender}_{race}_{age}_{mask_type}.{ext}"

# The six race values of the real manifests; other spellings of these map onto them.
KNOWN_RACES = ("White", "LatinoHispanic", "Asian", "Black", "MiddleEastern", "Indian")
_RACE_KEY = {re.sub(r"[\s_\-]", "", r).lower(): r for r in KNOWN_RACES}

# Leftmost match wins, so "..._incorrect_mask" is read as incorrect_mask, not "mask".
_EVAL_SUFFIX = re.compile(r"_(incorrect_mask|normal|mask[1-5]?)$", re.IGNORECASE)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]*$")
_AGE = re.compile(r"^\d{1,3}$")
_PERSON_FAST = re.compile(r"^([A-Za-z0-9][A-Za-z0-9\-]*)_(male|female)_([^\s_][^_]*?)_(\d{1,3})$", re.IGNORECASE)
_EVAL_FAST = re.compile(r"^([A-Za-z0-9][A-Za-z0-9\-]*)_(male|female)_([^\s_][^_]*?)_(\d{1,3})"
                        r"_(incorrect_mask|normal|mask[1-5]?)\.(jpe?g|png)$", re.IGNORECASE)
_GENDER_CODE = {g: i for i, g in enumerate(GENDERS)}
_TRAIN_NAMES = {f"{stem}.{ext}": (stem, ext) for stem in EVAL_MASK_TYPES for ext in IMAGE_EXTENSIONS}


class PersonName(NamedTuple):
    """A parsed person key: id (str), gender code (0 male, 1 female), race (str), age (years)."""

    id: str
    gender: int
    race: str
    age: int


class EvalName(NamedTuple):
    """A parsed eval file name: the person part, its key as written, mask_type (lower case), ext."""

    person: PersonName
    key: str
    mask_type: str
    ext: str


def is_hidden(name: str) -> bool:
    """Dotfiles (``._x.jpg``, ``.DS_Store``, ``.ipynb_checkpoints``) and zip's ``__MACOSX``."""
    return name.startswith(".") or name == "__MACOSX"


def split_ext(name: str) -> tuple[str, str]:
    """'normal.JPG' -> ('normal', 'jpg'); the extension lower-case without the dot ('' if none)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext.lower()


def is_image_name(name: str) -> bool:
    """True when the extension is one of the dataset's image extensions (any case)."""
    return split_ext(name)[1] in IMAGE_EXTENSIONS


@functools.lru_cache(maxsize=1024)
def normalise_race(race: str) -> str:
    """'Latino Hispanic', 'latino_hispanic' -> 'LatinoHispanic'; unknown races are kept as written."""
    race = race.strip()
    return _RACE_KEY.get(re.sub(r"[\s_\-]", "", race).lower(), race)


def parse_gender(text: str) -> int:
    """'male'/'female' (any case, padded) -> 0/1."""
    g = text.strip().lower()
    if g not in GENDERS:
        raise ValueError(f"gender {text!r} is not male or female")
    return GENDERS.index(g)


def parse_person(name: str) -> PersonName:
    """Person folder name (or eval name without its mask type) -> PersonName."""
    m = _PERSON_FAST.match(name)
    if m:  # the common case, one regex; the slow path below only explains failures and odd spacing
        pid, gender, race, age = m.groups()
        return PersonName(pid, _GENDER_CODE[gender.lower()], normalise_race(race), int(age))
    parts = name.split("_")
    if len(parts) < 4:
        raise ValueError(f"expected {PERSON_PATTERN}, got {len(parts)} part(s) separated by '_'")
    pid, age = parts[0].strip(), parts[-1].strip()
    if not _ID.match(pid):
        raise ValueError(f"id {parts[0]!r} is not letters, digits and hyphens")
    gender = parse_gender(parts[1])
    if not _AGE.match(age):
        raise ValueError(f"age {parts[-1]!r} is not a whole number of years")
    race = "_".join(parts[2:-1]).strip()
    if not race:
        raise ValueError("race is empty")
    return PersonName(pid, gender, normalise_race(race), int(age))


def parse_train_file(name: str) -> tuple[str, str]:
    """Train file name -> (mask_type lower-case, ext); e.g. 'Normal.JPG' -> ('normal', 'jpg')."""
    hit = _TRAIN_NAMES.get(name.lower())
    if hit is not None:  # the 24 valid names, any case: one dict look-up
        return hit
    stem, ext = split_ext(name)
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"extension {ext or '(none)'!r} is not one of {', '.join(IMAGE_EXTENSIONS)}")
    mask_type = stem.strip().lower()
    if mask_type not in EVAL_MASK_TYPES:
        raise ValueError(f"{stem!r} is not one of mask1..mask5, incorrect_mask, normal")
    return mask_type, ext


def parse_eval_file(name: str) -> EvalName:
    """Eval file name -> EvalName; e.g. 'ffhq-1_female_Asian_30_incorrect_mask.png'."""
    m = _EVAL_FAST.match(name)
    if m:  # the common case in one regex; the path below explains failures and reads odd races
        pid, gender, race, age, mask_type, ext = m.groups()
        person = PersonName(pid, _GENDER_CODE[gender.lower()], normalise_race(race), int(age))
        return EvalName(person, name[: m.end(4)], mask_type.lower(), ext.lower())
    stem, ext = split_ext(name)
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"extension {ext or '(none)'!r} is not one of {', '.join(IMAGE_EXTENSIONS)}")
    m = _EVAL_SUFFIX.search(stem)
    if not m:
        raise ValueError(f"expected {EVAL_PATTERN}: no mask type (mask, mask1..5, incorrect_mask, normal) at the end")
    key = stem[: m.start()]
    try:
        person = parse_person(key)
    except ValueError as err:
        raise ValueError(f"expected {EVAL_PATTERN}: {err}") from None
    return EvalName(person, key, m.group(1).lower(), ext)


def source_from_dataset(dataset: str) -> str:
    """A CSV `dataset` value -> 'GAN' (100k Faces), 'photo' (FFHQ) or '' when it names neither."""
    d = dataset.strip().lower()
    if "100k" in d:
        return "GAN"
    if "flickr" in d or "ffhq" in d:
        return "photo"
    return ""


def source_from_id(person_id: str) -> str:
    """Id prefix -> 'GAN' (`100k-`), 'photo' (`ffhq-`) or 'unknown'."""
    p = person_id.lower()
    if p.startswith("100k-"):
        return "GAN"
    if p.startswith("ffhq-"):
        return "photo"
    return "unknown"
