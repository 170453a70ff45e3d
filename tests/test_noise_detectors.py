"""Each detector finds the errors planted in a small synthetic run and ranks clean items low."""
import numpy as np
import pandas as pd
import pytest

from audit import labels as L
from audit.noise import DETECTOR_COLUMNS
from audit.noise.age_residual import age_residual, signed_distance_outside
from audit.noise.confident_learning import confident_learning, image_issues
from audit.noise.mask_slots import mask_slots
from audit.noise.neighbours import nearest_other_people, neighbours
from audit.noise.person_level import person_level
from test_noise_synthetic import make_predictions

# people 0-1: gender flipped; 2-4: age moved across a boundary; 5-6: normal/incorrect swapped.
SETUP = dict(people=40, eval_images=14, seed=3, gender_flips=2, age_moves=3, mask_swaps=2)


@pytest.fixture(scope="module")
def synthetic():
    return make_predictions(**SETUP)


def _noisy_people(truth, field):
    t = truth[truth["split"] == "train"]
    return set(t.loc[t[f"{field}_corrupted"], "person"])


def _check_frame(frame, name):
    assert list(frame.columns) == DETECTOR_COLUMNS
    assert (frame["detector"] == name).all()
    assert frame["score"].notna().all()
    assert (frame["given"] != frame["suggested"]).all()
    assert not frame.duplicated(["item", "field"]).any()


def _top(frame, field, kind, n):
    f = frame[(frame["field"] == field) & (frame["item_kind"] == kind)]
    return f.sort_values("score", ascending=False).head(n)


def test_person_level_finds_flipped_gender_and_moved_age(synthetic):
    df, _emb, truth = synthetic
    out = person_level(df)
    _check_frame(out, "person_level")
    train_people = df.loc[df["split"] == "train", "person"].nunique()
    assert ((out["item_kind"] == "person") & (out["field"] == "gender")).sum() == train_people
    assert ((out["item_kind"] == "image") & (out["split"] == "eval")).sum() == 2 * SETUP["eval_images"]
    flipped = _noisy_people(truth, "gender")
    top = _top(out, "gender", "person", len(flipped))
    assert set(top["item"]) == flipped
    assert top["flagged"].all()
    # The suggestion is the true gender, and the evidence counts the photos.
    for _, row in top.iterrows():
        true = truth.loc[truth["person"] == row["item"], "true_gender"].iloc[0]
        assert row["suggested"] == true and "of 7 photos look" in row["evidence"]
    clean = out[(out["field"] == "gender") & (out["item_kind"] == "person") & ~out["item"].isin(flipped)]
    assert (clean["score"] < top["score"].min()).all()
    moved = _noisy_people(truth, "age")
    top_age = _top(out, "age", "person", 6)
    assert len(moved & set(top_age["item"])) >= 2


def test_mask_slots_finds_a_swapped_pair_and_leaves_clean_people_low(synthetic):
    df, _emb, truth = synthetic
    out = mask_slots(df)
    _check_frame(out, "mask_slots")
    assert len(out) == len(df) and (out["field"] == "mask").all()
    swapped = set(truth.loc[truth["mask_corrupted"], "path"])
    assert len(swapped) == 4
    top = out.sort_values("score", ascending=False).head(4)
    assert set(top["item"]) == swapped
    assert top["flagged"].all() and (top["score"] > 3).all()
    t = truth.set_index("path")
    assert all(t.loc[p, "true_mask"] == s for p, s in zip(top["item"], top["suggested"]))
    assert all("swapped with" in e for e in top["evidence"])
    clean_train = out[(out["split"] == "train") & ~out["item"].isin(swapped)]
    assert (clean_train["score"] < 0).all()


def test_mask_slots_hand_made_swap_and_incomplete_person():
    # One person, probabilities say the `normal` file shows an incorrect mask and vice versa.
    stems = ["incorrect_mask", "mask1", "mask2", "mask3", "mask4", "mask5", "normal"]
    p = np.array([[0.02, 0.03, 0.95]] + [[0.97, 0.02, 0.01]] * 5 + [[0.05, 0.9, 0.05]])
    df = pd.DataFrame({"path": [f"images/train/p/{s}.jpg" for s in stems], "split": "train", "person": "p",
                       "mask": [L.TRAIN_MASK_TYPES[s] for s in stems], "mask_type": stems,
                       "p_mask_0": p[:, 0], "p_mask_1": p[:, 1], "p_mask_2": p[:, 2]})
    out = mask_slots(df).set_index("item")
    assert out.loc["images/train/p/normal.jpg", "suggested"] == 1
    assert out.loc["images/train/p/incorrect_mask.jpg", "suggested"] == 2
    expected = np.log(0.9) + np.log(0.95) - np.log(0.05) - np.log(0.03)
    assert out.loc["images/train/p/normal.jpg", "score"] == pytest.approx(expected)
    assert (out.drop(["images/train/p/normal.jpg", "images/train/p/incorrect_mask.jpg"])["score"] < 0).all()
    # Six photos: no slot structure to use, judged per photo.
    out6 = mask_slots(df.iloc[1:]).set_index("item")
    assert out6.loc["images/train/p/normal.jpg", "score"] == pytest.approx(np.log(0.9) - np.log(0.05))


def test_confident_learning_per_image_and_per_person(synthetic):
    df, _emb, truth = synthetic
    per_person = confident_learning(df)
    _check_frame(per_person, "cleanlab")
    per_image = confident_learning(df, person_agg=None)
    assert (per_image["item_kind"] == "image").all() and len(per_image) == 3 * len(df)
    img = per_image[per_image["field"] == "gender"].set_index("item")
    rows = df.set_index("path")
    # Score is 1 - p(given label).
    p_given = np.where(rows["gender"] == 1, rows["p_gender_1"], rows["p_gender_0"])
    np.testing.assert_allclose(img.loc[rows.index, "score"], 1 - p_given, atol=1e-6)
    # Person score = max over the person's photos.
    g = per_person[(per_person["field"] == "gender") & (per_person["item_kind"] == "person")].set_index("item")
    train_img = per_image[(per_image["field"] == "gender") & (per_image["split"] == "train")]
    np.testing.assert_allclose(g["score"], train_img.groupby("person")["score"].max().reindex(g.index))
    flipped = _noisy_people(truth, "gender")
    assert flipped <= set(_top(per_person, "gender", "person", 6)["item"])
    swapped = set(truth.loc[truth["mask_corrupted"], "path"])
    assert swapped <= set(_top(per_person, "mask", "image", 8)["item"])
    mean = confident_learning(df, person_agg="mean")
    gm = mean[(mean["field"] == "gender") & (mean["item_kind"] == "person")].set_index("item")
    np.testing.assert_allclose(gm["score"], train_img.groupby("person")["score"].mean().reindex(gm.index))


def test_image_issues_handles_missing_classes():
    labels = np.array([0, 0, 2, 2, 2, 0])
    p = np.array([[.9, .05, .05], [.1, .1, .8], [.1, .1, .8], [.2, .1, .7], [.05, .05, .9], [.8, .1, .1]])
    score, issue = image_issues(labels, p)
    assert score.shape == (6,) and issue.shape == (6,)
    assert score.argmax() == 1
    s1, i1 = image_issues(np.zeros(3, int), p[:3])
    assert list(i1) == [False, True, True]


def test_neighbours_exclude_same_person_and_find_flips(synthetic):
    df, emb, truth = synthetic
    nbrs = nearest_other_people(emb, df["person"].to_numpy(), k=5)
    persons = df["person"].to_numpy()
    assert nbrs.shape == (len(df), 5) and (nbrs >= 0).all()
    assert not (persons[nbrs] == persons[:, None]).any()
    out = neighbours(df, emb, k=5)
    _check_frame(out, "neighbours")
    flipped = _noisy_people(truth, "gender")
    assert flipped <= set(_top(out, "gender", "person", 5)["item"])
    swapped = set(truth.loc[truth["mask_corrupted"], "path"])
    assert swapped <= set(_top(out, "mask", "image", 10)["item"])
    with pytest.raises(ValueError):
        neighbours(df, emb[:5])


def test_age_residual_boundaries_and_moved_ages(synthetic):
    b = L.DEFAULT_BINS  # <25, 25-39, >=40
    d = signed_distance_outside(np.array([30.0, 20.0, 45.0, 24.0]), np.array([0, 0, 1, 2]), b)
    np.testing.assert_allclose(d, [5.0, -5.0, 5.0, 16.0])
    df, _emb, truth = synthetic
    out = age_residual(df)
    _check_frame(out, "age_residual")
    assert (out["field"] == "age").all()
    moved = _noisy_people(truth, "age")
    top = _top(out, "age", "person", len(moved))
    assert moved == set(top["item"]) and top["flagged"].all()
    # Moved across a boundary: the suggestion is the true bin.
    for _, row in top.iterrows():
        true_age = truth.loc[truth["person"] == row["item"], "true_age"].iloc[0]
        assert row["suggested"] == b.bin(true_age)


def test_age_residual_skips_without_pred_age(synthetic):
    df, _emb, _truth = synthetic
    assert len(age_residual(df.assign(pred_age=np.nan))) == 0
    assert len(age_residual(df.drop(columns=["pred_age"]))) == 0
    partial = df.copy()
    partial.loc[partial["split"] == "eval", "pred_age"] = np.nan
    out = age_residual(partial)
    assert (out["split"] == "train").all() and len(out)


def test_cosine_knn_matches_sklearn():
    from sklearn.neighbors import NearestNeighbors

    from audit.noise.neighbours import _cosine_knn

    x = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)
    got = _cosine_knn(x, 8, chunk=64)
    _, want = NearestNeighbors(n_neighbors=8, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    assert (got[:, 0] == np.arange(300)).all()
    assert (got == want).mean() > 0.99  # equal up to float ties


def _one_person(p_female_masked: float, p_female_unmasked: float, given_gender: int) -> pd.DataFrame:
    """One train person, 5 worn-mask photos, 1 incorrect, 1 unmasked, with the run's own mask head sure."""
    stems = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]
    state = np.array([L.TRAIN_MASK_TYPES[s] for s in stems])
    p_mask = np.eye(3)[state] * 0.98 + 0.01 / 1.5
    p_f = np.array([p_female_masked] * 6 + [p_female_unmasked])
    df = pd.DataFrame({"path": [f"images/train/p/{s}.jpg" for s in stems], "split": "train", "person": "p",
                       "mask_type": stems, "mask": state, "gender": given_gender, "age": 30, "age_bin": 1,
                       "p_gender_0": 1 - p_f, "p_gender_1": p_f})
    for k in range(3):
        df[f"p_mask_{k}"] = p_mask[:, k]
    for k in range(3):
        df[f"p_age_{k}"] = [0.1, 0.8, 0.1][k]
    return df


def test_view_weights_read_gender_from_the_unmasked_photo():
    from audit.noise import person_groups, view_weights

    df = pd.concat([_one_person(0.8, 0.01, 1), _one_person(0.8, 0.01, 1).assign(person="q")], ignore_index=True)
    codes, _people = person_groups(df)
    # The unmasked photo shows all the masked ones do and the lower face besides: it carries the person.
    np.testing.assert_allclose(view_weights(df, codes, "gender"), ([0.0] * 6 + [1.0]) * 2)
    # The state is what the run sees, not the file name: a "mask3" it reads as unmasked shares the say.
    df.loc[2, ["p_mask_0", "p_mask_2"]] = [0.01, 0.98]
    np.testing.assert_allclose(view_weights(df, codes, "gender")[:7], [0, 0, 0.5, 0, 0, 0, 0.5])
    # A person the run never sees unmasked: each mask state it does see weighs once.
    masked = df[df["person"] == "q"].iloc[:6].reset_index(drop=True)
    mcodes, _ = person_groups(masked)
    np.testing.assert_allclose(view_weights(masked, mcodes, "gender"), [0.2] * 5 + [1.0])
    # Without mask probabilities every photo weighs 1; so does every photo for age, whose cues show
    # above the mask (VIEW_FIELDS).
    np.testing.assert_allclose(view_weights(df.drop(columns=["p_mask_0"]), codes, "gender"), np.ones(len(df)))
    np.testing.assert_allclose(view_weights(df, codes, "age"), np.ones(len(df)))


def test_person_level_reads_gender_from_the_unmasked_photo():
    # The masked photos lean female (0.8 each), the unmasked photo shows a man (p female 0.01).
    # Summed photo by photo the six masked readings outvote it: 6 log 4 = 8.3 > log 99 = 4.6 nats;
    # read from the unmasked photo, a "female" label is suspect by log 99.
    out = person_level(_one_person(0.8, 0.01, given_gender=1), fields=("gender",), prior_correction=False)
    row = out.iloc[0]
    assert row["suggested"] == 0 and row["flagged"]
    assert row["score"] == pytest.approx(np.log(99), abs=0.02)
    assert row["evidence"].endswith("; the unmasked photo decides: it looks male (p=0.99)")
    # Labelled male, the same photos do not flag the label.
    assert not person_level(_one_person(0.8, 0.01, given_gender=0), fields=("gender",),
                            prior_correction=False).iloc[0]["flagged"]
    # Without an unmasked photo the masked ones decide, each mask state once: female, log 4 + log 4.
    masked = _one_person(0.8, 0.01, given_gender=0).iloc[:6]
    row = person_level(masked, fields=("gender",), prior_correction=False).iloc[0]
    assert row["suggested"] == 1 and row["score"] == pytest.approx(2 * np.log(4), abs=0.02)
    assert row["evidence"].endswith("; no unmasked photo: each mask state weighs once")
