"""Time Grad-CAM per image on CPU: `python benchmarks/bench_gradcam.py [--arch A --img-size H W]`.

Model: the committed demo checkpoint (weights/demo) when present, else the demo architecture and
input size from `audit.training` with random weights (the cost does not depend on the weights).
Image: a 384x512 portrait (the dataset's size), so the timings include resizing the heatmap back
and drawing the overlay at full size. Reports the median of --repeats calls after one warm-up,
with torch's default intra-op threads and with cpu_threads=1.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def portrait():
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (384, 512), (90, 140, 200))
    d = ImageDraw.Draw(img)
    d.ellipse([80, 80, 304, 440], fill=(225, 180, 150))
    d.ellipse([130, 200, 170, 230], fill=(20, 20, 20))
    d.ellipse([214, 200, 254, 230], fill=(20, 20, 20))
    d.rectangle([100, 290, 284, 390], fill=(250, 250, 250))
    return img


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first call pays for lazy imports and allocator growth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=None, help="timm architecture (default: the demo model's)")
    parser.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from audit.gradcam import GradCamExplainer
    from audit.model import create_model, load_checkpoint
    from audit.demo_recipe import DEMO_ARCH, DEMO_IMG_SIZE
    from audit.workspace import DEMO_WEIGHTS

    torch.manual_seed(0)
    if args.arch is None and (DEMO_WEIGHTS / "model.pt").is_file():
        model, card = load_checkpoint(DEMO_WEIGHTS, device="cpu")
        source = f"checkpoint {DEMO_WEIGHTS / 'model.pt'}"
    else:
        arch = args.arch or DEMO_ARCH
        size = tuple(args.img_size) if args.img_size else (DEMO_IMG_SIZE if args.arch is None else None)
        model = create_model(arch, pretrained=False, img_size=size)
        card = model.card
        source = "random weights"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"model: {card.arch} input {card.input_size} ({source}); image 384x512")

    image = portrait()
    for threads in (None, 1):
        start = time.perf_counter()
        explainer = GradCamExplainer(model, card, device="cpu", cpu_threads=threads)
        t_init = time.perf_counter() - start
        label = f"torch threads {torch.get_num_threads()}" if threads is None else f"cpu_threads={threads}"
        print(f"\n[{label}] explainer init (layer {explainer.layer.name}): {t_init:.2f} s")
        for method in ("gradcam", "eigencam", "gradcam++", "layercam"):
            t = median_time(lambda: explainer.explain(image, "mask", 1, method=method), args.repeats)
            print(f"  explain {method:10s}: {t * 1000:7.1f} ms")
        t = median_time(lambda: explainer.explain_pair(image, "age", 0, 2), args.repeats)
        print(f"  explain_pair gradcam+eigencam, given != predicted: {t * 1000:7.1f} ms")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
