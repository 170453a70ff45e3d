"""A second opinion: another run of the same data judges the labels.

Any other run of the same images - another architecture, the domain-pretrained backbone's own
heads, or predictions imported from a face-attribute service (`python -m audit import-predictions`)
- is evidence the primary model cannot give: when it was made without these labels it cannot have
learned their mistakes, and two models that fail on different faces rarely agree against a label
by accident. The other run's rows are matched to the primary run's by image path (rows it lacks are
not judged).

`second_opinion`: the person-level log-likelihood ratio (`audit.noise.person_level`, prior-corrected)
of the best other value against the given one under the OTHER run's head probabilities; images
(mask, eval rows) alone. Score > 0: the other run favours another value.

`ensemble`: cleanlab's `get_label_quality_ensemble_scores` over both runs' probabilities per image
(members weighted by their accuracy against the given labels), 1 - quality averaged per person
for train gender/age (gender: read from the photo the other run sees unmasked, `view_weights`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import best_other, concat_frames, detector_frame, given_codes, head_probs, log_probs
from audit.noise import person_groups, view_weights

NAME = "second_opinion"
ENSEMBLE_NAME = "ensemble"
LABEL_COLUMNS = ("path", "split", "person", "mask_type", "mask", "gender", "age", "age_bin")


def align_other(predictions: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The primary run's rows that the other run also predicted, with the primary's labels and the
    OTHER run's head probabilities (p_mask_*, p_gender_*, p_age_*), in the primary's row order."""
    prob_cols = [c for f in L.FIELD_INFO.values() for c in f.prob_columns]
    missing = [c for c in prob_cols if c not in other.columns]
    if missing:
        raise ValueError(f"the second-opinion run lacks {', '.join(missing[:3])}")
    labels = predictions[[c for c in LABEL_COLUMNS if c in predictions.columns]].reset_index(drop=True)
    probs = other[["path", *prob_cols]].drop_duplicates("path")
    return labels.merge(probs, on="path", how="inner", sort=False)


def second_opinion(predictions: pd.DataFrame, other: pd.DataFrame, *, fields=L.FIELDS,
                   bins: L.AgeBins = L.DEFAULT_BINS, other_name: str = "another run") -> pd.DataFrame:
    """Detector frame (see audit.noise): the labels of `predictions` judged by `other`'s probabilities."""
    from audit.noise.person_level import person_level

    both = align_other(predictions, other)
    if not len(both):
        return concat_frames([])
    frames = []
    person_fields = tuple(f for f in fields if f != "mask")
    if person_fields:
        pl = person_level(both, fields=person_fields, bins=bins)
        if len(pl):
            pl = pl.copy()
            pl["evidence"] = f"{other_name}: " + pl["evidence"].astype(str)
            pl["detector"] = NAME
            frames.append(pl)
    if "mask" in fields:
        names = L.field_value_names("mask", bins)
        lp = log_probs(head_probs(both, "mask"))
        g = given_codes(both, "mask")
        sug = best_other(lp, g)
        r = np.arange(len(g))
        score = lp[r, sug] - lp[r, g]
        p = np.exp(lp)
        frames.append(detector_frame({
            "item": both["path"].to_numpy(), "item_kind": "image", "field": "mask",
            "split": both["split"].to_numpy(), "person": both["person"].to_numpy(), "path": both["path"].to_numpy(),
            "given": g, "suggested": sug, "score": score, "flagged": score > 0,
            "evidence": [f"{other_name}: photo looks {names[s].lower()} (p={p[i, s]:.2f}); labelled "
                         f"{names[gg].lower()} (p={p[i, gg]:.2f})" for i, (s, gg) in enumerate(zip(sug, g))],
        }, NAME))
    return concat_frames(frames)


def ensemble(predictions: pd.DataFrame, other: pd.DataFrame, *, fields=L.FIELDS,
             bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """Detector frame: cleanlab's ensemble label quality over the primary and the other run."""
    from cleanlab.rank import get_label_quality_ensemble_scores

    both = align_other(predictions, other)
    if not len(both):
        return concat_frames([])
    mine = predictions.drop_duplicates("path").set_index("path").loc[both["path"].to_numpy()].reset_index()
    frames = []
    for field in fields:
        names = L.field_value_names(field, bins)
        g = given_codes(both, field)
        p1, p2 = head_probs(mine, field), head_probs(both, field)
        for part in ("train", "eval"):
            sel = both["split"].to_numpy() == part
            if not sel.any():
                continue
            present = np.unique(g[sel])
            if len(present) < 2:
                continue
            q = get_label_quality_ensemble_scores(
                np.searchsorted(present, g[sel]), [_renorm(p1[sel][:, present]), _renorm(p2[sel][:, present])],
                weight_ensemble_members_by="accuracy", verbose=False)
            bad = 1.0 - q
            mean_p = (p1[sel] + p2[sel]) / 2
            sub = both[sel]
            if part == "train" and field != "mask":
                codes, people = person_groups(sub)
                n = people["n"].to_numpy()
                w = view_weights(sub, codes, field)
                score = np.bincount(codes, weights=w * bad, minlength=len(people)) / np.bincount(codes, weights=w)
                mp = np.zeros((len(people), mean_p.shape[1]))
                np.add.at(mp, codes, mean_p)
                mp /= n[:, None]
                gg = np.zeros(len(people), np.int64)
                gg[codes] = g[sel]
                item, kind, rows = people["person"].to_numpy(), "person", people
            else:
                score, mp, gg = bad, mean_p, g[sel]
                item, kind, rows = sub["path"].to_numpy(), "image", sub
            sug = best_other(mp, gg)
            frames.append(detector_frame({
                "item": item, "item_kind": kind, "field": field, "split": rows["split"].to_numpy(),
                "person": rows["person"].to_numpy(), "path": rows["path"].to_numpy(), "given": gg,
                "suggested": sug, "score": score, "flagged": score > 0.5,
                "evidence": [f"both runs together give {names[b].lower()} p={mp[i, b]:.2f}, "
                             f"{names[s].lower()} p={mp[i, s]:.2f}" for i, (b, s) in enumerate(zip(gg, sug))],
            }, ENSEMBLE_NAME))
    return concat_frames(frames)


def _renorm(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
