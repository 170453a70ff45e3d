"""The given age in years against an independent model's predicted age (audit.noise.age_likelihood)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from audit import labels as L
from audit.noise.age_likelihood import age_likelihood
from audit.noise.age_residual import age_residual
from audit.noise.scoring import score_detector, truth_items
from test_noise_synthetic import make_predictions

SETUP = dict(people=80, eval_images=20, seed=11, gender_flips=4, age_moves=5, mask_swaps=2)


def _people(given_ages, pred_ages) -> pd.DataFrame:
    """One photo per train person: given age (years) and a predicted age."""
    given = np.asarray(given_ages, dtype=float)
    keys = [f"{i:06d}_female_Asian_{int(a)}" for i, a in enumerate(given)]
    return pd.DataFrame({
        "path": [f"images/train/{k}/normal.jpg" for k in keys], "split": "train", "person": keys,
        "mask_type": "normal", "age": given, "age_bin": L.DEFAULT_BINS.bin(given),
        "pred_age": np.asarray(pred_ages, dtype=float),
    })


def test_the_years_of_the_label_count_not_only_its_bin():
    """Two people labelled in the top bin (>= 40) both read 35: the one labelled 58 is far from
    the label, the one labelled 41 is a reading error away. The bin-distance detector cannot tell
    them apart; the likelihood ratio must."""
    rng = np.random.default_rng(0)
    clean = rng.integers(18, 65, 200).astype(float)
    df = _people([*clean, 58, 41], [*(clean + rng.normal(0, 3, len(clean))), 35, 35])
    far, near = df["person"].iloc[-2], df["person"].iloc[-1]
    out = age_likelihood(df, df["pred_age"].to_numpy(), source="run other")
    score = out.set_index("item")["score"]
    assert score[far] > 5 > score[near]
    assert out.set_index("item").loc[far, "suggested"] == 1 and out.set_index("item").loc[far, "flagged"]
    assert (score.rank(ascending=False)[far]) == 1
    assert out["evidence"].str.startswith("run other: mean predicted age").all()
    residual = age_residual(df).set_index("item")["score"]
    assert residual[far] == residual[near]  # the gap this detector closes


def test_finds_moved_ages_and_ranks_clean_people_low():
    df, _emb, truth = make_predictions(**SETUP)
    out = age_likelihood(df, df["pred_age"].to_numpy())
    assert (out["given"] != out["suggested"]).all() and not out.duplicated(["item", "field"]).any()
    items = truth_items(df, truth)
    scored = score_detector(out, items, "age", "age_likelihood")
    assert scored["auroc"] > 0.9 and scored["auprc"] > 0.6  # chance: 5 moved of 80, 0.06
    moved = set(truth.loc[truth["age_corrupted"] & (truth["split"] == "train"), "person"])
    people = out[out["item_kind"] == "person"]
    clean = people[~people["item"].isin(moved)]
    assert clean["flagged"].mean() < 0.15 and clean["score"].median() < 0
    # Eval images are judged one photo each.
    assert set(out.loc[out["item_kind"] == "image", "split"]) == {"eval"}


def test_rows_without_a_predicted_age_are_not_judged():
    df, _emb, _truth = make_predictions(**SETUP)
    assert len(age_likelihood(df, np.full(len(df), np.nan))) == 0
    ages = df["pred_age"].to_numpy().copy()
    ages[(df["split"] == "eval").to_numpy()] = np.nan
    out = age_likelihood(df, ages)
    assert len(out) and (out["split"] == "train").all()


def test_joins_the_queue_with_a_second_opinion_that_has_ages_only():
    from audit.noise.merge import second_opinion_detectors
    from test_noise_independent import _other_run

    df, _emb, truth = make_predictions(**SETUP)
    probs = _other_run(df, truth)
    with_age = probs.assign(pred_age=df["pred_age"].to_numpy())
    got = second_opinion_detectors(df, SimpleNamespace(predictions=with_age, name="pretrained"))
    assert "age_likelihood" in got and got["age_likelihood"]["evidence"].str.startswith("run pretrained").all()
    assert "age_likelihood" not in second_opinion_detectors(df, SimpleNamespace(predictions=probs, name="csv"))


def _labelled(rng, n, wrong_true_age):
    """n people with given ages 16..70, 10% of them wrong: their true age `wrong_true_age(given)`
    (in another default bin); predicted age = true age + N(0, 4), about the pretrained reader's spread."""
    given = rng.integers(16, 71, n).astype(float)
    true = given.copy()
    wrong = rng.random(n) < 0.1
    true[wrong] = [wrong_true_age(g) for g in given[wrong]]
    return given, true + rng.normal(0, 4, n), wrong


def test_the_distance_of_wrong_ages_from_their_label_is_fitted_from_the_data():
    """Near misses (the true age 1-4 years across the nearest boundary) fit a small tau; ages that
    land anywhere in another bin fit a large one. Ranking with the fitted tau must find the near
    misses better than the flat prior does."""
    from sklearn.metrics import average_precision_score

    from audit.noise.age_likelihood import DISTANCE_SCALES, _age_prior, fit_distance_scale, log_likelihoods, \
        wrong_age_log_prior

    rng = np.random.default_rng(3)
    bins = L.DEFAULT_BINS
    lo, hi = bins.edges

    def near(g):
        b = lo if abs(g - lo) <= abs(g - hi) else hi
        d = rng.integers(0, 4)
        return b + d if g < b else b - 1 - d

    def anywhere(g):
        options = [a for a in range(16, 71) if bins.bin(float(a)) != bins.bin(g)]
        return float(rng.choice(options))

    taus, cases = {}, {}
    for name, move in (("near", near), ("anywhere", anywhere)):
        given, pred, wrong = _labelled(rng, 1500, move)
        gbin = np.asarray(bins.bin(given), dtype=np.int64)
        prior = _age_prior(given)
        taus[name] = fit_distance_scale([(pred, given, gbin, 4.0)], prior, bins)
        cases[name] = (given, pred, wrong, gbin, prior)
    assert taus["near"] <= 4 and taus["anywhere"] >= 12, taus

    given, pred, wrong, gbin, prior = cases["near"]

    def auprc(tau):
        right, wrong_ll, _ = log_likelihoods(pred, given, gbin, 4.0,
                                             wrong_age_log_prior(given, gbin, prior, tau, bins), bins)
        return average_precision_score(wrong, wrong_ll - right)

    assert auprc(taus["near"]) > auprc(DISTANCE_SCALES[-1])
