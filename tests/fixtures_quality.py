"""Tiny trees and runs for the data-quality checks (owner: data-quality work).

`quality_tree(path)`: a seed-layout dataset of noise pictures with one defect of each kind
planted by hand; returns {kind: [paths]}. A person's 7 photos share their top half (one source
photo, "masks" pasted below), as in the real set; eval pictures all differ.
`identity_run(index, run_dir, stranger=...)`: a run without a model whose embeddings are one
vector per person (plus the mask state's, plus noise), the `stranger` photo given someone else's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SLOTS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")


def noise_picture(rng, size=(384, 512), lo=0, hi=256) -> Image.Image:
    """A random RGB picture: bright, sharp, full of information, unlike any other."""
    w, h = size
    small = rng.integers(lo, hi, (h // 8, w // 8, 3), dtype=np.uint8)
    # Blocks of 8 px plus per-pixel jitter: edges inside (sharp) and no two pictures alike.
    big = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8)).astype(np.int16)
    big += rng.integers(-6, 7, big.shape)
    return Image.fromarray(np.clip(big, lo, hi - 1).astype(np.uint8), "RGB")


def quality_tree(root: Path, *, people: int = 4, seed: int = 0) -> dict[str, list[str]]:
    """Write a seed-layout tree under `root` and return the planted paths per kind."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    planted: dict[str, list[str]] = {}
    for p in range(people):
        folder = root / "images" / "train" / f"ffhq-{p:05d}_female_White_30"
        folder.mkdir(parents=True, exist_ok=True)
        source = noise_picture(rng)
        for slot in SLOTS:
            photo = source.copy()
            photo.paste(noise_picture(rng, size=(384, 256)), (0, 256))  # the "mask": the lower half
            photo.save(folder / f"{slot}.png", compress_level=1)
    if people >= 4:  # a photo of someone else in the fourth person's folder
        stranger = "images/train/ffhq-00003_female_White_30/mask2.png"
        noise_picture(rng).save(root / stranger, compress_level=1)
        planted["person_outlier"] = [stranger]
    ev = root / "images" / "eval"
    ev.mkdir(parents=True, exist_ok=True)

    def eval_path(i: int, mask_type: str = "mask", ext: str = "png") -> Path:
        return ev / f"ffhq-{50000 + i:05d}_male_Asian_40_{mask_type}.{ext}"

    for i in range(6):
        noise_picture(rng).save(eval_path(i), compress_level=1)
    rel = lambda path: str(Path(path).relative_to(root).as_posix())  # noqa: E731
    # The same pixels saved twice with other compression: other bytes, same decoded picture.
    same = noise_picture(rng)
    same.save(eval_path(10), compress_level=1)
    same.save(eval_path(11), compress_level=9)
    planted["exact_duplicate"] = [rel(eval_path(10)), rel(eval_path(11))]
    # A train photo re-encoded into eval: a split leak.
    with Image.open(root / "images/train/ffhq-00000_female_White_30/mask1.png") as im:
        im.convert("RGB").save(eval_path(12, ext="jpg"), quality=85)
    planted["split_leak"] = [rel(eval_path(12, ext="jpg")), "images/train/ffhq-00000_female_White_30/mask1.png"]
    # Grey picture as one channel.
    noise_picture(rng).convert("L").save(eval_path(13))
    planted["grayscale"] = [rel(eval_path(13))]
    noise_picture(rng, lo=243, hi=256).save(eval_path(14))
    planted["light"] = [rel(eval_path(14))]
    noise_picture(rng, lo=0, hi=40).save(eval_path(15))
    planted["dark"] = [rel(eval_path(15))]
    noise_picture(rng, size=(192, 256)).save(eval_path(16))
    planted["odd_size"] = [rel(eval_path(16))]
    noise_picture(rng, size=(384, 160)).save(eval_path(17))
    planted["odd_aspect_ratio"] = [rel(eval_path(17))]
    Image.new("RGB", (384, 512), (120, 130, 140)).save(eval_path(18))
    planted["low_information"] = [rel(eval_path(18))]
    from PIL import ImageFilter

    noise_picture(rng).filter(ImageFilter.GaussianBlur(12)).save(eval_path(19))
    planted["blurry"] = [rel(eval_path(19))]
    eval_path(20, ext="jpg").write_bytes(b"this is not a jpeg")
    planted["unreadable_image"] = [rel(eval_path(20, ext="jpg"))]
    return planted


def identity_run(index, run_dir: Path, *, stranger: str, dim: int = 24, seed: int = 0) -> Path:
    """A run over `index`: embedding = the person's vector + the mask state's + noise; `stranger`
    (a train photo path) gets a vector of nobody in the data."""
    from audit.labels import N_AGE_BINS, N_GENDER, N_MASK
    from audit.runs import INDEX_COLUMNS, finish_predictions, write_run

    rng = np.random.default_rng(seed)
    images = index.images
    n = len(images)

    def head(given, k):
        p = np.full((n, k), 0.1 / (k - 1))
        p[np.arange(n), given] = 0.9
        return p

    rows = images.loc[:, list(INDEX_COLUMNS)].copy()
    rows["fold"] = -1
    preds = finish_predictions(rows, head(images["mask"].to_numpy(), N_MASK), head(images["gender"].to_numpy(), N_GENDER),
                               head(images["age_bin"].to_numpy(), N_AGE_BINS))
    keys = images["person"].where(images["split"] == "train", images["path"]).to_numpy()
    people = {k: rng.normal(0, 1, dim) for k in dict.fromkeys(keys)}
    masks = rng.normal(0, 3, (3, dim))
    emb = np.stack([people[k] for k in keys]) + masks[images["mask"].to_numpy()] + rng.normal(0, 0.15, (n, dim))
    emb[images["path"].to_numpy() == stranger] = rng.normal(0, 1, dim) + masks[0]
    meta = {"checkpoint": None, "data_root": str(index.root), "data_fingerprint": index.fingerprint,
            "bins": index.bins.to_dict(), "source": "predict", "note": "synthetic identity run (tests)"}
    return write_run(run_dir, preds, emb.astype(np.float16), meta)
