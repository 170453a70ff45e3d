"""The label scheme: one source of truth for mask states, genders, age bins and the 18 classes.

Class id = mask * 6 + gender * 3 + age_bin, with mask wear=0, incorrect=1, not wear=2;
male=0, female=1; age bins from an `AgeBins` (default <25, 25-39, >=40).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Codes are positions in these tuples.
MASK_STATES = ("wear", "incorrect", "not_wear")
MASK_NAMES = ("Wear", "Incorrect", "Not wear")
GENDERS = ("male", "female")
GENDER_NAMES = ("Male", "Female")

N_MASK = len(MASK_STATES)
N_GENDER = len(GENDERS)
N_AGE_BINS = 3
N_CLASSES = N_MASK * N_GENDER * N_AGE_BINS  # 18
# The 18-class probabilities in a run's predictions (the fields' own are on `Field`).
CLASS_PROB_COLUMNS = tuple(f"p_class_{i}" for i in range(N_CLASSES))

# File stems of a train person's 7 photos, and the mask state each stands for.
TRAIN_MASK_TYPES = {
    "mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
# Eval files also use a plain "mask".
EVAL_MASK_TYPES = {"mask": 0, **TRAIN_MASK_TYPES}
# How many photos of each mask state a complete train person has (5:1:1).
TRAIN_SLOTS_PER_MASK = (5, 1, 1)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


@dataclass(frozen=True)
class AgeBins:
    """Three age bins split at two edges: age < lo, lo <= age < hi, age >= hi (years)."""

    lo: int = 25
    hi: int = 40
    name: str = "default"

    def __post_init__(self):
        if not (0 < self.lo < self.hi):
            raise ValueError(f"age bin edges must satisfy 0 < lo < hi, got lo={self.lo}, hi={self.hi}")

    @property
    def edges(self) -> tuple[int, int]:
        return (self.lo, self.hi)

    @property
    def labels(self) -> tuple[str, str, str]:
        return (f"<{self.lo}", f"{self.lo}–{self.hi - 1}", f"≥{self.hi}")

    def bin(self, age):
        """Age in years (scalar or array) -> bin index 0..2 (same shape)."""
        out = np.digitize(np.asarray(age, dtype=float), [self.lo, self.hi])
        return int(out) if np.ndim(out) == 0 else out.astype(np.int64)

    def describe(self) -> str:
        return f"{self.name}: " + ", ".join(self.labels)

    def to_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "AgeBins":
        return cls(int(d["lo"]), int(d["hi"]), str(d.get("name", "custom")))


DEFAULT_BINS = AgeBins(25, 40, "default")
COMPETITION_BINS = AgeBins(30, 60, "competition")
BIN_PRESETS = {"default": DEFAULT_BINS, "competition": COMPETITION_BINS}


@dataclass(frozen=True)
class Field:
    """One labelled field (mask, gender or age), described once for every table and page.

    A predictions frame holds the given code in `label_column`, the model's code in `pred_column`
    and its head's probabilities in `prob_columns`; age's codes are bins, so its names come from
    an `AgeBins` (the run's or the sidebar's), never from a fixed tuple.
    """

    name: str  # "mask", "gender", "age": the key in reviews, queues and exports
    title: str  # "Mask", for headings and buttons
    label_column: str
    pred_column: str
    n_codes: int
    code_names: tuple[str, ...] | None  # None for age: see `value_names`

    @property
    def prob_prefix(self) -> str:
        return f"p_{self.name}_"

    @property
    def prob_columns(self) -> tuple[str, ...]:
        return tuple(f"{self.prob_prefix}{i}" for i in range(self.n_codes))

    def value_names(self, bins: AgeBins = DEFAULT_BINS) -> tuple[str, ...]:
        """Readable names of the codes: ('Wear', 'Incorrect', 'Not wear'), ..., or the bins' labels."""
        return self.code_names if self.code_names is not None else bins.labels


MASK_FIELD = Field("mask", "Mask", "mask", "pred_mask", N_MASK, MASK_NAMES)
GENDER_FIELD = Field("gender", "Gender", "gender", "pred_gender", N_GENDER, GENDER_NAMES)
AGE_FIELD = Field("age", "Age", "age_bin", "pred_age_bin", N_AGE_BINS, None)
FIELD_INFO = {f.name: f for f in (MASK_FIELD, GENDER_FIELD, AGE_FIELD)}
FIELDS = tuple(FIELD_INFO)  # ("mask", "gender", "age")


def field_info(name: str) -> Field:
    """The Field called `name`; ValueError naming the known fields otherwise."""
    try:
        return FIELD_INFO[name]
    except KeyError:
        raise ValueError(f"unknown field {name!r}; expected one of {FIELDS}") from None


def parse_bins(spec: str) -> AgeBins:
    """'default', 'competition' or 'LO,HI' (e.g. '30,60') -> AgeBins; ValueError otherwise."""
    spec = spec.strip()
    if spec in BIN_PRESETS:
        return BIN_PRESETS[spec]
    try:
        lo, hi = (int(x) for x in spec.split(","))
    except ValueError:
        raise ValueError(f"age bins must be 'default', 'competition' or 'LO,HI', got {spec!r}") from None
    return AgeBins(lo, hi, "custom")


def class_id(mask, gender, age_bin):
    """Codes (scalars or arrays) -> 18-class id (0..17)."""
    return np.asarray(mask) * 6 + np.asarray(gender) * 3 + np.asarray(age_bin) if np.ndim(mask) else int(mask) * 6 + int(gender) * 3 + int(age_bin)


def split_class(cid):
    """18-class id (scalar or array) -> (mask, gender, age_bin) codes."""
    cid = np.asarray(cid) if np.ndim(cid) else int(cid)
    return cid // 6, (cid // 3) % 2, cid % 3


def class_name(cid: int, bins: AgeBins = DEFAULT_BINS) -> str:
    m, g, a = split_class(int(cid))
    return f"{MASK_NAMES[m]} · {GENDER_NAMES[g]} · {bins.labels[a]}"


def class_names(bins: AgeBins = DEFAULT_BINS) -> list[str]:
    return [class_name(c, bins) for c in range(N_CLASSES)]


def field_value_names(field: str, bins: AgeBins = DEFAULT_BINS) -> tuple[str, ...]:
    """Readable names of a field's codes: mask -> ('Wear', ...), gender, age -> bin labels."""
    return field_info(field).value_names(bins)


def short_class_name(cid: int, bins: AgeBins = DEFAULT_BINS, *, ascii_only: bool = False) -> str:
    """Compact class name for dense places, e.g. "Wea·F·25–39" (matrix ticks), or with
    `ascii_only` "Wea F 25-39", without "<" or ">" (ages 0-24, 25-39, 40+; hover text)."""
    m, g, a = split_class(int(cid))
    if ascii_only:
        lo, hi = bins.edges
        age, sep = (f"0-{lo - 1}", f"{lo}-{hi - 1}", f"{hi}+")[a], " "
    else:
        age, sep = bins.labels[a], "·"
    return sep.join((MASK_NAMES[m][:3], GENDER_NAMES[g][0], age))


def class_table(bins: AgeBins = DEFAULT_BINS) -> pd.DataFrame:
    """The dataset description's 18-row table: class, mask, gender, age bin, readable name."""
    rows = []
    for cid in range(N_CLASSES):
        m, g, a = split_class(cid)
        rows.append({
            "class_id": cid,
            "mask": MASK_NAMES[m],
            "gender": GENDER_NAMES[g],
            "age": bins.labels[a],
            "name": class_name(cid, bins),
        })
    return pd.DataFrame(rows)


def class_probs_from_heads(p_mask, p_gender, p_age):
    """Per-head probabilities (N,3), (N,2), (N,3) -> 18-class probabilities (N,18).

    The heads are treated as independent given the image, so p(class) = p(mask) p(gender) p(age).
    """
    p_mask, p_gender, p_age = (np.asarray(p, dtype=np.float64) for p in (p_mask, p_gender, p_age))
    out = p_mask[:, :, None, None] * p_gender[:, None, :, None] * p_age[:, None, None, :]
    return out.reshape(len(p_mask), N_CLASSES)


def head_probs_from_classes(p_class):
    """18-class probabilities (N,18) -> marginals (N,3), (N,2), (N,3)."""
    p = np.asarray(p_class, dtype=np.float64).reshape(-1, N_MASK, N_GENDER, N_AGE_BINS)
    return p.sum(axis=(2, 3)), p.sum(axis=(1, 3)), p.sum(axis=(1, 2))
