"""Confident learning (cleanlab) on out-of-fold head probabilities: the baseline.

Per field, at the image level: `cleanlab.filter.find_label_issues` says which images are
issues, `cleanlab.rank.get_label_quality_scores` (self-confidence = p(given label)) ranks them;
the image score is 1 - self-confidence. Train and eval rows are judged separately (eval comes
from the final model and has a different label mix).

For train gender/age, whose label belongs to a person, the image scores are aggregated per
person (`person_agg`: "max" by default, or "mean"; None keeps one row per image).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import (
    best_other, concat_frames, detector_frame, given_codes, head_probs, person_groups,
)

NAME = "cleanlab"


def image_issues(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab on one field: labels (N,), pred_probs (N, K) -> (score (N,) = 1 - p(given), issue (N,) bool).

    cleanlab needs every class present among the labels to estimate its thresholds; classes no
    image carries are dropped from the probabilities (renormalised) first. With fewer than two
    classes present there is nothing to estimate and an issue is simply argmax != given.
    """
    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(pred_probs, dtype=np.float64)
    if len(labels) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    present = np.unique(labels)
    if len(present) < 2:
        return 1.0 - p[np.arange(len(p)), labels], p.argmax(axis=1) != labels
    sub = p[:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    remap = np.searchsorted(present, labels)
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(remap, sub, method="self_confidence")
    try:
        with warnings.catch_warnings():
            # "too few examples in class k": expected on small slices; the scores still stand.
            warnings.simplefilter("ignore", UserWarning)
            issue = find_label_issues(remap, sub, filter_by="prune_by_noise_rate", n_jobs=1)
    except (ValueError, IndexError):
        # Degenerate confident joints (tiny slices) - fall back to the plain disagreement.
        issue = sub.argmax(axis=1) != remap
    return 1.0 - quality, np.asarray(issue, dtype=bool)


def confident_learning(predictions: pd.DataFrame, *, fields=L.FIELDS, person_agg: str | None = "max",
                       bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """Detector frame (see audit.noise). `person_agg`: "max", "mean" or None (per image)."""
    if person_agg not in ("max", "mean", None):
        raise ValueError(f"person_agg must be 'max', 'mean' or None, got {person_agg!r}")
    frames = []
    for split in ("train", "eval"):
        df = predictions[predictions["split"] == split]
        if not len(df):
            continue
        for field in fields:
            p = head_probs(df, field)
            given = given_codes(df, field)
            score, issue = image_issues(given, p)
            if split == "train" and field != "mask" and person_agg is not None:
                frames.append(_per_person(df, field, p, given, score, issue, person_agg, bins))
            else:
                frames.append(_per_image(df, field, p, given, score, issue, bins))
    return concat_frames(frames)


def _per_image(df, field, p, given, score, issue, bins):
    names = L.field_value_names(field, bins)
    suggested = best_other(p, given)
    evidence = [
        f"p(labelled {names[g].lower()})={p[r, g]:.2f}, p({names[s].lower()})={p[r, s]:.2f}"
        + ("; cleanlab flags it" if issue[r] else "")
        for r, (g, s) in enumerate(zip(given, suggested))
    ]
    return detector_frame({
        "item": df["path"].to_numpy(), "item_kind": "image", "field": field, "split": df["split"].to_numpy(),
        "person": df["person"].to_numpy(), "path": df["path"].to_numpy(), "given": given,
        "suggested": suggested, "score": score, "flagged": issue, "evidence": evidence,
    }, NAME)


def _per_person(df, field, p, given, score, issue, agg, bins):
    names = L.field_value_names(field, bins)
    codes, people = person_groups(df)
    n_people = len(people)
    n = people["n"].to_numpy()
    if agg == "max":
        person_score = np.full(n_people, -np.inf)
        np.maximum.at(person_score, codes, score)
    else:
        person_score = np.bincount(codes, weights=score, minlength=n_people) / n
    n_issues = np.bincount(codes, weights=issue.astype(float), minlength=n_people).astype(np.int64)
    mean_p = np.zeros((n_people, p.shape[1]))
    np.add.at(mean_p, codes, p)
    mean_p /= n[:, None]
    person_given = np.zeros(n_people, dtype=np.int64)
    person_given[codes] = given
    suggested = best_other(mean_p, person_given)
    evidence = [
        f"cleanlab flags {n_issues[i]} of {n[i]} photos; mean p(labelled {names[g].lower()})={mean_p[i, g]:.2f}"
        for i, g in enumerate(person_given)
    ]
    return detector_frame({
        "item": people["person"].to_numpy(), "item_kind": "person", "field": field, "split": people["split"].to_numpy(),
        "person": people["person"].to_numpy(), "path": people["path"].to_numpy(), "given": person_given,
        "suggested": suggested, "score": person_score,
        # A person is flagged when most of their photos are.
        "flagged": n_issues * 2 > n, "evidence": evidence,
    }, NAME)
