"""Neighbour voting in an embedding that never learned these labels, after SimiFeat.

Zhu, Dong and Liu, "Detecting Corrupted Labels Without Training a Model to Predict" (ICML 2022):
in the feature space of a model that was not trained on the noisy labels, nearby examples share
their true label far more often than noise does ("k-NN label clusterability"), so the labels of an
example's nearest neighbours vote on whether its own label is right. Written here from the paper
(the docta-ai code is not used; its licence is non-commercial). What follows the paper:

- features: the embedding of a second run whose model never saw this dataset's labels (here the
  domain-pretrained backbone; on real data an ImageNet/CLIP-class or face-attribute model), NOT the
  fine-tuned model's, which has fit the very labels being judged;
- the soft label of an example is the similarity-weighted histogram of its k nearest neighbours'
  given labels (cosine similarity, neighbours' weights max(sim, 0) so dissimilar "neighbours" of a
  sparse region count less);
- the score is 1 - (soft-label mass on the given label): the paper's "vote" rule flags an example
  when the neighbours' majority is another label (mass < 0.5 on the given one); the paper's "rank"
  rule keeps the lowest-scoring examples up to an estimated noise rate - here that calibration is
  done once for the merged queue (`audit.noise.merge.calibrated_flags`);
- SimiFeat repeats the vote over random feature augmentations and takes the majority; we average
  the soft label over `rounds` random subspace projections of the features (same effect: a vote
  that one unlucky direction in feature space cannot swing).

Adapted to this dataset: a person's photos are excluded from their own neighbourhood (they share
the label trivially), and for train gender/age the soft labels of a person's photos are averaged
into one vote per person.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import best_other, concat_frames, detector_frame, given_codes, person_groups

NAME = "simifeat"


def neighbour_rounds(embeddings: np.ndarray, persons: np.ndarray, *, k: int = 10, rounds: int = 3,
                     seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per round, (idx (N, k) of each row's nearest other people's rows, -1 where fewer; their
    vote weights (N, k)): round 0 in the features themselves, later rounds in random projections.
    The same for every field, so `simifeat` searches once per round, not once per round and field."""
    from audit.noise.neighbours import nearest_other_people_with_similarity

    x = np.asarray(embeddings, dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = []
    for r in range(max(1, rounds)):
        feats = x
        if r > 0 and x.shape[1] > 4:
            # A random subspace of 3/4 of the dimensions, re-mixed: SimiFeat's feature augmentation.
            d = x.shape[1]
            keep = rng.choice(d, size=max(4, (3 * d) // 4), replace=False)
            feats = x[:, keep] @ rng.standard_normal((len(keep), len(keep))).astype(np.float32)
        idx, sim = nearest_other_people_with_similarity(feats, persons, k=k)
        out.append((idx, np.where(idx >= 0, np.clip(sim, 0.0, None) + 1e-6, 0.0)))
    return out


def soft_labels(embeddings: np.ndarray, persons: np.ndarray, labels: np.ndarray, n_codes: int, *, k: int = 10,
                rounds: int = 3, seed: int = 0, neighbours: list | None = None) -> np.ndarray:
    """(N, n_codes) similarity-weighted label histograms of each row's k nearest other people's rows,
    averaged over `rounds` random projections of the features (round 0: the features themselves).
    `neighbours`: `neighbour_rounds`' result for these rows, to reuse (else searched here)."""
    if neighbours is None:
        neighbours = neighbour_rounds(embeddings, persons, k=k, rounds=rounds, seed=seed)
    y = np.asarray(labels, dtype=np.int64)
    total = np.zeros((len(y), n_codes))
    for idx, w in neighbours:
        hist = np.zeros((len(y), n_codes))
        for c in range(n_codes):
            hist[:, c] = (w * (y[np.where(idx >= 0, idx, 0)] == c)).sum(axis=1)
        total += hist / np.clip(hist.sum(axis=1, keepdims=True), 1e-12, None)
    return total / len(neighbours)


def simifeat(predictions: pd.DataFrame, embeddings: np.ndarray, *, fields=L.FIELDS, k: int = 10, rounds: int = 3,
             bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """Detector frame (see audit.noise). `embeddings` (N, D): row-aligned with `predictions`, from a
    model that never trained on these labels (see the module docstring)."""
    if embeddings is None or len(embeddings) != len(predictions):
        raise ValueError("simifeat needs independent embeddings row-aligned with the predictions")
    persons = predictions["person"].to_numpy()
    split = predictions["split"].to_numpy()
    frames = []
    near = neighbour_rounds(embeddings, persons, k=k, rounds=rounds)
    for field in fields:
        names = L.field_value_names(field, bins)
        y = given_codes(predictions, field)
        soft = soft_labels(embeddings, persons, y, len(names), neighbours=near)
        person_mode = (split == "train") & (field != "mask")
        if (~person_mode).any():
            part, d, g = predictions[~person_mode], soft[~person_mode], y[~person_mode]
            frames.append(_frame(part["path"].to_numpy(), "image", field, part, part["path"].to_numpy(), d, g,
                                 names, np.ones(len(g), np.int64), k))
        if person_mode.any():
            part = predictions[person_mode]
            codes, people = person_groups(part)
            n = people["n"].to_numpy()
            d = np.zeros((len(people), len(names)))
            np.add.at(d, codes, soft[person_mode])
            d /= n[:, None]
            g = np.zeros(len(people), dtype=np.int64)
            g[codes] = y[person_mode]
            frames.append(_frame(people["person"].to_numpy(), "person", field, people, people["path"].to_numpy(),
                                 d, g, names, n, k))
    return concat_frames(frames)


def _frame(items, kind, field, rows, paths, soft, given, names, n_photos, k) -> pd.DataFrame:
    r = np.arange(len(given))
    sug = best_other(soft, given)
    agree = soft[r, given]
    return detector_frame({
        "item": items, "item_kind": kind, "field": field, "split": rows["split"].to_numpy(),
        "person": rows["person"].to_numpy(), "path": paths, "given": given, "suggested": sug,
        "score": 1.0 - agree, "flagged": agree < 0.5,
        "evidence": [
            f"in an independent model's features, {soft[i, s]:.0%} of the {k} most similar other people"
            + (f" (per photo, {n_photos[i]} photos)" if n_photos[i] > 1 else "")
            + f" are labelled {names[s].lower()}, {agree[i]:.0%} {names[gv].lower()} like this one"
            for i, (s, gv) in enumerate(zip(sug, given))
        ],
    }, NAME)
