"""Classification metrics over a run's predictions: macro F1, per-class report, confusion
matrices, slices, and a metric across the values of one column (the fairness view).

Arrays and frames in, frames out, no I/O. Frames are a run's `predictions` (see
docs/ARCHITECTURE.md "A run"): given labels in `mask, gender, age_bin, class_id`, predictions in
`pred_mask, pred_gender, pred_age_bin, pred_class`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit import labels as L

# (given column, predicted column, number of codes) per head: the three fields, then the 18 classes.
HEADS = {
    **{f.name: (f.label_column, f.pred_column, f.n_codes) for f in L.FIELD_INFO.values()},
    "class": ("class_id", "pred_class", L.N_CLASSES),
}
# Columns `slice_frame` filters on.
SLICE_COLUMNS = ("split", "race", "source", "gender", "age_bin", "mask")


def confusion(y_true, y_pred, n: int) -> np.ndarray:
    """Counts (n, n): rows are the given (true) label, columns the prediction; codes 0..n-1."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n):
        raise ValueError(f"label codes must lie in 0..{n - 1}")
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def normalize_rows(matrix) -> np.ndarray:
    """Each row divided by its sum (recall view); all-zero rows stay zero. float64, same shape."""
    m = np.asarray(matrix, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


def _per_class(cm: np.ndarray):
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support, predicted


def macro_f1(y_true, y_pred, n_classes: int = L.N_CLASSES) -> float:
    """Unweighted mean of per-class F1 (the competition metric).

    Classes absent from both y_true and y_pred are left out, as scikit-learn's
    `f1_score(average="macro")` does, so a slice that lacks some classes is not marked down for
    them. A class that is present but never predicted right counts as F1 0. NaN for empty input.
    """
    cm = confusion(y_true, y_pred, n_classes)
    _, _, f1, support, predicted = _per_class(cm)
    present = (support + predicted) > 0
    return float(f1[present].mean()) if present.any() else float("nan")


def classification_report_frame(y_true, y_pred, labels=None, names=None) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support.

    `labels`: the codes to report (default 0..17), `names`: their readable names (default the
    18 class names). One row per label, index = code, columns name, precision, recall, f1,
    support, predicted (how often it was predicted). Absent classes show zeros.
    """
    labels = list(range(L.N_CLASSES)) if labels is None else [int(x) for x in labels]
    if names is None:
        names = L.class_names() if len(labels) == L.N_CLASSES else [str(x) for x in labels]
    if len(names) != len(labels):
        raise ValueError("names and labels differ in length")
    n = max(labels) + 1 if labels else 0
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = max(n, int(y_true.max(initial=-1)) + 1, int(y_pred.max(initial=-1)) + 1)
    precision, recall, f1, support, predicted = _per_class(confusion(y_true, y_pred, n))
    idx = np.asarray(labels, dtype=np.int64)
    return pd.DataFrame(
        {
            "name": list(names),
            "precision": precision[idx],
            "recall": recall[idx],
            "f1": f1[idx],
            "support": support[idx].astype(np.int64),
            "predicted": predicted[idx].astype(np.int64),
        },
        index=pd.Index(labels, name="code"),
    )


def attribute_confusions(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Given-vs-predicted counts per attribute: {"mask": (3,3), "gender": (2,2), "age": (3,3)}."""
    return {head: confusion(df[given], df[pred], n) for head, (given, pred, n) in HEADS.items() if head != "class"}


def class_confusion(df: pd.DataFrame) -> np.ndarray:
    """The 18x18 given-vs-predicted counts of a predictions frame."""
    return confusion(df["class_id"], df["pred_class"], L.N_CLASSES)


def slice_frame(df: pd.DataFrame, **filters) -> pd.DataFrame:
    """Rows matching every filter: column=value or column=[values]; None means no filter.

    Typical columns: split, race, source, gender, age_bin, mask (see SLICE_COLUMNS); any column
    of the frame is accepted. Unknown columns raise KeyError.
    """
    keep = np.ones(len(df), dtype=bool)
    for column, wanted in filters.items():
        if wanted is None:
            continue
        if column not in df.columns:
            raise KeyError(f"cannot slice on {column!r}: not a column of the frame")
        values = list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray, pd.Index)) else [wanted]
        keep &= df[column].isin(values).to_numpy()
    return df[keep]


def _summary_row(df: pd.DataFrame) -> dict:
    row = {"n": int(len(df))}
    for head, (given, pred, _n) in HEADS.items():
        row[f"acc_{head}"] = float((df[given].to_numpy() == df[pred].to_numpy()).mean()) if len(df) else float("nan")
    row["macro_f1"] = macro_f1(df["class_id"], df["pred_class"], L.N_CLASSES) if len(df) else float("nan")
    return row


METRICS = ("macro_f1", "acc_mask", "acc_gender", "acc_age", "acc_class")


@dataclass(frozen=True)
class GroupMetrics:
    """A metric across the values of one column, with the best and worst group."""

    table: pd.DataFrame  # one row per group value (index), columns n, acc_mask, acc_gender, acc_age, acc_class, macro_f1
    group_col: str
    metric: str  # the column of `table` best/worst/gap refer to
    best: object  # group value with the highest metric (None when no group qualifies)
    worst: object
    gap: float  # best minus worst, in the metric's units (NaN when no group qualifies)

    def summary(self) -> dict:
        t = self.table
        return {
            "group_col": self.group_col, "metric": self.metric, "best": self.best, "worst": self.worst,
            "best_value": float(t.loc[self.best, self.metric]) if self.best is not None else float("nan"),
            "worst_value": float(t.loc[self.worst, self.metric]) if self.worst is not None else float("nan"),
            "gap": self.gap,
        }


def metric_by_group(df: pd.DataFrame, group_col: str, *, metric: str = "macro_f1", min_n: int = 1) -> GroupMetrics:
    """n, per-head accuracy and 18-class macro F1 for every value of `group_col`.

    Groups with fewer than `min_n` rows stay in the table but are not eligible as best/worst,
    so a race with three photos does not define the gap.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if group_col not in df.columns:
        raise KeyError(f"cannot group on {group_col!r}: not a column of the frame")
    rows = {value: _summary_row(part) for value, part in df.groupby(group_col, sort=True, observed=True)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["n", "acc_mask", "acc_gender", "acc_age", "acc_class", "macro_f1"])
    table.index.name = group_col
    eligible = table[(table["n"] >= min_n) & table[metric].notna()] if len(table) else table
    if len(eligible):
        best, worst = eligible[metric].idxmax(), eligible[metric].idxmin()
        gap = float(eligible.loc[best, metric] - eligible.loc[worst, metric])
    else:
        best = worst = None
        gap = float("nan")
    return GroupMetrics(table=table, group_col=group_col, metric=metric, best=best, worst=worst, gap=gap)


def headline_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Macro F1 and per-head accuracy for train and eval.

    Index: "train" and "eval", each named "... (out-of-fold)" when every row of the split has a
    fold (predicted by a fold model that did not see it: train of a run made with folds, and eval
    when it joined the folds); an imported run or one from a model trained without folds keeps the
    plain name. A split with no rows is left out. Columns as in `metric_by_group`'s table.
    """
    rows = {}
    for split in ("train", "eval"):
        part = df[df["split"] == split]
        if not len(part):
            continue
        oof = "fold" in part.columns and bool((part["fold"] >= 0).all())
        rows[f"{split} (out-of-fold)" if oof else split] = _summary_row(part)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "acc_mask", "acc_gender", "acc_age", "acc_class", "macro_f1"])
