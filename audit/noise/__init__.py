"""Label-noise detectors: one module per detector, each a pure function
`(predictions[, embeddings], *, options) -> DataFrame` in the shape below, plus `merge.py`
(one review queue), `scoring.py` (scores against a known truth) and `bench.py` (the benchmark).

A detector frame has one row per (item, field) it judges, columns `DETECTOR_COLUMNS`:
- `item`: the image path for mask and for eval rows; the `person` key for train gender/age;
- `item_kind`: "image" or "person";
- `field`: "mask", "gender" or "age";
- `split`, `person`, `path` (a representative image path: the person's `normal` photo);
- `given`, `suggested`: int codes (audit.labels); `suggested` is the best value other than `given`;
- `score`: float, higher = more likely wrong, comparable within one detector;
- `flagged`: bool, the detector's own verdict that the label is probably wrong;
- `evidence`: one readable sentence; `detector`: the detector's name.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L

DETECTOR_COLUMNS = [
    "item", "item_kind", "field", "split", "person", "path",
    "given", "suggested", "score", "flagged", "evidence", "detector",
]
# Floor for probabilities before taking logs: one over-confident photo may cost at most
# log(1e-4) ~ -9.2 nats, so a single odd image cannot outvote six clear ones on its own.
PROB_FLOOR = 1e-4
# Fields whose person-level evidence is read from the unmasked view (`view_weights`): gender, whose
# decisive cues (beard, lips, jaw) hide under a mask. Age's cues (lines, grey hair) show above it,
# and the mean over all 7 photos reads it better (BENCHMARKS.md, twelfth session).
VIEW_FIELDS = frozenset({"gender"})


def head_probs(df: pd.DataFrame, field: str) -> np.ndarray:
    """A field's head probabilities (N, K) float64 from the `p_<head>_<k>` columns."""
    return df[list(L.FIELD_INFO[field].prob_columns)].to_numpy(dtype=np.float64)


def given_codes(df: pd.DataFrame, field: str) -> np.ndarray:
    """A field's given labels (N,) int64."""
    return df[L.FIELD_INFO[field].label_column].to_numpy(dtype=np.int64)


def log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, PROB_FLOOR, 1.0))


def best_other(values: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Index of the largest value per row other than the given column. values (N, K), given (N,)."""
    v = np.array(values, dtype=np.float64, copy=True)
    v[np.arange(len(v)), given] = -np.inf
    return v.argmax(axis=1)


def is_person_item(df: pd.DataFrame, field: str) -> np.ndarray:
    """(N,) bool: rows whose (row, field) is judged per person (train gender/age)."""
    return (df["split"].to_numpy() == "train") & (field != "mask")


def person_groups(df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Group a frame's rows by person.

    Returns (codes (N,) int64 person index per row, people frame with one row per person in
    code order: person, split, path (the `normal` photo, else the first), n (photos)).
    """
    codes, uniques = pd.factorize(df["person"], sort=False)
    n_people = len(uniques)
    paths = df["path"].to_numpy()
    is_normal = (df["mask_type"].to_numpy() == "normal") if "mask_type" in df.columns else np.zeros(len(df), bool)
    rep = np.full(n_people, -1, dtype=np.int64)
    # First row per person, then overwrite with its `normal` photo: the unmasked face is the one to review.
    order = np.arange(len(df))
    first = np.full(n_people, len(df), dtype=np.int64)
    np.minimum.at(first, codes, order)
    rep[:] = first
    rep[codes[is_normal]] = order[is_normal]
    people = pd.DataFrame({
        "person": np.asarray(uniques, dtype=object),
        "split": df["split"].to_numpy()[rep],
        "path": paths[rep],
        "n": np.bincount(codes, minlength=n_people),
    })
    return codes.astype(np.int64), people


def mask_states(df: pd.DataFrame) -> np.ndarray | None:
    """(N,) the mask state each row's run sees (argmax of its own mask head), or None without one."""
    cols = list(L.FIELD_INFO["mask"].prob_columns)
    if any(c not in df.columns for c in cols):
        return None
    return df[cols].to_numpy(dtype=np.float64).argmax(axis=1)


def view_weights(df: pd.DataFrame, codes: np.ndarray, field: str) -> np.ndarray:
    """(N,) weight per row of a person's photos (`codes`: person index per row) when the person's
    evidence on `field` is combined. Fields outside VIEW_FIELDS, and frames without mask
    probabilities: 1 each. Gender: the photo(s) the run itself sees unmasked (`mask_states`, no label
    involved) carry the person, 1 / their number each, the others 0; a person without one gets each
    mask state once instead (1 / the person's photos in that state).

    In the post-competition set a person's 7 photos are one source face with masks added: the
    unmasked photo shows everything the masked ones do and the beard, lips and jaw besides, so
    summing all 7 as independent readings counts the upper face seven times and lets five worn-mask
    photos outvote the one that shows the cues (BENCHMARKS.md "Label-noise detectors", twelfth
    session: on the fit seeds gender AUPRC 0.869 summed, 0.906 each state once, 0.942 unmasked)."""
    state = mask_states(df) if field in VIEW_FIELDS else None
    if state is None or not len(df):
        return np.ones(len(df))
    codes = codes.astype(np.int64)
    _, inverse, counts = np.unique(codes * L.N_MASK + state, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    unmasked = state == L.MASK_STATES.index("not_wear")
    has_unmasked = np.bincount(codes, weights=unmasked, minlength=codes.max() + 1) > 0
    return np.where(has_unmasked[codes], np.where(unmasked, weights, 0.0), weights)


def detector_frame(columns: dict, detector: str) -> pd.DataFrame:
    """Assemble a detector frame from column arrays (every DETECTOR_COLUMNS entry but `detector`)."""
    out = pd.DataFrame({c: columns[c] for c in DETECTOR_COLUMNS if c != "detector"})
    out["detector"] = detector
    return out.astype({"given": np.int64, "suggested": np.int64, "score": np.float64, "flagged": bool})


def empty_detector_frame() -> pd.DataFrame:
    return detector_frame({c: [] for c in DETECTOR_COLUMNS}, "")


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_detector_frame()
    return pd.concat(frames, ignore_index=True)
