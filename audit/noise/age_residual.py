"""Age-regression residuals with the bin boundaries in mind.

The model's predicted age (`pred_age`, years; for a train person the mean over their photos)
is compared with the given age's bin: the signed distance (years) from the predicted age to the
given bin's interval is positive when the prediction lies across a boundary (the further, the
surer) and negative inside the bin (minus the distance to its nearest edge). The score is that
distance divided by a robust spread of the residuals (1.4826 x the median absolute deviation
of pred_age - given age over train people), so it reads in standard deviations.
The suggestion is the predicted age's bin, or the nearest other bin when it falls inside.
Rows without `pred_age` (NaN, e.g. imported predictions) are skipped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import detector_frame, empty_detector_frame, person_groups

NAME = "age_residual"


def signed_distance_outside(age: np.ndarray, bin_code: np.ndarray, bins: L.AgeBins) -> np.ndarray:
    """Years from `age` to the interval of bin `bin_code`: > 0 outside, <= 0 inside (minus the
    distance to the nearer edge; an open-ended bin has one edge). Shapes (N,)."""
    age = np.asarray(age, dtype=np.float64)
    lo = np.array([-np.inf, bins.lo, bins.hi])[bin_code]
    hi = np.array([bins.lo, bins.hi, np.inf])[bin_code]
    outside = np.maximum(lo - age, age - hi)
    return np.where(outside > 0, outside, -np.minimum(age - lo, hi - age))


def age_residual(predictions: pd.DataFrame, *, bins: L.AgeBins = L.DEFAULT_BINS, include_eval: bool = True,
                 min_scale: float = 1.0) -> pd.DataFrame:
    """Detector frame (see audit.noise) for the age field; empty without pred_age."""
    if "pred_age" not in predictions.columns:
        return empty_detector_frame()
    df = predictions[predictions["pred_age"].notna()]
    if not include_eval:
        df = df[df["split"] == "train"]
    if not len(df):
        return empty_detector_frame()
    train = df[df["split"] == "train"]
    ev = df[df["split"] != "train"]
    parts = []
    if len(train):
        codes, people = person_groups(train)
        n = people["n"].to_numpy()
        pred = np.bincount(codes, weights=train["pred_age"].to_numpy(dtype=float), minlength=len(people)) / n
        given_age = np.zeros(len(people))
        given_age[codes] = train["age"].to_numpy(dtype=float)
        given_bin = np.zeros(len(people), dtype=np.int64)
        given_bin[codes] = train["age_bin"].to_numpy(dtype=np.int64)
        parts.append(("person", people["person"].to_numpy(), people, pred, given_age, given_bin, n))
    if len(ev):
        people = pd.DataFrame({"person": ev["person"].to_numpy(), "split": ev["split"].to_numpy(),
                               "path": ev["path"].to_numpy()})
        parts.append(("image", ev["path"].to_numpy(), people, ev["pred_age"].to_numpy(dtype=float),
                      ev["age"].to_numpy(dtype=float), ev["age_bin"].to_numpy(dtype=np.int64), np.ones(len(ev), int)))
    # One spread for all rows (from train people when there are any) keeps scores comparable.
    ref = parts[0]
    resid = ref[3] - ref[4]
    scale = max(float(1.4826 * np.median(np.abs(resid - np.median(resid)))), min_scale)
    names = bins.labels
    frames = []
    for kind, item, people, pred, given_age, given_bin, _n in parts:
        d = signed_distance_outside(pred, given_bin, bins)
        pred_bin = np.asarray(bins.bin(pred), dtype=np.int64).reshape(-1)
        # Inside the given bin: suggest the neighbouring bin on the predicted age's side.
        mid = np.array([bins.lo, (bins.lo + bins.hi) / 2, bins.hi])[given_bin]
        inside_alt = np.where(given_bin == 0, 1, np.where(given_bin == 2, 1, np.where(pred < mid, 0, 2)))
        suggested = np.where(pred_bin != given_bin, pred_bin, inside_alt)
        what = "mean predicted age" if kind == "person" else "predicted age"
        evidence = [
            f"{what} {p:.1f} ({names[s]}) vs labelled {a:.0f} ({names[g]}): "
            + (f"{dd:.1f} years outside the labelled bin" if dd > 0 else f"inside the labelled bin, {-dd:.1f} years from its edge")
            for p, s, a, g, dd in zip(pred, suggested, given_age, given_bin, d)
        ]
        frames.append(detector_frame({
            "item": item, "item_kind": kind, "field": "age", "split": people["split"].to_numpy(),
            "person": people["person"].to_numpy(), "path": people["path"].to_numpy(), "given": given_bin,
            "suggested": suggested, "score": d / scale, "flagged": d > 0, "evidence": evidence,
        }, NAME))
    return pd.concat(frames, ignore_index=True)
