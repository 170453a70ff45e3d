"""Person-level evidence for gender and age.

A train person's 7 photos share one gender and one age, so their head probabilities are
combined before judging: the log-likelihood of value c is the sum over the person's photos of
log p(c | photo); for gender, the photo the run sees unmasked carries the person alone
(`audit.noise.view_weights`: the masked photos are the same face with masks pasted on, the
unmasked one the only one that shows beard and lips). The score is the log-likelihood ratio
(nats) of the best other value against the given one: > 0 means the photos together favour
another value. Eval rows (whose labels are per image) are judged alone, with the same formula
over one photo.

Each photo's probability already carries the model's class prior, so summing n photos would
count it n times and hold rare values (an age bin of few people) down; with `prior_correction`
the extra n - 1 copies are divided out: L(c) = sum_i w_i log p(c | photo_i) - (n - 1) log prior(c),
n = sum_i w_i (gender: 1 where an unmasked photo decides, else the mask states seen; age: the photos),
the prior being the mean head probability over the split's photos.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import (
    best_other, concat_frames, detector_frame, given_codes, head_probs, log_probs, mask_states, person_groups,
    view_weights,
)

NAME = "person_level"


def person_level(predictions: pd.DataFrame, *, fields=("gender", "age"), bins: L.AgeBins = L.DEFAULT_BINS,
                 include_eval: bool = True, prior_correction: bool = True) -> pd.DataFrame:
    """Detector frame (see audit.noise) for gender/age: train per person, eval per image."""
    frames = []
    train = predictions[predictions["split"] == "train"]
    if len(train):
        codes, people = person_groups(train)
        for field in fields:
            frames.append(_judge(train, codes, people, field, bins, kind="person", prior_correction=prior_correction))
    if include_eval:
        ev = predictions[predictions["split"] != "train"]
        if len(ev):
            codes = np.arange(len(ev), dtype=np.int64)
            people = pd.DataFrame({"person": ev["person"].to_numpy(), "split": ev["split"].to_numpy(),
                                   "path": ev["path"].to_numpy(), "n": 1})
            for field in fields:
                frames.append(_judge(ev, codes, people, field, bins, kind="image", prior_correction=False))
    return concat_frames(frames)


def _judge(df, codes, people, field, bins, *, kind, prior_correction):
    names = L.field_value_names(field, bins)
    p = head_probs(df, field)
    k = p.shape[1]
    n_items = len(people)
    w = view_weights(df, codes, field) if kind == "person" else np.ones(len(df))
    loglik = np.zeros((n_items, k))
    np.add.at(loglik, codes, w[:, None] * log_probs(p))
    if prior_correction:
        prior = np.clip(p.mean(axis=0), 1e-3, None)
        views = np.bincount(codes, weights=w, minlength=n_items)
        loglik -= (views[:, None] - 1) * np.log(prior / prior.sum())[None, :]
    # Votes: how many photos have each value as their top prediction; mean p per value.
    votes = np.zeros((n_items, k), dtype=np.int64)
    np.add.at(votes, (codes, p.argmax(axis=1)), 1)
    mean_p = np.zeros((n_items, k))
    np.add.at(mean_p, codes, p)
    mean_p /= people["n"].to_numpy()[:, None]
    # The label is per person; all photos carry it, take the first.
    given = np.zeros(n_items, dtype=np.int64)
    given[codes[::-1]] = given_codes(df, field)[::-1]
    suggested = best_other(loglik, given)
    rows = np.arange(n_items)
    score = loglik[rows, suggested] - loglik[rows, given]
    n = people["n"].to_numpy()
    if kind == "person":
        by_state = _by_mask_state(df, codes, p, suggested, given, names, w)
        evidence = [
            f"{votes[i, s]} of {n[i]} photos look {names[s].lower()} (mean p={mean_p[i, s]:.2f}); labelled {names[g].lower()}"
            f" (log-likelihood ratio {score[i]:+.1f}){by_state[i]}"
            for i, (s, g) in enumerate(zip(suggested, given))
        ]
        item = people["person"].to_numpy()
    else:
        evidence = [
            f"photo looks {names[s].lower()} (p={mean_p[i, s]:.2f}); labelled {names[g].lower()} (p={mean_p[i, g]:.2f})"
            for i, (s, g) in enumerate(zip(suggested, given))
        ]
        item = people["path"].to_numpy()
    return detector_frame({
        "item": item, "item_kind": kind, "field": field, "split": people["split"].to_numpy(),
        "person": people["person"].to_numpy(), "path": people["path"].to_numpy(),
        "given": given, "suggested": suggested, "score": score, "flagged": score > 0, "evidence": evidence,
    }, NAME)


def _by_mask_state(df, codes, p, suggested, given, names, weights) -> list[str]:
    """Per person, which photos decided (`view_weights`), in words a reviewer can check:
    '; the unmasked photo decides: it looks male (p=0.99)', or '; no unmasked photo: each mask
    state weighs once'. Empty where every photo weighs the same."""
    n_items = len(suggested)
    state = mask_states(df)
    if state is None or np.all(weights == 1):
        return [""] * n_items
    unmasked = state == L.MASK_STATES.index("not_wear")
    decided_by_unmasked = np.zeros(n_items, bool)
    decided_by_unmasked[codes[unmasked & (weights > 0)]] = True
    p_sug = np.zeros(n_items)
    n_unmasked = np.zeros(n_items)
    np.add.at(p_sug, codes[unmasked], p[unmasked, suggested[codes[unmasked]]])
    np.add.at(n_unmasked, codes[unmasked], 1)
    p_sug = p_sug / np.clip(n_unmasked, 1, None)
    out = []
    for i in range(n_items):
        if not decided_by_unmasked[i]:
            out.append("; no unmasked photo: each mask state weighs once")
        elif p_sug[i] >= 0.5:
            out.append(f"; the unmasked photo decides: it looks {names[suggested[i]].lower()} (p={p_sug[i]:.2f})")
        else:
            out.append(f"; the unmasked photo decides: it looks {names[given[i]].lower()} (p={1 - p_sug[i]:.2f})")
    return out
