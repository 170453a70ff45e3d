"""The merged review queue, scoring against the truth, and `python -m audit suspects`."""
import numpy as np
import pandas as pd
import pytest

from audit import labels as L
from audit.cli import main
from audit.noise import detector_frame
from audit.noise.merge import QUEUE_COLUMNS, find_suspects, merge_queue, run_detectors, tail_p_values
from audit.noise.scoring import precision_recall_at_k, score_all, score_detector, score_ranking, truth_items
from test_noise_synthetic import make_predictions

SETUP = dict(people=40, eval_images=14, seed=5, gender_flips=2, age_moves=3, mask_swaps=2)


@pytest.fixture(scope="module")
def synthetic():
    return make_predictions(**SETUP)


def _frame(detector, items, scores, suggested, field="gender", given=0, flagged=None):
    n = len(items)
    return detector_frame({
        "item": items, "item_kind": "person", "field": field, "split": "train", "person": items,
        "path": [f"images/train/{i}/normal.jpg" for i in items], "given": [given] * n,
        "suggested": suggested, "score": scores,
        "flagged": flagged if flagged is not None else [s > 0.5 for s in scores],
        "evidence": [f"{detector} says {s}" for s in scores],
    }, detector)


def test_tail_p_values_ties_and_nan():
    p = tail_p_values(np.array([3.0, 1.0, 3.0, 2.0, np.nan]))
    np.testing.assert_allclose(p, [0.5, 1.0, 0.5, 0.75, 1.0])


def test_merge_queue_shape_order_and_suggestions():
    items = ["a", "b", "c", "d"]
    strong = _frame("person_level", items, [9.0, -3.0, 0.2, -5.0], [1, 1, 1, 1])
    weak = _frame("cleanlab", items, [0.9, 0.8, 0.1, 0.0], [1, 1, 1, 1])
    # A detector that only judged two items, and suggests differently for "b".
    partial = _frame("neighbours", ["a", "b"], [0.7, 0.9], [1, 1])
    mask = detector_frame({
        "item": ["a/x.jpg"], "item_kind": "image", "field": "mask", "split": "train", "person": ["a"],
        "path": ["a/x.jpg"], "given": [2], "suggested": [1], "score": [4.0], "flagged": [True],
        "evidence": ["swap"]}, "mask_slots")
    # Weights given, not the fitted tables: the test is about the queue's shape and order.
    q = merge_queue([strong, weak, partial, mask],
                    weights={"person_level": 1.0, "cleanlab": 0.25, "neighbours": 0.25, "mask_slots": 1.0})
    assert list(q.columns[:len(QUEUE_COLUMNS)]) == QUEUE_COLUMNS
    assert {"score_person_level", "score_cleanlab", "score_neighbours", "score_mask_slots"} <= set(q.columns)
    assert len(q) == 5 and not q.duplicated(["item", "field"]).any()
    assert list(q["rank"]) == [1, 2, 3, 4, 5] and q["score"].is_monotonic_decreasing
    g = q[q["field"] == "gender"].set_index("item")
    # "a" is top for every detector: first among gender items, flagged by all three.
    assert g["score"].idxmax() == "a"
    assert g.loc["a", "n_detectors"] == 3 and g.loc["a", "detectors"].startswith("person_level")
    assert g.loc["a", "evidence"].startswith("person_level: person_level says 9.0")
    assert g.loc["d", "detectors"] == "" and not g.loc["d", "flagged"]
    assert np.isnan(g.loc["c", "score_neighbours"])
    assert (q["suggested"] != q["given"]).all()
    m = q[q["field"] == "mask"].iloc[0]
    assert m["suggested"] == 1 and m["item_kind"] == "image"


def test_merge_vote_follows_the_weightier_detector():
    items = ["a", "b", "c"]
    age_a = _frame("person_level", items, [5.0, 0.0, -1.0], [2, 1, 1], field="age")
    age_b = _frame("neighbours", items, [0.1, 0.9, 0.2], [1, 2, 2], field="age")
    q = merge_queue([age_a, age_b]).set_index("item")
    assert q.loc["a", "suggested"] == 2  # person_level's top item, its vote dominates
    # Weights can hand the lead to the other detector.
    q2 = merge_queue([age_a, age_b], weights={"neighbours": 5.0, "person_level": 0.1}).set_index("item")
    assert q2.loc["b", "rank"] == 1 and q2.loc["b", "suggested"] == 2


def test_merge_of_nothing_is_an_empty_queue():
    q = merge_queue([])
    assert len(q) == 0 and list(q.columns) == QUEUE_COLUMNS


def test_find_suspects_on_synthetic_run_puts_planted_errors_first(synthetic):
    df, emb, truth = synthetic

    class FakeRun:
        predictions, embeddings, meta = df, emb, {"bins": L.DEFAULT_BINS.to_dict()}

    q = find_suspects(FakeRun())
    train_people = df.loc[df["split"] == "train", "person"].nunique()
    n_eval = SETUP["eval_images"]
    assert len(q) == len(df) + 2 * train_people + 2 * n_eval  # mask per image, gender/age per person or eval image
    items = truth_items(df, truth)
    for field in ("gender", "mask"):
        noisy = set(items.loc[(items["field"] == field) & items["noisy"], "item"])
        top = q[(q["field"] == field) & (q["split"] == "train")].head(len(noisy))
        assert set(top["item"]) == noisy
    t = truth.set_index("path")
    swapped = q[q["item"].isin(t.index[t["mask_corrupted"]])]
    assert all(t.loc[p, "true_mask"] == s for p, s in zip(swapped["item"], swapped["suggested"]))
    # Without embeddings and pred_age, the two detectors that need them are skipped.
    dets = run_detectors(df.assign(pred_age=np.nan), None)
    assert set(dets) == {"cleanlab", "person_level", "mask_slots"}


def test_scoring_metrics_and_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    noisy = np.array([True, False, True, False])
    p, r = precision_recall_at_k(scores, noisy, 2)
    assert p == pytest.approx(0.75) and r == pytest.approx(0.75)  # the 0.8 tie splits the 2nd slot
    res = score_ranking(scores, noisy)
    assert res["n_items"] == 4 and res["n_noisy"] == 2
    assert 0 <= res["auroc"] <= 1 and 0 <= res["auprc"] <= 1
    perfect = score_ranking(np.array([3.0, 2.0, 1.0]), np.array([True, False, False]))
    assert perfect["auroc"] == 1 and perfect["auprc"] == 1 and perfect["precision_at_k"] == 1


def test_truth_items_and_score_all(synthetic):
    df, emb, truth = synthetic
    items = truth_items(df, truth)
    n_people = df.loc[df["split"] == "train", "person"].nunique()
    assert (items["field"] == "mask").sum() == (df["split"] == "train").sum()
    assert (items["field"] == "gender").sum() == n_people == (items["field"] == "age").sum()
    assert items.loc[items["field"] == "gender", "noisy"].sum() == SETUP["gender_flips"]
    dets = run_detectors(df, emb)
    q = merge_queue(dets)
    res = score_all(dets, q, items)
    assert set(res["detector"]) == {"cleanlab", "person_level", "mask_slots", "neighbours", "age_residual", "merged"}
    assert set(res["field"]) == {"mask", "gender", "age"}
    assert res[["auroc", "auprc", "precision_at_k", "recall_at_k"]].apply(lambda c: c.between(0, 1)).all().all()
    # An item a detector did not judge ranks last rather than disappearing.
    empty_ish = dets["person_level"][dets["person_level"]["field"] == "gender"].head(3)
    row = score_detector(empty_ish, items, "gender", "partial")
    assert row["n_items"] == n_people


def test_suspects_cli_writes_the_queue_into_the_run(synthetic, tmp_path, capsys):
    from audit.runs import Run, write_run

    df, emb, _truth = synthetic
    run_dir = write_run(tmp_path / "run", df, emb, {"bins": L.DEFAULT_BINS.to_dict(), "source": "predict"})
    assert main(["suspects", str(run_dir), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and out.count("score ") == 5
    q = Run.open(run_dir).suspects
    assert q is not None and list(q.columns[:len(QUEUE_COLUMNS)]) == QUEUE_COLUMNS and q["rank"].iloc[0] == 1
    assert main(["suspects", str(tmp_path / "missing")]) == 2


def test_merge_uses_mean_cleanlab_while_the_benchmark_baseline_stays_max(synthetic):
    from audit.noise_bench import score_run
    from audit.noise.confident_learning import confident_learning
    from audit.noise.merge import MERGE_CLEANLAB_AGG

    df, emb, truth = synthetic
    assert MERGE_CLEANLAB_AGG == "mean"
    merged_member = run_detectors(df, emb)["cleanlab"]
    by_mean = confident_learning(df, person_agg="mean")
    by_max = confident_learning(df, person_agg="max")
    g = lambda f: f[f["field"] == "gender"].set_index("item")["score"].sort_index()  # noqa: E731
    pd.testing.assert_series_equal(g(merged_member), g(by_mean))
    assert not np.allclose(g(by_mean).to_numpy(), g(by_max).to_numpy())
    results, _ = score_run(df, emb, truth)
    items = truth_items(df, truth)
    baseline = results[(results["detector"] == "cleanlab") & (results["field"] == "gender")].iloc[0]
    assert baseline["auprc"] == pytest.approx(score_detector(by_max, items, "gender", "cleanlab")["auprc"])


def test_suspect_scores_spread_person_items_over_their_photos():
    import pandas as pd

    from audit.noise.merge import suspect_scores

    preds = pd.DataFrame({"path": ["a/1.jpg", "a/2.jpg", "b/1.jpg", "e.png"], "person": ["a", "a", "b", ""]})
    queue = pd.DataFrame({"item": ["a", "a/2.jpg", "e.png", "a"], "item_kind": ["person", "image", "image", "person"],
                          "field": ["gender", "mask", "mask", "age"], "score": [0.4, 0.9, 0.2, 0.6]})
    score, fields = suspect_scores(preds, queue)
    assert score.tolist() == [0.6, 0.9, 0.0, 0.2]
    assert fields.tolist() == ["age, gender", "mask, age, gender", "", "mask"]
    empty_score, empty_fields = suspect_scores(preds, None)
    assert empty_score.tolist() == [0.0] * 4 and empty_fields.tolist() == [""] * 4


def test_the_weights_follow_whether_a_second_opinion_judged_the_items():
    from audit.noise.merge import DEFAULT_WEIGHTS, LEAD_DETECTOR, PRIMARY_WEIGHTS

    items = ["a", "b", "c"]
    # The run's own detector its table leans on most, and the second opinion's lead detector.
    mine = max((d for (d, f) in PRIMARY_WEIGHTS if f == "gender"), key=lambda d: PRIMARY_WEIGHTS[(d, "gender")])
    lead = LEAD_DETECTOR["gender"]
    own = _frame(mine, items, [3.0, 0.1, 0.0], [1, 1, 1])
    other = _frame(lead, items, [0.0, 0.1, 3.0], [1, 1, 1])
    alone = merge_queue([own]).set_index("item")
    assert alone["score"].idxmax() == "a"  # the run alone: its own detectors count
    both = merge_queue([own, other]).set_index("item")
    want = "c" if DEFAULT_WEIGHTS[(lead, "gender")] > DEFAULT_WEIGHTS.get((mine, "gender"), 0.0) else "a"
    assert both["score"].idxmax() == want
    assert PRIMARY_WEIGHTS[(mine, "gender")] > 0
    # A second opinion on eval images only leaves train people to the run's own table.
    eval_only = detector_frame({**{c: other[c].to_numpy() for c in other.columns if c != "detector"},
                                "item": ["e1", "e2", "e3"], "item_kind": "image", "split": "eval"}, lead)
    mixed = merge_queue([own, eval_only]).set_index("item")
    assert mixed.loc["a", "score"] == alone.loc["a", "score"]


def test_a_second_opinion_without_its_lead_detector_keeps_the_runs_own_weights():
    """An imported second opinion without ages feeds second_opinion for age but not age_likelihood:
    the run's own age detectors must still count (the fitted table gives them 0)."""
    from audit.noise.merge import DEFAULT_WEIGHTS, LEAD_DETECTOR

    items = ["a", "b", "c"]
    own = _frame("age_residual", items, [3.0, 0.1, 0.0], [1, 1, 1], field="age")
    other = _frame("second_opinion", items, [0.0, 0.1, 3.0], [1, 1, 1], field="age")
    assert LEAD_DETECTOR["age"] == "age_likelihood" and DEFAULT_WEIGHTS[("age_residual", "age")] == 0
    q = merge_queue([own, other]).set_index("item")
    assert q["score"].idxmax() == "a"
    lead = _frame("age_likelihood", items, [0.0, 0.1, 3.0], [1, 1, 1], field="age")
    assert merge_queue([own, other, lead]).set_index("item")["score"].idxmax() == "c"
