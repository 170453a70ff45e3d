"""Derive the pretraining's drawn chunks at a smaller input size from chunks already drawn larger.

    python benchmarks/derive_pretrain_chunks.py SRC_DRAW_FOLDER DST_DRAW_FOLDER H W

Used once on 2026-11-30: the 2-core box was at load 11+ and re-drawing 33,600 faces at 96x72 with
nice 10 ran at ~1.7 chunks/min (would have taken 35 min), while the same identities had already
been drawn at 128x96 for the input-size measurement. Each 128x96 image is resized to HxW
(bilinear, antialiased) - a second resize that a direct draw (`load_rgb` from the 384x512 file)
does not make; pixels differ slightly from a direct draw at HxW. Chunks already in DST are kept.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    src, dst, h, w = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("ids_*.npz")):
        target = dst / f.name
        if target.is_file():
            continue
        part = np.load(f)
        pixels = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR, reducing_gap=None))
                           for im in part["pixels"]])
        tmp = str(target) + ".tmp.npz"
        np.savez(tmp, pixels=pixels, labels=part["labels"])
        os.replace(tmp, target)
        print(target.name, pixels.shape, flush=True)


if __name__ == "__main__":
    main()
