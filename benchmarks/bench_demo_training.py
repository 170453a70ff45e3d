"""How fast does the demo model learn from scratch on CPU? (the numbers behind BENCHMARKS.md "Classifier")

    python benchmarks/bench_demo_training.py DEMO_DIR [--arch A] [--img-size H W] [--steps N]
        [--batch-size B] [--lr LR] [--hue H] [--scale-min S] [--holdout-people P]

DEMO_DIR: a demo dataset (`python -m audit make-demo DIR --people 400 --eval 600`). Decodes every
image once at the input size, trains one model for N steps (1 torch thread, augmentation from
audit.model's train transform with the given hue jitter and minimum scale), then reports per-head
accuracy and 18-class macro F1 on P held-out train people (same distribution) and on the eval
images (shifted: more mask styles, a second source), and the CPU seconds used.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.dataset_index import index_dataset  # noqa: E402
from audit.model import create_eval_transform, create_model, create_train_transform  # noqa: E402
from audit.training import (  # noqa: E402
    MultiHeadLoss, _labels, class_weights, decode_images, head_metrics, warmup_cosine,
)


def main() -> None:
    from PIL import Image
    from torchvision import transforms as T

    p = argparse.ArgumentParser()
    p.add_argument("demo")
    p.add_argument("--arch", default="mobilenetv3_small_050")
    p.add_argument("--img-size", type=int, nargs=2, default=[64, 48])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hue", type=float, default=0.1)
    p.add_argument("--scale-min", type=float, default=0.85)
    p.add_argument("--holdout-people", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    index = index_dataset(args.demo)
    images = index.images
    size = tuple(args.img_size)
    model = create_model(args.arch, pretrained=False, img_size=size, drop_rate=0.1)
    cpu0 = time.process_time()
    pixels = decode_images(index.root, images["path"].tolist(), size, model.card.interpolation)
    labels = _labels(images)
    train = (images["split"] == "train").to_numpy()
    people = images.loc[train, "person"].unique()
    held = set(people[-args.holdout_people:])
    is_held = train & images["person"].isin(held).to_numpy()
    fit = train & ~is_held
    tf = create_train_transform(model.card)
    tf._augment = T.Compose([
        T.RandomHorizontalFlip(),
        T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(args.scale_min, 1.1)),
        T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=args.hue),
    ])
    ev = create_eval_transform(model.card)
    xt, lt = pixels[fit], labels[fit]
    weights = {"mask": class_weights(lt[:, 0], 3), "gender": class_weights(lt[:, 1], 2), "age": class_weights(lt[:, 2], 3)}
    criterion = MultiHeadLoss(weights, 0.05, 0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(args.steps))
    rng = np.random.default_rng(0)
    model.train()
    for step in range(args.steps):
        pick = rng.choice(len(xt), args.batch_size, replace=False)
        x = torch.stack([tf.from_prepared(Image.fromarray(xt[k])) for k in pick])
        y = torch.from_numpy(lt[pick])
        loss = criterion(model(x), y[:, 0], y[:, 1], y[:, 2], y[:, 3])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()

    def evaluate(mask):
        xs, ls = pixels[mask], labels[mask]
        with torch.no_grad():
            outs = [model(torch.stack([ev.from_prepared(Image.fromarray(a)) for a in xs[j:j + 200]])) for j in range(0, len(xs), 200)]
        probs = {h: torch.cat([torch.softmax(o[h], 1) for o in outs]).numpy() for h in ("mask", "gender", "age")}
        probs["age_reg"] = torch.cat([o["age_reg"] for o in outs]).numpy()
        return head_metrics(ls, probs)

    print(f"{args.arch} {size[0]}x{size[1]} steps {args.steps} batch {args.batch_size} lr {args.lr} hue {args.hue} "
          f"scale>={args.scale_min}: final loss {loss.item():.3f}, cpu {time.process_time() - cpu0:.0f} s")
    print("  held-out train people:", evaluate(is_held))
    print("  eval images:          ", evaluate(~train))


if __name__ == "__main__":
    main()
