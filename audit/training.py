"""Person-grouped K-fold training with out-of-fold probabilities, then a final model on all the data.

Label-noise scores are only honest on predictions from a model that did not train on the image,
and a person's 7 photos share gender and age, so the folds split PEOPLE: `person_folds` gives every
train row the fold of its person, fold model f trains on the other folds and predicts fold f. The
final model (the checkpoint) trains on everything the folds covered and is what `audit.prediction`
uses for embeddings, single images and any image without an out-of-fold probability.

Eval images join the folds too (`TrainConfig.eval_in_folds`, on by default): they are labelled,
each is another identity (the real set has 12,600 eval images of as many people beside 2,700 train
people), and identities are what the gender and age heads learn from - a fold model that also saw
other eval images was measured 0.05-0.09 better on held-out gender (BENCHMARKS.md, "Eval images in
the folds"). Every labelled image then gets an out-of-fold probability, and the eval metrics are
out-of-fold ones. `--no-eval-in-folds` keeps eval out of all training, as a held-out test set.

`train_model(index, config, out)` writes `out/model.pt`, `out/model.json` (the model card) and
`out/oof.parquet` (one row per image with an out-of-fold probability: `path`, `person`, `fold`,
`p_mask_0..2`, `p_gender_0..1`, `p_age_0..2`, `pred_age`), which `audit.prediction.predict_run`
uses for those rows.

Speed on CPU: images are decoded once at the model's input size into one uint8 array (when it fits
the memory budget) and every fold and epoch augments from memory, instead of decoding each JPEG
(K + 1) x epochs times.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from audit.labels import DEFAULT_BINS, FIELD_INFO, N_AGE_BINS, AgeBins, class_id
from audit.demo_recipe import DEMO_ARCH, DEMO_IMG_SIZE
from audit.file_io import write_atomic
from audit.model import (
    AGE_SCALE,
    MaskAuditNet,
    ModelCard,
    create_eval_transform,
    create_model,
    create_train_transform,
    load_rgb,
    oof_path,
    resolve_checkpoint,
    save_checkpoint,
    validate_crop,
)
from audit.prediction import describe_device, forward_batch, resolve_device
from audit.runs import P_AGE, P_GENDER, P_MASK

Progress = Callable[[int, int, str], None]
OOF_COLUMNS = ("path", "person", "fold", *P_MASK, *P_GENDER, *P_AGE, "pred_age")
BALANCE_CHOICES = ("weights", "sampler", "none")
# Decoded images are kept in memory when they take at most this many bytes.
CACHE_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Frozen so it can key caches; `to_dict()` goes into the model card."""

    arch: str = DEMO_ARCH  # timm architecture name
    pretrained: bool = True  # start from ImageNet weights (downloaded by timm)
    pretrained_file: str | None = None  # or from this local state dict
    epochs: int = 12  # per model (each fold model and the final model)
    folds: int = 3  # K of the person-grouped K-fold; 0 = no out-of-fold predictions
    eval_in_folds: bool = True  # eval images join the K folds and the final model (module doc)
    img_size: tuple[int, int] | None = DEMO_IMG_SIZE  # (H, W); None = the architecture's default
    crop: float = 1.0  # central fraction of each image's height and width kept before resizing
    batch_size: int = 32  # small batches: more steps per epoch, which from-scratch training needs
    lr: float = 3e-3  # peak AdamW learning rate (warm-up + cosine schedule)
    weight_decay: float = 0.02
    seed: int = 0
    workers: int | None = None  # DataLoader processes; None = min(2, cores)
    bins: AgeBins = DEFAULT_BINS
    label_smoothing: float = 0.05
    balance: str = "weights"  # class imbalance: "weights" (per-head CE weights), "sampler", "none"
    age_reg_weight: float = 0.2  # weight of the SmoothL1 age-regression loss (ages / AGE_SCALE)
    drop_rate: float = 0.1  # dropout before the heads
    cache_images: bool | None = None  # decode once into memory; None = when it fits the budget
    device: str | None = None  # "cuda", "cpu" or None = CUDA when present; not part of the model card's config

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.folds == 1 or self.folds < 0:
            raise ValueError("folds must be 0 (no out-of-fold predictions) or >= 2")
        if self.balance not in BALANCE_CHOICES:
            raise ValueError(f"balance must be one of {BALANCE_CHOICES}, got {self.balance!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.img_size is not None:
            object.__setattr__(self, "img_size", (int(self.img_size[0]), int(self.img_size[1])))
        object.__setattr__(self, "crop", validate_crop(self.crop))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("device")  # where it trained does not change what the model is (the card records it apart)
        d["bins"] = self.bins.to_dict()
        d["img_size"] = list(self.img_size) if self.img_size is not None else None
        return d

    def num_workers(self, device: torch.device | None = None) -> int:
        if self.workers is not None:
            return self.workers
        # On CPU the loaders share the cores with the model; a GPU needs every core to keep it fed.
        cap = 8 if device is not None and device.type == "cuda" else 2
        return min(cap, os.cpu_count() or 1)


@dataclass
class TrainResult:
    checkpoint: Path  # model.pt of the final model
    card: ModelCard
    oof: pd.DataFrame | None  # OOF_COLUMNS, one row per train image (None when folds == 0)
    metrics: dict  # {"oof": {...}, "eval": {...}, "folds": [...]}
    seconds: float
    # fold -> the data-relative paths that fold's model trained on (for leak checks)
    fold_train_paths: dict[int, frozenset] = field(default_factory=dict)


# ---------------------------------------------------------------- folds


def person_folds(images: pd.DataFrame, k: int, seed: int = 0, *, include_eval: bool = False) -> np.ndarray:
    """Fold id (0..k-1) per row of an index's images, grouped by `person`; -1 for eval rows unless
    `include_eval`.

    People are stratified by gender x age bin (StratifiedGroupKFold) so each fold's validation
    set looks like the whole. Train people and eval images are folded apart, so each fold gets its
    share of both and the train folds do not depend on `include_eval`; eval rows stay -1 when
    there are fewer eval people than folds. Raises ValueError when there are fewer train people
    than folds.
    """
    folds = np.full(len(images), -1, dtype=np.int64)
    split = images["split"].to_numpy()
    train = split == "train"
    n_people = len(np.unique(images.loc[train, "person"].to_numpy()))
    if n_people < k:
        raise ValueError(f"{k} folds need at least {k} train people, the data has {n_people}")
    _fold_people(images, train, k, seed, folds)
    if include_eval:
        ev = split == "eval"
        if len(np.unique(images.loc[ev, "person"].to_numpy())) >= k:
            _fold_people(images, ev, k, seed, folds)
    return folds


def _fold_people(images: pd.DataFrame, selected: np.ndarray, k: int, seed: int, folds: np.ndarray) -> None:
    """Write the stratified, person-grouped fold of every `selected` row into `folds`."""
    from sklearn.model_selection import StratifiedGroupKFold

    rows = images[selected]
    strata = rows["gender"].to_numpy() * N_AGE_BINS + rows["age_bin"].to_numpy()
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    pos = np.flatnonzero(selected)
    groups = rows["person"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members than n_splits"
        try:
            splits = list(splitter.split(np.zeros(len(rows)), strata, groups=groups))
        except ValueError:  # every stratum smaller than k (a small eval split): group folds, unstratified
            splits = list(splitter.split(np.zeros(len(rows)), np.zeros(len(rows)), groups=groups))
    for fold, (_, val) in enumerate(splits):
        folds[pos[val]] = fold


# ---------------------------------------------------------------- data


class _Images(Dataset):
    """Rows -> (image tensor (3,H,W), mask, gender, age_bin, age (years), position).

    Pixels come from `cache` ((N,H,W,3) uint8, row-aligned) when given, else from the files.
    """

    def __init__(self, root: Path, paths: Sequence[str], labels: np.ndarray, transform,
                 cache: np.ndarray | None = None, positions: np.ndarray | None = None):
        self.root = Path(root)
        self.paths = list(paths)
        self.labels = labels  # (N, 4) int64: mask, gender, age_bin, age
        self.transform = transform
        self.cache = cache
        # positions into `cache` (the cache holds every image of the index's selection)
        self.positions = positions if positions is not None else np.arange(len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        if self.cache is not None:  # already cropped and resized by load_rgb
            x = self.transform.from_prepared(Image.fromarray(self.cache[self.positions[i]]))
        else:
            x = self.transform(Image.open(self.root / self.paths[i]))
        m, g, a, age = self.labels[i]
        return x, int(m), int(g), int(a), float(age), i


class _Decode(Dataset):
    """Files -> uint8 (H,W,3) at the card's input size (for the in-memory cache)."""

    def __init__(self, root: Path, paths: Sequence[str], size: tuple[int, int], interpolation: str,
                 crop: float = 1.0):
        self.root = Path(root)
        self.paths = list(paths)
        self.size = size
        self.interpolation = interpolation
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.root / self.paths[i]) as img:
            img = load_rgb(img, self.size, self.interpolation, self.crop)  # the same pixels the transforms would see
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def decode_images(root: Path, paths: Sequence[str], size: tuple[int, int], interpolation: str = "bicubic",
                  *, crop: float = 1.0, workers: int = 0, progress: Progress | None = None) -> np.ndarray:
    """Decode, crop and resize every file once: -> (N, H, W, 3) uint8."""
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)
    loader = DataLoader(_Decode(root, paths, size, interpolation, crop), batch_size=64, num_workers=workers,
                        shuffle=False)
    done = 0
    for batch in loader:
        out[done:done + len(batch)] = batch.numpy()
        done += len(batch)
        if progress is not None:
            progress(done, len(paths), "decoding images")
    return out


def _labels(rows: pd.DataFrame) -> np.ndarray:
    """(N, 4) int64: the fields' given codes in FIELD_INFO's order (mask, gender, age bin), then age in years."""
    columns = [f.label_column for f in FIELD_INFO.values()] + ["age"]
    return np.stack([rows[c].to_numpy() for c in columns], axis=1).astype(np.int64)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; numpy/random follow it for any
    # transform that uses them.
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------- loss


def class_weights(codes: np.ndarray, n: int) -> torch.Tensor:
    """Inverse-frequency weights (n,), mean 1 over present classes; absent classes get 1."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=n).astype(np.float64)
    present = counts > 0
    w = np.ones(n)
    w[present] = counts.sum() / (n * counts[present])
    w[present] /= w[present].mean()
    return torch.tensor(w, dtype=torch.float32)


class MultiHeadLoss(nn.Module):
    """Sum of the three heads' cross-entropies + age_reg_weight x SmoothL1 on ages / AGE_SCALE."""

    def __init__(self, weights: dict[str, torch.Tensor] | None, label_smoothing: float, age_reg_weight: float):
        super().__init__()
        weights = weights or {}
        self.ce = nn.ModuleDict({
            head: nn.CrossEntropyLoss(weight=weights.get(head), label_smoothing=label_smoothing)
            for head in FIELD_INFO
        })
        self.age_reg_weight = age_reg_weight

    def forward(self, out: dict, mask, gender, age_bin, age) -> torch.Tensor:
        loss = self.ce["mask"](out["mask"], mask) + self.ce["gender"](out["gender"], gender) \
            + self.ce["age"](out["age"], age_bin)
        if self.age_reg_weight > 0:
            loss = loss + self.age_reg_weight * nn.functional.smooth_l1_loss(
                out["age_reg"] / AGE_SCALE, age.float() / AGE_SCALE)
        return loss


def warmup_cosine(total_steps: int, warmup: float = 0.15, floor: float = 0.02) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up over `warmup` of the steps, then cosine down to `floor`."""
    n_warm = max(1, int(round(total_steps * warmup)))

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        t = min(1.0, (step - n_warm) / max(1, total_steps - n_warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


# ---------------------------------------------------------------- metrics


def head_metrics(labels: np.ndarray, probs: dict[str, np.ndarray]) -> dict:
    """labels (N,4) mask, gender, age_bin, age; probs per head (N,3),(N,2),(N,3) (+ "age_reg" (N,)).

    -> {"n", "macro_f1" (18-class, sklearn average='macro'), "accuracy" (18-class),
    "mask_acc", "gender_acc", "age_acc", "age_mae" (years)}.
    """
    from sklearn.metrics import f1_score

    if len(labels) == 0:
        return {"n": 0}
    pm, pg, pa = (probs[h].argmax(1) for h in FIELD_INFO)
    true_cls = class_id(labels[:, 0], labels[:, 1], labels[:, 2])
    pred_cls = class_id(pm, pg, pa)
    out = {
        "n": int(len(labels)),
        "macro_f1": round(float(f1_score(true_cls, pred_cls, average="macro")), 4),
        "accuracy": round(float((true_cls == pred_cls).mean()), 4),
        "mask_acc": round(float((pm == labels[:, 0]).mean()), 4),
        "gender_acc": round(float((pg == labels[:, 1]).mean()), 4),
        "age_acc": round(float((pa == labels[:, 2]).mean()), 4),
    }
    if "age_reg" in probs:
        out["age_mae"] = round(float(np.abs(probs["age_reg"] - labels[:, 3]).mean()), 2)
    return out


# ---------------------------------------------------------------- one model


def _autocast(device: torch.device):
    """bfloat16 autocast on CUDA (no loss scaling needed), nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_dataset(model: MaskAuditNet, dataset: Dataset, *, batch_size: int, workers: int,
                    device: torch.device | None = None) -> dict[str, np.ndarray]:
    """-> {"mask": (N,3), "gender": (N,2), "age": (N,3) probabilities, "age_reg": (N,) years}.

    The forward pass is `audit.prediction`'s, so validation sees what a run will."""
    device = device or torch.device("cpu")
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size * 2, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    parts = {**{head: [] for head in FIELD_INFO}, "age_reg": []}
    for x, *_ in loader:
        out = forward_batch(model, x, device)
        for head in parts:
            parts[head].append(out[head])
    empty = {**{f.name: (0, f.n_codes) for f in FIELD_INFO.values()}, "age_reg": (0,)}
    return {h: np.concatenate(v) if v else np.zeros(empty[h], np.float32) for h, v in parts.items()}


def _fit(model: MaskAuditNet, train_set: _Images, config: TrainConfig, *, seed: int, label: str,
         val_set: _Images | None = None, progress: Progress | None = None, step0: int = 0,
         total_steps: int = 0, device: torch.device | None = None) -> list[dict]:
    """Train `model` in place (moved to `device`) for config.epochs; -> per-epoch history (loss, validation metrics)."""
    from tqdm.auto import tqdm

    device = device or torch.device("cpu")
    # NHWC: oneDNN's CPU convolutions and CUDA's tensor cores are faster on it (7% per CPU step, measured).
    model.to(device, memory_format=torch.channels_last)
    workers = config.num_workers(device)
    generator = torch.Generator().manual_seed(seed)
    labels = train_set.labels
    sampler = None
    weights = None
    if config.balance == "weights":
        # labels' columns are the fields in FIELD_INFO's order
        weights = {f.name: class_weights(labels[:, j], f.n_codes) for j, f in enumerate(FIELD_INFO.values())}
    elif config.balance == "sampler":
        # Draw images with probability inverse to their 18-class frequency.
        cls = class_id(labels[:, 0], labels[:, 1], labels[:, 2])
        freq = np.bincount(cls, minlength=18)[cls].astype(np.float64)
        sampler = torch.utils.data.WeightedRandomSampler(torch.tensor(1.0 / freq), num_samples=len(cls),
                                                         replacement=True, generator=generator)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=workers, generator=generator, worker_init_fn=_seed_worker,
                        drop_last=len(train_set) > config.batch_size, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    criterion = MultiHeadLoss(weights, config.label_smoothing, config.age_reg_weight).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps = max(1, config.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps))
    history = []
    step = step0
    for epoch in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"{label} epoch {epoch + 1}/{config.epochs}", file=sys.stderr, leave=False,
                   dynamic_ncols=True, mininterval=1.0)
        for x, *targets, _ in bar:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            mask, gender, age_bin, age = (t.to(device, non_blocking=True) for t in targets)
            with _autocast(device):
                out = model(x)
            loss = criterion({k: v.float() for k, v in out.items()}, mask, gender, age_bin, age)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(x)
            count += len(x)
            step += 1
            bar.set_postfix(loss=f"{total / count:.3f}", refresh=False)
            if progress is not None:
                progress(step, total_steps, f"{label}: epoch {epoch + 1}/{config.epochs}")
        entry = {"epoch": epoch + 1, "loss": round(total / max(count, 1), 4)}
        if val_set is not None and len(val_set):
            entry["val"] = head_metrics(val_set.labels, predict_dataset(model, val_set, batch_size=config.batch_size,
                                                                        workers=workers, device=device))
            bar.set_postfix(loss=f"{entry['loss']:.3f}", val_f1=f"{entry['val']['macro_f1']:.3f}")
        bar.close()
        val_text = f" val macro F1 {entry['val']['macro_f1']:.3f} (mask {entry['val']['mask_acc']:.3f}, " \
                   f"gender {entry['val']['gender_acc']:.3f}, age {entry['val']['age_acc']:.3f})" if "val" in entry else ""
        print(f"{label} epoch {epoch + 1}/{config.epochs}: loss {entry['loss']:.3f}{val_text}", file=sys.stderr)
        history.append(entry)
    return history


# ---------------------------------------------------------------- the whole thing


def default_command(config: TrainConfig, data: str | Path = "DATA", out: str | Path | None = None) -> str:
    """The `python -m audit train` command line that reproduces `config`."""
    parts = ["python", "-m", "audit", "train", str(data), "--arch", config.arch,
             "--epochs", str(config.epochs), "--folds", str(config.folds)]
    if not config.eval_in_folds:
        parts.append("--no-eval-in-folds")
    if config.img_size is not None:
        parts += ["--img-size", str(config.img_size[0]), str(config.img_size[1])]
    if config.crop != 1.0:
        parts += ["--crop", str(config.crop)]
    parts += ["--batch-size", str(config.batch_size), "--lr", str(config.lr), "--seed", str(config.seed)]
    if config.bins != DEFAULT_BINS:
        parts += ["--bins", config.bins.name if config.bins.name in ("default", "competition")
                  else f"{config.bins.lo},{config.bins.hi}"]
    if config.pretrained_file:
        parts += ["--pretrained-file", str(config.pretrained_file)]
    elif not config.pretrained:
        parts.append("--no-pretrained")
    if config.balance != "weights":
        parts += ["--balance", config.balance]
    if out is not None:
        parts += ["--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def _build(config: TrainConfig) -> MaskAuditNet:
    return create_model(config.arch, pretrained=config.pretrained, pretrained_file=config.pretrained_file,
                        bins=config.bins, img_size=config.img_size, drop_rate=config.drop_rate, crop=config.crop)


def train_model(index, config: TrainConfig, out_path: str | Path, *, progress: Progress | None = None,
                how_to_reproduce: str | None = None) -> TrainResult:
    """Train K person-grouped fold models (keeping their out-of-fold probabilities) and a final model
    on every image the folds covered (train, plus eval with `config.eval_in_folds`) of `index` (a
    DatasetIndex). Eval metrics come from the out-of-fold eval probabilities, or from the final
    model on eval images it never saw (metrics["eval_source"] says which).

    out_path: a folder (-> folder/model.pt) or a .pt path. Writes the checkpoint, its card (.json)
    and oof.parquet beside it. progress(done, total, message) is called per optimisation step.
    """
    t_start = time.perf_counter()
    device = resolve_device(config.device)  # before any work: a missing GPU is the first thing to say
    if tuple(index.bins.edges) != tuple(config.bins.edges):
        raise ValueError(f"the index uses age bins {index.bins.describe()} but training asks for "
                         f"{config.bins.describe()}: index the data with the same bins")
    images = index.images
    # Train rows first, then eval: the decode cache, labels and fold ids share these positions.
    rows = pd.concat([images[images["split"] == "train"], images[images["split"] == "eval"]], ignore_index=True)
    is_train = (rows["split"] == "train").to_numpy()
    n_train = int(is_train.sum())
    if not n_train:
        raise ValueError(f"no train images in {index.root}")
    checkpoint = resolve_checkpoint(out_path)
    workers = config.num_workers(device)

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    threads = torch.get_num_threads()
    # Intra-op threads spin-wait for each other: on a CPU shared with the loader processes (or
    # anything else) one descheduled thread stalls the rest, measured 12x slower with 2 threads on a
    # busy 2-core box. Leave the loader workers their cores.
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
    try:
        torch.manual_seed(config.seed)
        probe = _build(config)  # fails early (unknown arch, missing weights) before any decoding
        card0 = probe.card
        size = card0.image_size
        train_tf, eval_tf = create_train_transform(card0), create_eval_transform(card0)

        all_paths = rows["path"].tolist()
        use_cache = config.cache_images
        if use_cache is None:
            use_cache = len(all_paths) * size[0] * size[1] * 3 <= CACHE_BUDGET_BYTES
        cache = None
        if use_cache:
            cache = decode_images(index.root, all_paths, size, card0.interpolation, crop=card0.crop, workers=workers)
        labels = _labels(rows)

        def subset(idx: np.ndarray, tf) -> _Images:
            return _Images(index.root, rows["path"].to_numpy()[idx], labels[idx], tf, cache=cache, positions=idx)

        folds = (person_folds(rows, config.folds, config.seed, include_eval=config.eval_in_folds)
                 if config.folds else np.full(len(rows), -1, dtype=np.int64))
        # The folds' images (train, plus eval when it joined the folds) are what the final model
        # trains on; eval images outside the folds are a held-out test for it.
        covered = is_train | (folds >= 0)
        held_out = np.flatnonzero(~covered)
        n_models = (config.folds or 0) + 1
        steps_per_epoch = [math.ceil(np.sum(covered & (folds != f)) / config.batch_size) for f in range(config.folds or 0)]
        steps_per_epoch.append(math.ceil(covered.sum() / config.batch_size))
        total_steps = config.epochs * int(sum(steps_per_epoch))
        step = 0

        metrics: dict = {"folds": []}
        fold_train_paths: dict[int, frozenset] = {}
        oof = None
        if config.folds:
            n = len(rows)
            oof_probs = {**{f.name: np.zeros((n, f.n_codes), np.float32) for f in FIELD_INFO.values()},
                         "age_reg": np.zeros(n, np.float32)}
            for f in range(config.folds):
                tr, va = np.flatnonzero(covered & (folds != f)), np.flatnonzero(folds == f)
                torch.manual_seed(config.seed * 1000 + f)
                model = _build(config)
                train_set = subset(tr, train_tf)
                fold_train_paths[f] = frozenset(train_set.paths)
                history = _fit(model, train_set, config, seed=config.seed * 1000 + f,
                               label=f"fold {f + 1}/{config.folds}", val_set=subset(va, eval_tf),
                               progress=progress, step0=step, total_steps=total_steps, device=device)
                step += config.epochs * steps_per_epoch[f]
                probs = predict_dataset(model, subset(va, eval_tf), batch_size=config.batch_size, workers=workers,
                                        device=device)
                for head in oof_probs:
                    oof_probs[head][va] = probs[head]
                metrics["folds"].append({"fold": f, "train_images": int(len(tr)), "val_images": int(len(va)),
                                         "val": head_metrics(labels[va], probs), "history": history})
            metrics["oof"] = head_metrics(labels[is_train], {h: v[is_train] for h, v in oof_probs.items()})
            in_oof = folds >= 0
            oof_eval = in_oof & ~is_train
            if oof_eval.any():
                metrics["eval"] = head_metrics(labels[oof_eval], {h: v[oof_eval] for h, v in oof_probs.items()})
                metrics["eval_source"] = "out-of-fold"
            oof = pd.DataFrame({"path": rows["path"].to_numpy()[in_oof], "person": rows["person"].to_numpy()[in_oof],
                                "fold": folds[in_oof].astype(np.int64)})
            for field in FIELD_INFO.values():
                for j, col in enumerate(field.prob_columns):
                    oof[col] = oof_probs[field.name][in_oof, j]
            oof["pred_age"] = oof_probs["age_reg"][in_oof]

        torch.manual_seed(config.seed * 1000 + 999)
        model = _build(config)
        history = _fit(model, subset(np.flatnonzero(covered), train_tf), config, seed=config.seed * 1000 + 999,
                       label="final" if n_models > 1 else "train", progress=progress, step0=step,
                       total_steps=total_steps, device=device)
        metrics["final"] = {"history": history}
        if len(held_out):
            metrics["eval"] = head_metrics(labels[held_out], predict_dataset(
                model, subset(held_out, eval_tf), batch_size=config.batch_size, workers=workers, device=device))
            metrics["eval_source"] = "final model, held out"
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)

    seconds = time.perf_counter() - t_start
    card = card0.replace(
        data_fingerprint=index.fingerprint,
        data_root=str(index.root),
        folds=int(config.folds),
        epochs=int(config.epochs),
        metrics=_card_metrics(metrics),
        train_config=config.to_dict(),
        how_to_reproduce=how_to_reproduce or default_command(config, index.root, checkpoint.parent),
        train_seconds=round(seconds, 1),
        train_device=describe_device(device),
        versions={**card0.versions, "training_code": training_code_fingerprint()},
        created=card0.created,
    )
    model.to("cpu")
    model.card = card
    checkpoint = save_checkpoint(model, card, checkpoint)
    oof_file = oof_path(checkpoint)
    if oof is not None:
        write_atomic(oof_file, lambda fh: oof.to_parquet(fh, index=False))
    elif oof_file.exists():
        oof_file.unlink()  # a stale file from an earlier training would pass for this model's
    return TrainResult(checkpoint=checkpoint, card=card, oof=oof, metrics=metrics, seconds=seconds,
                       fold_train_paths=fold_train_paths)


def _card_metrics(metrics: dict) -> dict:
    """The card keeps summaries: OOF and eval metrics, each fold's validation, final training loss."""
    out = {}
    if "oof" in metrics:
        out["oof"] = metrics["oof"]
    if "eval" in metrics:
        out["eval"] = metrics["eval"]
        out["eval_source"] = metrics["eval_source"]
    if metrics.get("folds"):
        out["folds"] = [{k: v for k, v in f.items() if k != "history"} for f in metrics["folds"]]
    hist = metrics.get("final", {}).get("history") or []
    if hist:
        out["final_train_loss"] = hist[-1]["loss"]
    return out


def training_code_fingerprint() -> str:
    """16 hex digits of sha256 over the code that decides what training produces (this module and
    audit/model.py: losses, schedule, augmentation, preprocessing). Recorded in the model card's
    `versions`; a checkpoint cached by `python -m audit demo` is reused only while it matches, so an
    edited augmentation retrains instead of silently reusing a model made by the old code."""
    digest = hashlib.sha256()
    for name in ("training.py", "model.py"):
        digest.update((Path(__file__).resolve().parent / name).read_bytes())
    return digest.hexdigest()[:16]


def train(index, out_dir: str | Path, *, progress: Progress | None = None, how_to_reproduce: str | None = None,
          **config) -> Path:
    """Shorthand: train_model(index, TrainConfig(**config), out_dir) -> the checkpoint path."""
    if "bins" not in config:
        config["bins"] = index.bins
    return train_model(index, TrainConfig(**config), out_dir, progress=progress,
                       how_to_reproduce=how_to_reproduce).checkpoint
