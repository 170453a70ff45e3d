"""One review queue from several detectors.

Each detector's scores are turned into empirical upper-tail p-values within (detector, field,
item kind): p = (number of items scoring at least as high) / (number of items). The merged score
is a weighted Fisher combination, sum_d w_d * -log(p_d): scale-free (nats, LLRs, fractions and
standard deviations all become ranks), yet it keeps the tail - an item in a strong detector's
top 0.1% earns -log(0.001) ~ 6.9, far above a weak detector's top 10% (2.3). A detector that did
not judge an item adds nothing. The suggestion is the value the detectors propose, each vote
weighted by its contribution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise import DETECTOR_COLUMNS, concat_frames

# Weights per (detector, field), FITTED by benchmarks/fit_merge_weights_independent.py (coordinate
# ascent over 0..4 per detector, best mean AUPRC) on bench-noise seeds 5-9 - runs fine-tuned from
# weights/pretrained, with that checkpoint's own run as the second opinion - and reported on seeds
# 0-4 and 10-14, which the fit never saw (BENCHMARKS.md "Label-noise detectors", tenth session;
# gender refitted in the twelfth, when its person-level evidence began to read the unmasked photo).
# Two tables: with a second opinion its detectors carry gender and age (they never learned these
# labels); a run alone has only its own detectors, fitted without the others (--run-alone). Each
# field's weights are divided by their largest, so the fields interleave in the queue.
# Mask: declared, in DEFAULT_WEIGHTS alone - every setting tried scored AUPRC 1.0 (the slot
# detector finds every swap).
DEFAULT_WEIGHTS = {
    ("second_opinion", "gender"): 1.0, ("person_level", "gender"): 0.5, ("ensemble", "gender"): 0.5,
    ("simifeat", "gender"): 0.0, ("neighbours", "gender"): 0.0, ("cleanlab", "gender"): 0.0,
    ("age_likelihood", "age"): 1.0, ("second_opinion", "age"): 0.0625, ("simifeat", "age"): 0.0625,
    ("ensemble", "age"): 0.0, ("age_residual", "age"): 0.0, ("person_level", "age"): 0.0,
    ("cleanlab", "age"): 0.0, ("neighbours", "age"): 0.0,
    ("mask_slots", "mask"): 1.0, ("neighbours", "mask"): 0.25, ("cleanlab", "mask"): 0.25,
    ("second_opinion", "mask"): 0.5, ("simifeat", "mask"): 0.25, ("ensemble", "mask"): 0.25,
}
PRIMARY_WEIGHTS = {
    ("person_level", "gender"): 1.0, ("neighbours", "gender"): 0.0625, ("cleanlab", "gender"): 0.0,
    ("age_residual", "age"): 1.0, ("cleanlab", "age"): 0.25, ("person_level", "age"): 0.25,
    ("neighbours", "age"): 0.0625,
}
DEFAULT_WEIGHT = 0.25  # a detector/field pair not listed above
# What `second_opinion_detectors` may return: the detectors another run feeds.
SECOND_OPINION_DETECTORS = ("second_opinion", "ensemble", "simifeat", "age_likelihood")
# The second-opinion detector DEFAULT_WEIGHTS leans on most, per field: where it is missing, the
# fitted table does not apply and PRIMARY_WEIGHTS does.
LEAD_DETECTOR = {
    field: max((d for (d, f) in DEFAULT_WEIGHTS if f == field and d in SECOND_OPINION_DETECTORS),
               key=lambda d: DEFAULT_WEIGHTS[(d, field)])
    for field in ("gender", "age")
}
# How the merge's cleanlab member scores a train person from their photos (the fitted choice);
# the benchmark's cleanlab BASELINE stays the max over photos.
MERGE_CLEANLAB_AGG = "mean"

QUEUE_COLUMNS = [
    "rank", "item", "item_kind", "field", "split", "person", "path", "given", "suggested",
    "score", "flagged", "detectors", "n_detectors", "evidence",
]


def tail_p_values(scores: np.ndarray) -> np.ndarray:
    """Empirical upper-tail p-values (N,): fraction of scores >= each score (ties share the
    larger count, so equal scores get equal p). NaN scores get p = 1."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.ones(len(s))
    ok = ~np.isnan(s)
    v = s[ok]
    if len(v):
        order = np.sort(v)
        # count of values >= v_i = n - (number strictly below v_i)
        out[ok] = (len(v) - np.searchsorted(order, v, side="left")) / len(v)
    return out


def merge_queue(detector_frames, *, weights: dict | None = None) -> pd.DataFrame:
    """Detector frames (list, or dict name -> frame) -> the review queue, one row per
    (item, field), best first. Columns QUEUE_COLUMNS plus `score_<detector>` (each detector's
    own score, NaN where it did not judge the item).

    `weights`: {(detector, field): w} or {detector: w}, overriding the fitted table: DEFAULT_WEIGHTS
    where the second opinion's lead detector (LEAD_DETECTOR) judged the (field, item kind), else
    PRIMARY_WEIGHTS (mask always uses DEFAULT_WEIGHTS: its weights are declared for both).
    """
    frames = list(detector_frames.values()) if isinstance(detector_frames, dict) else list(detector_frames)
    allf = concat_frames(frames)
    if not len(allf):
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    allf = allf[DETECTOR_COLUMNS].copy()
    allf["p"] = allf.groupby(["detector", "field", "item_kind"], sort=False)["score"].transform(
        lambda s: tail_p_values(s.to_numpy()))
    # Per (field, item kind): the second opinion's table where the detector it leans on most judged
    # such items; elsewhere the run's own (a second opinion of eval images only, or one imported
    # without ages, must not zero out the run's own evidence on what it did not judge).
    present = set(zip(allf["detector"], allf["field"], allf["item_kind"]))
    with_so = {(f, kd) for _d, f, kd in present if f not in LEAD_DETECTOR or (LEAD_DETECTOR[f], f, kd) in present}
    allf["w"] = [_weight(weights, d, f, DEFAULT_WEIGHTS if (f, kd) in with_so else PRIMARY_WEIGHTS)
                 for d, f, kd in zip(allf["detector"], allf["field"], allf["item_kind"])]
    allf["contribution"] = allf["w"] * -np.log(allf["p"].clip(lower=1e-12))

    key = ["item", "field"]
    allf = allf.sort_values(key + ["contribution"], ascending=[True, True, False], kind="stable")
    grouped = allf.groupby(key, sort=False)
    first = grouped.first()
    score = grouped["contribution"].sum()
    # Suggested value: contribution-weighted vote among the detectors' suggestions.
    votes = allf.groupby(key + ["suggested"], sort=False)["contribution"].sum().reset_index()
    votes = votes.sort_values(key + ["contribution"], ascending=[True, True, False], kind="stable")
    suggested = votes.groupby(key, sort=False)["suggested"].first()
    flagged_rows = allf[allf["flagged"]]
    detectors = flagged_rows.groupby(key, sort=False)["detector"].agg(", ".join)
    n_det = flagged_rows.groupby(key, sort=False).size()

    # Evidence: the flagging detectors' sentences, biggest contribution first; when none
    # flagged the item, the top contributor's sentence.
    line = allf["detector"] + ": " + allf["evidence"].astype(str)
    evidence = line[allf["flagged"]].groupby([allf["item"], allf["field"]], sort=False).agg(" | ".join)
    evidence = evidence.reindex(first.index)
    evidence = evidence.fillna(line.groupby([allf["item"], allf["field"]], sort=False).first().reindex(first.index))
    queue = pd.DataFrame({
        "item_kind": first["item_kind"], "split": first["split"], "person": first["person"],
        "path": first["path"], "given": first["given"].astype(np.int64),
        "suggested": suggested.reindex(first.index).astype(np.int64),
        "score": score.reindex(first.index).astype(np.float64),
        "detectors": detectors.reindex(first.index).fillna(""),
        "n_detectors": n_det.reindex(first.index).fillna(0).astype(np.int64),
        "evidence": evidence.reindex(first.index),
    })
    queue["flagged"] = queue["n_detectors"] > 0
    per_det = allf.pivot_table(index=key, columns="detector", values="score", aggfunc="first")
    per_det.columns = [f"score_{c}" for c in per_det.columns]
    queue = queue.join(per_det).reset_index()
    queue = queue.sort_values(["score", "n_detectors", "field", "item"], ascending=[False, False, True, True],
                              kind="stable").reset_index(drop=True)
    queue["rank"] = np.arange(1, len(queue) + 1)
    extra = [c for c in queue.columns if c.startswith("score_")]
    return queue[QUEUE_COLUMNS + extra]


def _weight(weights, detector, field, table) -> float:
    if weights:
        if (detector, field) in weights:
            return float(weights[(detector, field)])
        if detector in weights:
            return float(weights[detector])
    return float(table.get((detector, field), DEFAULT_WEIGHT))


@dataclass(frozen=True)
class DetectorInputs:
    """What a registered detector may read: a run's predictions (N rows), its embeddings (N, D)
    or None, the age bins, the neighbour count and cleanlab's per-person aggregation."""

    predictions: pd.DataFrame
    embeddings: np.ndarray | None
    bins: L.AgeBins
    k: int
    cleanlab_person_agg: str


def _cleanlab(x: DetectorInputs):
    from audit.noise.confident_learning import confident_learning
    return confident_learning(x.predictions, person_agg=x.cleanlab_person_agg, bins=x.bins)


def _person_level(x: DetectorInputs):
    from audit.noise.person_level import person_level
    return person_level(x.predictions, bins=x.bins)


def _mask_slots(x: DetectorInputs):
    from audit.noise.mask_slots import mask_slots
    return mask_slots(x.predictions)


def _neighbours(x: DetectorInputs):
    if x.embeddings is None or len(x.embeddings) != len(x.predictions):
        return None  # imported runs have no embeddings
    from audit.noise.neighbours import neighbours
    return neighbours(x.predictions, x.embeddings, k=x.k, bins=x.bins)


def _age_residual(x: DetectorInputs):
    if "pred_age" not in x.predictions.columns or not x.predictions["pred_age"].notna().any():
        return None  # a model without the age regression output
    from audit.noise.age_residual import age_residual
    return age_residual(x.predictions, bins=x.bins)


# The detectors a run feeds by itself, in queue-column order: name -> detector(inputs) -> frame, or
# None where it does not apply. A new detector is its module in audit/noise/ plus one line here
# (and its weights above); those that need another run are in `second_opinion_detectors`.
DETECTORS = {
    "cleanlab": _cleanlab,
    "person_level": _person_level,
    "mask_slots": _mask_slots,
    "neighbours": _neighbours,
    "age_residual": _age_residual,
}


def run_detectors(predictions: pd.DataFrame, embeddings: np.ndarray | None = None, *,
                  bins: L.AgeBins = L.DEFAULT_BINS, k: int = 10,
                  cleanlab_person_agg: str = MERGE_CLEANLAB_AGG,
                  second_opinion=None) -> dict[str, pd.DataFrame]:
    """Every applicable detector of `DETECTORS` on a run's predictions: name -> detector frame.

    `neighbours` is skipped without embeddings, `age_residual` without any pred_age.
    `second_opinion`: another run of the same images (anything with .predictions, optional
    .embeddings and .name, e.g. audit.runs.Run) -> the `second_opinion` and `ensemble` detectors,
    and `simifeat` in its embedding when it has one (an independent model's features).
    """
    inputs = DetectorInputs(predictions, embeddings, bins, k, cleanlab_person_agg)
    out = {}
    for name, detector in DETECTORS.items():
        frame = detector(inputs)
        if frame is not None:
            out[name] = frame
    if second_opinion is not None:
        out.update(second_opinion_detectors(predictions, second_opinion, bins=bins, k=k))
    return out


def second_opinion_detectors(predictions: pd.DataFrame, other, *, bins: L.AgeBins = L.DEFAULT_BINS,
                             k: int = 10) -> dict[str, pd.DataFrame]:
    """The detectors another run of the same images feeds: name -> detector frame."""
    from audit.noise.second_opinion import ensemble, second_opinion
    from audit.noise.simifeat import simifeat

    other_preds = other.predictions
    name = f"run {getattr(other, 'name', '') or 'another run'}"
    out = {"second_opinion": second_opinion(predictions, other_preds, bins=bins, other_name=name),
           "ensemble": ensemble(predictions, other_preds, bins=bins)}
    if "pred_age" in other_preds.columns and "age" in predictions.columns:
        from audit.noise.age_likelihood import age_likelihood

        their_age = other_preds.drop_duplicates("path").set_index("path")["pred_age"]
        ages = pd.to_numeric(their_age.reindex(predictions["path"].to_numpy()), errors="coerce").to_numpy()
        frame = age_likelihood(predictions, ages, bins=bins, source=name)
        if len(frame):
            out["age_likelihood"] = frame
    emb = getattr(other, "embeddings", None)
    if emb is not None and len(emb) == len(other_preds):
        # SimiFeat votes with THIS run's labels in the OTHER run's feature space: align rows by path.
        pos = pd.Series(np.arange(len(other_preds)), index=other_preds["path"].to_numpy())
        pos = pos[~pos.index.duplicated()]
        rows = pos.reindex(predictions["path"].to_numpy()).to_numpy()
        have = ~np.isnan(rows)
        if have.sum() > k:
            out["simifeat"] = simifeat(predictions[have].reset_index(drop=True),
                                       np.asarray(emb, dtype=np.float32)[rows[have].astype(np.int64)], k=k, bins=bins)
    return out


def run_bins(meta: dict | None) -> L.AgeBins:
    """The AgeBins a run was made with (meta.json "bins"), default bins otherwise."""
    if meta and isinstance(meta.get("bins"), dict):
        try:
            return L.AgeBins.from_dict(meta["bins"])
        except (KeyError, ValueError, TypeError):
            pass
    return L.DEFAULT_BINS


def find_suspects(run, *, weights: dict | None = None, k: int = 10, second_opinion=None) -> pd.DataFrame:
    """All applicable detectors on a run (anything with .predictions, .embeddings, .meta),
    merged into the review queue (see merge_queue), flags calibrated (`calibrated_flags`).

    second_opinion: another run of the same images (an audit.runs.Run: another architecture, the
    domain-pretrained model's run, or imported predictions) whose view joins the queue."""
    predictions = run.predictions
    embeddings = getattr(run, "embeddings", None)
    bins = run_bins(getattr(run, "meta", None))
    other = second_opinion.predictions if second_opinion is not None else None
    queue = merge_queue(run_detectors(predictions, embeddings, bins=bins, k=k, second_opinion=second_opinion),
                        weights=weights)
    return calibrated_flags(queue, predictions, other, bins=bins)


def estimated_error_counts(predictions: pd.DataFrame, other: pd.DataFrame | None = None, *,
                           bins: L.AgeBins = L.DEFAULT_BINS) -> dict[tuple[str, str], int]:
    """How many labels are wrong, per (field, item kind), by confident learning
    (`cleanlab.count.num_label_issues`) on the best probabilities at hand: the primary run's, or
    with a second opinion the normalised geometric mean of both (a label both runs doubt is the
    likelier error). Train gender/age are counted per person, from the normalised geometric mean
    over the person's photos."""
    from cleanlab.count import num_label_issues

    from audit.noise import given_codes, head_probs, log_probs, person_groups
    from audit.noise.second_opinion import align_other

    df = predictions.reset_index(drop=True)
    if other is not None:
        both = align_other(df, other)
        mine = df.drop_duplicates("path").set_index("path").loc[both["path"].to_numpy()].reset_index()
        df = mine
    counts: dict[tuple[str, str], int] = {}
    for field in L.FIELDS:
        lp = log_probs(head_probs(df, field))
        if other is not None:
            lp = (lp + log_probs(head_probs(both, field))) / 2
        g = given_codes(df, field)
        split = df["split"].to_numpy()
        for kind, sel in (("person", (split == "train") & (field != "mask")),
                          ("image", ~((split == "train") & (field != "mask")))):
            if not sel.any():
                continue
            if kind == "person":
                # The mean, not the sum, of the photos' log-probabilities: a person's photos are one
                # face, so summing them counts one look 7 times and makes every model mistake a
                # confident "issue" (the sum tripled the estimate on the demo: 72 age errors for 24).
                codes, people = person_groups(df[sel])
                n = people["n"].to_numpy()
                ll = np.zeros((len(people), lp.shape[1]))
                np.add.at(ll, codes, lp[sel])
                ll /= n[:, None]
                gg = np.zeros(len(people), np.int64)
                gg[codes] = g[sel]
            else:
                ll, gg = lp[sel], g[sel]
            p = np.exp(ll - ll.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            counts[(field, kind)] = _count_issues(num_label_issues, gg, p)
    return counts


def _count_issues(num_label_issues, labels: np.ndarray, probs: np.ndarray) -> int:
    present = np.unique(labels)
    if len(labels) < 10 or len(present) < 2:
        return int((probs.argmax(axis=1) != labels).sum())
    sub = probs[:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(num_label_issues(np.searchsorted(present, labels), sub))
    except (ValueError, IndexError):
        return int((sub.argmax(axis=1) != np.searchsorted(present, labels)).sum())


def calibrated_flags(queue: pd.DataFrame, predictions: pd.DataFrame, other: pd.DataFrame | None = None, *,
                     bins: L.AgeBins = L.DEFAULT_BINS, counts: dict | None = None) -> pd.DataFrame:
    """Set the queue's `flagged` so the flagged count means something: within each (field, item
    kind) the top n items by merged score, n = the estimated number of wrong labels there
    (`estimated_error_counts`, confident learning's count - the "rank" rule of SimiFeat and
    cleanlab). An item is flagged when the evidence ranks it among the labels more likely wrong
    than right, not whenever any one detector objects (which flagged 719 of 3,900 demo items for
    ~60 true errors). `detectors` still names every detector that objected."""
    if not len(queue):
        return queue
    counts = counts if counts is not None else estimated_error_counts(predictions, other, bins=bins)
    q = queue.copy()
    rank_in_group = q.groupby(["field", "item_kind"], sort=False)["score"].rank(method="first", ascending=False)
    limit = np.array([counts.get((f, kd), 0) for f, kd in zip(q["field"], q["item_kind"])])
    q["flagged"] = (rank_in_group.to_numpy() <= limit) & (q["score"].to_numpy() > 0)
    return q


def suspect_scores(preds: pd.DataFrame, queue: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """Per image of `preds`: the highest queue score concerning it and the fields concerned.

    Image items (mask, eval rows) match on `path`; person items (train gender/age) apply to all
    of the person's photos. Returns two Series aligned with `preds` (0.0 / "" when unsuspected).
    """
    score = pd.Series(0.0, index=preds.index, dtype="float64")
    fields = pd.Series("", index=preds.index, dtype=object)
    if queue is None or queue.empty:
        return score, fields
    for kind, key in (("image", "path"), ("person", "person")):
        part = queue[queue["item_kind"] == kind]
        if part.empty:
            continue
        by_item = part.groupby("item")
        s = preds[key].map(by_item["score"].max()).fillna(0.0)
        f = preds[key].map(by_item["field"].agg(lambda v: ", ".join(sorted(set(v))))).fillna("")
        score = score.where(score >= s, s)
        fields = fields.where(f == "", fields.where(fields == "", fields + ", ") + f)
    return score, fields
