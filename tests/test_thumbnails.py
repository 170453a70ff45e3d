import os
import time
from pathlib import Path

import pytest
from PIL import Image

from audit import thumbnails as th


def _image(path: Path, size=(384, 512), color=(200, 30, 30), fmt="JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    _image(root / "images/train/000001_female_Asian_45/mask1.jpg")
    _image(root / "images/train/000001_female_Asian_45/normal.png", color=(10, 200, 10), fmt="PNG")
    return root


def test_thumbnail_is_made_once_and_fits_the_size(data, tmp_path, monkeypatch):
    cache = tmp_path / "thumbs"
    rel = "images/train/000001_female_Asian_45/mask1.jpg"
    first = th.ensure_thumbnail(data, rel, cache, size=(96, 128))
    assert first.is_file() and first.parent.parent == cache
    with Image.open(first) as img:
        assert img.format == "JPEG" and img.size == (96, 128)
        r, g, b = img.convert("RGB").getpixel((48, 64))
        assert r > 150 and g < 80  # it is the red source, not the grey placeholder

    calls = []
    monkeypatch.setattr(th, "_make_thumbnail", lambda *a: calls.append(a))
    second = th.ensure_thumbnail(data, rel, cache, size=(96, 128))
    assert second == first and calls == []


def test_aspect_ratio_is_kept(tmp_path):
    root = tmp_path / "data"
    _image(root / "wide.jpg", size=(400, 100))
    with Image.open(th.ensure_thumbnail(root, "wide.jpg", tmp_path / "c", size=(96, 128))) as img:
        assert img.size == (96, 24)


def test_edited_source_gets_a_new_thumbnail(data, tmp_path):
    cache = tmp_path / "thumbs"
    rel = "images/train/000001_female_Asian_45/mask1.jpg"
    first = th.ensure_thumbnail(data, rel, cache)
    src = data / rel
    _image(src, color=(20, 20, 220))  # edited: now blue
    later = time.time() + 5
    os.utime(src, (later, later))  # make the change visible even on a coarse-mtime filesystem
    second = th.ensure_thumbnail(data, rel, cache)
    assert second != first and second.is_file()
    with Image.open(second) as img:
        r, g, b = img.convert("RGB").getpixel((48, 64))
        assert b > 150 and r < 80


def test_other_size_is_another_file(data, tmp_path):
    cache = tmp_path / "thumbs"
    rel = "images/train/000001_female_Asian_45/normal.png"
    small = th.ensure_thumbnail(data, rel, cache, size=(48, 64))
    big = th.ensure_thumbnail(data, rel, cache, size=(96, 128))
    assert small != big
    with Image.open(small) as a, Image.open(big) as b:
        assert a.size == (48, 64) and b.size == (96, 128)


def test_missing_unreadable_and_escaping_sources_give_the_placeholder(data, tmp_path):
    cache = tmp_path / "thumbs"
    placeholder = th.placeholder_path(cache, (96, 128))
    (data / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = _image(data / "full.jpg")
    (data / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    for rel in ("images/eval/nope.jpg", "broken.jpg", "truncated.jpg", "../outside.jpg", "/etc/passwd"):
        assert th.ensure_thumbnail(data, rel, cache) == placeholder, rel
    with Image.open(placeholder) as img:
        assert img.size == (96, 128)


def test_ensure_thumbnails_keeps_order_and_reports_progress(data, tmp_path):
    cache = tmp_path / "thumbs"
    for i in range(12):
        _image(data / f"images/eval/{i:03d}.jpg", color=(i * 20, 0, 0))
    rels = [f"images/eval/{i:03d}.jpg" for i in range(12)] + ["images/eval/missing.jpg"]
    seen = []
    paths = th.ensure_thumbnails(data, rels, cache, size=(48, 64), workers=3,
                                 progress=lambda done, total, msg: seen.append((done, total)))
    assert len(paths) == 13
    assert paths[:12] == [th.ensure_thumbnail(data, r, cache, (48, 64)) for r in rels[:12]]
    assert len(set(paths[:12])) == 12
    assert paths[12] == th.placeholder_path(cache, (48, 64))
    assert seen[-1] == (13, 13)
    assert th.ensure_thumbnails(data, [], cache) == []


@pytest.mark.parametrize("rel", [
    "../secret.jpg",
    "images/../../secret.jpg",
    "images/train/../../../secret.jpg",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "..\\secret.jpg",
    "",
    "images/\x00.jpg",
])
def test_safe_data_path_refuses_escapes(data, rel):
    with pytest.raises(ValueError):
        th.safe_data_path(data, rel)


def test_safe_data_path_refuses_symlinks_out_but_allows_inside(data, tmp_path):
    outside = _image(tmp_path / "elsewhere" / "secret.jpg")
    (data / "images" / "link_out.jpg").symlink_to(outside)
    (data / "images" / "dir_out").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(ValueError):
        th.safe_data_path(data, "images/link_out.jpg")
    with pytest.raises(ValueError):
        th.safe_data_path(data, "images/dir_out/secret.jpg")
    inside = data / "images/train/000001_female_Asian_45/mask1.jpg"
    (data / "images" / "link_in.jpg").symlink_to(inside)
    assert th.safe_data_path(data, "images/link_in.jpg") == inside.resolve()
    assert th.safe_data_path(data, "images/train/000001_female_Asian_45/mask1.jpg") == inside.resolve()
    # The symlinked-out file is never opened for a thumbnail either.
    cache = tmp_path / "thumbs"
    assert th.ensure_thumbnail(data, "images/link_out.jpg", cache) == th.placeholder_path(cache)


def test_data_root_given_through_a_symlink_still_works(data, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(data, target_is_directory=True)
    path = th.safe_data_path(alias, "images/train/000001_female_Asian_45/mask1.jpg")
    assert path.is_file()


# ---- images deleted or replaced after indexing (issue #11) ------------------------------------

def _in_thread(fn, timeout=20):
    """fn() in a daemon thread; fails the test instead of hanging if it blocks (a FIFO opened)."""
    import threading

    out = {}

    def call():
        try:
            out["value"] = fn()
        except Exception as err:  # re-raised in the test's thread
            out["error"] = err

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_open_data_image_reads_a_good_image(data):
    img = th.open_data_image(data, "images/train/000001_female_Asian_45/normal.png")
    assert img.size == (384, 512) and img.getpixel((5, 5))[:3] == (10, 200, 10)


def test_images_gone_or_replaced_are_one_line_image_unavailable(data, tmp_path):
    person = data / "images/train/000001_female_Asian_45"
    (person / "gone.jpg").write_bytes(b"")
    (person / "gone.jpg").unlink()
    (person / "now_a_folder.jpg").mkdir()
    os.mkfifo(person / "now_a_fifo.jpg")
    (person / "now_text.jpg").write_text("I replaced the photo")
    good = person / "mask1.jpg"
    (person / "cut.jpg").write_bytes(good.read_bytes()[:300])
    outside = _image(tmp_path / "elsewhere.jpg")
    (person / "link_out.jpg").symlink_to(outside)
    cases = {"gone.jpg": "deleted or moved", "now_a_folder.jpg": "no longer an image file",
             "now_a_fifo.jpg": "no longer an image file", "now_text.jpg": "does not decode",
             "cut.jpg": "does not decode", "link_out.jpg": "refused", "../../x.jpg": "refused"}
    cache = tmp_path / "thumbs"
    for name, says in cases.items():
        rel = f"images/train/000001_female_Asian_45/{name}"
        with pytest.raises(th.ImageUnavailable, match=says) as err:
            _in_thread(lambda: th.open_data_image(data, rel))
        assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
        assert _in_thread(lambda: th.ensure_thumbnail(data, rel, cache)) == th.placeholder_path(cache), name
