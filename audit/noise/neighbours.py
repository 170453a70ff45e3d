"""Embedding-neighbourhood disagreement.

For each image, its k nearest other images in embedding space (cosine similarity; exact up to
EXACT_SEARCH_MAX_ROWS rows, an approximate pynndescent k-NN graph above, so the cost grows near
linearly), leaving out photos of the same person: for gender and age they would agree
trivially, and for mask a person's own photos are the nearest yet carry other states by design.
The score is the fraction of those neighbours whose given label differs from this image's;
the suggestion is the most common other label among them. For train gender/age, the person's
photos' neighbour label distributions are averaged into one judgement per person.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import concat_frames, detector_frame, given_codes, person_groups, best_other

NAME = "neighbours"


# Up to this many rows the neighbour search is exact (chunked matrix products, N^2 work); above it
# an approximate index (pynndescent's NN-descent, near-linear) builds the k-NN graph: at 10x the
# full-scale replica (315,000 rows) the exact search made `suspects` take 73x its full-scale time.
EXACT_SEARCH_MAX_ROWS = 60_000


def nearest_other_people(embeddings: np.ndarray, persons: np.ndarray, *, k: int = 10,
                         exclude_same_person: bool = True, approximate: bool | None = None) -> np.ndarray:
    """Indices (N, k) of each row's k nearest rows by cosine distance, never itself and (by
    default) never a row of the same person. Rows short of k candidates are padded with -1.
    approximate: None = exact up to EXACT_SEARCH_MAX_ROWS rows, approximate above."""
    return nearest_other_people_with_similarity(embeddings, persons, k=k, exclude_same_person=exclude_same_person,
                                                approximate=approximate)[0]


def nearest_other_people_with_similarity(embeddings: np.ndarray, persons: np.ndarray, *, k: int = 10,
                                         exclude_same_person: bool = True, approximate: bool | None = None
                                         ) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k) as `nearest_other_people`, cosine similarities (N, k) float32, NaN where -1)."""
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.full((n, k), -1, dtype=np.int64), np.full((n, k), np.nan, dtype=np.float32)
    _, person_codes = np.unique(np.asarray(persons, dtype=str), return_inverse=True)
    max_per_person = int(np.bincount(person_codes).max()) if exclude_same_person else 1
    n_query = min(n, k + max_per_person)
    if approximate is None:
        approximate = n > EXACT_SEARCH_MAX_ROWS
    idx, sim = (_approximate_cosine_knn if approximate else _cosine_knn_with_similarity)(x, n_query)
    bad = (idx == np.arange(n)[:, None]) | (idx < 0)
    if exclude_same_person:
        bad |= person_codes[np.where(idx >= 0, idx, 0)] == person_codes[:, None]
    out = np.full((n, k), -1, dtype=np.int64)
    out_sim = np.full((n, k), np.nan, dtype=np.float32)
    # Stable order: keep the first k admissible neighbours of each row.
    keep_rank = np.cumsum(~bad, axis=1) - 1
    sel = (~bad) & (keep_rank < k)
    rows, cols = np.nonzero(sel)
    out[rows, keep_rank[rows, cols]] = idx[rows, cols]
    out_sim[rows, keep_rank[rows, cols]] = sim[rows, cols]
    return out, out_sim


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _cosine_knn(x: np.ndarray, n_query: int, *, chunk: int = 1024) -> np.ndarray:
    """Indices (N, n_query) of each row's nearest rows by cosine similarity, nearest first
    (the row itself included). Exact; float32 matrix products in row chunks, so memory stays at
    chunk x N floats. At 31,500 x 1,280 it took 83 s where scikit-learn's brute
    `NearestNeighbors(metric="cosine")` took 134 s (BENCHMARKS.md, loaded 2-core box)."""
    return _cosine_knn_with_similarity(x, n_query, chunk=chunk)[0]


def _cosine_knn_with_similarity(x: np.ndarray, n_query: int, *, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, n_query), cosine similarities (N, n_query)), exact (see `_cosine_knn`)."""
    xn = _normalised(x)
    n = len(xn)
    out = np.empty((n, n_query), dtype=np.int64)
    out_sim = np.empty((n, n_query), dtype=np.float32)
    for start in range(0, n, chunk):
        sim = xn[start:start + chunk] @ xn.T  # (c, N)
        rows = np.arange(sim.shape[0])
        sim[rows, np.arange(start, start + sim.shape[0])] = np.inf  # self first
        if n_query < n:
            part = np.argpartition(-sim, n_query - 1, axis=1)[:, :n_query]
        else:
            part = np.tile(np.arange(n), (sim.shape[0], 1))
        values = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        out[start:start + sim.shape[0]] = np.take_along_axis(part, order, axis=1)
        values = np.take_along_axis(values, order, axis=1)
        out_sim[start:start + sim.shape[0]] = np.where(np.isinf(values), 1.0, values)
    return out, out_sim


def _approximate_cosine_knn(x: np.ndarray, n_query: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, n_query), cosine similarities) from pynndescent's k-NN graph (NN-descent:
    near-linear in N; recall ~0.9+ at these sizes). Rows may list fewer than n_query neighbours
    (-1). pynndescent comes with umap-learn; imported here only."""
    from pynndescent import NNDescent

    xn = _normalised(x)
    index = NNDescent(xn, metric="euclidean", n_neighbors=n_query, random_state=0, low_memory=True,
                      compressed=True, verbose=False)
    idx, dist = index.neighbor_graph  # on unit vectors: |a - b|^2 = 2 - 2 cos
    sim = 1.0 - np.square(dist.astype(np.float32)) / 2.0
    idx = np.asarray(idx, dtype=np.int64)
    return idx, np.where(idx >= 0, sim, np.nan).astype(np.float32)


def neighbours(predictions: pd.DataFrame, embeddings: np.ndarray, *, fields=L.FIELDS, k: int = 10,
               exclude_same_person: bool = True, bins: L.AgeBins = L.DEFAULT_BINS) -> pd.DataFrame:
    """Detector frame (see audit.noise). embeddings (N, D) row-aligned with predictions."""
    if embeddings is None or len(embeddings) != len(predictions):
        raise ValueError("neighbours needs embeddings row-aligned with the predictions")
    nbrs = nearest_other_people(embeddings, predictions["person"].to_numpy(), k=k,
                                exclude_same_person=exclude_same_person)
    valid = nbrs >= 0
    n_valid = np.maximum(valid.sum(axis=1), 1)
    split = predictions["split"].to_numpy()
    frames = []
    for field in fields:
        names = L.field_value_names(field, bins)
        y = given_codes(predictions, field)
        n_codes = len(names)
        # dist[i, c]: fraction of row i's neighbours labelled c.
        dist = np.zeros((len(y), n_codes))
        for c in range(n_codes):
            dist[:, c] = ((y[np.where(valid, nbrs, 0)] == c) & valid).sum(axis=1) / n_valid
        person_mode = (split == "train") & (field != "mask")
        img = ~person_mode
        if img.any():
            d, g = dist[img], y[img]
            sug = best_other(d, g)
            frames.append(_judged(predictions[img], "path", "image", field, d, g, sug, [
                f"{round(d[r, s] * k)} of {k} nearest other people's photos are labelled {names[s].lower()}, "
                f"{round(d[r, gg] * k)} {names[gg].lower()} like this one"
                for r, (s, gg) in enumerate(zip(sug, g))
            ]))
        if person_mode.any():
            part = predictions[person_mode]
            codes, people = person_groups(part)
            n = people["n"].to_numpy()
            pd_ = np.zeros((len(people), n_codes))
            np.add.at(pd_, codes, dist[person_mode])
            pd_ /= n[:, None]
            g = np.zeros(len(people), dtype=np.int64)
            g[codes] = y[person_mode]
            sug = best_other(pd_, g)
            frames.append(_judged(people, "person", "person", field, pd_, g, sug, [
                f"{pd_[r, s]:.0%} of the nearest other people's photos (k={k} per photo, {n[r]} photos) are "
                f"labelled {names[s].lower()}; labelled {names[gg].lower()}"
                for r, (s, gg) in enumerate(zip(sug, g))
            ]))
    return concat_frames(frames)


def _judged(items: pd.DataFrame, item_column: str, item_kind: str, field: str, dist: np.ndarray, given: np.ndarray,
            suggested: np.ndarray, evidence: list[str]) -> pd.DataFrame:
    """Detector frame of `items` (M image rows, or M people) judged by their neighbours: dist (M, n_codes),
    the fraction of neighbours labelled with each code; given and suggested (M,) codes; evidence, one
    sentence per item. Scored by the neighbours that disagree with the given label, flagged below half agreeing."""
    agree = dist[np.arange(len(given)), given]
    return detector_frame({
        "item": items[item_column].to_numpy(), "item_kind": item_kind, "field": field,
        "split": items["split"].to_numpy(), "person": items["person"].to_numpy(),
        "path": items["path"].to_numpy(), "given": given, "suggested": suggested, "score": 1.0 - agree,
        "flagged": agree < 0.5, "evidence": evidence,
    }, NAME)
