"""A synthetic run for the noise detectors: P people x 7 photos (+ eval photos) with planted
label errors and a simulated out-of-fold model, so each detector's answer is known.

`make_predictions` returns (predictions, embeddings, truth) shaped like a run's predictions
frame (docs/ARCHITECTURE.md "A run") and the demo's truth.csv. Other test modules import it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audit import labels as L

STEMS = ["incorrect_mask", "mask1", "mask2", "mask3", "mask4", "mask5", "normal"]
RACES = ["White", "Asian", "Black", "LatinoHispanic"]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def make_predictions(people=60, eval_images=0, seed=0, *, gender_flips=3, age_moves=4, mask_swaps=2,
                     gender_sharpness=2.5, age_sd=5.0, mask_margin=5.0, dim=16, bins=L.DEFAULT_BINS):
    """Synthetic predictions with planted noise.

    Returns (predictions DataFrame, embeddings (N, dim) float16, truth DataFrame with truth.csv's
    columns). The first `gender_flips` people have gender flipped, the next `age_moves` an age
    moved across a bin boundary, the next `mask_swaps` their normal/incorrect_mask files swapped.
    """
    rng = np.random.default_rng(seed)
    true_gender = rng.integers(0, 2, people)
    true_age = rng.integers(16, 61, people)
    race = rng.choice(RACES, people)
    given_gender = true_gender.copy()
    given_gender[:gender_flips] = 1 - given_gender[:gender_flips]
    given_age = true_age.copy()
    for i in range(gender_flips, gender_flips + age_moves):
        b = bins.bin(true_age[i])
        # Move across the nearest boundary, by a few years past it.
        if b == 0 or (b == 1 and true_age[i] - bins.lo < bins.hi - true_age[i]):
            target_bin = b + 1 if b == 0 else b - 1
        else:
            target_bin = b - 1 if b == 2 else b + 1
        edge = bins.lo if {b, target_bin} == {0, 1} else bins.hi
        given_age[i] = edge + 3 if target_bin > b else edge - 3
        true_age[i] = edge - 4 if target_bin > b else edge + 5
    swapped = set(range(gender_flips + age_moves, gender_flips + age_moves + mask_swaps))
    ids = [f"{100000 + i:06d}" for i in range(people)]
    person_key = [f"{ids[i]}_{L.GENDERS[given_gender[i]]}_{race[i]}_{given_age[i]}" for i in range(people)]
    # Per-person appearance: how female / how old the person looks (shared by their photos).
    look_gender = (2 * true_gender - 1) * gender_sharpness + rng.normal(0, 1.0, people)
    look_age = true_age + rng.normal(0, age_sd * 0.6, people)
    identity = rng.normal(0, 1, (people, dim))

    rows, emb = [], []

    def add(split, pi, stem, path, true_mask, given_mask, g_true, g_given, a_true, a_given, key, r, look_g, look_a, ident):
        lg = look_g + rng.normal(0, 0.8)
        pg = 1 / (1 + np.exp(-lg))
        la = look_a + rng.normal(0, age_sd * 0.4)
        cdf = [0.0] + [0.5 * (1 + np.tanh((e - la) / (age_sd * 0.8))) for e in bins.edges] + [1.0]
        pa = np.clip(np.diff(cdf), 1e-4, None)
        pa /= pa.sum()
        zm = rng.normal(0, 1, 3)
        zm[true_mask] += mask_margin
        pm = _softmax(zm[None])[0]
        rows.append({
            "path": path, "split": split, "person": key, "person_id": key.split("_")[0],
            "gender": g_given, "race": r, "age": a_given, "age_bin": bins.bin(a_given), "mask": given_mask,
            "mask_type": stem, "source": "GAN", "true_gender": g_true, "true_age": a_true, "true_mask": true_mask,
            "p_mask": pm, "p_gender": np.array([1 - pg, pg]), "p_age": pa, "pred_age": la,
        })
        e = 0.7 * ident + rng.normal(0, 0.3, dim)
        e[0] += 3.0 * (true_mask == 0)
        e[1] += 3.0 * (true_mask == 1)
        e[2] += 3.0 * (true_mask == 2)
        e[3] += 1.2 * lg / gender_sharpness
        e[4] += (la - 38) / 12.0
        emb.append(e)

    for i in range(people):
        for stem in STEMS:
            given_mask = L.TRAIN_MASK_TYPES[stem]
            true_mask = given_mask
            if i in swapped and stem in ("normal", "incorrect_mask"):
                true_mask = 3 - given_mask  # 1 <-> 2
            add("train", i, stem, f"images/train/{person_key[i]}/{stem}.jpg", true_mask, given_mask,
                true_gender[i], given_gender[i], true_age[i], given_age[i], person_key[i], race[i],
                look_gender[i], look_age[i], identity[i])
    for j in range(eval_images):
        g = int(rng.integers(0, 2))
        a = int(rng.integers(16, 61))
        m = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
        stem = ["mask", "incorrect_mask", "normal"][m]
        key = f"ev{j:05d}_{L.GENDERS[g]}_Asian_{a}"
        add("eval", -1, stem, f"images/eval/{key}_{stem}.png", m, m, g, g, a, a, key, "Asian",
            (2 * g - 1) * gender_sharpness + rng.normal(0, 1.0), a + rng.normal(0, age_sd * 0.6), rng.normal(0, 1, dim))

    raw = pd.DataFrame(rows)
    df = raw[["path", "split", "person", "person_id", "gender", "race", "age", "age_bin", "mask", "mask_type"]].copy()
    df["class_id"] = L.class_id(df["mask"].to_numpy(), df["gender"].to_numpy(), df["age_bin"].to_numpy())
    df["source"] = raw["source"]
    df["fold"] = np.where(df["split"] == "train", rng.integers(0, 5, len(df)), -1)
    pm = np.stack(raw["p_mask"]); pg = np.stack(raw["p_gender"]); pa = np.stack(raw["p_age"])
    pc = L.class_probs_from_heads(pm, pg, pa)
    for k in range(3):
        df[f"p_mask_{k}"] = pm[:, k].astype(np.float32)
    for k in range(2):
        df[f"p_gender_{k}"] = pg[:, k].astype(np.float32)
    for k in range(3):
        df[f"p_age_{k}"] = pa[:, k].astype(np.float32)
    for k in range(18):
        df[f"p_class_{k}"] = pc[:, k].astype(np.float32)
    df["pred_mask"] = pm.argmax(1)
    df["pred_gender"] = pg.argmax(1)
    df["pred_age_bin"] = pa.argmax(1)
    df["pred_class"] = pc.argmax(1)
    df["confidence"] = pc.max(1).astype(np.float32)
    df["pred_age"] = raw["pred_age"].astype(float)
    df = df.sort_values(["split", "path"], kind="stable").reset_index(drop=True)
    order = raw.sort_values(["split", "path"], kind="stable").index.to_numpy()
    embeddings = np.asarray(emb)[order].astype(np.float16)
    raw = raw.loc[order].reset_index(drop=True)
    truth = pd.DataFrame({
        "path": raw["path"], "split": raw["split"], "person": raw["person"],
        "true_gender": raw["true_gender"], "given_gender": raw["gender"],
        "true_age": raw["true_age"], "given_age": raw["age"],
        "true_mask": raw["true_mask"], "given_mask": raw["mask"],
    })
    truth["gender_corrupted"] = truth["true_gender"] != truth["given_gender"]
    truth["age_corrupted"] = bins.bin(truth["true_age"].to_numpy()) != bins.bin(truth["given_age"].to_numpy())
    truth["mask_corrupted"] = truth["true_mask"] != truth["given_mask"]
    return df, embeddings, truth


def test_synthetic_frame_has_the_run_columns_and_planted_noise():
    df, emb, truth = make_predictions(people=20, eval_images=10, seed=1)
    assert len(df) == 20 * 7 + 10 == len(emb) == len(truth)
    assert (df["path"].to_numpy() == truth["path"].to_numpy()).all()
    for c in ["p_mask_2", "p_gender_1", "p_age_0", "p_class_17", "pred_class", "confidence", "pred_age", "fold"]:
        assert c in df.columns
    np.testing.assert_allclose(df[[f"p_class_{k}" for k in range(18)]].sum(axis=1), 1.0, atol=1e-5)
    train = truth[truth["split"] == "train"]
    assert train.groupby("person")["gender_corrupted"].any().sum() == 3
    assert train.groupby("person")["age_corrupted"].any().sum() == 4
    assert train["mask_corrupted"].sum() == 4  # two people x two swapped files
