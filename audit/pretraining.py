"""Domain pretraining: a backbone trained on many procedural identities with their TRUE labels.

The demo's stand-in for the ImageNet- or face-pretrained backbone a real user starts from. Drawn
faces come with known labels, so a model can learn to see gender and age cues from thousands of
identities that share nothing with the demo: no label noise, no overlap with any demo, test or
bench face.

Identities. Identity i is drawn from `audit.demo_data._rng(PRETRAIN_SEED, f"pretrain/{i}")`:
PRETRAIN_SEED = 1,000,000, while every demo, test and benchmark in this repository draws with
seeds below 1000, and the key namespace "pretrain/" is one `make_demo` never uses ("plan", "look/...",
"shot/..."), so the streams are disjoint twice over. Identities 0..identities-1 train; the next
`val_identities` are a held-out check (per-epoch metrics against the true labels).
Each identity gets `photos` photos of one look (`face_drawing.sample_look`): the first wears a
mask, the second is unmasked or wears it incorrectly (50/50), further ones any state. Gender is
50/50; the age bin (default bins) is uniform and the age uniform within it (12-24, 25-39, 40-68);
race and source follow the mix of the demo's train and eval figures; mask styles are train's or
all styles (eval's too), 50/50 - a pretrained backbone has seen more masks than the demo's train set.

Drawing is streamed in chunks of `CHUNK_IDENTITIES` identities (spawn pool or the main process),
each chunk saved as an .npz of model-size uint8 pixels under the work folder and reused by a
resumed or repeated run, so memory stays bounded while drawing and a killed run loses nothing.

Training: `MaskAuditNet` (the classifier's own heads: mask, gender, age bins, age regression) on the
true labels, batch augmentation in torch (flip, affine, brightness/contrast/saturation), AdamW with
warm-up + cosine. After every epoch the checkpoint (fp16, `out/model.pt` + card) and a resume
state (work folder) are written, and the held-out metrics are logged.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from audit.labels import DEFAULT_BINS

PRETRAIN_SEED = 1_000_000
CHUNK_IDENTITIES = 250
# (lo, hi) inclusive ages per default bin; the bin is drawn uniformly, so bins are balanced.
AGE_RANGES = ((12, 24), (25, 39), (40, 68))
PRETRAIN_FORMAT = "mask-audit-pretrain-draw/1"


@dataclass(frozen=True)
class PretrainConfig:
    """How to pretrain. Frozen; `to_dict()` goes into the model card."""

    identities: int = 16_000  # training identities
    val_identities: int = 800  # held-out identities (drawn after the training ones)
    photos: int = 2  # photos per identity
    arch: str = "test_resnet"  # timm architecture
    img_size: tuple[int, int] = (128, 96)  # (H, W) model input
    crop: float = 0.7  # central fraction of the image kept before resizing
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.02
    label_smoothing: float = 0.05
    age_reg_weight: float = 0.5  # the true ages are exact here: the regression is worth more
    drop_rate: float = 0.1
    seed: int = PRETRAIN_SEED  # the drawing seed (see the module docstring)
    train_seed: int = 0  # initialisation and batch order
    threads: int | None = None  # torch intra-op threads (None: torch's default)

    def __post_init__(self):
        if self.identities < 1 or self.val_identities < 0 or self.photos < 1:
            raise ValueError("identities and photos must be >= 1, val_identities >= 0")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.seed < 1000:
            raise ValueError(f"pretraining seed {self.seed} is in the range demos, tests and benchmarks "
                             "use (0..999): pick one >= 1000 so no identity is shared")
        object.__setattr__(self, "img_size", (int(self.img_size[0]), int(self.img_size[1])))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d


# ---------------------------------------------------------------- drawing


def _identity_labels(rng: np.random.Generator) -> dict:
    from audit.demo_data import EVAL_RACE_P, TRAIN_RACE_P

    gender = int(rng.random() < 0.5)
    lo, hi = AGE_RANGES[int(rng.integers(3))]
    age = int(rng.integers(lo, hi + 1))
    races = list(TRAIN_RACE_P)
    p = np.array([TRAIN_RACE_P[r] + EVAL_RACE_P[r] for r in races])
    race = races[int(rng.choice(len(races), p=p / p.sum()))]
    source = "GAN" if rng.random() < 0.5 else "photo"
    return {"gender": gender, "age": age, "race": race, "source": source}


def _photo_masks(rng: np.random.Generator, photos: int) -> list[int]:
    masks = [0, 1 if rng.random() < 0.5 else 2]
    masks += [int(rng.integers(3)) for _ in range(max(0, photos - 2))]
    return masks[:photos]


def identity_look(seed: int, i: int):
    """Identity i's TRUE labels and look -> (labels dict, face_drawing.Look, its rng positioned for the
    photos' draws). The one place the identity stream is read, so a redraw matches `draw_identities`."""
    from audit import face_drawing
    from audit.demo_data import _rng

    rng = _rng(seed, f"pretrain/{i}")
    who = _identity_labels(rng)
    look = face_drawing.sample_look(rng, gender=who["gender"], age=who["age"], race=who["race"],
                                    source=who["source"])
    return who, look, rng


def draw_identities(seed: int, start: int, stop: int, *, photos: int, size: tuple[int, int], crop: float,
                    interpolation: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
    """Draw identities start..stop-1 -> (pixels (N,H,W,3) uint8 as the model sees them before
    normalising, labels (N,5) int64: mask, gender, age_bin, age (years), identity index).

    GAN-like faces go through a JPEG q90 round trip and are decoded the way `load_rgb` decodes the
    demo's .jpg files; photo-like ones stay lossless (the demo writes them as PNG)."""
    from PIL import Image

    from audit import face_drawing
    from audit.demo_data import JPEG_QUALITY
    from audit.model import load_rgb

    n = (stop - start) * photos
    pixels = np.empty((n, size[0], size[1], 3), np.uint8)
    labels = np.empty((n, 5), np.int64)
    row = 0
    for i in range(start, stop):
        who, look, rng = identity_look(seed, i)
        for mask in _photo_masks(rng, photos):
            shot = face_drawing.sample_shot(rng, mask=mask, split="eval" if rng.random() < 0.5 else "train")
            picture = face_drawing.draw_face(look, shot)
            if who["source"] == "GAN":
                buf = io.BytesIO()
                picture.save(buf, format="JPEG", quality=JPEG_QUALITY)
                buf.seek(0)
                picture = Image.open(buf)
            pixels[row] = np.asarray(load_rgb(picture, size, interpolation, crop), np.uint8)
            labels[row] = (mask, who["gender"], int(DEFAULT_BINS.bin(who["age"])), who["age"], i)
            row += 1
    return pixels, labels


def _draw_chunk_file(job) -> str:
    seed, start, stop, photos, size, crop, interpolation, path = job
    pixels, labels = draw_identities(seed, start, stop, photos=photos, size=tuple(size), crop=crop,
                                     interpolation=interpolation)
    tmp = path + ".tmp.npz"
    np.savez(tmp, pixels=pixels, labels=labels)
    os.replace(tmp, path)
    return path


def draw_folder(work_dir: Path, config: PretrainConfig, interpolation: str) -> Path:
    """Where the drawn chunks of this (drawing version, seed, photos, size, crop, interpolation) live."""
    from audit.face_drawing import DRAWING_VERSION

    h, w = config.img_size
    return Path(work_dir) / (f"draw_v{DRAWING_VERSION}_s{config.seed}_p{config.photos}_{h}x{w}"
                             f"_c{config.crop:g}_{interpolation}")


def draw_dataset(work_dir: Path, config: PretrainConfig, *, start: int, stop: int, interpolation: str,
                 workers: int = 1, log: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray]:
    """Identities start..stop-1, drawn in chunks (reusing chunks already on disk) -> (pixels, labels)
    as `draw_identities` returns them. workers > 1 draws in a spawn pool."""
    folder = draw_folder(work_dir, config, interpolation)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for a in range(start, stop, CHUNK_IDENTITIES):
        b = min(stop, a + CHUNK_IDENTITIES)
        path = folder / f"ids_{a:07d}_{b:07d}.npz"
        jobs.append((config.seed, a, b, config.photos, list(config.img_size), config.crop, interpolation, str(path)))
    todo = [j for j in jobs if not Path(j[-1]).is_file()]
    t0 = time.perf_counter()
    if todo:
        log(f"drawing {sum(j[2] - j[1] for j in todo)} identities x {config.photos} photos "
            f"({len(jobs) - len(todo)} of {len(jobs)} chunks already drawn) into {folder}")
        if workers > 1 and len(todo) > 1:
            # spawn, never fork: the caller may hold threads (torch) and a fork would copy them half-made
            with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
                for k, _ in enumerate(pool.imap_unordered(_draw_chunk_file, todo), 1):
                    log(f"  drawn chunk {k}/{len(todo)} ({time.perf_counter() - t0:.0f} s)")
        else:
            for k, job in enumerate(todo, 1):
                _draw_chunk_file(job)
                log(f"  drawn chunk {k}/{len(todo)} ({time.perf_counter() - t0:.0f} s)")
    parts = [np.load(j[-1]) for j in jobs]
    n = sum(len(p["labels"]) for p in parts)
    pixels = np.empty((n, config.img_size[0], config.img_size[1], 3), np.uint8)
    labels = np.empty((n, 5), np.int64)
    row = 0
    for p in parts:
        k = len(p["labels"])
        pixels[row:row + k] = p["pixels"]
        labels[row:row + k] = p["labels"]
        row += k
    return pixels, labels


# ---------------------------------------------------------------- training


def augment_batch(x, generator):
    """Batch augmentation on normalised-free float images (B,3,H,W) in [0,1]: horizontal flip,
    rotation +-10 deg, translation +-8%, scale 0.85-1.1, brightness/contrast/saturation +-30%.
    In torch, in the main process: no loader workers to start or feed."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]

    def uniform(lo, hi):
        return torch.rand(b, generator=generator) * (hi - lo) + lo

    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.85, 1.1)
    tx, ty = uniform(-0.16, 0.16), uniform(-0.16, 0.16)  # affine_grid units: [-1, 1] spans the image
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    bright = uniform(0.7, 1.3).view(b, 1, 1, 1)
    contrast = uniform(0.7, 1.3).view(b, 1, 1, 1)
    sat = uniform(0.7, 1.3).view(b, 1, 1, 1)
    x = x * bright
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey) * sat + grey
    return x.clamp(0, 1)


def _to_input(pixels: np.ndarray, mean, std):
    import torch

    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    return x, torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


def evaluate(model, pixels: np.ndarray, labels: np.ndarray, card, batch_size: int = 256) -> dict:
    """Held-out metrics against the true labels (audit.training.head_metrics) + age correlation."""
    import torch

    from audit.training import head_metrics

    model.eval()
    parts = {"mask": [], "gender": [], "age": [], "age_reg": []}
    with torch.inference_mode():
        for a in range(0, len(pixels), batch_size):
            x, mean, std = _to_input(pixels[a:a + batch_size], card.mean, card.std)
            out = model(((x - mean) / std).contiguous(memory_format=torch.channels_last))
            for h in ("mask", "gender", "age"):
                parts[h].append(out[h].float().softmax(1).numpy())
            parts["age_reg"].append(out["age_reg"].float().numpy())
    probs = {h: np.concatenate(v) for h, v in parts.items()}
    m = head_metrics(labels[:, :4], probs)
    m["age_corr"] = round(float(np.corrcoef(probs["age_reg"], labels[:, 3])[0, 1]), 4)
    masked = labels[:, 0] == 0
    if masked.any():  # what a masked photo still shows (5 of a demo person's 7 photos are masked)
        m["gender_acc_masked"] = round(float((probs["gender"][masked].argmax(1) == labels[masked, 1]).mean()), 4)
        m["age_acc_masked"] = round(float((probs["age"][masked].argmax(1) == labels[masked, 2]).mean()), 4)
    return m


def pretrain(config: PretrainConfig, out: str | Path, *, work_dir: str | Path, workers: int = 1,
             how_to_reproduce: str = "", log: Callable[[str], None] = print, resume: bool = True):
    """Draw the identities, train, write `out/model.pt` (fp16) + `out/model.json` + `out/history.json`
    after every epoch. work_dir holds the drawn chunks and `resume.pt` (model, optimiser, epoch); with
    `resume` a run killed part-way continues from its last finished epoch. -> the final ModelCard."""
    import torch

    from audit.model import create_model, save_checkpoint
    from audit.prediction import describe_device
    from audit.training import training_code_fingerprint

    t_start = time.perf_counter()
    work_dir, out = Path(work_dir), Path(out)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.train_seed)
    model = create_model(config.arch, pretrained=False, img_size=config.img_size, crop=config.crop,
                         drop_rate=config.drop_rate)
    card0 = model.card
    log(f"pretraining {config.arch} at {config.img_size[0]}x{config.img_size[1]} (crop {config.crop:g}), "
        f"{config.identities} identities x {config.photos} photos, {config.epochs} epochs")
    x_train, y_train = draw_dataset(work_dir, config, start=0, stop=config.identities,
                                    interpolation=card0.interpolation, workers=workers, log=log)
    x_val, y_val = draw_dataset(work_dir, config, start=config.identities,
                                stop=config.identities + config.val_identities,
                                interpolation=card0.interpolation, workers=workers, log=log)
    log(f"drawn: {len(x_train)} train + {len(x_val)} held-out images in {time.perf_counter() - t_start:.0f} s")
    resume_path = work_dir / "resume.pt"
    out.mkdir(parents=True, exist_ok=True)
    versions = {**card0.versions, "training_code": training_code_fingerprint()}

    def save(model, history, state):
        v = history[-1].get("val", {})
        card = card0.replace(
            pretrained="none", data_fingerprint="",
            data_root=f"procedural identities 0..{config.identities - 1} ({describe_seeds()})",
            folds=0, epochs=len(history),
            metrics={"held_out_true_labels": v, "history": history, "complete": len(history) == config.epochs},
            train_config={"pretraining": config.to_dict()}, how_to_reproduce=how_to_reproduce,
            train_seconds=round(time.perf_counter() - t_start, 1),
            train_device=describe_device(torch.device("cpu")), versions=versions)
        model.card = card
        save_checkpoint(model, card, out)
        tmp = resume_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, resume_path)
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")

    start_state = None
    if resume and resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state.get("config") == config.to_dict():
            start_state = state
            log(f"resuming after epoch {state['epoch']} from {resume_path}")
        else:
            log(f"{resume_path} belongs to another configuration; starting afresh")
    fit_arrays(model, config, x_train, y_train, x_val, y_val, log=log, on_epoch=save, start_state=start_state)
    return model.card


def fit_arrays(model, config: PretrainConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, *, log: Callable[[str], None] = print, on_epoch=None, start_state=None,
               max_epochs: int | None = None) -> list[dict]:
    """Train `model` (a MaskAuditNet) on drawn arrays (pixels (N,H,W,3) uint8, labels (N,>=4): mask,
    gender, age_bin, age) -> per-epoch history with held-out metrics (`evaluate`) when x_val is
    non-empty. on_epoch(model, history, resume_state) after each epoch; start_state: a resume
    state to continue from; max_epochs: stop early without changing the schedule (measurements)."""
    import torch

    from audit.training import MultiHeadLoss, class_weights, warmup_cosine

    card0 = model.card
    model.to(memory_format=torch.channels_last)
    weights = {"mask": class_weights(y_train[:, 0], 3), "gender": class_weights(y_train[:, 1], 2),
               "age": class_weights(y_train[:, 2], 3)}
    criterion = MultiHeadLoss(weights, config.label_smoothing, config.age_reg_weight)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = max(1, len(x_train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.epochs * steps_per_epoch, warmup=0.05))
    history: list[dict] = []
    first_epoch = 0
    if start_state is not None:
        model.load_state_dict(start_state["model"])
        optimizer.load_state_dict(start_state["optimizer"])
        scheduler.load_state_dict(start_state["scheduler"])
        first_epoch, history = int(start_state["epoch"]), list(start_state["history"])
    mean = torch.tensor(card0.mean).view(1, 3, 1, 1)
    std = torch.tensor(card0.std).view(1, 3, 1, 1)
    y = torch.from_numpy(np.ascontiguousarray(y_train[:, :4]))
    last = config.epochs if max_epochs is None else min(config.epochs, first_epoch + max_epochs)
    for epoch in range(first_epoch, last):
        t_epoch = time.perf_counter()
        generator = torch.Generator().manual_seed(config.train_seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=generator).numpy()
        model.train()
        total, count = 0.0, 0
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * config.batch_size:(s + 1) * config.batch_size])
            x = torch.from_numpy(x_train[idx]).permute(0, 3, 1, 2).float().div_(255)
            x = ((augment_batch(x, generator) - mean) / std).contiguous(memory_format=torch.channels_last)
            t = y[idx]
            loss = criterion(model(x), t[:, 0], t[:, 1], t[:, 2], t[:, 3])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            count += len(idx)
            if (s + 1) % 100 == 0:
                log(f"  epoch {epoch + 1} step {s + 1}/{steps_per_epoch} loss {total / count:.3f} "
                    f"({count / (time.perf_counter() - t_epoch):.0f} img/s)")
        seconds = time.perf_counter() - t_epoch
        entry = {"epoch": epoch + 1, "loss": round(total / max(count, 1), 4), "seconds": round(seconds, 1),
                 "images_per_s": round(count / seconds, 1)}
        if len(x_val):
            entry["val"] = evaluate(model, x_val, y_val, card0)
        history.append(entry)
        v = entry.get("val", {})
        log(f"epoch {epoch + 1}/{config.epochs}: loss {entry['loss']:.3f}, {seconds:.0f} s; held-out "
            f"mask {v.get('mask_acc')}, gender {v.get('gender_acc')} (masked {v.get('gender_acc_masked')}), "
            f"age bins {v.get('age_acc')} (masked {v.get('age_acc_masked')}), age MAE {v.get('age_mae')} y, "
            f"age corr {v.get('age_corr')}")
        if on_epoch is not None:
            on_epoch(model, history, {"config": config.to_dict(), "model": model.state_dict(),
                                      "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                      "epoch": epoch + 1, "history": history})
    return history


def describe_seeds() -> str:
    """One line for the model card and README: which seeds the pretraining identities come from."""
    return (f"identities drawn from audit.demo_data._rng({PRETRAIN_SEED}, 'pretrain/<i>'); demos, tests and "
            "benchmarks use seeds below 1000 and never the 'pretrain/' key namespace")
