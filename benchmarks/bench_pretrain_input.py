"""Which input size should the domain pretraining use? A short measurement.

`python benchmarks/bench_pretrain_input.py WORK_DIR [--identities 1500] [--epochs 6] [--sizes 64x48 96x72 128x96 96x72c0.5]`

Trains `audit.pretraining.fit_arrays` on the first N pretraining identities (drawn at 128x96,
crop 0.7, by `python -m audit pretrain` / `draw_dataset` into WORK_DIR; smaller sizes are the
128x96 pixels resized down with antialiasing, close to but not exactly `load_rgb` from the
384x512 file) and scores each size on the 800 held-out identities against their TRUE labels.
A size with a `cC` suffix (C < 0.7) keeps the central C of the image instead of 0.7: the drawn
pixels' central C/0.7 are cut out before the resize, so the face gets more of the same input.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    import torch
    from PIL import Image

    from audit.model import create_model
    from audit.pretraining import PretrainConfig, draw_dataset, fit_arrays

    ap = argparse.ArgumentParser()
    ap.add_argument("work_dir")
    ap.add_argument("--identities", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--sizes", nargs="+", default=["64x48", "96x72", "128x96"])
    ap.add_argument("--arch", default="test_resnet")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    full = PretrainConfig(identities=16000, val_identities=800)
    x_tr, y_tr = draw_dataset(args.work_dir, full, start=0, stop=args.identities, interpolation="bilinear")
    x_va, y_va = draw_dataset(args.work_dir, full, start=16000, stop=16800, interpolation="bilinear")
    results = []
    for spec in args.sizes:
        dims, _, crop_spec = spec.partition("c")
        h, w = (int(v) for v in dims.split("x"))
        crop = float(crop_spec) if crop_spec else 0.7

        def resize(a, h=h, w=w, crop=crop):
            if (h, w) == a.shape[1:3] and crop == 0.7:
                return a
            ah, aw = a.shape[1:3]
            ch, cw = round(ah * crop / 0.7), round(aw * crop / 0.7)
            box = ((aw - cw) // 2, (ah - ch) // 2, (aw - cw) // 2 + cw, (ah - ch) // 2 + ch)
            return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR, box=box, reducing_gap=None))
                             for im in a])

        cfg = PretrainConfig(identities=args.identities, arch=args.arch, img_size=(h, w), epochs=args.epochs)
        torch.manual_seed(0)
        model = create_model(args.arch, pretrained=False, img_size=(h, w), crop=crop, drop_rate=cfg.drop_rate)
        t0 = time.perf_counter()
        hist = fit_arrays(model, cfg, resize(x_tr), y_tr, resize(x_va), y_va, log=lambda m: None)
        row = {"size": spec, "arch": args.arch, "train_s": round(time.perf_counter() - t0, 1), **hist[-1]["val"]}
        print(json.dumps(row), flush=True)
        results.append(row)


if __name__ == "__main__":
    main()
