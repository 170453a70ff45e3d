"""Per-image signals (audit/quality.py `image_signals`): the cheaper decode keeps what the checks need."""
from __future__ import annotations

import numpy as np
from PIL import Image

from audit.quality import find_quality_issues, image_signals
from fixtures_quality import noise_picture


def test_jpeg_decoded_at_a_quarter_keeps_size_and_still_fails_when_cut(tmp_path):
    """A JPEG is decoded straight to a quarter per side: its size is still the file's, its
    measurements those of the reduced picture, and a cut file is still a finding."""
    from audit.dataset_index import index_dataset

    root = tmp_path / "data"
    ev = root / "images" / "eval"
    ev.mkdir(parents=True)
    (root / "images" / "train").mkdir()
    picture = noise_picture(np.random.default_rng(1))
    whole, cut = ev / "ffhq-50000_male_Asian_40_mask.jpg", ev / "ffhq-50001_male_Asian_40_mask.jpg"
    picture.save(whole, quality=90)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    index = index_dataset(root)
    signals = image_signals(index.root, index.images["path"].tolist(), workers=1).set_index("path")
    ok = signals.loc["images/eval/ffhq-50000_male_Asian_40_mask.jpg"]
    assert (ok["width"], ok["height"], ok["error_kind"]) == (384, 512, "")
    with Image.open(whole) as im:
        full = im.convert("L").reduce(4)
    # brightness percentiles of the DCT-scaled picture match the averaged one's
    assert abs(ok["brightness_perc_99"] - np.percentile(np.asarray(full), 99) / 255) < 0.05
    findings = find_quality_issues(index.root, index.images, signals.reset_index())
    assert set(findings.loc[findings["path"] == "images/eval/ffhq-50001_male_Asian_40_mask.jpg", "kind"]) <= {
        "truncated_image", "unreadable_image"}
    assert "images/eval/ffhq-50001_male_Asian_40_mask.jpg" in set(findings["path"])


def test_signals_on_spawned_processes_equal_the_threads_ones(tmp_path):
    """Full scale runs the signals pass on spawned processes (PROCESS_MIN_IMAGES): same rows."""
    import pandas as pd

    rng = np.random.default_rng(5)
    paths = []
    for k in range(6):
        rel = f"img{k}.{'png' if k % 2 else 'jpg'}"
        noise_picture(rng).save(tmp_path / rel)
        paths.append(rel)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    paths.append("broken.jpg")
    threads = image_signals(tmp_path, paths, workers=2, processes=False)
    processes = image_signals(tmp_path, paths, workers=2, processes=True)
    assert threads["error_kind"].iloc[-1] != "" and (threads["error_kind"].iloc[:-1] == "").all()
    assert "0x" not in threads["error"].iloc[-1]  # no memory address in the one-line reason
    pd.testing.assert_frame_equal(threads, processes)
