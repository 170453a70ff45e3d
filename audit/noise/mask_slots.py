"""Mask-slot consistency.

A complete train person has 7 photos filling 5 wear, 1 incorrect and 1 not-wear slots. Given
the mask head's probabilities, the log-likelihood of an assignment of photos to slots is the
sum of log p(slot state | photo). There are 7 x 6 = 42 assignments (which photo is the
incorrect one, which the not-wear one). For each photo the score is a max-marginal
log-likelihood ratio (nats): the best assignment that moves that photo to another slot minus the
best assignment that keeps it in its given slot. A `normal`/`incorrect_mask` file swap shows as
both photos scoring strongly positive, while the person's other photos stay negative (the best
assignment keeping them in place is the swapped one).

People without exactly one photo per 5:1:1 slot (missing or extra files), and eval photos, are
judged per photo: log p(best other state) - log p(given state).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import best_other, detector_frame, given_codes, head_probs, log_probs

NAME = "mask_slots"


def mask_slots(predictions: pd.DataFrame, *, include_eval: bool = True) -> pd.DataFrame:
    """Detector frame (see audit.noise) for the mask field, one row per image."""
    df = predictions if include_eval else predictions[predictions["split"] == "train"]
    n = len(df)
    logp = log_probs(head_probs(df, "mask"))
    given = given_codes(df, "mask")
    rows = np.arange(n)
    # Default: the per-photo judgement.
    suggested = best_other(logp, given)
    score = logp[rows, suggested] - logp[rows, given]
    moved_with = np.full(n, "", dtype=object)
    by_slots = np.zeros(n, dtype=bool)

    train_pos = np.flatnonzero(df["split"].to_numpy() == "train")
    persons = df["person"].to_numpy()[train_pos]
    stems = df["mask_type"].to_numpy() if "mask_type" in df.columns else np.full(n, "", dtype=object)
    for idx in pd.Series(train_pos).groupby(persons, sort=False).indices.values():
        pos = train_pos[idx]
        g = given[pos]
        if len(pos) != sum(L.TRAIN_SLOTS_PER_MASK) or tuple(np.bincount(g, minlength=L.N_MASK)) != L.TRAIN_SLOTS_PER_MASK:
            continue
        lp = logp[pos]
        # loglik[i, j]: photo i in the incorrect slot, photo j in the not-wear slot, the rest wear.
        gain_inc = lp[:, 1] - lp[:, 0]
        gain_not = lp[:, 2] - lp[:, 0]
        loglik = lp[:, 0].sum() + gain_inc[:, None] + gain_not[None, :]
        np.fill_diagonal(loglik, -np.inf)
        m = len(pos)
        for k in range(m):
            # Assignments in which photo k's slot differs from its given one.
            allowed = np.zeros((m, m), dtype=bool)
            if g[k] == 0:
                allowed[k, :] = True
                allowed[:, k] = True
            elif g[k] == 1:
                allowed[:, :] = True
                allowed[k, :] = False
            else:
                allowed[:, :] = True
                allowed[:, k] = False
            cand = np.where(allowed, loglik, -np.inf)
            base = np.where(allowed, -np.inf, loglik).max()
            bi, bj = np.unravel_index(np.argmax(cand), cand.shape)
            slots = np.zeros(m, dtype=np.int64)
            slots[bi], slots[bj] = 1, 2
            row = pos[k]
            score[row] = cand[bi, bj] - base
            suggested[row] = slots[k]
            by_slots[row] = True
            changed = [stems[pos[x]] for x in np.flatnonzero(slots != g) if x != k]
            moved_with[row] = ", ".join(str(s) for s in changed)

    names = L.MASK_NAMES
    p = np.exp(logp)
    evidence = []
    for r in range(n):
        s, gv = suggested[r], given[r]
        head = f"looks {names[s].lower()} (p={p[r, s]:.2f}); labelled {names[gv].lower()} (p={p[r, gv]:.2f})"
        if by_slots[r]:
            if moved_with[r] and "," not in moved_with[r]:
                head += f"; the person's photos fit {score[r]:+.1f} nats better with this one swapped with {moved_with[r]}"
            elif moved_with[r]:
                head += f"; the person's photos fit {score[r]:+.1f} nats better with this one, {moved_with[r]} reassigned"
            else:
                head += f"; best reassignment of the person's photos {score[r]:+.1f} nats"
        evidence.append(head)
    return detector_frame({
        "item": df["path"].to_numpy(), "item_kind": "image", "field": "mask", "split": df["split"].to_numpy(),
        "person": df["person"].to_numpy(), "path": df["path"].to_numpy(),
        "given": given, "suggested": suggested, "score": score, "flagged": score > 0, "evidence": evidence,
    }, NAME)
