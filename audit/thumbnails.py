"""On-disk thumbnail cache, and the one gate through which the app opens data files.

A thumbnail is a JPEG in `cache_dir`, named by a hash of (data root, relative path, the source's
size and mtime, thumbnail size): an edited or replaced image gets a new name, so it refreshes on
its own, and nothing needs invalidating. Files are written to a temporary name and renamed, so
parallel workers and two app sessions never see half a file.

A missing or unreadable source gives the path of a placeholder image instead of an error: a
gallery of 100 tiles must not fail because one file is truncated.

`safe_data_path` refuses relative paths that escape the data root (`..`, absolute paths, symlinks
pointing outside); the app serves images only through it. `open_data_image` opens one image of the
dataset through it for whatever needs the pixels (the sample detail, Grad-CAM): an image deleted,
moved or replaced by something else since the index was made is `ImageUnavailable`, one line.
"""
from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Iterable

from PIL import Image, ImageDraw, ImageOps

from audit.file_io import write_atomic

DEFAULT_SIZE = (96, 128)  # (width, height) in pixels: the 3:4 portrait shape of the 384x512 images
JPEG_QUALITY = 85
# Bump when thumbnails are drawn differently, so old files stop matching.
THUMBNAIL_VERSION = 1

# progress(done, total, message), the convention of audit.dataset_index
Progress = Callable[[int, int, str], None]


def safe_data_path(data_root: str | Path, rel_path: str | os.PathLike) -> Path:
    """The resolved absolute path of `rel_path` inside `data_root`.

    Raises ValueError when rel_path is empty, absolute (POSIX or Windows style), holds a `..`
    component, or resolves (through symlinks) outside the resolved data root. The file need not
    exist.
    """
    text = os.fspath(rel_path)
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise ValueError(f"not a usable relative path: {text!r}")
    posix, windows = PurePosixPath(text), PureWindowsPath(text)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        raise ValueError(f"absolute paths are not served: {text!r}")
    if ".." in posix.parts or ".." in windows.parts:
        raise ValueError(f"path escapes the data folder: {text!r}")
    root = Path(data_root).expanduser().resolve()
    target = (root / posix).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"path resolves outside the data folder: {text!r}")
    return target


class ImageUnavailable(ValueError):
    """A data image that cannot be opened now (deleted, moved, replaced by a folder, a FIFO or a
    file that is not an image, or outside the data folder); the message is one line."""


def data_image_path(data_root: str | Path, rel_path: str) -> Path:
    """The checked path of the data image data_root/rel_path: inside the data folder and a regular
    file now (a FIFO is never opened: it would block). For readers that decode lazily themselves
    (prediction keeps JPEG draft decoding); ImageUnavailable (one line, says to re-index) otherwise."""
    try:
        path = safe_data_path(data_root, rel_path)
    except ValueError as err:
        raise ImageUnavailable(f"refused to open {rel_path!r}: {err}") from None
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageUnavailable(f"{rel_path} was deleted or moved since the dataset was indexed; re-index it") from None
    except OSError as err:
        raise ImageUnavailable(f"{rel_path} cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        raise ImageUnavailable(f"{rel_path} is no longer an image file (replaced by a folder, FIFO or device "
                               "since the dataset was indexed); re-index it")
    return path


def open_data_image(data_root: str | Path, rel_path: str) -> Image.Image:
    """The decoded image data_root/rel_path (PIL, fully loaded, file closed).

    Raises ImageUnavailable with a one-line reason that says what to do (re-index) instead of
    whatever PIL or the OS would raise; a FIFO is never opened (it would block).
    """
    path = data_image_path(data_root, rel_path)
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageUnavailable(f"{rel_path} does not decode as an image ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:120]}); was it replaced since indexing? re-index it") from None


def _normalised_size(size) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise ValueError(f"thumbnail size must be positive, got {size!r}")
    return w, h


def placeholder_path(cache_dir: str | Path, size=DEFAULT_SIZE) -> Path:
    """A grey 'no image' JPEG of `size` (width, height) in the cache, drawn on first use."""
    w, h = _normalised_size(size)
    path = Path(cache_dir) / f"placeholder_v{THUMBNAIL_VERSION}_{w}x{h}.jpg"
    if not path.is_file():
        img = Image.new("RGB", (w, h), (200, 200, 200))
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, 0, w - 1, h - 1], outline=(150, 150, 150))
        draw.line([(0, 0), (w - 1, h - 1)], fill=(150, 150, 150), width=2)
        draw.line([(0, h - 1), (w - 1, 0)], fill=(150, 150, 150), width=2)
        _save_jpeg_atomic(img, path)
    return path


def thumbnail_path(cache_dir: str | Path, data_root: str | Path, rel_path: str, size=DEFAULT_SIZE) -> Path:
    """Where the thumbnail of the current version of `rel_path` lives (made or not).

    Raises ValueError for a path escaping the data root and FileNotFoundError when the source is
    missing (its size and mtime are part of the name).
    """
    w, h = _normalised_size(size)
    source = safe_data_path(data_root, rel_path)
    st = source.stat()
    root = Path(data_root).expanduser().resolve()
    key = "\x1f".join([str(THUMBNAIL_VERSION), str(root), PurePosixPath(rel_path).as_posix(),
                       str(st.st_size), str(st.st_mtime_ns), f"{w}x{h}"])
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    # Two-level fan-out keeps directories small at 31,500 images.
    return Path(cache_dir) / digest[:2] / f"{digest}_{w}x{h}.jpg"


def _save_jpeg_atomic(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: img.save(fh, format="JPEG", quality=JPEG_QUALITY))


def _make_thumbnail(source: Path, target: Path, size: tuple[int, int]) -> None:
    if not stat.S_ISREG(source.stat().st_mode):
        raise OSError(f"not a regular file: {source}")  # a FIFO would block the open below
    with Image.open(source) as img:
        # JPEG: decode at a reduced DCT scale (>= size), several times faster than a full decode.
        img.draft("RGB", size)
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        img.thumbnail(size, Image.Resampling.LANCZOS)  # keeps the aspect ratio, fits inside size
    _save_jpeg_atomic(img, target)


def ensure_thumbnail(data_root: str | Path, rel_path: str, cache_dir: str | Path, size=DEFAULT_SIZE) -> Path:
    """Path of a JPEG thumbnail (fits inside `size` = (width, height)) of data_root/rel_path.

    Made once per version of the source. Never raises for a bad image: a missing, unreadable or
    out-of-root source gives `placeholder_path(cache_dir, size)`.
    """
    size = _normalised_size(size)
    try:
        target = thumbnail_path(cache_dir, data_root, rel_path, size)
    except (OSError, ValueError):
        return placeholder_path(cache_dir, size)
    if target.is_file():
        return target
    try:
        _make_thumbnail(safe_data_path(data_root, rel_path), target, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # PIL raises OSError for truncated/unknown data, SyntaxError from some broken headers.
        return placeholder_path(cache_dir, size)
    return target


def ensure_thumbnails(data_root: str | Path, rel_paths: Iterable[str], cache_dir: str | Path,
                      size=DEFAULT_SIZE, workers: int | None = None,
                      progress: Progress | None = None) -> list[Path]:
    """`ensure_thumbnail` for many paths in parallel threads; returns paths in input order.

    PIL releases the GIL while decoding and resizing, so threads use every core.
    """
    rel_paths = list(rel_paths)
    size = _normalised_size(size)
    total = len(rel_paths)
    if total == 0:
        return []
    placeholder_path(cache_dir, size)  # draw it once, before workers race to
    workers = workers or min(8, os.cpu_count() or 1)
    results: list[Path] = [None] * total  # type: ignore[list-item]
    every = max(1, total // 100)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = pool.map(lambda rel: ensure_thumbnail(data_root, rel, cache_dir, size), rel_paths)
        for i, path in enumerate(futures):
            results[i] = path
            if progress is not None and ((i + 1) % every == 0 or i + 1 == total):
                progress(i + 1, total, "making thumbnails")
    return results
