"""Prediction throughput (images/s) against a decode-only pass over the same files, same settings.

    python benchmarks/bench_predict.py [--people 100] [--eval-images 300] [--data DIR]
        [--models demo,resnet18] [--batch-size 64] [--configs default,2x2,1x1] [--repeats 2]

Draws a demo dataset (384x512 files, `audit.demo_data.make_demo`) into a temporary folder unless
--data is given, indexes it, and for each model measures, on the same image list and with the same
DataLoader (workers, batch size, the model card's preprocessing):

- decode-only: read + decode (reduced-size JPEG decoding where the input is small) + resize +
  normalise, no model: the floor a CPU pipeline cannot beat;
- predict: `audit.prediction.predict_paths`, the code path of `python -m audit predict`
  (decoding, forward pass, softmax, embeddings).

The two passes alternate `--repeats` times; the best of each is reported, with the ratio
predict / decode, and the CPU time per image (this process + the finished worker processes,
user + system; the least of the repeats), which other jobs on a shared box disturb less than
wall time. `--configs`: DataLoader workers x torch CPU threads to try, `WxT`, or `default`
(what `python -m audit predict` uses: all cores as workers, `default_threads`). Models: `demo` = weights/demo/model.pt when present (else a fresh
`--demo-arch` at `--demo-size`); any other name is a fresh (untrained) timm model of that
architecture (`resnet18`, `resnet50`, ...) fed the files at their full 512x384 (H x W); weights do
not change the speed.
"""
from __future__ import annotations

import argparse
import os
import resource
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.dataset_index import index_dataset  # noqa: E402
from audit.model import create_model, load_checkpoint  # noqa: E402
from audit.prediction import _cpu_threads, _ImageFiles, _prepare, default_threads, default_workers, predict_paths, resolve_device  # noqa: E402
from audit.demo_recipe import DEMO_ARCH, DEMO_IMG_SIZE  # noqa: E402
from audit.workspace import DEMO_WEIGHTS  # noqa: E402


def decode_only(root, paths, card, *, batch_size, workers) -> int:
    """Iterate the prediction DataLoader without a model; returns images seen."""
    loader = torch.utils.data.DataLoader(_ImageFiles(root, paths, card), batch_size=batch_size, shuffle=False,
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    n = 0
    for x, pos, ok, _err in loader:
        n += int(ok.sum())
    return n


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader workers), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_model(name: str, args):
    if name == "demo":
        checkpoint = DEMO_WEIGHTS / "model.pt"
        if checkpoint.is_file():
            model, card = load_checkpoint(checkpoint, device="cpu")
            return model, card, f"weights/demo/model.pt ({card.arch}, input {card.image_size[0]}x{card.image_size[1]})"
        h, w = args.demo_size
        model = create_model(args.demo_arch, pretrained=False, img_size=(h, w))
        return model, model.card, f"{args.demo_arch} untrained, input {h}x{w} (weights/demo not present yet)"
    # any other timm architecture, untrained, fed the files at their full 512x384 (H x W)
    try:
        model = create_model(name, pretrained=False, img_size=(512, 384))
    except Exception as err:  # noqa: BLE001 - an unknown name is the user's typo
        raise SystemExit(f"cannot build model {name!r}: {err}") from None
    return model, model.card, f"{name} untrained, input 512x384 (the files' full size)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="an existing dataset (default: draw a demo one)")
    parser.add_argument("--people", type=int, default=100, help="demo train people (7 files each)")
    parser.add_argument("--eval-images", type=int, default=300)
    parser.add_argument("--models", default="demo,resnet18")
    parser.add_argument("--demo-arch", default=DEMO_ARCH, help="used only while weights/demo is absent")
    parser.add_argument("--demo-size", type=int, nargs=2, default=DEMO_IMG_SIZE, metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--configs", default="default", help="comma list of WORKERSxTHREADS or 'default'")
    parser.add_argument("--limit", type=int, default=None, help="use N images spread evenly over the index")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    configs = []
    for spec in args.configs.split(","):
        if spec == "default":
            configs.append((default_workers(), default_threads(default_workers())))
        else:
            w, t = (int(v) for v in spec.lower().split("x"))
            configs.append((w, t))
    tmp = None
    if args.data:
        root = Path(args.data)
    else:
        from audit.demo_data import make_demo

        tmp = tempfile.TemporaryDirectory(prefix="bench_predict_")
        root = Path(tmp.name) / "demo"
        t0 = time.perf_counter()
        make_demo(root, people=args.people, eval_images=args.eval_images, seed=0)
        print(f"drew the demo dataset in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    index = index_dataset(root)
    rows = index.images
    if args.limit and args.limit < len(rows):
        # evenly spread: the index is sorted eval-first, and eval holds most of the PNGs
        rows = rows.iloc[np.linspace(0, len(rows) - 1, args.limit).round().astype(int)]
    paths = rows["path"].tolist()
    exts = rows["ext"].value_counts().to_dict()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    print(f"# {len(paths)} images {exts}; device {device} (GPU: {gpu}); {os.cpu_count()} cores; "
          f"torch {torch.__version__}; python {platform.python_version()}; batch {args.batch_size}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print("| model | input (HxW) | workers x threads | decode-only img/s | predict img/s | ratio | "
          "decode CPU ms/img | predict CPU ms/img |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model, card, desc = load_model(name, args)
        model = _prepare(model, device)
        for workers, threads in configs:
            best_decode, best_predict = 0.0, 0.0
            cpu_decode, cpu_predict = float("inf"), float("inf")
            with _cpu_threads(device, threads):
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), cpu_seconds()
                    n = decode_only(root, paths, card, batch_size=args.batch_size, workers=workers)
                    best_decode = max(best_decode, n / (time.perf_counter() - t0))
                    cpu_decode = min(cpu_decode, (cpu_seconds() - c0) / n)
                    t0, c0 = time.perf_counter(), cpu_seconds()
                    out = predict_paths(model, card, root, paths, batch_size=args.batch_size, device=device,
                                        workers=workers)
                    n = int(out["ok"].sum())
                    best_predict = max(best_predict, n / (time.perf_counter() - t0))
                    cpu_predict = min(cpu_predict, (cpu_seconds() - c0) / n)
            print(f"| {desc} | {card.image_size[0]}x{card.image_size[1]} | {workers}x{threads} | {best_decode:.1f} | "
                  f"{best_predict:.1f} | {best_predict / best_decode:.2f} | {cpu_decode * 1e3:.1f} | "
                  f"{cpu_predict * 1e3:.1f} |", flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
