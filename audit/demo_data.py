"""The built-in demo dataset: procedural faces in the seed layout, with known injected label noise.

`make_demo(out, ...)` writes

    out/images/train/{id}_{gender}_{race}_{age}/{mask1..mask5,incorrect_mask,normal}.{jpg|png}
    out/images/eval/{id}_{gender}_{race}_{age}_{mask|incorrect_mask|normal}.{jpg|png}
    out/truth.csv   one row per image: true and given labels, corrupted flags (the app never reads it)
    out/demo.json   the parameters, counts and a completion flag

File names carry the GIVEN labels (as deepface-made labels do in the real set); pixels show the TRUE
ones. Noise kinds: person-level gender flips and ages pushed across a default-bin boundary (25 or 40),
for train people and eval images alike; `normal`/`incorrect_mask` files swapped within a train person.

Everything is a pure function of the seed: a person's look is drawn from a generator seeded by
(seed, person key) and each photo's mask from (seed, path), so the bytes do not depend on how the
work is split between processes.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from audit.labels import DEFAULT_BINS, GENDERS, TRAIN_MASK_TYPES
from audit import face_drawing

DEMO_FORMAT = "mask-audit-demo"
DEMO_VERSION = 5  # 2: stronger age cues; 3: a coloured mask style in train; 4: a face split leak planted;
# 5: clearer gender cues (face_drawing.DRAWING_VERSION 2)
TRUTH_COLUMNS = (
    "path", "split", "person", "true_gender", "given_gender", "true_age", "given_age",
    "true_mask", "given_mask", "gender_corrupted", "age_corrupted", "mask_corrupted",
)
EVAL_MASK_TYPES = ("mask", "incorrect_mask", "normal")
EVAL_MASK_TYPE_CODES = {"mask": 0, "incorrect_mask": 1, "normal": 2}
# Figures read off the real manifests (shared/data/real-manifest/README.md), used when not --like.
TRAIN_RACE_P = {"White": 0.548, "LatinoHispanic": 0.194, "Asian": 0.148, "Black": 0.048, "MiddleEastern": 0.047, "Indian": 0.015}
EVAL_RACE_P = {"White": 0.324, "Asian": 0.254, "LatinoHispanic": 0.197, "Black": 0.116, "MiddleEastern": 0.073, "Indian": 0.036}
EVAL_MASK_P = (0.448, 0.331, 0.221)  # mask, incorrect_mask, normal (train is 5:1:1)
# (low, high inclusive, probability) age brackets of the given labels.
TRAIN_AGE_BRACKETS = ((16, 17, 0.124), (18, 20, 0.225), (21, 24, 0.124), (25, 30, 0.082), (31, 39, 0.374), (40, 45, 0.05), (46, 50, 0.016), (51, 60, 0.005))
EVAL_AGE_BRACKETS = ((12, 17, 0.014), (18, 24, 0.214), (25, 39, 0.639), (40, 50, 0.072), (51, 67, 0.061))
TRAIN_FEMALE_P, EVAL_FEMALE_P = 0.594, 0.476
TRAIN_GAN_P, EVAL_GAN_P = 0.666, 0.041
JPEG_QUALITY = 90
PNG_COMPRESS_LEVEL = 1  # fast; the PNGs stand in for FFHQ's, which are PNG in the real eval set


@dataclass(frozen=True)
class NoiseRates:
    """Fractions of people whose given label is wrong, per noise kind (counts are rounded, >= 1 when > 0)."""

    gender_flip: float = 0.04  # gender label is the other gender
    age_shift: float = 0.08  # age label on the other side of a default-bin boundary (25 or 40)
    mask_swap: float = 0.015  # train people whose normal / incorrect_mask files are swapped

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise rate {name} must be within [0, 1], got {value}")


@dataclass(frozen=True)
class DemoInfo:
    """What `make_demo` wrote."""

    root: Path  # the data root (holds images/)
    truth_path: Path
    meta_path: Path
    train_people: int
    eval_images: int
    images: int  # all files written
    noise_counts: dict  # {"gender": n, "age": n, "mask": n} corrupted people (train) + eval images
    seconds: float


@dataclass(frozen=True)
class _Person:
    """One train person, or the person of one eval image. Labels: int codes, ages in years."""

    pid: str
    split: str
    race: str
    source: str  # "GAN" or "photo"
    ext: str
    given_gender: int
    given_age: int
    true_gender: int
    true_age: int
    eval_mask_type: str = ""  # eval only
    swapped: bool = False  # train only: normal / incorrect_mask drawings swapped

    @property
    def key(self) -> str:
        return f"{self.pid}_{GENDERS[self.given_gender]}_{self.race}_{self.given_age}"


@dataclass(frozen=True)
class _Image:
    path: str  # data-relative, POSIX
    person: _Person
    true_mask: int
    given_mask: int


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on (seed, key): the basis of the worker-count-free determinism."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _noise_count(rate: float, n: int) -> int:
    if rate <= 0 or n == 0:
        return 0
    return min(n, max(1, int(round(rate * n))))


def _sample_age(rng, brackets) -> int:
    p = np.array([b[2] for b in brackets])
    lo, hi, _ = brackets[rng.choice(len(brackets), p=p / p.sum())]
    return int(rng.integers(lo, hi + 1))


def _sample_people(rng, n_train: int, n_eval: int) -> list[_Person]:
    """Given labels drawn to match the real manifests' figures; true = given until noise is injected."""
    # Distinct ids across both splits, 100k- ids six digits, ffhq- ids five.
    ids_100k = iter(rng.choice(100_000, size=n_train + n_eval, replace=False))
    ids_ffhq = iter(rng.choice(70_000, size=n_train + n_eval, replace=False))
    people = []
    for split, n in (("train", n_train), ("eval", n_eval)):
        race_p = TRAIN_RACE_P if split == "train" else EVAL_RACE_P
        races, rp = list(race_p), np.array(list(race_p.values()))
        for _ in range(n):
            gan = rng.random() < (TRAIN_GAN_P if split == "train" else EVAL_GAN_P)
            pid = f"100k-{next(ids_100k):06d}" if gan else f"ffhq-{next(ids_ffhq):05d}"
            gender = int(rng.random() < (TRAIN_FEMALE_P if split == "train" else EVAL_FEMALE_P))
            age = _sample_age(rng, TRAIN_AGE_BRACKETS if split == "train" else EVAL_AGE_BRACKETS)
            mask_type = ""
            if split == "eval":
                mask_type = EVAL_MASK_TYPES[rng.choice(3, p=EVAL_MASK_P)]
            people.append(_Person(
                pid=pid, split=split, race=races[rng.choice(len(races), p=rp / rp.sum())],
                source="GAN" if gan else "photo", ext="jpg" if gan else "png",
                given_gender=gender, given_age=age, true_gender=gender, true_age=age, eval_mask_type=mask_type,
            ))
    return people


_EVAL_NAME = re.compile(r"^(?P<id>[^_]+)_(?P<gender>male|female)_(?P<race>.+)_(?P<age>\d+)_"
                        r"(?P<mt>mask\d?|incorrect_mask|normal)\.(?P<ext>[A-Za-z]+)$")


def _people_like(manifest_dir: Path, limit: int | None) -> list[_Person]:
    """Train people and eval images with the names and labels of a real manifest (train.csv, info.csv)."""
    import pandas as pd  # only the main process needs pandas

    manifest_dir = Path(manifest_dir)
    train_csv, info_csv = manifest_dir / "train.csv", manifest_dir / "info.csv"
    for f in (train_csv, info_csv):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: --like expects a folder holding train.csv and info.csv")
    train = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    info = pd.read_csv(info_csv, dtype=str, keep_default_na=False)
    if limit is not None:
        train, info = train.head(limit), info.head(limit)
    people = []
    for row in train.itertuples(index=False):
        gan = "100k" in getattr(row, "dataset", "") or row.id.startswith("100k-")
        gender = GENDERS.index(row.gender.strip().lower())
        age = int(row.age)
        key = f"{row.id}_{row.gender}_{row.race}_{row.age}"
        if row.path and row.path != key:
            raise ValueError(f"train.csv row {row.id}: path {row.path!r} does not match its labels ({key!r})")
        people.append(_Person(pid=row.id, split="train", race=row.race, source="GAN" if gan else "photo",
                              ext="jpg" if gan else "png", given_gender=gender, given_age=age,
                              true_gender=gender, true_age=age))
    for row in info.itertuples(index=False):
        m = _EVAL_NAME.match(row.ImageID)
        if not m:
            raise ValueError(f"info.csv: cannot parse ImageID {row.ImageID!r}")
        gan = "100k" in getattr(row, "dataset", "") or m["id"].startswith("100k-")
        gender, age = GENDERS.index(m["gender"]), int(m["age"])
        people.append(_Person(pid=m["id"], split="eval", race=m["race"], source="GAN" if gan else "photo",
                              ext=m["ext"], given_gender=gender, given_age=age, true_gender=gender,
                              true_age=age, eval_mask_type=m["mt"]))
    return people


def _shifted_age(rng, given_age: int) -> int:
    """A true age on the other side of the nearest default-bin boundary (up to 5 years past it)."""
    lo, hi = DEFAULT_BINS.edges
    boundary = lo if abs(given_age - lo) <= abs(given_age - hi) else hi
    d = int(rng.integers(0, 5))
    return boundary + d if given_age < boundary else boundary - 1 - d


def _inject_noise(rng, people: list[_Person], noise: NoiseRates) -> list[_Person]:
    """Pick corrupted people per kind and set their TRUE labels to differ from the given ones."""
    people = list(people)
    for split in ("train", "eval"):
        idx = [i for i, p in enumerate(people) if p.split == split]
        n = len(idx)
        for i in rng.choice(idx, size=_noise_count(noise.gender_flip, n), replace=False) if n else []:
            people[i] = replace(people[i], true_gender=1 - people[i].given_gender)
        for i in rng.choice(idx, size=_noise_count(noise.age_shift, n), replace=False) if n else []:
            people[i] = replace(people[i], true_age=_shifted_age(rng, people[i].given_age))
        if split == "train" and n:
            for i in rng.choice(idx, size=_noise_count(noise.mask_swap, n), replace=False):
                people[i] = replace(people[i], swapped=True)
    return people


def _images_of(person: _Person) -> list[_Image]:
    if person.split == "eval":
        code = EVAL_MASK_TYPE_CODES.get(person.eval_mask_type, 0)
        return [_Image(f"images/eval/{person.key}_{person.eval_mask_type}.{person.ext}", person, code, code)]
    out = []
    for stem, given in TRAIN_MASK_TYPES.items():
        true = given
        if person.swapped and given in (1, 2):
            true = 3 - given  # the file named normal shows an incorrect mask and vice versa
        out.append(_Image(f"images/train/{person.key}/{stem}.{person.ext}", person, true, given))
    return out


def _plan(*, people: int, eval_images: int, seed: int, like, like_limit, noise: NoiseRates) -> list[_Person]:
    """Who is in the demo, with given and true labels: a pure function of the arguments (no drawing)."""
    rng = _rng(seed, "plan")
    plan = _people_like(Path(like), like_limit) if like is not None else _sample_people(rng, people, eval_images)
    plan = _inject_noise(rng, plan, noise)
    keys = [p.key + ("" if p.split == "train" else "_" + p.eval_mask_type) for p in plan]
    if len(set(keys)) != len(keys):
        raise ValueError("the plan names two people or eval images the same")
    return plan


def person_look(seed: int, person: _Person) -> face_drawing.Look:
    """The one look all of a person's photos share (also what benchmarks/oracle_age.py reads)."""
    return face_drawing.sample_look(
        _rng(seed, "look/" + person.split + "/" + person.key),
        gender=person.true_gender, age=person.true_age, race=person.race, source=person.source,
    )


def _draw_person(seed: int, person: _Person, images: list[_Image], root: str) -> int:
    """Draw and write one person's photos; returns how many were written."""
    look = person_look(seed, person)
    for im in images:
        shot = face_drawing.sample_shot(_rng(seed, "shot/" + im.path), mask=im.true_mask, split=person.split)
        picture = face_drawing.draw_face(look, shot)
        path = os.path.join(root, im.path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if im.path.lower().endswith(".png"):
            picture.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        else:
            picture.save(path, format="JPEG", quality=JPEG_QUALITY)
    return len(images)


def _draw_chunk(args) -> int:
    seed, root, chunk = args
    return sum(_draw_person(seed, person, images, root) for person, images in chunk)


def read_demo_meta(root) -> dict | None:
    """A demo folder's demo.json (parameters, counts, "complete" flag), or None when there is none
    or it is not a demo's."""
    try:
        meta = json.loads((Path(root) / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == DEMO_FORMAT else None


def _is_previous_demo(out: Path) -> bool:
    return read_demo_meta(out) is not None


def _demo_image_files(images: Path) -> list[Path] | None:
    """Every file under a previous demo's images/ when each is one the demo could have drawn (an
    image file in images/train/<person>/ or images/eval/); None as soon as anything else is there."""
    if not images.exists():
        return []
    if images.is_symlink() or not images.is_dir():
        return None
    found = []
    for folder, dirs, files in os.walk(images):
        depth = len(Path(folder).relative_to(images).parts)
        if any(Path(folder, d).is_symlink() for d in dirs) or (files and depth not in (1, 2)) \
                or (dirs and depth >= 2):
            return None
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file() or path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                return None
            found.append(path)
    return found


# What make_demo writes at the top of its folder (besides images/): never written over elsewhere.
_DEMO_TOP_FILES = ("truth.csv", "demo.json", "quality_truth.csv")  # QUALITY_TRUTH_NAME below


def prepare_output(out: Path, *, force: bool = False) -> None:
    """Make `out` ready: empty, or a previous demo (cleared), or with `force` a folder whose
    other files the demo would not write over.

    A previous demo (demo.json of ours) is cleared file by file, and only when its images/ holds
    nothing but image files where the demo puts them. `force` never deletes or overwrites anything:
    it only allows drawing beside other files in a folder without images/, truth.csv or demo.json.
    Raises FileExistsError (one line) otherwise, so a typo never scatters thousands of faces into
    someone's data, and no user file is ever lost.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if _is_previous_demo(out):
            files = _demo_image_files(out / "images")
            if files is None:
                raise FileExistsError(f"{out} is a demo folder, but its images/ holds files the demo did not draw; "
                                      "move them out or choose another folder (nothing was deleted)")
            for path in files:
                path.unlink()
            for folder, _dirs, _files in sorted(os.walk(out / "images"), key=lambda w: -len(w[0])):
                os.rmdir(folder)  # empty now: the walk above saw every file
            for name in _DEMO_TOP_FILES:
                (out / name).unlink(missing_ok=True)
        else:
            clash = [n for n in ("images", *_DEMO_TOP_FILES) if (out / n).exists() or (out / n).is_symlink()]
            if not force:
                raise FileExistsError(f"{out} is not empty and holds no previous demo (demo.json); use --force to write into it")
            if clash:
                raise FileExistsError(f"{out} already holds {', '.join(clash)} (not a demo's); the demo never "
                                      "writes over them, even with --force: choose another folder")
    out.mkdir(parents=True, exist_ok=True)


def make_demo(out, *, people: int = 60, eval_images: int = 120, seed: int = 0, like=None,
              noise: NoiseRates = NoiseRates(), workers: int | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              like_limit: int | None = None, force: bool = False,
              quality: "QualityDefects | None" = None) -> DemoInfo:
    """Draw the demo dataset into `out` (see the module docstring for the layout).

    people / eval_images: sizes (ignored with `like`). like: a folder with a real manifest's
    train.csv and info.csv whose names and labels are reproduced (`like_limit` keeps only the first
    N rows of each, for quick tests). workers: processes for drawing (default: all cores).
    progress(done, total, message) is called from this process as images are written.
    quality: data-quality defects to plant (`QualityDefects`; default: the small default rates, or
    none with `like`), recorded in quality_truth.csv.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if people < 0 or eval_images < 0:
        raise ValueError("people and eval_images must be >= 0")
    prepare_output(out, force=force)
    plan = _plan(people=people, eval_images=eval_images, seed=seed, like=like, like_limit=like_limit, noise=noise)
    defects = quality if quality is not None else (QualityDefects() if like is None else NO_QUALITY_DEFECTS)
    plan, plants = _plan_quality_defects(plan, defects, seed)
    per_person = [(p, _images_of(p)) for p in plan]
    images = [im for _, ims in per_person for im in ims]
    total = len(images)
    meta = {
        "format": DEMO_FORMAT, "version": DEMO_VERSION, "complete": False, "seed": seed,
        "people": people if like is None else None, "eval_images": eval_images if like is None else None,
        "like": str(like) if like is not None else None, "like_limit": like_limit,
        "noise": asdict(noise), "noise_splits": {"gender": ["train", "eval"], "age": ["train", "eval"], "mask": ["train"]},
        "noise_bins": DEFAULT_BINS.to_dict(),
        "image_size": [face_drawing.WIDTH, face_drawing.HEIGHT],
        "quality_defects": asdict(defects),
    }
    # Written first with complete=false so an interrupted build is recognised (and may be rebuilt).
    (out / "demo.json").write_text(json.dumps(meta, indent=2) + "\n")
    if progress:
        progress(0, total, "drawing faces")

    # Chunks of whole people, so a person's look is sampled once; ~50 images per chunk.
    chunks, cur, n_cur = [], [], 0
    for person, ims in per_person:
        cur.append((person, ims))
        n_cur += len(ims)
        if n_cur >= 50:
            chunks.append(cur)
            cur, n_cur = [], 0
    if cur:
        chunks.append(cur)
    workers = max(1, int(workers or os.cpu_count() or 1))
    done = 0
    jobs = [(seed, str(out), chunk) for chunk in chunks]
    if workers == 1 or len(chunks) <= 1:
        for job in jobs:
            done += _draw_chunk(job)
            if progress:
                progress(done, total, "drawing faces")
    else:
        # spawn, never fork: a child forked from a threaded process (the Streamlit server, a test
        # runner) inherits its signal handlers and held locks; forked drawing workers hung the app's
        # first start in 3 of 7 tries. Spawn costs ~1 s of imports per worker.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(chunks))) as pool:
            for n in pool.imap_unordered(_draw_chunk, jobs):
                done += n
                if progress:
                    progress(done, total, "drawing faces")

    _write_quality_defects(out, plants, plan, seed)
    _write_quality_truth(out / QUALITY_TRUTH_NAME, plants)
    truth_path = out / "truth.csv"
    _write_truth(truth_path, images)
    counts = _noise_counts(plan)
    meta.update(complete=True, counts={
        "train_people": sum(p.split == "train" for p in plan),
        "eval_images": sum(p.split == "eval" for p in plan), "images": total,
    }, noise_counts=counts)
    (out / "demo.json").write_text(json.dumps(meta, indent=2) + "\n")
    return DemoInfo(root=out, truth_path=truth_path, meta_path=out / "demo.json",
                    train_people=meta["counts"]["train_people"], eval_images=meta["counts"]["eval_images"],
                    images=total, noise_counts=counts, seconds=time.perf_counter() - t0)


def _noise_counts(plan: list[_Person]) -> dict:
    return {
        "gender": sum(p.true_gender != p.given_gender for p in plan),
        "age": sum(p.true_age != p.given_age for p in plan),
        "mask": sum(p.swapped for p in plan),
    }


def _write_truth(path: Path, images: list[_Image]) -> None:
    import csv

    rows = sorted(images, key=lambda im: im.path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TRUTH_COLUMNS)
        for im in rows:
            p = im.person
            w.writerow([
                im.path, p.split, p.key, p.true_gender, p.given_gender, p.true_age, p.given_age,
                im.true_mask, im.given_mask, p.true_gender != p.given_gender, p.true_age != p.given_age,
                im.true_mask != im.given_mask,
            ])


def read_truth(path):
    """A demo's truth.csv (the file, or the demo folder holding it) -> DataFrame (columns
    TRUTH_COLUMNS; the *_corrupted flags as bool, also when they were written as text)."""
    import pandas as pd

    path = Path(path)
    df = pd.read_csv(path / "truth.csv" if path.is_dir() else path)
    for c in ("gender_corrupted", "age_corrupted", "mask_corrupted"):
        if c in df.columns:
            df[c] = df[c].astype(str).str.lower().isin(("true", "1"))
    return df


def contact_sheet(root, out_png, *, n: int = 36, columns: int = 6, seed: int = 0, thumb: int = 160):
    """A grid of `n` demo images with their TRUE labels (and 'given' ones where corrupted) under each.

    Samples evenly over mask states and splits so all three mask states and both sources show.
    Returns the PIL image and saves it to `out_png`.
    """
    from PIL import Image, ImageDraw

    from audit.labels import MASK_STATES

    truth = read_truth(root)
    rng = np.random.default_rng(seed)
    picks = []
    groups = [g for _, g in truth.groupby(["split", "true_mask"])]
    while len(picks) < n and any(len(g) for g in groups):
        for gi, g in enumerate(groups):
            if len(g) and len(picks) < n:
                j = int(rng.integers(len(g)))
                picks.append(g.iloc[j])
                groups[gi] = g.drop(g.index[j])
    th = int(thumb * 4 / 3)
    rows = (len(picks) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * thumb, rows * (th + 26)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(picks):
        x, y = (i % columns) * thumb, (i // columns) * (th + 26)
        with Image.open(Path(root) / r.path) as im:
            sheet.paste(im.convert("RGB").resize((thumb, th), Image.BILINEAR), (x, y))
        source = "100k/GAN" if "/100k-" in r.path or r.path.split("/")[-1].startswith("100k-") else "ffhq/photo"
        line1 = f"{MASK_STATES[r.true_mask]} {GENDERS[r.true_gender][0].upper()} {r.true_age} {r.split}"
        notes = []
        if r.gender_corrupted:
            notes.append(f"named {GENDERS[r.given_gender]}")
        if r.age_corrupted:
            notes.append(f"named {r.given_age}")
        if r.mask_corrupted:
            notes.append(f"named {MASK_STATES[r.given_mask]}")
        draw.text((x + 3, y + th + 1), line1, fill="black")
        draw.text((x + 3, y + th + 13), ", ".join(notes) or source, fill="red" if notes else "gray")
    sheet.save(out_png)
    return sheet


# -- planted data-quality defects (issue #15) -----------------------------------------------------
#
# Only a handful of files: eval images turned into copies of other pictures or into a train person's
# face under another mask (their names then carry that picture's or person's labels, so truth.csv
# stays right), train photos replaced by a copy of another
# slot of the same person (same labels), by a stranger's face, or darkened / blurred / blanked.
# Counts stay as they were (no file is added or removed), and every other file keeps its bytes.

QUALITY_TRUTH_NAME = "quality_truth.csv"
QUALITY_TRUTH_COLUMNS = ("kind", "path", "related", "how")
# Planted defect -> the finding kind(s) `audit.quality` must report for it.
PLANTED_KINDS = {
    "exact_copy": ("exact_duplicate",), "near_copy": ("near_duplicate",),
    "exact_leak": ("exact_duplicate", "split_leak"), "near_leak": ("split_leak",), "face_leak": ("split_leak",),
    "stranger": ("person_outlier",), "dark": ("dark",), "blur": ("blurry",), "blank": ("low_information",),
}


@dataclass(frozen=True)
class QualityDefects:
    """Rates of planted data-quality defects (counts are rounded, >= 1 when the rate is > 0).

    Defaults are small: on the default demo (300 people + 400 eval = 2,500 images) about 20 files."""

    exact_duplicate: float = 0.002  # of images: a byte copy of another picture (train: same person's slot; eval: another eval image)
    near_duplicate: float = 0.002  # of images: an eval picture cropped 2%, brightened 4%, re-encoded as another eval image
    # of eval images: in turn an exact copy of a train photo, a re-encoded one, and the same train
    # person's face with another mask (the source photo in eval: not a copy of any train file)
    split_leak: float = 0.01
    stranger: float = 0.01  # of train people: one wear photo replaced by a face of someone else
    dark: float = 0.001  # of images: pixels darkened to 8%
    blurry: float = 0.001  # of images: Gaussian blur, radius 9 px
    blank: float = 0.001  # of images: one flat colour (the picture's mean)

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"quality defect rate {name} must be within [0, 0.5], got {value}")


NO_QUALITY_DEFECTS = QualityDefects(**{k: 0.0 for k in asdict(QualityDefects())})


@dataclass(frozen=True)
class _Plant:
    """One planted defect: `how` (a key of PLANTED_KINDS) applied to `target` (data-relative),
    from `source` (the copied picture, for face_leak a photo of the person whose face it is;
    "" for stranger / dark / blur / blank)."""

    how: str
    target: str
    source: str = ""
    stranger_key: str = ""
    mask: int = 0  # face_leak: the mask state drawn on the target


def _eval_copy(target: _Person, source: _Person, mask_type: str) -> _Person:
    """`target`'s eval slot, turned into a copy of `source`'s picture: its own id, the source's labels."""
    return replace(source, pid=target.pid, split="eval", eval_mask_type=mask_type, swapped=False)


def _plan_quality_defects(plan: list[_Person], rates: QualityDefects, seed: int) -> tuple[list[_Person], list[_Plant]]:
    """Pick the files to spoil (own generator: the label-noise plan is unchanged). Eval entries that
    become copies are replaced in the returned plan; train names never change."""
    rng = _rng(seed, "quality")
    plan = list(plan)
    train = [i for i, p in enumerate(plan) if p.split == "train"]
    evals = [i for i, p in enumerate(plan) if p.split == "eval"]
    n_images = 7 * len(train) + len(evals)
    rng.shuffle(train)
    rng.shuffle(evals)
    used_people: set[int] = set()  # train people already touched (one defect per person)
    plants: list[_Plant] = []

    def free_person(pred=lambda p: True):
        for i in train:
            if i not in used_people and pred(plan[i]):
                used_people.add(i)
                return i
        return None

    def free_eval(pred=lambda p: True):
        for i in evals:
            if pred(plan[i]):
                evals.remove(i)
                return i
        return None

    def slot(person: _Person, stem: str) -> str:
        return f"images/train/{person.key}/{stem}.{person.ext}"

    for kind, how in (("exact_duplicate", "exact_copy"), ("near_duplicate", "near_copy")):
        for j in range(_noise_count(getattr(rates, kind), n_images)):
            # Exact copies alternate: train (one wear slot over another of the same person) and eval.
            # Near copies are eval only: a person's train photos are one source photo with masks
            # pasted on, alike by construction, so a near copy inside a folder is not a finding.
            if how == "exact_copy" and j % 2 == 0:
                i = free_person()
                if i is not None:
                    p = plan[i]
                    plants.append(_Plant(how, slot(p, "mask2"), slot(p, "mask1")))
                continue
            src = free_eval()
            dst = free_eval(lambda p, s=plan[src].source if src is not None else "": p.source == s)
            if src is None or dst is None:
                continue
            source = plan[src]
            plan[dst] = _eval_copy(plan[dst], source, source.eval_mask_type)
            plants.append(_Plant(how, _images_of(plan[dst])[0].path, _images_of(source)[0].path))
    for j in range(_noise_count(rates.split_leak, len(evals))):
        i = free_person(lambda p: any(plan[e].source == p.source for e in evals))
        if i is None:
            break
        person = plan[i]
        dst = free_eval(lambda p, s=person.source: p.source == s)
        how = ("exact_leak", "near_leak", "face_leak")[j % 3]
        # A copy shows a train photo's mask; the face leak wears an eval mask (worn or not fully:
        # unmasked it would be the person's normal photo byte for byte, an exact copy).
        mask_type = "mask"
        if how == "face_leak" and plan[dst].eval_mask_type == "incorrect_mask":
            mask_type = "incorrect_mask"
        plan[dst] = _eval_copy(plan[dst], person, mask_type)
        stem = f"mask{1 + int(rng.integers(5))}"
        plants.append(_Plant(how, _images_of(plan[dst])[0].path, slot(person, stem),
                             mask=EVAL_MASK_TYPE_CODES[mask_type]))
    for j in range(_noise_count(rates.stranger, len(train))):
        i = free_person()
        if i is None:
            break
        plants.append(_Plant("stranger", slot(plan[i], f"mask{1 + int(rng.integers(5))}"), stranger_key=f"stranger/{j}"))
    for how, rate in (("dark", rates.dark), ("blur", rates.blurry), ("blank", rates.blank)):
        for _ in range(_noise_count(rate, n_images)):
            if evals and rng.random() < len(evals) / max(1, n_images):
                plants.append(_Plant(how, _images_of(plan[free_eval()])[0].path))
                continue
            i = free_person()
            if i is not None:
                plants.append(_Plant(how, slot(plan[i], TRAIN_MASK_STEMS[int(rng.integers(len(TRAIN_MASK_STEMS)))])))
    return plan, plants


TRAIN_MASK_STEMS = tuple(TRAIN_MASK_TYPES)


def _save_like(picture, path: str, *, jpeg_quality: int = JPEG_QUALITY) -> None:
    if path.lower().endswith(".png"):
        picture.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        picture.save(path, format="JPEG", quality=jpeg_quality)


def _near_copy(picture):
    """The same picture, slightly cropped (2% a side), resized back, 4% brighter: a re-upload."""
    from PIL import ImageEnhance

    w, h = picture.size
    dx, dy = int(w * 0.02), int(h * 0.02)
    cropped = picture.crop((dx, dy, w - dx, h - dy)).resize((w, h))
    return ImageEnhance.Brightness(cropped).enhance(1.04)


def _write_quality_defects(root: Path, plants: list[_Plant], plan: list[_Person], seed: int) -> None:
    """Apply the planted defects to the drawn files (in plan order: sources are never targets)."""
    from PIL import Image, ImageFilter

    by_key = {p.key: p for p in plan if p.split == "train"}
    for plant in plants:
        dst = root / plant.target
        if plant.how in ("exact_copy", "exact_leak"):
            shutil.copyfile(root / plant.source, dst)
            continue
        if plant.how in ("near_copy", "near_leak"):
            with Image.open(root / plant.source) as im:
                _save_like(_near_copy(im.convert("RGB")), str(dst), jpeg_quality=80)
            continue
        if plant.how == "face_leak":
            # The train person's look (the same draw as their folder's photos) under an eval mask.
            look = person_look(seed, by_key[plant.source.split("/")[2]])
            shot = face_drawing.sample_shot(_rng(seed, "shot/" + plant.target), mask=plant.mask, split="eval")
            _save_like(face_drawing.draw_face(look, shot), str(dst))
            continue
        if plant.how == "stranger":
            owner = by_key[plant.target.split("/")[2]]
            rng = _rng(seed, plant.stranger_key)
            look = face_drawing.sample_look(
                rng, gender=int(rng.integers(2)), age=_sample_age(rng, TRAIN_AGE_BRACKETS),
                race=list(TRAIN_RACE_P)[int(rng.integers(len(TRAIN_RACE_P)))], source=owner.source)
            shot = face_drawing.sample_shot(_rng(seed, "shot/" + plant.target), mask=0, split="train")
            _save_like(face_drawing.draw_face(look, shot), str(dst))
            continue
        with Image.open(dst) as im:
            picture = im.convert("RGB")
        if plant.how == "dark":
            picture = picture.point(lambda v: int(v * 0.08))
        elif plant.how == "blur":
            picture = picture.filter(ImageFilter.GaussianBlur(9))
        else:  # blank
            mean = tuple(int(c) for c in np.asarray(picture).reshape(-1, 3).mean(axis=0))
            picture = Image.new("RGB", picture.size, mean)
        _save_like(picture, str(dst))


def _write_quality_truth(path: Path, plants: list[_Plant]) -> None:
    """quality_truth.csv: one row per (planted defect, finding kind it must raise): kind, path (the
    spoiled file), related (';'-joined: the picture it copies; for face_leak every photo of the
    person, any of which a finding may name), how (the planting)."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(QUALITY_TRUTH_COLUMNS)
        for plant in plants:
            related = plant.source
            if plant.how == "face_leak":
                folder, ext = plant.source.rsplit("/", 1)[0], plant.source.rsplit(".", 1)[1]
                related = ";".join(f"{folder}/{stem}.{ext}" for stem in TRAIN_MASK_STEMS)
            for kind in PLANTED_KINDS[plant.how]:
                w.writerow([kind, plant.target, related, plant.how])


def read_quality_truth(root):
    """A demo's quality_truth.csv (the file or the demo folder) -> DataFrame (QUALITY_TRUTH_COLUMNS;
    `related` as a list of paths). Empty frame when the demo planted nothing or predates planting."""
    import pandas as pd

    path = Path(root)
    path = path / QUALITY_TRUTH_NAME if path.is_dir() else path
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in QUALITY_TRUTH_COLUMNS})
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["related"] = [[p for p in r.split(";") if p] for r in df["related"]]
    return df
