"""Scoring detectors against a known truth (the demo's truth.csv).

Items scored: mask per train image, gender and age per train person (the unit the label belongs
to). An item a detector did not judge ranks below every judged one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L

RESULT_KEYS = ("field", "detector", "auroc", "auprc", "precision_at_k", "recall_at_k", "n_items", "n_noisy")


def truth_items(predictions: pd.DataFrame, truth: pd.DataFrame, *, bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """The items of the benchmark with their truth: columns field, item, noisy (bool).

    Joined to the predictions on `path`, so items use the run's keys (person key for gender/age,
    image path for mask). A person is noisy in a field when any of their photos is corrupted.
    """
    t = truth.set_index("path")
    train = predictions[predictions["split"] == "train"][["path", "person"]]
    missing = ~train["path"].isin(t.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} train images of the run have no row in the truth file")
    tt = t.loc[train["path"].to_numpy()]
    flags = {}
    for field in L.FIELDS:
        col = f"{field}_corrupted"
        if col in tt.columns:
            flags[field] = tt[col].to_numpy(dtype=bool)
        else:  # derive from true/given when the flag column is absent
            a, b = tt[f"true_{field}"].to_numpy(), tt[f"given_{field}"].to_numpy()
            flags[field] = (bins.bin(a) != bins.bin(b)) if field == "age" else (a != b)
    parts = [pd.DataFrame({"field": "mask", "item": train["path"].to_numpy(), "noisy": flags["mask"]})]
    for field in ("gender", "age"):
        per = pd.Series(flags[field], index=train["person"].to_numpy()).groupby(level=0, sort=True).any()
        parts.append(pd.DataFrame({"field": field, "item": per.index.to_numpy(), "noisy": per.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def precision_recall_at_k(scores: np.ndarray, noisy: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall among the k highest scores; a tie across the cut counts its
    expected share (as if ties were broken at random), so the order of rows never matters."""
    scores = np.asarray(scores, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=bool)
    n_noisy = int(noisy.sum())
    if k <= 0 or len(scores) == 0:
        return float("nan"), float("nan")
    k = min(k, len(scores))
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    hits = noisy[above].sum() + (k - above.sum()) * noisy[tied].mean()
    return float(hits / k), float(hits / n_noisy) if n_noisy else float("nan")


def score_ranking(scores: np.ndarray, noisy: np.ndarray) -> dict:
    """AUROC, AUPRC (average precision) and precision/recall at k = number of noisy items."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=bool)
    n_noisy = int(noisy.sum())
    both = 0 < n_noisy < len(noisy)
    p_at_k, r_at_k = precision_recall_at_k(scores, noisy, n_noisy)
    return {
        "auroc": float(roc_auc_score(noisy, scores)) if both else float("nan"),
        "auprc": float(average_precision_score(noisy, scores)) if both else float("nan"),
        "precision_at_k": p_at_k, "recall_at_k": r_at_k,
        "n_items": int(len(noisy)), "n_noisy": n_noisy,
    }


def score_detector(frame: pd.DataFrame, items: pd.DataFrame, field: str, detector: str) -> dict:
    """One result row: a detector frame (or the merged queue) scored on one field's items."""
    want = items[items["field"] == field]
    got = frame[frame["field"] == field].drop_duplicates("item").set_index("item")["score"].astype(float)
    scores = got.reindex(want["item"].to_numpy()).to_numpy()
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() - 1.0) if len(finite) else 0.0
    scores = np.where(np.isfinite(scores), scores, floor)
    return {"field": field, "detector": detector, **score_ranking(scores, want["noisy"].to_numpy())}


def score_all(detector_frames: dict, queue: pd.DataFrame | None, items: pd.DataFrame) -> pd.DataFrame:
    """Every detector that judged a field (and the merged queue as "merged") on every field."""
    rows = []
    for field in L.FIELDS:
        for name, frame in detector_frames.items():
            if len(frame) and (frame["field"] == field).any():
                rows.append(score_detector(frame, items, field, name))
        if queue is not None and len(queue):
            rows.append(score_detector(queue, items, field, "merged"))
    return pd.DataFrame(rows, columns=list(RESULT_KEYS))
