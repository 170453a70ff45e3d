"""Data quality beyond file names: duplicates, split leaks, a stranger among a person's photos, and
images no one can label.

Arrays and frames in, frames out; `quality_report` adds the workspace cache. Every file is read
and decoded once (`image_signals`, on threads: Pillow and numpy release the GIL); what the checks
need is kept per image (hashes, image properties), so the findings can be recomputed from it;
only the few near-duplicate candidate pairs are read again (at 96x128) to confirm them.

Findings: a DataFrame with columns `FINDING_COLUMNS` = kind, path, detail, related (list of
data-relative paths), score (float, higher = worse / more certain). Kinds (`QUALITY_KINDS`):

    exact_duplicate   files with the same bytes (sha256) or the same decoded pixels (a PNG saved
                      again, a JPEG with other metadata). One finding per group: `path` = its first
                      member in index order, `related` = the others; score 1.
    near_duplicate    the same picture re-encoded, resized, slightly cropped or recoloured, within
                      a split (across splits it is a split_leak). Candidates: every pair whose
                      24x32 thumbnails are close (grey ones that correlate, colours that agree;
                      `correlated_pairs` finds all of them by matrix products under an exact
                      bound, no hash buckets: a pHash pairs look-alike faces by the million and
                      misses crops); confirmed on the pair itself (`aligned_correlation`: the two
                      files read again as 96x128 grey, one zoomed and shifted onto the other, their
                      fine detail must correlate: a look-alike stranger shares the layout, not the
                      detail); joined into groups (an exact group counts as one picture). Cost:
                      the bound grows with N^2 in BLAS (2.6 s at 31,500 images), the confirmation
                      with the look-alike pairs that pass the thumbnails (see BENCHMARKS.md).
                      A train person's photos are one source photo with masks pasted on, so near
                      pairs inside one person folder do not count (exact ones do); blank pictures
                      are left out. score = the weakest aligned correlation that joined the group.
    split_leak        a duplicate group (exact or near) with members in train and eval: the model
                      is scored on a picture it trained on. `path` = the group's first eval member,
                      `related` = the others (train ones first). score 1 (exact) or the near score.
                      Also the same FACE in train and eval: an eval image that is a train person's
                      source photo under another mask (`face_leak_findings`; in the real set a
                      person's 7 photos are one photo with masks pasted on, so everything but the
                      mask is shared). The pixels of the 24x32 colour thumbnail that stay put across
                      the person's photos (all but one within `_STEADY_LEVELS` of their median) are
                      compared with the eval image's: `same_face_fraction` of them or more within
                      `_MATCH_LEVELS` is that person's photo (demo, 4,800 files: planted ones >=
                      0.993, any other eval image <= 0.68; 0.84 at 31,500). Candidates: the 10
                      people nearest in the grey thumbnail and the 10 nearest above any mask
                      (matrix products). related = the person's photos; score = the fraction. A
                      different photo of the same person is NOT found: that needs a
                      face-identity embedding, which the tool does not have.
    person_outlier    a photo in a train person's folder that is not the person's picture. A
                      person's 7 photos are one source photo with masks pasted on (the real set and
                      the demo alike), so the part above any mask (forehead, eyes, hair: the top
                      44% of a 24x32 thumbnail) is the same in all of them: a photo whose top part
                      differs from the median of the others by `same_picture_levels` grey levels
                      or more is another picture (no model needed; score = that difference). With
                      a run, its embeddings give the face distance too (mask-state mean removed,
                      distance to the median of the other photos as a robust z per mask state),
                      reported beside it; without thumbnails the embeddings decide (`outlier_z`).
                      related = the person's other photos.
    person_mixed      a train person whose photos are not one picture at all (the median photo is
                      already that far from the others; embeddings only: `mixed_z`): `path` = the
                      person folder, related = the photos. Such a person gets no person_outlier.
    dark, light, blurry, low_information, grayscale, odd_size, odd_aspect_ratio
                      cleanvision's image properties (`cleanvision.issue_managers.image_property`:
                      the same `calculate` / `get_scores` / `mark_issue` that `Imagelab.find_issues`
                      runs, driven here so that each file is decoded once and no process is forked;
                      Imagelab's own pool forks). Thresholds (`QualityConfig`) are set for 384x512
                      face photos and checked on the demo, whose eval set has five extra mask
                      styles (pink, beige, patterned, valve, gaiter): none of the clean demo images
                      is flagged. score = 1 - cleanvision's score (cleanvision: low = worse).
                      grayscale: cleanvision flags mode "L" files; an RGB file whose three channels
                      are equal is handed over as "L" too (it is a grey picture to a model).
                      Brightness, entropy and blur are measured on the picture reduced 4x per side
                      (percentiles hardly change; a sixteenth of the pixels; a JPEG is decoded
                      straight to that size). blurry: cleanvision's
                      edge measure at that size without the 1-px border (see `_blurriness`) and
                      without its histogram-spread term. A low_information picture gets no other
                      property finding, a dark one is not also blurry or grayscale.

Exact pixels are compared on the reduced pictures first (then in full for the files that match):
a JPEG and a PNG of the same pixels reduce differently (DCT scaling vs averaging), so such a pair
is reported as a near duplicate, not an exact one.

Files that do not decode are skipped and listed with the index's own kinds (`unreadable_image`,
`truncated_image`, see `audit.dataset_index`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

QUALITY_KINDS = (
    "exact_duplicate", "near_duplicate", "split_leak", "person_outlier", "person_mixed",
    "dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio",
)
GROUP_KINDS = ("exact_duplicate", "near_duplicate", "split_leak")  # path + related are one group
PROPERTY_KINDS = ("dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio")
SKIPPED_KINDS = ("unreadable_image", "truncated_image")  # the index's kinds for files that do not decode
FINDING_COLUMNS = ("kind", "path", "detail", "related", "score")
KIND_TITLES = {
    "exact_duplicate": "Exact duplicates", "near_duplicate": "Near duplicates", "split_leak": "Split leaks",
    "person_outlier": "Stranger in a person's folder", "person_mixed": "Person of mixed faces",
    "dark": "Dark", "light": "Light", "blurry": "Blurry", "low_information": "Low information (blank)",
    "grayscale": "Grayscale", "odd_size": "Odd size", "odd_aspect_ratio": "Odd aspect ratio",
    "unreadable_image": "Unreadable", "truncated_image": "Truncated",
}
KIND_EXPLANATIONS = {
    "exact_duplicate": "the same bytes or the same decoded pixels in two or more files",
    "near_duplicate": "the same picture re-encoded, resized, slightly cropped or recoloured (close thumbnails, "
                      "confirmed by aligning the two pictures)",
    "split_leak": "the same picture, or a train person's photo under another mask, in eval: eval scores a face "
                  "the model trained on",
    "person_outlier": "a photo whose face differs from the person's other photos (embedding distance)",
    "person_mixed": "a person whose photos do not form one face at all",
    "dark": "too dark to label (cleanvision)", "light": "washed out (cleanvision)",
    "blurry": "too blurred to label (cleanvision)", "low_information": "nearly blank (cleanvision entropy)",
    "grayscale": "no colour (cleanvision)", "odd_size": "size unlike the others (cleanvision)",
    "odd_aspect_ratio": "shape unlike a portrait photo (cleanvision)",
    "unreadable_image": "the file does not decode: skipped", "truncated_image": "the file ends early: skipped",
}
SIGNALS_VERSION = 9  # bump when the signals change: older files are recomputed
SIGNALS_NAME = f"signals_v{SIGNALS_VERSION}.parquet"
FINDINGS_VERSION = 4  # bump when the checks change (2: face leaks, 3: all close thumbnail pairs, 4: no pHash): recomputed
# Images per thread task (a task per image costs more than the work on small files).
_CHUNK = 32
PROCESS_MIN_IMAGES = 30_000  # image_signals: a spawned process pool from this many images on (BENCHMARKS.md)
_PAIR_CHUNK = 5_000  # candidate pairs compared by thumbnail at a time (~120 MB of thumbnails)
ALIGN_SIZE = (96, 128)  # (w, h) grey size at which near-duplicate candidates are aligned and compared
ALIGN_SCALES = (0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)  # zooms about the centre tried (crops of <= 3% a side)
ALIGN_SHIFT = 3  # px (at ALIGN_SIZE) tried either way after each zoom
_ALIGN_MARGIN = 8  # px left out on each side (zoomed-in borders, padding)
_PROGRESS_EVERY = 200
# cleanvision's raw measurements kept per image (see image_signals).
_RAW_COLUMNS = ("brightness_perc_99", "brightness_perc_5", "entropy", "blurriness",
                "blurriness_grayscale_std", "color_space", "size", "aspect_ratio")

THUMB_SIZE = (24, 32)  # (w, h) colour thumbnail kept per image (near duplicates, person checks)
TOP_FRACTION = 14 / 32  # the part of a face photo above any mask: forehead, eyes, hair
# ... as the leading values of a flattened thumbnail (rows first): its top rows' RGB
TOP_VALUES = int(round(THUMB_SIZE[1] * TOP_FRACTION)) * THUMB_SIZE[0] * 3

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds. cleanvision's defaults are for general photo collections; these are set for
    384x512 face photos on a plain background (checked on the demo: no clean image flagged)."""

    # near-duplicate candidates: 24x32 thumbnails at most this far apart: (1 - correlation of the
    # grey ones) + (mean |a - b| of the colour ones, each divided by its mean) / 10 (every pair,
    # `correlated_pairs`; demo seed 1: planted copies <= 0.035;
    # each 0.01 more lets ~1.5x more look-alike pairs through to the costlier confirmation) ...
    near_duplicate_thumb_distance: float = 0.05
    # ... and confirmed when the pair's fine detail, aligned, correlates at least this
    # (`aligned_correlation`; demo seed 1: planted copies >= 0.90, look-alike strangers <= 0.71;
    # nearer the copies since the strangers' tail grows with the number of pairs, the copies' not)
    near_duplicate_aligned_correlation: float = 0.85
    dark_threshold: float = 0.25  # 99th-percentile brightness below this (cleanvision default 0.32)
    light_threshold: float = 0.05  # 1 - 5th-percentile brightness below this (cleanvision default)
    blurry_threshold: float = 0.075  # cleanvision blur score below this: edge strength < 7.8 (default 0.29)
    blurry_normalizing_factor: float = 0.01  # cleanvision default
    # cleanvision adds a histogram-spread term so that dark or flat pictures are not called blurry;
    # on faces against a plain background it lifts blurred pictures too, so it is off, and a dark or
    # low_information picture is reported as that only (see find_quality_issues).
    blurry_color_threshold: float = 1.0
    low_information_threshold: float = 0.3  # entropy * 0.1 below this: < 3 bits (cleanvision default)
    low_information_normalizing_factor: float = 0.1
    odd_aspect_ratio_threshold: float = 0.6  # min(w/h, h/w) below this; 384x512 is 0.75 (default 0.35)
    odd_size_iqr_factor: float = 3.0  # cleanvision default (all 384x512: any other size is odd)
    gray_channel_tolerance: int = 2  # an RGB image whose channels differ by at most this is grey
    # person checks: a photo whose top part is this far (mean grey levels) from the others' is another picture
    same_picture_levels: float = 8.0
    # face split leak: an eval image matching this fraction of a train person's steady thumbnail pixels
    # is that person's photo under another mask (demo seed 7, 4,800 files: planted >= 0.993, other
    # eval images <= 0.68; 31,500 files: others <= 0.84 - their tail grows with N, the leaks' does not)
    same_face_fraction: float = 0.95
    outlier_z: float = 5.0  # person_outlier: robust z of the photo's distance to the person's other photos
    mixed_z: float = 3.5  # person_mixed: the person's median photo z at least this

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def cleanvision_params(self) -> dict:
        """issue type -> cleanvision params (what `Imagelab.find_issues(issue_types=...)` takes)."""
        return {
            "dark": {"threshold": self.dark_threshold},
            "light": {"threshold": self.light_threshold},
            "blurry": {"threshold": self.blurry_threshold, "normalizing_factor": self.blurry_normalizing_factor,
                       "color_threshold": self.blurry_color_threshold},
            "low_information": {"threshold": self.low_information_threshold,
                                "normalizing_factor": self.low_information_normalizing_factor},
            "grayscale": {},
            "odd_size": {"iqr_factor": self.odd_size_iqr_factor},
            "odd_aspect_ratio": {"threshold": self.odd_aspect_ratio_threshold},
        }


class RunFromOtherData(ValueError):
    """The run was made on another dataset (fingerprints differ); one-line message."""


@dataclass(frozen=True, eq=False)
class QualityReport:
    """What `quality_report` found: `images` checked (decodable + skipped), `findings` (FINDING_COLUMNS),
    `embeddings_from` (where person checks got embeddings, or why they were skipped), timings."""

    images: int
    findings: pd.DataFrame
    embeddings_from: str
    seconds: dict = field(default_factory=dict)
    reused: bool = False

    def to_json_dict(self) -> dict:
        """What `python -m audit quality --json` prints."""
        return {"images": int(self.images), "findings": findings_records(self.findings)}


def findings_records(findings: pd.DataFrame) -> list[dict]:
    return [{"kind": str(k), "path": str(p), "detail": str(d), "related": [str(x) for x in r],
             "score": float(s)} for k, p, d, r, s in findings[list(FINDING_COLUMNS)].itertuples(index=False, name=None)]


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame({"kind": pd.Series(dtype=str), "path": pd.Series(dtype=str), "detail": pd.Series(dtype=str),
                         "related": pd.Series(dtype=object), "score": pd.Series(dtype="float64")})


# -- per image: one read, one decode --------------------------------------------------------------

def _properties():
    from cleanvision.issue_managers.image_property import (
        AspectRatioProperty, BlurrinessProperty, BrightnessProperty, ColorSpaceProperty, EntropyProperty,
        SizeProperty,
    )

    return {
        "dark": BrightnessProperty("dark"), "light": BrightnessProperty("light"),
        "low_information": EntropyProperty(), "blurry": BlurrinessProperty(),
        "grayscale": ColorSpaceProperty(), "odd_size": SizeProperty(), "odd_aspect_ratio": AspectRatioProperty(),
    }


def _pixel_digest(image) -> str:
    header = image.mode.encode() + repr(image.size).encode()
    return hashlib.blake2b(header + image.tobytes(), digest_size=16).hexdigest()


def _one_image(path: str, tolerance: int, props) -> dict:
    """Signals of one file: bytes hash, a hash of the 4x-reduced pixels (exact-pixel candidates),
    thumbnail, size, cleanvision's raw measurements; or `error_kind` / `error` when it does not decode."""
    from PIL import Image, ImageFile

    out = {"error_kind": "", "error": ""}
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        out["bytes_sha"] = hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode, size = im.format, im.mode, im.size
            if fmt == "JPEG" and min(size) >= 64:
                # The checks need the 4x-reduced picture only: libjpeg decodes straight to it (DCT
                # scaling; every byte is still decoded, so a broken file still fails) at a fraction
                # of a full decode (see BENCHMARKS.md).
                im.draft(None, (size[0] // 4, size[1] // 4))
            im.load()
            image = im if im.mode in ("RGB", "L") else im.convert("RGB")
            if ImageFile.LOAD_TRUNCATED_IMAGES and fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
                raise OSError("image file is truncated (no JPEG end marker)")
            if image.size != size:
                small = image  # drafted
            else:
                small = image.reduce(4) if min(size) >= 64 else image.copy()
    except Exception as err:  # whatever a broken file makes PIL raise, it is a finding
        # PIL names the in-memory buffer it read ("<_io.BytesIO object at 0x...>"): not the user's file
        text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", f"{type(err).__name__}: {err}")
        out["error_kind"] = "truncated_image" if "truncated" in str(err).lower() else "unreadable_image"
        out["error"] = text
        return out
    out["small_sha"] = _pixel_digest(small)
    grey = small.convert("L")
    out["thumb"] = small.resize(THUMB_SIZE, Image.BILINEAR).convert("RGB").tobytes()
    out["width"], out["height"] = size
    out["mode"] = mode
    if small.mode == "RGB" and _channel_spread(small) <= tolerance:
        small = grey  # a grey picture stored as RGB
    raw = {}
    raw.update(props["dark"].calculate(small))
    raw.update(props["low_information"].calculate(small))
    raw.update(_blurriness(grey))
    raw.update(props["grayscale"].calculate(small))
    raw.update(props["odd_size"].calculate(_Shape(size)))
    raw.update(props["odd_aspect_ratio"].calculate(_Shape(size)))
    for col in _RAW_COLUMNS:
        out[col] = raw[col]
    return out


def _channel_spread(rgb) -> int:
    """The largest difference between a pixel's green or blue and its red (0: a grey picture)."""
    from PIL import ImageChops

    r, g, b = rgb.split()
    return max(ImageChops.difference(r, g).getextrema()[1], ImageChops.difference(r, b).getextrema()[1])


@dataclass(frozen=True)
class _Shape:
    """What cleanvision's size and aspect-ratio measures read of an image: its (full) size."""

    size: tuple[int, int]


def _blurriness(gray) -> dict:
    """cleanvision's blur measure (the spread of `get_edges`, 3x3 FIND_EDGES) on the 4x-reduced
    picture, leaving out the 1-px border: Pillow's 3x3 filters copy border pixels unfiltered, and
    that ring of raw values outweighed every edge inside (a Gaussian blur of radius 9 px moved the
    measure by less than the spread between clean faces)."""
    from cleanvision.issue_managers.image_property import calc_std_grayscale, get_edges

    edges = np.asarray(get_edges(gray), dtype=np.float32)
    inner = edges[1:-1, 1:-1] if min(edges.shape) > 2 else edges
    # the spread ImageStat gives (its var is the population variance), without its Python loop
    return {"blurriness": float(inner.std()),
            "blurriness_grayscale_std": float(calc_std_grayscale(gray))}


def _chunk_signals(root: str, paths: list[str], tolerance: int) -> list[dict]:
    props = _properties()
    return [_one_image(os.path.join(root, p), tolerance, props) for p in paths]


def image_signals(root, paths: list[str], *, config: QualityConfig = QualityConfig(), workers: int | None = None,
                  progress: Progress | None = None, processes: bool | None = None) -> pd.DataFrame:
    """Read and decode every file once -> one row per path (input order): path, error_kind, error,
    bytes_sha, small_sha, thumb, width, height, mode and cleanvision's raw columns.

    `workers` threads, or with `processes=True` a pool of spawned processes (never forked): Pillow's
    decode releases the GIL but the small numpy work per image mostly does not. None: processes
    from PROCESS_MIN_IMAGES images on: on the 2-core box processes lost at 4,800 images (32 s vs
    27 s, loaded: a spawned worker spends seconds importing cleanvision) and won at 31,500 (53 s vs
    60 s, quiet)."""
    workers = max(1, int(workers or os.cpu_count() or 1))
    if processes is None:
        processes = len(paths) >= PROCESS_MIN_IMAGES and workers > 1
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    rows: list[dict] = []
    total, done = len(paths), 0
    if progress:
        progress(0, total, "checking image quality")
    if processes:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
    with pool:
        for result in pool.map(_chunk_signals, [str(root)] * len(chunks), chunks,
                               [config.gray_channel_tolerance] * len(chunks)):
            rows.extend(result)
            before, done = done, done + len(result)
            if progress and (done // _PROGRESS_EVERY != before // _PROGRESS_EVERY or done == total):
                progress(done, total, "checking image quality")
    frame = pd.DataFrame(rows, columns=["error_kind", "error", "bytes_sha", "small_sha", "thumb",
                                        "width", "height", "mode", *_RAW_COLUMNS])
    frame.insert(0, "path", list(paths))
    frame["error_kind"] = frame["error_kind"].fillna("")
    frame["error"] = frame["error"].fillna("")
    return frame


# -- duplicates -----------------------------------------------------------------------------------

class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return out


def _union_equal(uf: _UnionFind, keys) -> None:
    """Join items with equal keys (None / "" / NaN never join)."""
    first: dict = {}
    for i, key in enumerate(keys):
        if key is None or key == "" or (isinstance(key, float) and np.isnan(key)):
            continue
        j = first.setdefault(key, i)
        if j != i:
            uf.union(j, i)


_SEARCH_DIMS = 32  # principal directions of the grey thumbnails in which every pair is bounded
_SEARCH_CELLS = 1 << 25  # bound values held at once (128 MB of float32): rows per block = this / N


def _bound_terms(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(y, rest, lift, offset) of rows a of `grey` (N, d) float32 such that for every two rows
    a . b <= y_a . y_b + rest_a rest_b + lift_a + lift_b - offset, with equality when a - m lies in
    the span of the top principal directions (m: their mean): y = (a - m) in those directions,
    rest = the length of the remainder (Cauchy-Schwarz), lift = m . a, offset = m . m."""
    n, d = grey.shape
    # Any orthonormal directions give a true bound; principal ones of a fixed sample make it tight.
    sample = grey[np.random.default_rng(0).choice(n, min(n, 8_000), replace=False)]
    mean = sample.mean(axis=0)
    centred = sample - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    top = np.ascontiguousarray(vectors[:, ::-1][:, :min(_SEARCH_DIMS, d)], dtype=np.float64)
    mean = mean.astype(np.float64)
    y = np.zeros((n, top.shape[1]), dtype=np.float32)
    rest = np.zeros(n, dtype=np.float32)
    for s in range(0, n, 8_192):  # float64: the rest is a difference of near-equal sums
        z = grey[s:s + 8_192].astype(np.float64) - mean
        ys = z @ top
        y[s:s + 8_192] = ys
        rest[s:s + 8_192] = np.sqrt(np.maximum((z * z).sum(axis=1) - (ys * ys).sum(axis=1), 0.0))
    # a . b = (a - m) . (b - m) + m . a + m . b - m . m
    lift = (grey @ mean.astype(np.float32)).astype(np.float32)
    return y, rest, lift, float(mean @ mean)


def correlated_pairs(grey: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j, correlation), i < j, of grey thumbnails (N, d) with zero mean and unit
    spread whose correlation (a . b / d) is at least 1 - max_distance: exact, without a Python loop
    over pairs.

    Each thumbnail is split into its part in the top `_SEARCH_DIMS` principal directions (y) and the
    rest (length r), so a . b <= y_a . y_b + r_a r_b + (the mean's terms) (Cauchy-Schwarz on the
    rest): one (block x N) matrix product of 32-value rows bounds every pair, and only the pairs the
    bound cannot rule out (31,500-image demo: 216 k of 496 M) get the full 768-value product. Cost:
    N^2 / 2 * 32 multiply-adds in BLAS plus a few passes over the N^2 / 2 bounds (2.6 s at 31,500
    images on 2 cores); it grows with N^2 but with no per-pair Python or hashing, and, unlike hash
    buckets, it does not slow down when many faces look alike (BENCHMARKS.md)."""
    grey = np.array(grey, dtype=np.float32)
    n, d = grey.shape
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2:
        return empty
    # A row with NaN (a flat picture normalised) would poison the shared mean and so every bound:
    # as zeros it correlates with nothing.
    grey[~np.isfinite(grey).all(axis=1)] = 0.0
    i, j = _bound_candidates(grey, max_distance)
    corr = np.zeros(len(i), dtype=np.float32)
    for s in range(0, len(i), _PAIR_CHUNK):  # chunks: a pair costs two thumbnails' worth of memory
        corr[s:s + _PAIR_CHUNK] = np.einsum("ij,ij->i", grey[i[s:s + _PAIR_CHUNK]], grey[j[s:s + _PAIR_CHUNK]]) / d
    close = 1.0 - corr <= max_distance
    return i[close], j[close], corr[close]


def _bound_candidates(grey: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j), i < j, of `grey` (N, d) float32 that `_bound_terms` cannot rule out."""
    n, d = grey.shape
    y, rest, lift, offset = _bound_terms(grey)
    need = d * (1.0 - max_distance) + offset - 1e-3 * d  # the slack covers float32 rounding
    rows = max(1, min(n, _SEARCH_CELLS // n))
    found_i, found_j = [], []
    for s in range(0, n, rows):
        e = min(n, s + rows)
        bound = y[s:e] @ y[s:].T
        bound += np.outer(rest[s:e], rest[s:])
        bound += lift[s:e, None]
        bound += lift[None, s:]
        keep = bound >= need
        keep[:, :e - s] &= np.triu(np.ones((e - s, e - s), dtype=bool), 1)  # j > i only
        a, b = np.nonzero(keep)
        found_i.append(a + s)
        found_j.append(b + s)
    return np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)


def _pixel_hashes_of_candidates(root, signals: pd.DataFrame) -> list:
    """Full decoded-pixel digests, only for files whose reduced pixels equal another file's while
    their bytes differ (the only ones that can be pixel-equal and not byte-equal)."""
    from PIL import Image

    out: list = [None] * len(signals)
    groups = signals.groupby("small_sha", sort=False).indices
    for _key, idx in groups.items():
        if len(idx) < 2 or signals["bytes_sha"].iloc[idx].nunique() < 2:
            continue
        for i in idx:
            with Image.open(Path(root) / signals["path"].iloc[i]) as im:
                out[i] = _pixel_digest(im.convert("RGB"))
    return out


def _thumb_features(thumbs) -> tuple[np.ndarray, np.ndarray]:
    """Colour thumbnails (bytes, THUMB_SIZE RGB) -> grey (N, w*h) with zero mean and unit spread,
    and colour (N, w*h*3) divided by its mean (a brightened copy stays close)."""
    rgb = _thumb_pixels(thumbs).astype(np.float32).reshape(len(thumbs), -1, 3)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grey -= grey.mean(axis=1, keepdims=True)
    grey /= grey.std(axis=1, keepdims=True) + 1e-6
    colour = rgb.reshape(len(thumbs), -1)
    colour /= colour.mean(axis=1, keepdims=True) + 1e-6
    return grey, colour


def _align_grey(path):
    """The file as an ALIGN_SIZE grey picture (JPEG decoded at reduced size), or None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("L", ALIGN_SIZE)
            grey = im.convert("L")
    except Exception:  # changed or broken since the signals were taken: not confirmed
        return None
    return grey if grey.size == ALIGN_SIZE else grey.resize(ALIGN_SIZE, Image.BOX)


def _bands(greys) -> np.ndarray:
    """Fine detail (K, h, w) float32 in (-1, 1) of K same-size grey pictures: each picture minus its
    5x5 box blur (what a look-alike lacks), squashed by tanh at its own spread so that a few strong
    edges that strangers share (the photo's border in its padding, a face outline on a plain
    background) do not outweigh the rest (demo seed 1: the closest stranger 0.85 -> 0.71, planted
    copies 0.93 -> 0.90)."""
    from PIL import ImageFilter

    band = (np.stack([np.asarray(g, np.float32) for g in greys])
            - np.stack([np.asarray(g.filter(ImageFilter.BoxBlur(2)), np.float32) for g in greys]))
    return np.tanh(band / (band.std(axis=(1, 2), keepdims=True) + 1e-6))


def _window_sums(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sum of x (..., H, W) over every window of `shape`: (..., H - h + 1, W - w + 1). The first
    window summed, the others by adding the row (then column) that enters and taking off the one
    that leaves: one pass over x, where an integral image takes several (the windows are few and
    large here)."""
    h, w = shape
    rows = x[..., :h, :].sum(axis=-2, keepdims=True)
    rows = np.concatenate([rows, rows + np.cumsum(x[..., h:, :] - x[..., :-h, :], axis=-2)], axis=-2)
    cols = rows[..., :w].sum(axis=-1, keepdims=True)
    return np.concatenate([cols, cols + np.cumsum(rows[..., w:] - rows[..., :-w], axis=-1)], axis=-1)


def _centre_detail(grey) -> np.ndarray:
    """The inside (ALIGN_MARGIN px off each side) of a picture's fine detail, zero mean and unit
    spread: (h', w') float32."""
    m = _ALIGN_MARGIN
    a = _bands([grey])[0, m:grey.size[1] - m, m:grey.size[0] - m]
    a = a - a.mean(dtype=np.float64)
    return (a / (np.sqrt((a * a).mean(dtype=np.float64)) + 1e-6)).astype(np.float32)


def _zoomed_details(grey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The picture zoomed by each of ALIGN_SCALES: their fine detail over the inside plus ALIGN_SHIFT
    px on each side (Z, h' + 2 shift, w' + 2 shift) float32, and its sums and sums of squares over
    every shifted window (Z, 2 shift + 1, 2 shift + 1), summed in float64 (running sums subtract
    large values). One array per quantity for all zooms."""
    from PIL import Image

    w, h, m, pad = grey.size[0], grey.size[1], _ALIGN_MARGIN, ALIGN_SHIFT
    shape = (h - 2 * m, w - 2 * m)
    cx, cy = w / 2, h / 2
    zoomed = [grey if s == 1.0 else grey.transform(
        (w, h), Image.AFFINE, (1 / s, 0, cx - cx / s, 0, 1 / s, cy - cy / s), Image.BILINEAR)
        for s in ALIGN_SCALES]
    b = np.ascontiguousarray(_bands(zoomed)[:, m - pad:h - m + pad, m - pad:w - m + pad])
    b64 = b.astype(np.float64)
    return b, _window_sums(b64, shape), _window_sums(b64 * b64, shape)


def _best_correlations(centres: np.ndarray, zooms) -> np.ndarray:
    """Best aligned correlation (G,) of each of G centres (G, h', w') with one picture's zooms
    (`_zoomed_details`): one matrix product of every zoom's shifted windows (copied once) with
    every centre."""
    from numpy.lib.stride_tricks import sliding_window_view

    b, s1, s2 = zooms
    g, n = len(centres), centres[0].size
    flat = centres.reshape(g, n).T  # (n, G); each centre has zero mean
    windows = sliding_window_view(b, centres.shape[1:], axis=(1, 2)).reshape(-1, n)  # (zooms x shifts, n)
    spread = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 1e-12)).reshape(-1, 1)
    return (windows @ flat / n / spread).max(axis=0).astype(np.float64)


def _best_correlation(centre: np.ndarray, zooms) -> float:
    return float(_best_correlations(centre[None], zooms)[0])


def aligned_correlation(grey_a, grey_b) -> float:
    """Best correlation of the fine detail (`_band`) of two ALIGN_SIZE grey pictures, `grey_b`
    zoomed about its centre by each of ALIGN_SCALES and shifted by up to ALIGN_SHIFT px, over the
    inside (ALIGN_MARGIN px off each side): 1 = the same picture. A re-encoded, resized, slightly
    cropped or recoloured copy keeps its detail once aligned (demo seed 1: >= 0.90); a stranger
    drawn in the same framing and palette does not (<= 0.71). Not symmetric to the last digits:
    `confirm_near_pairs` zooms whichever member is in more pairs."""
    return _best_correlation(_centre_detail(grey_a), _zoomed_details(grey_b))


def _one_blas_thread():
    """A context in which numpy's BLAS runs on one thread (threadpoolctl comes with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only slower
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _zoom_onto_shared(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i[k], j[k]) turned so that the second members are few: a greedy vertex cover
    (the file in most pairs not yet covered becomes a second member, again and again)."""
    import heapq

    pairs_of: dict[int, list[int]] = {}
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        pairs_of.setdefault(a, []).append(k)
        pairs_of.setdefault(b, []).append(k)
    heap = [(-len(ks), f) for f, ks in pairs_of.items()]
    heapq.heapify(heap)
    second = np.full(len(i), -1, dtype=np.int64)
    while heap:
        neg, f = heapq.heappop(heap)
        open_ks = [k for k in pairs_of[f] if second[k] < 0]
        if not open_ks:
            continue
        if len(open_ks) < -neg:  # fewer than when it was queued: queue again at its true count
            heapq.heappush(heap, (-len(open_ks), f))
            continue
        second[open_ks] = f
    first = np.where(second == j, i, j)
    return first, second


def confirm_near_pairs(root, paths: list[str], i: np.ndarray, j: np.ndarray, *,
                       workers: int | None = None) -> np.ndarray:
    """`aligned_correlation` (K,) of the pairs (paths[i[k]], paths[j[k]]) (-1 where one does not
    decode). Each file is read once and kept as a 96x128 grey picture (12 KB); the zooms (~0.3 MB
    a file) are made once per second member and dropped after its pairs. On `workers` threads
    (default: one per core): the decoding, PIL's filters and numpy's arrays release the GIL."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.full(len(i), -1.0)
    if not len(i):
        return out
    # The zooms cost most, so each pair is aligned onto whichever member has the most pairs
    # (greedy: full scale, 16,007 pairs of 4,180 files need 1,935 zoomed files instead of 3,055).
    i, j = _zoom_onto_shared(i, j)
    files = np.unique(np.r_[i, j])
    firsts = set(i.tolist())

    def read(k: int):
        grey = _align_grey(Path(root) / paths[k])
        # each first member's detail once, however many pairs it is in
        return grey, (_centre_detail(grey) if grey is not None and k in firsts else None)

    order = np.argsort(j, kind="stable")
    starts = np.flatnonzero(np.r_[True, j[order][1:] != j[order][:-1]])
    # One BLAS thread per worker: the products are small, and BLAS's own threads spinning beside
    # the workers cost a third of the time (full scale: 13.3-14.5 s -> 10.0 s).
    with _one_blas_thread(), ThreadPoolExecutor(max_workers=max(1, int(workers or os.cpu_count() or 1))) as pool:
        read_back = dict(zip(files.tolist(), pool.map(read, files.tolist())))

        def confirm(group: np.ndarray) -> None:
            grey_b = read_back[int(j[group[0]])][0]
            ks = [k for k in group if read_back[int(i[k])][1] is not None]
            if grey_b is not None and ks:  # the second member's zooms against all its first members at once
                centres = np.stack([read_back[int(i[k])][1] for k in ks])
                out[ks] = _best_correlations(centres, _zoomed_details(grey_b))

        list(pool.map(confirm, np.split(order, starts[1:])))
    return out


def duplicate_findings(root, signals: pd.DataFrame, split: pd.Series, *,
                       max_thumb_distance: float = 0.05, min_aligned_correlation: float = 0.85,
                       blank=None) -> pd.DataFrame:
    """exact_duplicate, near_duplicate and split_leak findings from decodable rows of `signals`
    (index order), `split` aligned with them. `blank`: bool per row, pictures with nothing on them
    (low_information), left out of the near-duplicate search (all blanks look alike)."""
    n = len(signals)
    paths = signals["path"].tolist()
    splits = split.tolist()
    exact = _UnionFind(n)
    _union_equal(exact, signals["bytes_sha"].tolist())
    same_bytes_groups = {k: len(v) for k, v in exact.groups().items()}
    _union_equal(exact, _pixel_hashes_of_candidates(root, signals))
    exact_of = np.array([exact.find(i) for i in range(n)])
    rows = []
    exact_groups = {k: v for k, v in exact.groups().items() if len(v) > 1}
    for root_i, members in exact_groups.items():
        how = "the same bytes" if same_bytes_groups.get(root_i, 1) == len(members) else "the same decoded pixels"
        rows.append(("exact_duplicate", paths[members[0]], f"{len(members)} files with {how}",
                     [paths[m] for m in members[1:]], 1.0))
    # Near duplicates among one representative per exact group.
    reps = np.unique(exact_of)
    if blank is not None:
        reps = reps[~np.asarray(blank, dtype=bool)[reps]]
    i = j = np.zeros(0, np.int64)
    if len(reps) > 1:
        # Faces on a plain background share their coarse layout, so a 64-bit pHash pairs strangers
        # (demo: 158 of 3.1 M pairs within 4 bits) and misses copies (a crop flips 12-16 bits).
        # 24x32 thumbnails narrow them: distance = (1 - correlation of the grey ones) + (colour
        # difference) / 10 (demo seed 1: planted re-encodes <= 0.035, look-alike strangers from
        # 0.035 on, more with N). Every pair within it is found (`correlated_pairs`), no hash buckets.
        grey, colour = _thumb_features(signals["thumb"].to_numpy()[reps])
        i, j, corr = correlated_pairs(grey, max_thumb_distance)
        ok = np.zeros(len(i), dtype=bool)
        for s in range(0, len(i), _PAIR_CHUNK):  # chunks: a pair costs two thumbnails' worth of memory
            a, b = i[s:s + _PAIR_CHUNK], j[s:s + _PAIR_CHUNK]
            diff = np.abs(colour[a] - colour[b]).mean(axis=1)
            ok[s:s + _PAIR_CHUNK] = (1.0 - corr[s:s + _PAIR_CHUNK]) + diff / 10.0 <= max_thumb_distance
        i, j = i[ok], j[ok]
    # A train person's photos are one source photo with different masks pasted on: alike by
    # construction, so near pairs inside one person folder are not duplicates (exact ones are).
    folder = np.array([p.rsplit("/", 1)[0] if s == "train" else p for p, s in zip(paths, splits)], dtype=object)
    other = folder[reps[i]] != folder[reps[j]]
    i, j = i[other], j[other]
    # The pairs left are few (demo seed 1: 196 for 2,500 images): each file is read
    # again and each pair's fine detail compared once aligned (`aligned_correlation`), which the
    # look-alike strangers fail.
    corr = np.zeros(0)
    if len(i):
        corr = confirm_near_pairs(root, paths, reps[i], reps[j])
        ok = corr >= min_aligned_correlation
        i, j, corr = i[ok], j[ok], corr[ok]
    # near_duplicate: within a split; split_leak: any exact or near group spanning both splits.
    rep_split = np.array(splits, dtype=object)[reps]
    same_split = rep_split[i] == rep_split[j]
    for kind, keep in (("near_duplicate", same_split), ("split_leak", np.ones(len(i), dtype=bool))):
        near = _UnionFind(n)
        for a in range(n):
            near.union(a, int(exact_of[a]))
        for a, b in zip(reps[i[keep]], reps[j[keep]]):
            near.union(int(a), int(b))
        weakest: dict[int, float] = {}  # the lowest aligned correlation that joined each group
        for a, c in zip(reps[i[keep]], corr[keep]):
            r = near.find(int(a))
            weakest[r] = min(weakest.get(r, 1.0), float(c))
        for root_i, members in near.groups().items():
            if len(members) < 2:
                continue
            pictures = len({int(exact_of[m]) for m in members})
            score = min(1.0, weakest.get(root_i, 1.0))
            if kind == "near_duplicate":
                if pictures > 1:
                    rows.append((kind, paths[members[0]],
                                 f"{len(members)} files of one picture (their fine detail, aligned, "
                                 f"correlates {score:.2f} or more)",
                                 [paths[m] for m in members[1:]], score))
                continue
            in_eval = [m for m in members if splits[m] == "eval"]
            in_train = [m for m in members if splits[m] == "train"]
            if in_eval and in_train:
                how = "the same bytes or pixels" if pictures == 1 else "a near-identical picture"
                rows.append((kind, paths[in_eval[0]],
                             f"{how} in train ({paths[in_train[0]]}) and eval: {len(in_train)} train, "
                             f"{len(in_eval)} eval",
                             [paths[m] for m in in_train + in_eval[1:]], 1.0 if pictures == 1 else score))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


# -- image properties (cleanvision) ---------------------------------------------------------------

def property_findings(signals: pd.DataFrame, config: QualityConfig = QualityConfig()) -> pd.DataFrame:
    """dark, light, blurry, low_information, grayscale, odd_size, odd_aspect_ratio findings from the
    raw measurements of decodable rows, scored and marked by cleanvision's own ImageProperty code."""
    if not len(signals):
        return pd.DataFrame(columns=list(FINDING_COLUMNS))
    from cleanvision.utils.utils import get_is_issue_colname, get_score_colname

    props = _properties()
    raw = signals.set_index("path")[list(_RAW_COLUMNS)]
    raw = raw.astype({c: "float64" for c in _RAW_COLUMNS if c != "color_space"})
    rows = []
    for kind, params in config.cleanvision_params().items():
        prop = props[kind]
        # As cleanvision's ImagePropertyIssueManager.update_issues does it.
        scores = prop.get_scores(raw_scores=raw, issue_type=kind, **params)
        marked = prop.mark_issue(scores=scores, issue_type=kind, threshold=params.get("threshold"))
        flagged = marked[get_is_issue_colname(kind)].to_numpy(dtype=bool)
        values = scores[get_score_colname(kind)].to_numpy(dtype=np.float64)
        for path, value, rec in zip(raw.index[flagged], values[flagged], raw[flagged].itertuples(index=False)):
            rows.append((kind, path, _property_detail(kind, rec, value, config), [], float(1.0 - value)))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _property_detail(kind: str, rec, score: float, config: QualityConfig) -> str:
    if kind == "dark":
        return f"99th-percentile brightness {rec.brightness_perc_99:.2f} (< {config.dark_threshold})"
    if kind == "light":
        return f"5th-percentile brightness {rec.brightness_perc_5:.2f} (> {1 - config.light_threshold:.2f})"
    if kind == "blurry":
        return f"edge strength {rec.blurriness:.1f}, cleanvision blur score {score:.2f} (< {config.blurry_threshold})"
    if kind == "low_information":
        bits = config.low_information_threshold / config.low_information_normalizing_factor
        return f"entropy {rec.entropy:.2f} bits (< {bits:.1f})"
    if kind == "grayscale":
        return "no colour: one channel (or three equal ones)"
    if kind == "odd_size":
        return f"{rec.size:.0f} px on the side of a square of its area; most images differ"
    return f"aspect ratio {rec.aspect_ratio:.2f} (< {config.odd_aspect_ratio_threshold})"


# -- a person's photos (embeddings) ---------------------------------------------------------------

def _person_groups(images: pd.DataFrame) -> list[np.ndarray]:
    """Row indices of each train person with at least 4 photos (in index order)."""
    train = np.flatnonzero(images["split"].to_numpy() == "train")
    persons = images["person"].to_numpy()[train]
    order = np.argsort(persons, kind="stable")
    train, persons = train[order], persons[order]
    starts = np.flatnonzero(np.r_[True, persons[1:] != persons[:-1]])
    ends = np.r_[starts[1:], len(persons)]
    return [train[s:e] for s, e in zip(starts, ends) if e - s >= 4]


def _leave_one_out(x: np.ndarray, metric) -> np.ndarray:
    """metric(photo, median of the other photos) per row of x (n, d): a stranger among the others
    does not move their median."""
    return np.array([metric(x[k], np.median(np.delete(x, k, axis=0), axis=0)) for k in range(len(x))])


def face_distances(images: pd.DataFrame, embeddings: np.ndarray, shown_mask=None) -> np.ndarray:
    """Per image (N,): robust z of the embedding's distance to the median of the person's other
    photos, per mask state (NaN outside judged train people). Each mask state's mean is removed
    first (5 of 7 photos wear a mask); `shown_mask` (a run's predicted mask state) instead of the
    given one, so a swapped normal / incorrect_mask pair is not mistaken for strangers."""
    emb = np.asarray(embeddings, dtype=np.float32)
    mask = images["mask"].to_numpy() if shown_mask is None else np.asarray(shown_mask)
    resid = emb.copy()
    for m in np.unique(mask):
        resid[mask == m] -= emb[mask == m].mean(axis=0)
    dist = np.full(len(images), np.nan)
    for idx in _person_groups(images):
        dist[idx] = _leave_one_out(resid[idx], lambda a, b: float(np.linalg.norm(a - b)))
    z = np.full(len(images), np.nan)
    for m in np.unique(mask):
        sel = (mask == m) & ~np.isnan(dist)
        if sel.sum() < 3:
            continue
        med = np.median(dist[sel])
        mad = np.median(np.abs(dist[sel] - med)) * 1.4826 or 1e-9
        z[sel] = (dist[sel] - med) / mad
    return z


def picture_distances(images: pd.DataFrame, thumbs) -> np.ndarray:
    """Per image (N,): mean |difference| (grey levels, 0-255) between the top of its colour
    thumbnail (forehead, eyes, hair: above any mask) and the median of the person's other photos;
    NaN outside judged train people. A person's 7 photos are one source photo with masks pasted
    on, so this is near 0 for them (0.0 on the demo) and large for another picture."""
    top = _thumb_pixels(thumbs)[:, :TOP_VALUES].astype(np.float32)
    dist = np.full(len(images), np.nan)
    for idx in _person_groups(images):
        dist[idx] = _leave_one_out(top[idx], lambda a, b: float(np.abs(a - b).mean()))
    return dist


def person_findings(images: pd.DataFrame, embeddings: np.ndarray | None = None,
                    config: QualityConfig = QualityConfig(), *, shown_mask=None, thumbs=None) -> pd.DataFrame:
    """person_outlier and person_mixed findings for the train people (at least 4 photos) of
    `images` (index columns path, split, person, mask).

    Evidence: `thumbs` (colour thumbnails from the signals, row-aligned): a photo whose top part
    differs from the person's other photos by `same_picture_levels` or more is another picture
    (`picture_distances`); `embeddings` (N, D) (a run's): how far its face is from the others'
    (`face_distances`, robust z). With thumbnails the picture decides and the face distance is
    reported beside it; with embeddings only, z >= `outlier_z` decides (`mixed_z` for the median)."""
    rows = []
    if (embeddings is None and thumbs is None) or not len(images):
        return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    z = face_distances(images, embeddings, shown_mask) if embeddings is not None else np.full(len(images), np.nan)
    pix = picture_distances(images, thumbs) if thumbs is not None else None
    paths = images["path"].to_numpy()
    for idx in _person_groups(images):
        folder = paths[idx[0]].rsplit("/", 1)[0]
        face = "" if np.all(np.isnan(z[idx])) else None
        if pix is not None:
            d = pix[idx]
            if float(np.median(d)) >= config.same_picture_levels:
                rows.append(("person_mixed", folder, f"the {len(idx)} photos are not one source photo: the median "
                             f"photo's top part differs from the others by {np.median(d):.0f} grey levels",
                             [str(p) for p in paths[idx]], float(np.median(d))))
                continue
            k = int(np.argmax(d))
            if d[k] >= config.same_picture_levels:
                face = "" if face == "" else f"; its face is {z[idx][k]:.1f} spreads from theirs (run embeddings)"
                rows.append(("person_outlier", str(paths[idx[k]]),
                             f"another picture than the other {len(idx) - 1} photos: its top part (hair, eyes) "
                             f"differs by {d[k]:.0f} grey levels{face}",
                             [str(p) for p in paths[np.delete(idx, k)]], float(d[k])))
            continue
        zi = z[idx]
        if np.all(np.isnan(zi)):
            continue
        median_z = float(np.nanmedian(zi))
        if median_z >= config.mixed_z:
            rows.append(("person_mixed", folder,
                         f"the {len(idx)} photos do not form one face (median photo {median_z:.1f} spreads "
                         "from its person)",
                         [str(p) for p in paths[idx]], median_z))
            continue
        k = int(np.nanargmax(zi))
        if zi[k] >= config.outlier_z:
            rows.append(("person_outlier", str(paths[idx[k]]),
                         f"not the face of the other {len(idx) - 1} photos ({zi[k]:.1f} spreads past a "
                         "person's typical distance)",
                         [str(p) for p in paths[np.delete(idx, k)]], float(zi[k])))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


_STEADY_LEVELS = 3.0  # a thumbnail pixel is the person's own when all but one photo are this near their median
_MATCH_LEVELS = 6.0  # ... and an eval image's pixel matches it this near (re-encoding moves a few levels)
_FACE_CANDIDATES = 10  # people per eval image and view whose steady pixels are compared
_MIN_STEADY = 0.5  # fraction of the thumbnail that must be steady (else the person's photos are not one picture)


def _thumb_pixels(thumbs) -> np.ndarray:
    """Colour thumbnails (bytes) -> (N, h*w*3) uint8 (a view of one joined buffer: callers convert
    only the rows and columns they use; a float copy of all of them took 0.7 s at full scale)."""
    return np.frombuffer(b"".join(thumbs), dtype=np.uint8).reshape(len(thumbs), -1)


def face_leak_findings(images: pd.DataFrame, thumbs, config: QualityConfig = QualityConfig(),
                       skip=frozenset()) -> pd.DataFrame:
    """split_leak findings for eval images of `images` (path, split, person) that show a train
    person's source photo under another mask (see the module docstring); `thumbs` row-aligned,
    eval paths in `skip` (already in a duplicate leak) left out."""
    rows = []
    groups = _person_groups(images)
    paths = images["path"].to_numpy()
    evals = np.flatnonzero((images["split"].to_numpy() == "eval") & ~np.isin(paths, list(skip)))
    if not groups or not len(evals):
        return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    pix = _thumb_pixels(thumbs)
    # Grey levels doubled, in int16: a median of integers is a whole or half level, so every
    # comparison below is exact in small integers (half the memory traffic of float32).
    medians2 = np.stack([np.round(2 * np.median(pix[g], axis=0)) for g in groups]).astype(np.int16)
    # The second-largest deviation: one odd photo (a stranger, a swapped mask) does not unsteady a pixel.
    steady = np.stack([np.sort(np.abs(2 * pix[g].astype(np.int16) - m), axis=0)[-2] for g, m in zip(groups, medians2)]
                      ) <= 2 * _STEADY_LEVELS
    judged = steady.mean(axis=1) >= _MIN_STEADY
    steady_count = np.maximum(steady.sum(axis=1), 1)
    # Candidates: the people nearest in the whole grey thumbnail, and those nearest above any mask
    # (a big eval mask can push the right person down the first list: 54th on demo seed 1).
    views = [lambda x: x.reshape(len(x), -1, 3).mean(axis=2, dtype=np.float32),
             lambda x: x[:, :TOP_VALUES].astype(np.float32)]
    refs = [(v(medians2) / 2, (v(medians2) ** 2).sum(axis=1) / 4) for v in views]
    k = min(_FACE_CANDIDATES, len(groups))
    for s in range(0, len(evals), 512):  # (512, 2k, D) comparisons at a time: ~50 MB
        rows_e = evals[s:s + 512]
        cand = np.concatenate([np.argpartition(sq[None, :] - 2.0 * v(pix[rows_e]) @ ref.T, k - 1, axis=1)[:, :k]
                               for v, (ref, sq) in zip(views, refs)], axis=1)  # + |q|^2: the same per person
        diff = medians2[cand] - 2 * pix[rows_e].astype(np.int16)[:, None, :]  # (n, 2k, D)
        np.abs(diff, out=diff)
        near = diff <= 2 * _MATCH_LEVELS
        near &= steady[cand]
        frac = near.sum(axis=2, dtype=np.int32) / steady_count[cand]
        frac[~judged[cand]] = 0.0
        best = frac.argmax(axis=1)
        for r, c, f in zip(rows_e, cand[np.arange(len(rows_e)), best], frac[np.arange(len(rows_e)), best]):
            if f < config.same_face_fraction:
                continue
            members = groups[int(c)]
            folder = paths[members[0]].rsplit("/", 1)[0]
            rows.append(("split_leak", str(paths[r]),
                         f"the face of train person {folder}: {f:.1%} of the pixels their photos share "
                         "(all but the mask) match - their source photo under another mask, in eval",
                         [str(x) for x in paths[members]], float(f)))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def run_embeddings_for(index, run) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The run's embeddings (N, D) and predicted mask states (N,) row-aligned with `index.images`
    (NaN rows / the given mask where the run lacks an image); (None, None) without embeddings.
    Raises RunFromOtherData for a run of other data."""
    if run.meta.get("data_fingerprint") != index.fingerprint:
        raise RunFromOtherData(f"the run {run.path} was made on other data than {index.root} "
                               "(data fingerprints differ); predict this dataset into a run first")
    emb = run.embeddings
    if emb is None:
        return None, None
    preds = run.predictions
    pos = pd.Series(np.arange(len(preds)), index=preds["path"].to_numpy())
    where = pos.reindex(index.images["path"].to_numpy()).to_numpy()
    out = np.full((len(index.images), emb.shape[1]), np.nan, dtype=np.float32)
    ok = ~np.isnan(where)
    rows = where[ok].astype(np.int64)
    out[ok] = emb[rows].astype(np.float32)
    shown = index.images["mask"].to_numpy().copy()
    if "pred_mask" in preds.columns:
        shown[ok] = preds["pred_mask"].to_numpy()[rows]
    return out, shown


# -- everything -----------------------------------------------------------------------------------

def find_quality_issues(root, images: pd.DataFrame, signals: pd.DataFrame, *, embeddings: np.ndarray | None = None,
                        shown_mask=None, config: QualityConfig = QualityConfig()) -> pd.DataFrame:
    """All findings for index rows `images` (path, split, person, mask), their `signals` (same order)
    and optional embeddings (N, D) and shown mask states (N,) (a run's predictions) aligned with
    them: FINDING_COLUMNS, ordered by kind then path."""
    bad = signals["error_kind"].to_numpy() != ""
    parts = [pd.DataFrame({"kind": signals.loc[bad, "error_kind"], "path": signals.loc[bad, "path"],
                           "detail": signals.loc[bad, "error"], "related": [[] for _ in range(int(bad.sum()))],
                           "score": 1.0})]
    good = signals[~bad].reset_index(drop=True)
    good_images = images[~bad].reset_index(drop=True)
    props = property_findings(good, config)
    blank_paths = set(props.loc[props["kind"] == "low_information", "path"])
    blank = good["path"].isin(blank_paths).to_numpy()
    # Photos already found unusable (dark, blank, blurred...) are far from everyone: judged by what
    # they are, they stay out of the person checks.
    have = ~good["path"].isin(set(props["path"])).to_numpy()
    emb = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float32)[~bad]
        have &= ~np.isnan(emb).any(axis=1)
        emb = emb[have]
    shown = None if shown_mask is None else np.asarray(shown_mask)[~bad][have]
    thumbs = good["thumb"].to_numpy()[have] if "thumb" in good.columns else None
    judged = good_images[have].reset_index(drop=True)

    def person_checks() -> tuple[pd.DataFrame, pd.DataFrame]:
        faces = face_leak_findings(judged, thumbs, config) if thumbs is not None else empty_findings()
        return person_findings(judged, emb, config, shown_mask=shown, thumbs=thumbs), faces

    # The person and face checks run beside the duplicate search, which leaves a core idle part of
    # the time; BLAS on one thread, two streams instead (full scale: checks 20.0 -> 15.8 s; numpy
    # releases the GIL in both).
    with _one_blas_thread(), ThreadPoolExecutor(max_workers=1) as pool:
        beside = pool.submit(person_checks)
        dups = duplicate_findings(root, good, good_images["split"],
                                  max_thumb_distance=config.near_duplicate_thumb_distance,
                                  min_aligned_correlation=config.near_duplicate_aligned_correlation, blank=blank)
        people, faces = beside.result()
    parts.append(dups)
    # A blank picture is reported as low_information only, a dark one not also as blurry or grey:
    # the weaker edges and colours follow from what it is.
    dark_paths = set(props.loc[props["kind"] == "dark", "path"])
    drop = (((props["kind"] != "low_information") & props["path"].isin(blank_paths))
            | (props["kind"].isin(("blurry", "grayscale")) & props["path"].isin(dark_paths)))
    parts.append(props[~drop])
    parts.append(people)
    # an eval image already in a duplicate leak is reported there, not again as a face leak
    parts.append(faces[~faces["path"].isin(flagged_paths(dups, kinds=("split_leak",)))])
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_findings()
    findings = pd.concat(parts, ignore_index=True)
    order = {k: i for i, k in enumerate(SKIPPED_KINDS + QUALITY_KINDS)}
    findings["_o"] = findings["kind"].map(order)
    findings = findings.sort_values(["_o", "path"], kind="stable").drop(columns="_o").reset_index(drop=True)
    findings["score"] = findings["score"].astype("float64")
    return findings


def quality_dir(fingerprint: str) -> Path:
    from audit.workspace import workspace_dir

    return workspace_dir() / "quality" / fingerprint[:24]


def _findings_path(index, config: QualityConfig, run) -> Path:
    return quality_dir(index.fingerprint) / f"findings_v{FINDINGS_VERSION}_{config.key()}_{_run_key(run)}.parquet"


def _run_key(run) -> str:
    if run is None:
        return "norun"
    ident = f"{Path(run.path).resolve()}|{run.meta.get('checkpoint_sha256')}|{run.meta.get('created')}"
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    from audit.file_io import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: frame.to_parquet(fh, index=False))


def load_signals(index, *, config: QualityConfig = QualityConfig(), workers: int | None = None,
                 progress: Progress | None = None) -> tuple[pd.DataFrame, bool]:
    """Signals of every indexed image, from the workspace cache when the data is unchanged
    (same fingerprint and path list); else computed and cached. Returns (signals, reused)."""
    path = quality_dir(index.fingerprint) / SIGNALS_NAME
    paths = index.images["path"].tolist()
    if path.is_file():
        try:
            cached = pd.read_parquet(path)
            if cached["path"].tolist() == paths:
                return cached, True
        except Exception:  # a cut or foreign file: compute again
            pass
    signals = image_signals(index.root, paths, config=config, workers=workers, progress=progress)
    _write_parquet(signals, path)
    return signals, False


def quality_report(index, *, run=None, config: QualityConfig = QualityConfig(), workers: int | None = None,
                   progress: Progress | None = None, reuse: bool = True) -> QualityReport:
    """Findings for a DatasetIndex (and a Run for the person checks), written into the workspace
    (`quality_dir(fingerprint)`) and reused until the data, the run or the thresholds change.
    Raises RunFromOtherData when the run belongs to other data."""
    t0 = time.perf_counter()
    embeddings, shown_mask = run_embeddings_for(index, run) if run is not None else (None, None)
    source = _report_source(run, embeddings is not None)
    target = _findings_path(index, config, run)
    if reuse and target.is_file():
        try:
            findings = pd.read_parquet(target)
            findings["related"] = findings["related"].map(list)
            return QualityReport(len(index.images), findings, source, {"total": time.perf_counter() - t0}, True)
        except Exception:
            pass
    signals, _reused = load_signals(index, config=config, workers=workers, progress=progress)
    t1 = time.perf_counter()
    findings = find_quality_issues(index.root, index.images, signals, embeddings=embeddings, shown_mask=shown_mask,
                                   config=config)
    t2 = time.perf_counter()
    _write_parquet(findings, target)
    return QualityReport(len(index.images), findings, source,
                         {"signals": t1 - t0, "checks": t2 - t1, "total": time.perf_counter() - t0}, False)


def _report_source(run, has_embeddings: bool) -> str:
    if run is None:
        return "the pictures only (no run chosen: a run's embeddings would add each stranger's face distance)"
    if not has_embeddings:
        return f"the pictures only (the run {Path(run.path).name} has no embeddings)"
    return f"the pictures and the embeddings of the run {Path(run.path).name}"


def load_cached_report(index, *, run=None, config: QualityConfig = QualityConfig()) -> QualityReport | None:
    """The findings `quality_report` wrote for this data, run and thresholds, or None when they
    have not been computed (nothing is decoded here: cheap enough for every page)."""
    target = _findings_path(index, config, run)
    if not target.is_file():
        return None
    try:
        findings = pd.read_parquet(target)
    except Exception:  # a cut or foreign file: compute again
        return None
    findings["related"] = findings["related"].map(list)
    source = _report_source(run, run is not None and run.has_embeddings)
    return QualityReport(len(index.images), findings, source, {}, True)


def flagged_paths(findings: pd.DataFrame, kinds=None) -> set[str]:
    """Image paths a finding names (path and related for group kinds; the photos for person_mixed)."""
    out: set[str] = set()
    for kind, path, related in findings[["kind", "path", "related"]].itertuples(index=False, name=None):
        if kinds is not None and kind not in kinds:
            continue
        if kind != "person_mixed":
            out.add(path)
        if kind in GROUP_KINDS or kind == "person_mixed":
            out.update(related)
    return out


def counts_by_kind(findings: pd.DataFrame) -> dict[str, int]:
    """Findings per kind, in QUALITY_KINDS order (skipped files first), kinds with none left out."""
    vc = findings["kind"].value_counts()
    return {k: int(vc[k]) for k in SKIPPED_KINDS + QUALITY_KINDS if k in vc.index}
