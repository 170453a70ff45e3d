"""Does a model learn gender and age better when eval images (more identities) join its training?

    python benchmarks/bench_eval_folds.py DEMO_DIR EXTRA SEED

DEMO_DIR: a demo drawn by `benchmarks/bench_input.py` (300 people x 7 + 400 eval, seed 0). The
400 eval images are shuffled once (seed 0): the first 200 are a fixed held-out test, EXTRA of the
rest join the train people's images. One final model (the demo recipe, 12 epochs, no folds) is
trained with audit.training's own loop (torch seed SEED) and scored on the 200 held-out images
against the TRUE labels of truth.csv. One JSON line on stdout. (The numbers behind BENCHMARKS.md
"Eval images in the folds".)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit import training as T  # noqa: E402
from audit.demo_recipe import demo_train_config  # noqa: E402
from audit.dataset_index import index_dataset  # noqa: E402
from audit.demo_data import read_truth  # noqa: E402
from audit.model import create_eval_transform, create_train_transform  # noqa: E402
from bench_input import truth_scores  # noqa: E402  (this folder is on sys.path when run as a script)


def main() -> None:
    data, n_extra, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    index = index_dataset(data)
    truth = read_truth(data / "truth.csv").set_index("path")
    tr = index.images[index.images["split"] == "train"].reset_index(drop=True)
    ev = index.images[index.images["split"] == "eval"].reset_index(drop=True)
    perm = np.random.default_rng(0).permutation(len(ev))
    held = ev.iloc[perm[:200]].reset_index(drop=True)
    fit_rows = pd.concat([tr, ev.iloc[perm[200:200 + n_extra]]], ignore_index=True)
    torch.set_num_threads(1)  # the two loader processes take the other core
    config = demo_train_config(folds=0, epochs=12)
    torch.manual_seed(seed)
    model = T._build(config)
    card = model.card
    paths = fit_rows["path"].tolist() + held["path"].tolist()
    cache = T.decode_images(data, paths, card.image_size, card.interpolation, crop=card.crop, workers=1)
    train_set = T._Images(data, fit_rows["path"].tolist(), T._labels(fit_rows), create_train_transform(card), cache=cache)
    eval_set = T._Images(data, held["path"].tolist(), T._labels(held), create_eval_transform(card), cache=cache,
                         positions=np.arange(len(held)) + len(fit_rows))
    t0 = time.perf_counter()
    T._fit(model, train_set, config, seed=seed, label="bench", device=torch.device("cpu"))
    seconds = time.perf_counter() - t0
    probs = T.predict_dataset(model, eval_set, batch_size=64, workers=0, device=torch.device("cpu"))
    print(json.dumps({"extra_eval_images": n_extra, "seed": seed, "train_seconds": round(seconds),
                      **truth_scores(probs, truth.loc[held["path"]], config.bins)}), flush=True)

if __name__ == "__main__":
    main()
