"""The label-noise benchmark: scoring on a synthetic run, and the CLI's JSON on a tiny real run."""
import json
import math

import pytest

from audit.cli import main
from audit.noise_bench import format_results, score_run
from audit.noise.scoring import RESULT_KEYS
from test_noise_synthetic import make_predictions

DETECTORS = {"cleanlab", "cleanlab_mean", "person_level", "mask_slots", "neighbours", "age_residual", "merged"}


def _check_schema(payload):
    assert set(payload) >= {"results"}
    rows = payload["results"]
    assert rows and all(set(r) >= set(RESULT_KEYS) for r in rows)
    for r in rows:
        assert r["field"] in ("mask", "gender", "age")
        assert isinstance(r["n_items"], int) and isinstance(r["n_noisy"], int)
        for key in ("auroc", "auprc", "precision_at_k", "recall_at_k"):
            assert r[key] is None or (isinstance(r[key], float) and 0 <= r[key] <= 1)
    pairs = {(r["field"], r["detector"]) for r in rows}
    for field in ("mask", "gender", "age"):
        assert (field, "cleanlab") in pairs and (field, "merged") in pairs
    return rows


def test_score_run_on_synthetic_run():
    df, emb, truth = make_predictions(people=40, eval_images=10, seed=2, gender_flips=2, age_moves=3, mask_swaps=2)
    results, queue = score_run(df, emb, truth)
    assert list(results.columns) == list(RESULT_KEYS)
    assert set(results["detector"]) == DETECTORS
    assert list(results["field"].unique()) == ["mask", "gender", "age"]
    merged = results[results["detector"] == "merged"].set_index("field")
    assert merged.loc["gender", "n_noisy"] == 2 and merged.loc["mask", "n_noisy"] == 4
    assert merged.loc["gender", "auprc"] == pytest.approx(1.0)
    assert len(queue) and "age_residual" in format_results(results)


@pytest.mark.slow
def test_bench_noise_scores_the_tiny_run_against_its_truth(tiny_run, tiny_demo, capsys):
    assert main(["bench-noise", "--run", str(tiny_run), "--truth", str(tiny_demo / "truth.csv"), "--json"]) == 0
    rows = _check_schema(json.loads(capsys.readouterr().out))
    assert {r["detector"] for r in rows} >= DETECTORS - {"age_residual"}
    by = {(r["field"], r["detector"]): r for r in rows}
    truth = __import__("pandas").read_csv(tiny_demo / "truth.csv")
    train = truth[truth["split"] == "train"]
    assert by[("gender", "merged")]["n_noisy"] == int(train.groupby("person")["gender_corrupted"].any().sum())
    assert by[("mask", "merged")]["n_items"] == len(train)
    assert main(["bench-noise", "--run", str(tiny_run)]) == 2  # --truth missing


def test_bench_noise_refuses_a_bad_crop_before_any_work(tmp_path, capsys):
    assert main(["bench-noise", "--crop", "0.1", "--keep", str(tmp_path / "kept")]) == 2
    assert "crop" in capsys.readouterr().err
    assert not (tmp_path / "kept").exists()  # nothing drawn


@pytest.mark.slow
def test_bench_noise_cli_json_on_a_tiny_build(capsys):
    pytest.importorskip("audit.training")
    assert main(["bench-noise", "--tiny", "--json", "--workers", "0"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = _check_schema(payload)
    assert all(not (isinstance(r["auroc"], float) and math.isnan(r["auroc"])) for r in rows)
