"""Evidence independent of the noisy labels: SimiFeat voting in another model's features, a
second-opinion run (also from an imported CSV, end to end), the approximate neighbour index, and
the calibrated flag count."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from audit.noise.scoring import score_detector, truth_items
from test_noise_synthetic import make_predictions

SETUP = dict(people=80, eval_images=20, seed=11, gender_flips=4, age_moves=5, mask_swaps=2)


def _independent_embeddings(df: pd.DataFrame, truth: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Features of a model that never saw the labels: clustered by the TRUE gender and age (plus
    identity noise), the way a backbone trained elsewhere sees faces."""
    rng = np.random.default_rng(seed)
    t = truth.set_index("path").loc[df["path"].to_numpy()]
    n = len(df)
    e = rng.normal(0, 0.35, (n, 8))
    e[:, 0] += np.where(t["true_gender"].to_numpy() == 1, 1.5, -1.5)
    e[:, 1] += (t["true_age"].to_numpy() - 35) / 8.0
    return e.astype(np.float32)


def _other_run(df: pd.DataFrame, truth: pd.DataFrame, *, seed: int = 1, sharp: float = 4.0) -> pd.DataFrame:
    """Another model's probabilities: sure of the TRUE gender/mask, the true age bin; own errors."""
    from audit import labels as L

    rng = np.random.default_rng(seed)
    t = truth.set_index("path").loc[df["path"].to_numpy()]
    out = df[["path", "split", "person"]].copy()
    for field, col, k in (("mask", "true_mask", 3), ("gender", "true_gender", 2), ("age", None, 3)):
        true = t[col].to_numpy() if col else L.DEFAULT_BINS.bin(t["true_age"].to_numpy())
        z = rng.normal(0, 1.0, (len(df), k))
        z[np.arange(len(df)), true] += sharp
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        for j in range(k):
            out[f"p_{field}_{j}"] = p[:, j].astype(np.float32)
    return out


def test_simifeat_finds_planted_errors_and_ranks_clean_items_low():
    from audit.noise.simifeat import simifeat

    df, _emb, truth = make_predictions(**SETUP)
    frame = simifeat(df, _independent_embeddings(df, truth), k=10)
    items = truth_items(df, truth)
    gender = score_detector(frame, items, "gender", "simifeat")
    assert gender["auprc"] > 0.9 and gender["precision_at_k"] >= 0.75
    g = frame[(frame["field"] == "gender") & (frame["item_kind"] == "person")]
    noisy = set(items[(items["field"] == "gender") & items["noisy"]]["item"])
    clean_scores = g[~g["item"].isin(noisy)]["score"]
    assert (clean_scores < 0.5).mean() > 0.95  # clean people: their neighbours agree with them
    flipped = g[g["item"].isin(noisy)]
    assert (flipped["suggested"] != flipped["given"]).all() and flipped["flagged"].all()


def test_simifeat_ignores_a_persons_own_photos():
    from audit.noise.simifeat import soft_labels

    # Two people, each photo's nearest rows are its own person's: without them the vote is the other person's.
    emb = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1]], np.float32)
    soft = soft_labels(emb, np.array(["a", "a", "b", "b"]), np.array([0, 0, 1, 1]), 2, k=1, rounds=1)
    assert np.allclose(soft, [[0, 1], [0, 1], [1, 0], [1, 0]])


def test_second_opinion_flags_what_the_other_run_doubts():
    from audit.noise.second_opinion import ensemble, second_opinion

    df, _emb, truth = make_predictions(**SETUP)
    other = _other_run(df, truth)
    frame = second_opinion(df, other, other_name="run other")
    items = truth_items(df, truth)
    for field in ("gender", "mask"):
        assert score_detector(frame, items, field, "second_opinion")["auprc"] > 0.9, field
    assert frame["evidence"].str.startswith("run other: ").all()
    ens = ensemble(df, other)
    assert score_detector(ens, items, "gender", "ensemble")["auroc"] > 0.9


def test_second_opinion_with_a_partial_run_judges_only_what_it_covers():
    from audit.noise.second_opinion import second_opinion

    df, _emb, truth = make_predictions(**SETUP)
    other = _other_run(df, truth)
    eval_only = other[other["split"] == "eval"]
    frame = second_opinion(df, eval_only)
    assert set(frame["split"]) == {"eval"} and len(frame) == 3 * int((df["split"] == "eval").sum())


def test_second_opinion_from_an_imported_csv_end_to_end(tiny_demo, tiny_run, tmp_path):
    """A CSV of per-head probabilities made elsewhere -> import-predictions -> suspects with it as
    the second opinion: its detectors join the queue and its evidence is readable."""
    from audit.cli import main as cli_main
    from audit.demo_data import read_truth
    from audit.runs import Run

    run = Run.open(tiny_run)
    truth = read_truth(tiny_demo)
    other = _other_run(run.predictions, truth)
    csv = tmp_path / "service.csv"
    other.drop(columns=["split", "person"]).to_csv(csv, index=False)
    assert cli_main(["import-predictions", str(tiny_demo), str(csv), "--run", str(tmp_path / "service")]) == 0
    assert cli_main(["suspects", str(tiny_run), "--second-opinion", str(tmp_path / "service")]) == 0
    queue = Run.open(tiny_run).suspects
    assert "score_second_opinion" in queue.columns and queue["score_second_opinion"].notna().any()
    assert queue["evidence"].str.contains("run service").any()


def test_suspects_cli_refuses_a_second_opinion_that_is_not_a_run(tiny_run, tmp_path, capsys):
    from audit.cli import main as cli_main

    assert cli_main(["suspects", str(tiny_run), "--second-opinion", str(tmp_path / "nothing")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_find_suspects_with_a_second_opinion_adds_its_detectors():
    from audit.noise.merge import find_suspects

    df, _emb, truth = make_predictions(**SETUP)
    run = SimpleNamespace(predictions=df, embeddings=_emb, meta={})
    other = SimpleNamespace(predictions=_other_run(df, truth), embeddings=_independent_embeddings(df, truth),
                            name="pretrained")
    queue = find_suspects(run, second_opinion=other)
    for name in ("second_opinion", "ensemble", "simifeat"):
        assert f"score_{name}" in queue.columns
    items = truth_items(df, truth)
    assert score_detector(queue, items, "gender", "merged")["auprc"] > 0.9


def test_flag_count_is_calibrated_to_the_estimated_number_of_errors():
    """Seeded: 4 gender flips, 5 age moves, 2 mask swaps among 80 people. The flagged count per
    field lands near the truth (not every item some detector objects to)."""
    from audit.noise.merge import estimated_error_counts, find_suspects

    df, emb, truth = make_predictions(**SETUP)
    other = SimpleNamespace(predictions=_other_run(df, truth), embeddings=_independent_embeddings(df, truth),
                            name="pretrained")
    counts = estimated_error_counts(df, other.predictions)
    assert 2 <= counts[("gender", "person")] <= 8
    queue = find_suspects(SimpleNamespace(predictions=df, embeddings=emb, meta={}), second_opinion=other)
    items = truth_items(df, truth)
    true_errors = int(items["noisy"].sum())
    flagged = queue[queue["split"] == "train"]
    n_flagged = int(flagged["flagged"].sum())
    assert 0.5 * true_errors <= n_flagged <= 1.5 * true_errors
    # the flagged ones are mostly the planted errors
    hit = flagged[flagged["flagged"]].merge(items, on=["field", "item"])
    assert hit["noisy"].mean() >= 0.7
    # every detector that objected is still named
    assert (queue["detectors"] != "").sum() >= n_flagged


def test_approximate_neighbours_agree_with_exact_search():
    from audit.noise.neighbours import nearest_other_people

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.2, (150, 8)) for c in range(4)]).astype(np.float32)
    persons = np.repeat(np.arange(200), 3).astype(str)
    exact = nearest_other_people(x, persons, k=5, approximate=False)
    approx = nearest_other_people(x, persons, k=5, approximate=True)
    assert approx.shape == exact.shape
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approx)])
    assert recall > 0.8
    assert not (persons[np.where(approx >= 0, approx, 0)] == persons[:, None])[approx >= 0].any()
