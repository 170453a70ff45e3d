"""The given age in YEARS against an independent model's predicted age: a likelihood ratio.

Age labels carry years (`000123_female_Asian_45`), which a bin classifier throws away: a person
labelled 45 whose photos read 28 is far from the label, one labelled 31 who reads 28 is close,
though both read 2 years below the 30-59 bin. Model: the predicted age (for a train person the
mean over their photos) is the true age plus Gaussian noise of spread sigma (1.4826 x the median
absolute deviation of predicted - given age: most labels are right, so the median ignores the
wrong ones). If the label is right the true age IS the given age; if it is wrong the true age
lies in another bin, as common there as ages are among all given labels (a smoothed histogram)
and likelier near the label than far from it: P(true age a | label wrong, given g) is proportional
to prior(a) * exp(-|a - g| / tau) over the other bins. An age labeller - a person, deepface -
errs by years, so a wrong "28" is more often a 31 than a 55. tau (years) is FITTED on the data
judged, by maximum marginal likelihood (the noise rate by EM beside it), not tuned on benchmark
seeds: `fit_distance_scale`.

    score = log P(predicted | label wrong) - log P(predicted | true age = given age)

in nats; > 0: the years fit another bin better than the label. The suggestion is the other bin
holding most of that likelihood.

Used with a second opinion (`audit.noise.merge.second_opinion_detectors`): the other run - the
domain-pretrained backbone's heads, another architecture, imported predictions with an age - never
learned these labels, so its age reading cannot have absorbed their mistakes (the same ratio on the
fine-tuned run's own out-of-fold ages reached 0.37 in a trial, about age_residual's 0.33). Fitting tau
(the method chosen on bench-noise seeds 5-9 alone: this detector's AUPRC there 0.482 -> 0.514) lifted
the merged age queue on the held-out seeds 0-4 / 10-14 from 0.500 / 0.488 to 0.539 / 0.522
(BENCHMARKS.md "Label-noise detectors", fifteenth session).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from audit import labels as L
from audit.noise import detector_frame, empty_detector_frame, person_groups

NAME = "age_likelihood"
AGES = np.arange(0, 101)  # the years the prior and the likelihoods run over
MIN_SIGMA = 1.0  # years: a near-perfect reader must not turn a 1-year slip into certainty
MIN_OWN_SPREAD = 20  # items of a kind needed to estimate its own sigma (else the train people's)


def _age_prior(given_ages: np.ndarray) -> np.ndarray:
    """How common each age of AGES is among the given labels: a histogram smoothed over 5 years,
    with a floor so no age is impossible. (len(AGES),), sums to 1."""
    hist = np.bincount(np.clip(np.rint(given_ages).astype(np.int64), 0, AGES[-1]), minlength=len(AGES))
    prior = np.convolve(hist.astype(np.float64) + 0.5, np.ones(5) / 5, mode="same")
    return prior / prior.sum()


def _robust_sigma(residual: np.ndarray) -> float:
    r = residual[np.isfinite(residual)]
    if not len(r):
        return MIN_SIGMA
    return max(float(1.4826 * np.median(np.abs(r - np.median(r)))), MIN_SIGMA)


# Candidate tau (years) for `fit_distance_scale`; the last is effectively flat (the given-age
# histogram alone, this detector before the fit).
DISTANCE_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 1e6)
EM_ROUNDS = 50
FIT_MAX_ITEMS = 5000  # tau is fitted on at most this many items (a fixed-seed sample): the fit stays cheap


def _bin_of_each_age(bins: L.AgeBins) -> np.ndarray:
    """The bin code of each age of AGES: (len(AGES),)."""
    return np.asarray(bins.bin(AGES.astype(np.float64)), dtype=np.int64).reshape(-1)


def wrong_age_log_prior(given_age: np.ndarray, given_bin: np.ndarray, prior: np.ndarray, tau: float,
                        bins: L.AgeBins) -> np.ndarray:
    """log P(true age = AGES[j] | label wrong, given age_i): (N, len(AGES)), -inf inside the
    given bin; prior(a) * exp(-|a - given| / tau) over the other bins, normalised per row."""
    z = np.log(prior)[None, :] - np.abs(AGES[None, :] - np.asarray(given_age, np.float64)[:, None]) / tau
    z = np.where(_bin_of_each_age(bins)[None, :] != np.asarray(given_bin)[:, None], z, -np.inf)
    return z - logsumexp(z, axis=1, keepdims=True)


def log_likelihoods(pred: np.ndarray, given_age: np.ndarray, given_bin: np.ndarray, sigma: float,
                    wrong_prior: np.ndarray, bins: L.AgeBins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log P(pred | label right), log P(pred | label wrong), suggested bin), each (N);
    `wrong_prior` from `wrong_age_log_prior`. The Gaussian's constant, the same in both, is left out."""
    pred = np.asarray(pred, dtype=np.float64)
    right = -0.5 * ((pred - given_age) / sigma) ** 2
    z = -0.5 * ((pred[:, None] - AGES[None, :]) / sigma) ** 2 + wrong_prior
    age_bin = _bin_of_each_age(bins)
    per_bin = np.stack([logsumexp(z[:, age_bin == b], axis=1) for b in range(len(bins.labels))], axis=1)
    per_bin[np.arange(len(pred)), given_bin] = -np.inf
    return right, logsumexp(per_bin, axis=1), per_bin.argmax(axis=1)


def fit_distance_scale(parts: list[tuple], prior: np.ndarray, bins: L.AgeBins) -> float:
    """The tau of DISTANCE_SCALES under which the readings are likeliest: each item's marginal
    likelihood is (1 - rate) P(pred | right) + rate P(pred | wrong), the noise rate re-estimated
    by EM for each tau. `parts`: (pred, given_age, given_bin, sigma) per item kind."""
    total = sum(len(p[0]) for p in parts)
    if total > FIT_MAX_ITEMS:
        rng = np.random.default_rng(0)
        keep = [rng.random(len(p[0])) < FIT_MAX_ITEMS / total for p in parts]
        parts = [(pred[k], given_age[k], given_bin[k], sigma)
                 for (pred, given_age, given_bin, sigma), k in zip(parts, keep)]
    best_tau, best_ll = DISTANCE_SCALES[-1], -np.inf
    for tau in DISTANCE_SCALES:
        pairs = []
        for pred, given_age, given_bin, sigma in parts:
            right, wrong, _ = log_likelihoods(pred, given_age, given_bin, sigma,
                                              wrong_age_log_prior(given_age, given_bin, prior, tau, bins), bins)
            pairs.append((right, wrong))
        right = np.concatenate([r for r, _ in pairs])
        wrong = np.concatenate([w for _, w in pairs])
        rate = 0.1
        for _ in range(EM_ROUNDS):
            post = 1.0 / (1.0 + np.exp(np.clip(np.log1p(-rate) + right - np.log(rate) - wrong, -50, 50)))
            rate = float(np.clip(post.mean(), 1e-3, 0.5))
        ll = float(np.logaddexp(np.log1p(-rate) + right, np.log(rate) + wrong).sum())
        if ll > best_ll:
            best_tau, best_ll = tau, ll
    return best_tau


def _times(log_ratio: float) -> str:
    """A likelihood ratio a reviewer can read: '3.2x', '45x', 'over 1,000x'."""
    r = float(np.exp(min(log_ratio, 50.0)))
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x" if r < 1000 else "over 1,000x"


def age_likelihood(labels: pd.DataFrame, pred_age: np.ndarray, *, bins: L.AgeBins = L.DEFAULT_BINS,
                   source: str = "the model") -> pd.DataFrame:
    """Detector frame (see audit.noise) for the age field: `labels` (rows with split, person, path,
    mask_type, age, age_bin) judged by `pred_age` (N,), years, aligned with them. Rows whose
    pred_age or age is missing are skipped; empty when none is left."""
    pred_age = np.asarray(pred_age, dtype=np.float64)
    ok = np.isfinite(pred_age) & labels["age"].notna().to_numpy()
    df = labels[ok].reset_index(drop=True)
    pred_age = pred_age[ok]
    if not len(df):
        return empty_detector_frame()
    is_train = df["split"].to_numpy() == "train"
    parts = []
    if is_train.any():
        train = df[is_train]
        codes, people = person_groups(train)
        n = people["n"].to_numpy()
        pred = np.bincount(codes, weights=pred_age[is_train], minlength=len(people)) / n
        given_age = np.zeros(len(people))
        given_age[codes] = train["age"].to_numpy(dtype=float)
        given_bin = np.zeros(len(people), dtype=np.int64)
        given_bin[codes] = train["age_bin"].to_numpy(dtype=np.int64)
        parts.append(("person", people["person"].to_numpy(), people, pred, given_age, given_bin))
    if (~is_train).any():
        ev = df[~is_train]
        people = ev[["person", "split", "path"]].reset_index(drop=True)
        parts.append(("image", ev["path"].to_numpy(), people, pred_age[~is_train],
                      ev["age"].to_numpy(dtype=float), ev["age_bin"].to_numpy(dtype=np.int64)))
    prior = _age_prior(np.concatenate([p[4] for p in parts]))
    # A person's mean over 7 photos is steadier than one eval photo: each kind its own spread,
    # when it has enough items to estimate one.
    first_sigma = _robust_sigma(parts[0][3] - parts[0][4])
    sigmas = [_robust_sigma(p[3] - p[4]) if len(p[3]) >= MIN_OWN_SPREAD else first_sigma for p in parts]
    tau = fit_distance_scale([(p[3], p[4], p[5], sd) for p, sd in zip(parts, sigmas)], prior, bins)
    names = bins.labels
    frames = []
    for (kind, item, people, pred, given_age, given_bin), sigma in zip(parts, sigmas):
        right, wrong, suggested = log_likelihoods(
            pred, given_age, given_bin, sigma, wrong_age_log_prior(given_age, given_bin, prior, tau, bins), bins)
        score = wrong - right
        what = "mean predicted age" if kind == "person" else "predicted age"
        evidence = [
            f"{source}: {what} {p:.1f} vs labelled {a:.0f} ({names[g]}): {abs(p - a):.1f} years off "
            f"(spread {sigma:.1f}); " + (f"an age in {names[s]} fits {_times(sc)} better"
                                         if sc > 0 else "the labelled age fits better")
            for p, a, g, s, sc in zip(pred, given_age, given_bin, suggested, score)
        ]
        frames.append(detector_frame({
            "item": item, "item_kind": kind, "field": "age", "split": people["split"].to_numpy(),
            "person": people["person"].to_numpy(), "path": people["path"].to_numpy(), "given": given_bin,
            "suggested": suggested, "score": score, "flagged": score > 0, "evidence": evidence,
        }, NAME))
    return pd.concat(frames, ignore_index=True)
