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
n = sum_i w_i (one for gender, the photos for age),
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
        by_state = _by_mask_state(df, codes, p, suggested, n_items, w)
        evidence = [
            f"{votes[i, s]} of {n[i]} photos look {names[s].lower()} (mean p={mean_p[i, s]:.2f}); labelled {names[g].lower()}"
            f" (log-likelihood ratio {score[i]:+.1f}{by_state[i]})"
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


def _by_mask_state(df, codes, p, suggested, n_items, weights) -> list[str]:
    """Per person, the suggested value's mean p under each mask state its photos show, and which
    state decided (`view_weights`): '; by mask state: wear 0.41, not wear 0.99 (the unmasked photo decides)'."""
    state = mask_states(df)
    if state is None or np.all(weights == 1):
        return [""] * n_items
    state_names = [v.lower() for v in L.field_value_names("mask")]
    sums = np.zeros((n_items, L.N_MASK))
    counts = np.zeros((n_items, L.N_MASK))
    deciding = np.zeros((n_items, L.N_MASK))
    np.add.at(sums, (codes, state), p[np.arange(len(p)), suggested[codes]])
    np.add.at(counts, (codes, state), 1)
    np.add.at(deciding, (codes, state), weights)
    out = []
    for i in range(n_items):
        seen = np.flatnonzero(counts[i])
        if len(seen) < 2:
            out.append("")
            continue
        decides = np.flatnonzero(deciding[i] > 0)
        how = ("the unmasked photo decides" if len(decides) == 1 and state_names[decides[0]] == "not wear"
               else "each mask state weighs once")
        out.append("; by mask state: " + ", ".join(
            f"{state_names[m]} {sums[i, m] / counts[i, m]:.2f}" for m in seen) + f" ({how})")
    return out
