"""What does the demo model learn of gender and age, by input crop, size, epochs, architecture and data?

    python benchmarks/bench_input.py DEMO_DIR PEOPLE CONFIG_JSON [CONFIG_JSON ...]

Draws a demo of PEOPLE train people + 400 eval images into DEMO_DIR (seed 0) unless one is there,
then for each config (changes to `demo_train_config`, e.g. '{"epochs": 12, "crop": 0.6}') trains one
final model (no folds) with audit.training's own loop and scores the eval images against the TRUE
labels of truth.csv: mask, gender and age-bin accuracy and the correlation of the regressed age with
the true age. One JSON line per config on stdout. (The numbers behind BENCHMARKS.md "Classifier",
"Input crop".)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit import training as T  # noqa: E402
from audit.demo_recipe import demo_train_config  # noqa: E402
from audit.dataset_index import index_dataset  # noqa: E402
from audit.demo_data import make_demo, read_truth  # noqa: E402
from audit.model import create_eval_transform, create_train_transform  # noqa: E402


def main() -> None:
    data, people, specs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    if not (data / "demo.json").exists():
        make_demo(data, people=people, eval_images=400, seed=0, force=True)
    index = index_dataset(data)
    truth = read_truth(data / "truth.csv").set_index("path")
    tr = index.images[index.images["split"] == "train"].reset_index(drop=True)
    ev = index.images[index.images["split"] == "eval"].reset_index(drop=True)
    paths = tr["path"].tolist() + ev["path"].tolist()
    torch.set_num_threads(1)  # the two loader processes take the other core
    caches = {}
    cpu = torch.device("cpu")
    for spec in specs:
        changes = json.loads(spec)
        if "img_size" in changes:
            changes["img_size"] = tuple(changes["img_size"])
        config = demo_train_config(folds=0, **changes)
        torch.manual_seed(0)
        model = T._build(config)
        card = model.card
        key = (card.image_size, card.crop)
        if key not in caches:
            caches[key] = T.decode_images(data, paths, card.image_size, card.interpolation, crop=card.crop, workers=1)
        train_set = T._Images(data, tr["path"].tolist(), T._labels(tr), create_train_transform(card), cache=caches[key])
        eval_set = T._Images(data, ev["path"].tolist(), T._labels(ev), create_eval_transform(card), cache=caches[key],
                             positions=np.arange(len(ev)) + len(tr))
        t0 = time.perf_counter()
        T._fit(model, train_set, config, seed=0, label="bench", device=cpu)
        seconds = time.perf_counter() - t0
        probs = T.predict_dataset(model, eval_set, batch_size=64, workers=0, device=cpu)
        print(json.dumps({"config": json.loads(spec), "people": people, "train_seconds": round(seconds),
                          **truth_scores(probs, truth.loc[ev["path"]], config.bins)}), flush=True)


def truth_scores(probs: dict, truth_rows, bins) -> dict:
    """Head probabilities of some images vs their TRUE labels (truth.csv rows in the same order):
    mask, gender and age-bin accuracy, and the correlation of the regressed age with the true age."""
    true_bin = np.asarray(bins.bin(truth_rows["true_age"].to_numpy()), dtype=np.int64)
    return {
        "mask_acc": round(float((probs["mask"].argmax(1) == truth_rows["true_mask"].to_numpy()).mean()), 3),
        "gender_acc": round(float((probs["gender"].argmax(1) == truth_rows["true_gender"].to_numpy()).mean()), 3),
        "age_bin_acc": round(float((probs["age"].argmax(1) == true_bin).mean()), 3),
        "age_corr": round(float(np.corrcoef(probs["age_reg"], truth_rows["true_age"])[0, 1]), 3),
    }


if __name__ == "__main__":
    main()
