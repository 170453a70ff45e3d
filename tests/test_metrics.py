import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from audit import labels as L
from audit import metrics as M


def _frame(n=400, seed=0, absent=()):
    """A predictions-like frame with random labels; classes in `absent` never appear given or predicted."""
    rng = np.random.default_rng(seed)
    allowed = np.array([c for c in range(18) if c not in absent])
    true = rng.choice(allowed, n)
    pred = np.where(rng.random(n) < 0.6, true, rng.choice(allowed, n))
    m, g, a = L.split_class(true)
    pm, pg, pa = L.split_class(pred)
    return pd.DataFrame({
        "split": rng.choice(["train", "eval"], n), "race": rng.choice(["White", "Asian", "Black"], n),
        "source": rng.choice(["GAN", "photo"], n), "mask": m, "gender": g, "age_bin": a, "class_id": true,
        "pred_mask": pm, "pred_gender": pg, "pred_age_bin": pa, "pred_class": pred,
    })


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_matches_sklearn_on_random_labels(seed):
    df = _frame(seed=seed)
    assert M.macro_f1(df["class_id"], df["pred_class"], 18) == pytest.approx(
        f1_score(df["class_id"], df["pred_class"], average="macro"))


def test_macro_f1_with_classes_absent_from_a_slice_matches_sklearn():
    df = _frame(n=300, seed=3, absent=(0, 5, 17))
    part = M.slice_frame(df, race="Asian")
    got = M.macro_f1(part["class_id"], part["pred_class"], 18)
    assert got == pytest.approx(f1_score(part["class_id"], part["pred_class"], average="macro"))
    # A class predicted but never given still counts (F1 0), as in sklearn.
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    assert M.macro_f1(y_true, y_pred, 3) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert np.isnan(M.macro_f1([], [], 18))


def test_classification_report_frame_matches_sklearn():
    df = _frame(seed=4, absent=(3,))
    rep = M.classification_report_frame(df["class_id"], df["pred_class"])
    p, r, f, s = precision_recall_fscore_support(df["class_id"], df["pred_class"], labels=range(18), zero_division=0)
    np.testing.assert_allclose(rep["precision"], p)
    np.testing.assert_allclose(rep["recall"], r)
    np.testing.assert_allclose(rep["f1"], f)
    assert (rep["support"].to_numpy() == s).all()
    assert rep.loc[3, "support"] == 0 and rep.loc[3, "f1"] == 0
    assert rep["name"].tolist() == L.class_names()
    small = M.classification_report_frame([0, 1, 1], [0, 1, 0], labels=[0, 1], names=["Male", "Female"])
    assert small["name"].tolist() == ["Male", "Female"] and small.loc[1, "recall"] == pytest.approx(0.5)


def test_confusions_match_sklearn_and_normalise():
    df = _frame(seed=5)
    cm = M.confusion(df["class_id"], df["pred_class"], 18)
    assert (cm == confusion_matrix(df["class_id"], df["pred_class"], labels=range(18))).all()
    att = M.attribute_confusions(df)
    assert att["mask"].shape == (3, 3) and att["gender"].shape == (2, 2) and att["age"].shape == (3, 3)
    assert (att["gender"] == confusion_matrix(df["gender"], df["pred_gender"], labels=[0, 1])).all()
    assert att["age"].sum() == len(df)
    norm = M.normalize_rows(np.array([[2, 2], [0, 0]]))
    np.testing.assert_allclose(norm, [[0.5, 0.5], [0, 0]])
    with pytest.raises(ValueError):
        M.confusion([0, 3], [0, 1], 3)


def test_slice_frame_values_lists_and_none():
    df = _frame(seed=6)
    one = M.slice_frame(df, split="eval", race="White")
    assert len(one) and (one["split"] == "eval").all() and (one["race"] == "White").all()
    many = M.slice_frame(df, race=["White", "Asian"], mask=0, age_bin=None)
    assert set(many["race"]) <= {"White", "Asian"} and (many["mask"] == 0).all()
    assert len(M.slice_frame(df)) == len(df)
    assert len(M.slice_frame(df, source="nothing")) == 0
    with pytest.raises(KeyError):
        M.slice_frame(df, colour="red")


def test_metric_by_group_table_and_gap():
    df = _frame(n=600, seed=7)
    res = M.metric_by_group(df, "race")
    assert list(res.table.index) == ["Asian", "Black", "White"]
    for race, row in res.table.iterrows():
        part = df[df["race"] == race]
        assert row["n"] == len(part)
        assert row["acc_gender"] == pytest.approx((part["gender"] == part["pred_gender"]).mean())
        assert row["macro_f1"] == pytest.approx(f1_score(part["class_id"], part["pred_class"], average="macro"))
    t = res.table["macro_f1"]
    assert res.best == t.idxmax() and res.worst == t.idxmin()
    assert res.gap == pytest.approx(t.max() - t.min())
    assert res.summary()["gap"] == pytest.approx(res.gap)
    # Small groups are shown but do not define the gap.
    df.loc[df.index[:3], "race"] = "Indian"
    res2 = M.metric_by_group(df, "race", metric="acc_mask", min_n=10)
    assert "Indian" in res2.table.index and "Indian" not in (res2.best, res2.worst)


def test_headline_metrics_per_split():
    df = _frame(seed=8)
    df["fold"] = np.where(df["split"] == "train", 0, -1)
    h = M.headline_metrics(df)
    assert list(h.index) == ["train (out-of-fold)", "eval"]
    ev = df[df["split"] == "eval"]
    assert h.loc["eval", "macro_f1"] == pytest.approx(f1_score(ev["class_id"], ev["pred_class"], average="macro"))
    assert h.loc["eval", "acc_mask"] == pytest.approx((ev["mask"] == ev["pred_mask"]).mean())
    assert list(M.headline_metrics(df[df["split"] == "train"]).index) == ["train (out-of-fold)"]
    # eval rows named out-of-fold only when every one of them has a fold (eval joined the folds)
    df["fold"] = np.where(df["split"] == "eval", -1, 0)
    assert list(M.headline_metrics(df).index) == ["train (out-of-fold)", "eval"]
    df["fold"] = 1
    assert list(M.headline_metrics(df).index) == ["train (out-of-fold)", "eval (out-of-fold)"]
    # an imported run (or a model trained without folds): no row was predicted out-of-fold
    df["fold"] = -1
    assert list(M.headline_metrics(df).index) == ["train", "eval"]
    assert list(M.headline_metrics(df.drop(columns="fold")).index) == ["train", "eval"]
