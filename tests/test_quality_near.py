"""Near duplicates: a look-alike stranger is not joined, a re-encoded copy is (audit/quality.py)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

from audit.dataset_index import index_dataset
from audit.quality import (
    _thumb_features, aligned_correlation, find_quality_issues, flagged_paths, image_signals,
)
from fixtures_quality import noise_picture


def _look_alikes(seed: int = 2):
    """Two pictures with the same coarse layout and colours (a smooth 6x8 base) and different fine
    detail (8-px blocks of +-20 levels), as the demo's strangers drawn in the same framing; and a
    near copy of the first (2% cropped a side, resized back, 4% brighter, JPEG 80), as the demo's."""
    rng = np.random.default_rng(seed)
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).resize(
        (384, 512), Image.BICUBIC), np.int16)

    def with_detail():
        blocks = rng.integers(-20, 21, (64, 48, 1)).astype(np.int16)
        return Image.fromarray(np.clip(base + np.kron(blocks, np.ones((8, 8, 1), np.int16)), 0, 255).astype(np.uint8))

    first, stranger = with_detail(), with_detail()
    w, h = first.size
    copy = ImageEnhance.Brightness(first.crop((7, 10, w - 7, h - 10)).resize((w, h))).enhance(1.04)
    buf = io.BytesIO()
    copy.save(buf, "JPEG", quality=80)
    return first, Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), stranger


def test_look_alike_stranger_is_not_a_near_duplicate_but_the_copy_is(tmp_path):
    root = tmp_path / "data"
    ev = root / "images" / "eval"
    ev.mkdir(parents=True)
    (root / "images" / "train").mkdir()
    first, copy, stranger = _look_alikes()
    name = lambda i: f"images/eval/ffhq-{50000 + i:05d}_male_Asian_40_mask.png"  # noqa: E731
    first.save(root / name(0))
    copy.save(root / name(1))
    stranger.save(root / name(2))
    rng = np.random.default_rng(0)
    for i in range(3, 8):
        noise_picture(rng).save(root / name(i))
    index = index_dataset(root)
    signals = image_signals(index.root, index.images["path"].tolist(), workers=2)
    pos = {p: k for k, p in enumerate(signals["path"])}
    # The stranger's 24x32 thumbnails are within 0.042 of the first's (it passed an older rule, and
    # pHashes 9 bits apart): a real look-alike, which only the aligned fine detail tells apart.
    a, c = pos[name(0)], pos[name(2)]
    grey, colour = _thumb_features(signals["thumb"].to_numpy()[[a, c]])
    assert (1 - grey[0] @ grey[1] / grey.shape[1]) + np.abs(colour[0] - colour[1]).mean() / 10 <= 0.042
    findings = find_quality_issues(index.root, index.images, signals)
    near = findings[findings["kind"] == "near_duplicate"]
    assert [{p, *r} for p, r in zip(near["path"], near["related"])] == [{name(0), name(1)}]
    # the score and detail are the aligned correlation that joined them (> 0.9: see the test below)
    assert 0.9 < near["score"].iloc[0] <= 1.0 and f"{near['score'].iloc[0]:.2f} or more" in near["detail"].iloc[0]
    assert flagged_paths(findings) == {name(0), name(1)}


def test_aligned_correlation_separates_a_copy_from_a_look_alike():
    first, copy, stranger = _look_alikes(seed=3)
    grey = [im.convert("L").reduce(4) for im in (first, copy, stranger)]
    assert aligned_correlation(grey[0], grey[0]) > 0.99
    assert aligned_correlation(grey[0], grey[1]) > 0.9  # zoomed 4%, brightened, re-encoded
    assert aligned_correlation(grey[0], grey[2]) < 0.3
