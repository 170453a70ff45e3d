"""Data-quality checks (audit/quality.py, `python -m audit quality`, `bench-quality`)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.cli import main as cli_main
from audit.dataset_index import index_dataset
from audit.quality import (
    FINDING_COLUMNS, GROUP_KINDS, QUALITY_KINDS, QualityConfig, RunFromOtherData, find_quality_issues,
    correlated_pairs, flagged_paths, image_signals, person_findings, quality_report,
)
from fixtures_quality import SLOTS, identity_run, noise_picture, quality_tree


def _findings(root):
    index = index_dataset(root)
    signals = image_signals(index.root, index.images["path"].tolist(), workers=2)
    return index, find_quality_issues(index.root, index.images, signals)


def test_each_image_kind_found_on_a_planted_tree_and_clean_images_not_flagged(tmp_path):
    planted = quality_tree(tmp_path / "data")
    index, findings = _findings(tmp_path / "data")
    assert list(findings.columns) == list(FINDING_COLUMNS)
    for kind, paths in planted.items():
        rows = findings[findings["kind"] == kind]
        assert len(rows) >= 1, f"{kind} not found:\n{findings[['kind', 'path', 'detail']]}"
        if kind in GROUP_KINDS:
            assert any(set(paths) <= {p, *r} for p, r in zip(rows["path"], rows["related"])), kind
        else:
            assert paths[0] in set(rows["path"]), kind
    spoiled = {p for paths in planted.values() for p in paths}
    assert flagged_paths(findings) <= spoiled, "a clean picture was flagged"
    # the same pixels in other bytes are an exact duplicate, said so
    exact = findings[findings["kind"] == "exact_duplicate"].iloc[0]
    assert "decoded pixels" in exact["detail"]
    # the odd aspect ratio is about shape, the small picture about size
    assert planted["odd_size"][0] not in set(findings.loc[findings["kind"] == "odd_aspect_ratio", "path"])


def test_demo_planted_defects_are_found_and_nothing_else(tiny_demo):
    from audit.demo_data import read_quality_truth

    truth = read_quality_truth(tiny_demo)
    assert {"exact_duplicate", "near_duplicate", "split_leak", "person_outlier", "dark", "blurry",
            "low_information"} <= set(truth["kind"])
    _index, findings = _findings(tiny_demo)
    for row in truth.itertuples(index=False):
        rows = findings[findings["kind"] == row.kind]
        if row.kind in GROUP_KINDS:
            assert any({row.path, *row.related} <= {p, *r} for p, r in zip(rows["path"], rows["related"])), row
        else:
            assert row.path in set(rows["path"]), row
    # every finding is about a planted file (a leak's group may add the source person's other photos)
    spoiled = set(truth["path"]) | {p for r in truth["related"] for p in r}
    folders = {p.rsplit("/", 1)[0] for p in spoiled if p.startswith("images/train/")}
    for kind, path, related in findings[["kind", "path", "related"]].itertuples(index=False, name=None):
        named = {path, *related}
        assert named & spoiled or {p.rsplit("/", 1)[0] for p in named} & folders, (kind, path)
    # eval's extra mask styles are not defects: no property finding on a clean eval picture
    props = findings[~findings["kind"].isin(GROUP_KINDS)]
    assert set(props["path"]) <= spoiled


def test_thousands_of_identical_images_make_one_group(tmp_path):
    root = tmp_path / "same"
    ev = root / "images" / "eval"
    ev.mkdir(parents=True)
    (root / "images" / "train").mkdir()
    src = ev / "ffhq-00000_male_White_30_mask.jpg"
    noise_picture(np.random.default_rng(0), size=(48, 64)).save(src, quality=90)
    for i in range(1, 2000):
        shutil.copyfile(src, ev / f"ffhq-{i:05d}_male_White_30_mask.jpg")
    _index, findings = _findings(root)
    exact = findings[findings["kind"] == "exact_duplicate"]
    assert len(exact) == 1 and len(exact.iloc[0]["related"]) == 1999
    assert "near_duplicate" not in set(findings["kind"])


def test_correlated_pairs_finds_exactly_the_close_pairs_of_a_brute_force_search():
    """Every pair within the distance, none beyond it, on look-alikes (a shared low-rank layout, as
    faces on a plain background) with copies planted on both sides of the threshold."""
    rng = np.random.default_rng(0)
    layout = rng.normal(0, 1, (12, 768)).astype(np.float32)
    x = rng.normal(0, 1, (1500, 12)).astype(np.float32) @ layout + rng.normal(0, 0.9, (1500, 768)).astype(np.float32)
    for k, noise in enumerate(np.linspace(0.1, 3.0, 40)):  # copies from near-identical to far
        x[2 * k + 1] = x[2 * k] + rng.normal(0, noise, 768)
    grey = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    corr = grey @ grey.T / grey.shape[1]
    a, b = np.triu_indices(len(grey), 1)
    for max_distance in (0.02, 0.05, 0.1):
        want = {(int(p), int(q)) for p, q in zip(a, b) if 1 - corr[p, q] <= max_distance}
        i, j, c = correlated_pairs(grey, max_distance)
        assert set(zip(i.tolist(), j.tolist())) == want
        assert np.allclose(c, corr[i, j], atol=1e-5)
        copies = sum((2 * k, 2 * k + 1) in want for k in range(40))
        assert 3 < copies < 37  # copies planted on both sides of the threshold
    flat = grey.copy()
    flat[100] = np.nan  # a flat thumbnail normalised by a zero spread: the other pairs are still found
    i, j, _c = correlated_pairs(flat, 0.1)
    assert set(zip(i.tolist(), j.tolist())) == {p for p in want if 100 not in p}


def test_the_pair_bound_holds_and_is_tight_in_the_principal_directions():
    """The bound never drops a pair (a . b never above it) and equals a . b when the thumbnails lie
    in the principal directions, so there it leaves next to no pairs for the full product: a bound
    that is valid but slack (a sign slip in the mean's terms once let 24x the pairs through) fails."""
    from audit.quality import _bound_candidates, _bound_terms

    rng = np.random.default_rng(1)
    coef = rng.normal(0, 1, (400, 20)).astype(np.float32)
    for k, noise in enumerate(np.linspace(0.05, 0.6, 30)):  # copies near and far, in the same span
        coef[2 * k + 1] = coef[2 * k] + rng.normal(0, noise, 20)
    low = coef @ rng.normal(0, 1, (20, 300)).astype(np.float32)
    low += 4 * np.sin(np.arange(300, dtype=np.float32) / 9)  # a layout they all share: the mean's terms count
    low = (low - low.mean(1, keepdims=True)) / low.std(1, keepdims=True)  # as thumbnails are normalised
    for x, tight in ((low, True), (rng.normal(0, 1, (400, 300)).astype(np.float32), False)):
        y, rest, lift, offset = _bound_terms(x)
        bound = y @ y.T + np.outer(rest, rest) + lift[:, None] + lift[None, :] - offset
        exact = x.astype(np.float64) @ x.T.astype(np.float64)
        assert (bound >= exact - 1e-3 * np.abs(exact).max()).all()
        if tight:
            assert np.abs(bound - exact).max() <= 1e-3 * np.abs(exact).max()
    corr = low.astype(np.float64) @ low.T / low.shape[1]
    a, b = np.triu_indices(len(low), 1)
    close = int((1 - corr[a, b] <= 0.05).sum())
    i, _j = _bound_candidates(low, 0.05)
    assert 5 < close <= len(i) <= close + 0.001 * len(a)


def test_pairs_are_aligned_onto_the_shared_member():
    """A file in many pairs is zoomed once for all of them; the pairs themselves are unchanged."""
    from audit.quality import _zoom_onto_shared

    i = np.array([0, 1, 2, 5, 3, 7])
    j = np.array([5, 5, 5, 9, 4, 8])  # 5 is in four pairs
    first, second = _zoom_onto_shared(i, j)
    assert sorted(map(sorted, zip(first.tolist(), second.tolist()))) == sorted(map(sorted, zip(i.tolist(), j.tolist())))
    assert (second[:4] == 5).all() and len(set(second.tolist())) == 3


def test_window_sums_match_an_integral_image():
    from audit.quality import _window_sums

    x = np.random.default_rng(2).normal(0, 1, (3, 30, 22))
    s = np.pad(x, [(0, 0), (1, 0), (1, 0)]).cumsum(1).cumsum(2)
    h, w = 25, 17
    want = s[:, h:, w:] - s[:, :-h, w:] - s[:, h:, :-w] + s[:, :-h, :-w]
    assert _window_sums(x, (h, w)).shape == want.shape == (3, 6, 6)
    assert np.allclose(_window_sums(x, (h, w)), want)


def _people_frame(n_people=30, seed=0):
    rows = []
    for p in range(n_people):
        for slot, mask in zip(SLOTS, (0, 0, 0, 0, 0, 1, 2)):
            rows.append({"path": f"images/train/p{p:03d}/{slot}.png", "split": "train", "person": f"p{p:03d}",
                         "mask": mask})
    return pd.DataFrame(rows)


def test_person_checks_find_the_stranger_and_the_mixed_person_only():
    rng = np.random.default_rng(0)
    images = _people_frame()
    persons = images["person"].to_numpy()
    vectors = {p: rng.normal(0, 1, 16) for p in np.unique(persons)}
    masks = rng.normal(0, 3, (3, 16))
    emb = np.stack([vectors[p] for p in persons]) + masks[images["mask"]] + rng.normal(0, 0.15, (len(images), 16))
    stranger = 7 * 3 + 2
    emb[stranger] = rng.normal(0, 1, 16) + masks[0]
    mixed = images["person"].to_numpy() == "p010"
    emb[mixed] = rng.normal(0, 1, (7, 16)) + masks[images["mask"].to_numpy()[mixed]]
    found = person_findings(images, emb)
    assert list(found["kind"]) == ["person_outlier", "person_mixed"]
    assert found.iloc[0]["path"] == images["path"][stranger] and len(found.iloc[0]["related"]) == 6
    assert found.iloc[1]["path"] == "images/train/p010" and len(found.iloc[1]["related"]) == 7


def test_quality_report_uses_a_run_is_cached_and_refuses_other_data(tmp_path):
    planted = quality_tree(tmp_path / "data", people=12)
    index = index_dataset(tmp_path / "data")
    stranger = planted["person_outlier"][0]
    from audit.runs import Run

    run = Run.open(identity_run(index, tmp_path / "run", stranger=stranger))
    report = quality_report(index, run=run)
    assert not report.reused and "the embeddings of the run" in report.embeddings_from
    outliers = report.findings[report.findings["kind"] == "person_outlier"]
    assert list(outliers["path"]) == [stranger]
    assert "spreads from theirs (run embeddings)" in outliers.iloc[0]["detail"]  # the face distance beside
    assert "person_mixed" not in set(report.findings["kind"])
    again = quality_report(index, run=run)
    assert again.reused and again.findings["path"].tolist() == report.findings["path"].tolist()
    assert again.findings["related"].map(list).tolist() == report.findings["related"].map(list).tolist()
    # a run of other data: refused
    other = quality_tree(tmp_path / "other", people=2, seed=5)
    assert other
    with pytest.raises(RunFromOtherData):
        quality_report(index_dataset(tmp_path / "other"), run=run)
    assert planted


def test_cli_quality_json_schema_and_bad_input(tmp_path, capsys):
    quality_tree(tmp_path / "data")
    assert cli_main(["quality", str(tmp_path / "data"), "--json", "--workers", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"images", "findings"} and out["images"] == 4 * 7 + 6 + 11
    assert out["findings"] and all(set(f) == {"kind", "path", "detail", "related", "score"} for f in out["findings"])
    kinds = {f["kind"] for f in out["findings"]}
    assert kinds <= set(QUALITY_KINDS) | {"unreadable_image", "truncated_image"}
    assert all(isinstance(f["related"], list) and isinstance(f["score"], float) for f in out["findings"])
    # human summary
    assert cli_main(["quality", str(tmp_path / "data")]) == 0
    assert "reused from the workspace" in capsys.readouterr().out
    # not a dataset, a run of other data: one line, exit 2
    (tmp_path / "empty").mkdir()
    assert cli_main(["quality", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    quality_tree(tmp_path / "other", people=2, seed=3)
    other = index_dataset(tmp_path / "other")
    run_dir = identity_run(other, tmp_path / "run_other", stranger="")
    assert cli_main(["quality", str(tmp_path / "data"), "--run", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "other data" in err and err.count("\n") == 1


def test_unreadable_and_truncated_files_are_skipped_with_the_index_kinds(tmp_path):
    root = tmp_path / "data"
    quality_tree(root, people=1)
    ev = root / "images" / "eval"
    good = ev / "ffhq-50000_male_Asian_40_mask.png"
    data = good.read_bytes()
    cut = ev / "ffhq-50030_male_Asian_40_mask.png"
    cut.write_bytes(data[: len(data) // 2])
    _index, findings = _findings(root)
    skipped = findings[findings["kind"].isin(("unreadable_image", "truncated_image"))]
    assert {"images/eval/ffhq-50020_male_Asian_40_mask.jpg", "images/eval/ffhq-50030_male_Asian_40_mask.png"} <= set(skipped["path"])


def test_bench_quality_json_schema_on_a_tiny_run(tmp_path, capsys):
    assert cli_main(["bench-quality", "--people", "4", "--eval", "6", "--seed", "2", "--no-run", "--json",
                     "--out", str(tmp_path / "bench")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"people", "eval_images", "seed", "images", "seconds", "kinds", "embeddings_from"} <= set(out)
    assert out["images"] == 4 * 7 + 6
    for row in out["kinds"]:
        assert set(row) == {"kind", "planted", "findings", "right_findings", "found", "precision", "recall"}
        assert row["precision"] is None or 0 <= row["precision"] <= 1
    by_kind = {r["kind"]: r for r in out["kinds"]}
    assert by_kind["exact_duplicate"]["recall"] == 1.0
    assert cli_main(["bench-quality", "--people", "1", "--json"]) == 2


def test_config_key_changes_with_thresholds():
    assert QualityConfig().key() != QualityConfig(dark_threshold=0.3).key()


def test_grey_rgb_picture_counts_as_grayscale(tmp_path):
    root = tmp_path / "data"
    quality_tree(root, people=1)
    grey = noise_picture(np.random.default_rng(9)).convert("L").convert("RGB")
    path = root / "images/eval/ffhq-50040_male_Asian_40_mask.png"
    grey.save(path)
    with Image.open(path) as im:
        assert im.mode == "RGB"
    _index, findings = _findings(root)
    assert "images/eval/ffhq-50040_male_Asian_40_mask.png" in set(findings.loc[findings["kind"] == "grayscale", "path"])


def test_picture_person_checks_find_a_stranger_and_a_mixed_person():
    """A person's photos share the part above the mask: another picture there is a stranger, a
    person whose photos all differ is mixed; the person's own photos (other masks) are not flagged."""
    from audit.quality import THUMB_SIZE

    rng = np.random.default_rng(1)
    images = _people_frame(n_people=6)
    w, h = THUMB_SIZE
    thumbs = []
    sources = {p: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for p in images["person"].unique()}
    for path, person in zip(images["path"], images["person"]):
        t = sources[person].copy()
        t[h // 2:] = rng.integers(0, 256, (h - h // 2, w, 3))  # a different mask on every photo
        if person == "p004" or path == "images/train/p001/mask3.png":
            t = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # another picture altogether
        thumbs.append(t.tobytes())
    found = person_findings(images, None, thumbs=np.array(thumbs, dtype=object))
    assert sorted(zip(found["kind"], found["path"])) == [
        ("person_mixed", "images/train/p004"), ("person_outlier", "images/train/p001/mask3.png")]


def test_cli_quality_with_the_pretrained_backbone(tmp_path, capsys):
    from audit.demo_recipe import default_pretrained_file

    if default_pretrained_file() is None:
        pytest.skip("weights/pretrained/model.pt is not there")
    quality_tree(tmp_path / "data", people=4)
    assert cli_main(["quality", str(tmp_path / "data"), "--pretrained", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    outliers = [f for f in out["findings"] if f["kind"] == "person_outlier"]
    assert [f["path"] for f in outliers] == ["images/train/ffhq-00003_female_White_30/mask2.png"]
    assert "run embeddings" in outliers[0]["detail"]  # the backbone's face distance beside it


def test_face_leak_finds_a_train_persons_photo_under_another_mask_in_eval():
    """An eval image sharing all but its mask with a train person's photos is a split leak naming
    that person's photos; another face in eval, or one like the person only in the flat parts, is not."""
    from audit.quality import THUMB_SIZE, face_leak_findings

    rng = np.random.default_rng(3)
    w, h = THUMB_SIZE
    train = _people_frame(n_people=8)
    sources = {p: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for p in train["person"].unique()}
    thumbs = []
    for person in train["person"]:
        t = sources[person].copy()
        t[h // 2:h // 2 + 8] = rng.integers(0, 256, (8, w, 3))  # a different mask on every photo
        thumbs.append(t)
    leak = sources["p002"].copy()
    leak[h // 2:h // 2 + 8] = 200  # the same source photo, an eval mask
    stranger = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    half = sources["p005"].copy()
    half[: h // 2] = rng.integers(0, 256, (h // 2, w, 3))  # shares only the lower part with p005
    evals = pd.DataFrame({"path": ["images/eval/leak.png", "images/eval/other.png", "images/eval/half.png"],
                          "split": "eval", "person": ["e0", "e1", "e2"], "mask": 0})
    images = pd.concat([train, evals], ignore_index=True)
    thumbs = np.array([t.tobytes() for t in thumbs + [leak, stranger, half]], dtype=object)
    found = face_leak_findings(images, thumbs)
    assert list(found["path"]) == ["images/eval/leak.png"]
    assert found["kind"].tolist() == ["split_leak"]
    assert set(found["related"].iloc[0]) == set(train.loc[train["person"] == "p002", "path"])
    assert found["score"].iloc[0] >= 0.95
    # an eval image already reported by the duplicate check is not reported twice
    assert face_leak_findings(images, thumbs, skip={"images/eval/leak.png"}).empty


def test_demo_plants_copy_and_face_leaks_and_all_are_found(tmp_path):
    from audit.commands.bench_quality import score_findings
    from audit.demo_data import NO_QUALITY_DEFECTS, make_demo, read_quality_truth

    rates = dataclasses.replace(NO_QUALITY_DEFECTS, split_leak=0.4)
    make_demo(tmp_path / "d", people=12, eval_images=8, seed=4, quality=rates, workers=1)
    truth = read_quality_truth(tmp_path / "d")
    assert set(truth["how"]) == {"exact_leak", "near_leak", "face_leak"}
    face = truth[truth["how"] == "face_leak"].iloc[0]
    assert len(face["related"]) == 7 and not face["path"].endswith("_normal.png")
    _index, findings = _findings(tmp_path / "d")
    scores = score_findings(findings, truth).set_index("kind")
    assert scores.loc["split_leak", "recall"] == 1.0 and scores.loc["split_leak", "precision"] == 1.0
    found = findings[(findings["kind"] == "split_leak") & (findings["path"] == face["path"])]
    assert len(found) == 1 and set(found["related"].iloc[0]) & set(face["related"])
