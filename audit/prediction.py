"""Batched inference of a checkpoint over every indexed image -> a run folder (audit/runs.py).

`predict_run(index, checkpoint, run_dir)` predicts train and eval images with the final model and
keeps its pooled embeddings for every image. Train rows (and eval rows, when they joined the
training folds) take their probabilities and fold from the out-of-fold file beside the checkpoint
(`oof.parquet`, written by audit/training.py) when it belongs to the same data: label-noise scores
are only honest on predictions from a model that did not see the image. Otherwise train rows get
the final model's probabilities with fold -1 and `meta["oof"]` says why.

Device: CUDA (fp16 autocast, pinned host memory) when present, else CPU with all cores: decoder
processes on every core and the model on the cores they leave (`default_threads`). Images
are decoded in DataLoader worker processes; JPEGs much larger than the input are decoded at a
reduced scale (`Image.draft`, in `audit.model.ImageTransform`).

Unreadable images (broken, truncated, not an image) do not stop a run: they are left out of
predictions.parquet and listed in `meta["skipped"]` as {"path", "error"}. A row with NaN
probabilities would break every consumer (metrics, cleanlab, layouts), and the index already
reports such files as findings when asked to check images.

A run folder already holding predictions of the same checkpoint (sha256), the same data
(fingerprint, row list, age bins) and the same out-of-fold file is reused, not recomputed.
`predict_images(model, card, images)` runs the same preprocessing and forward pass on PIL images
(Grad-CAM, uploads). Prediction is a pure map over image shards (`predict_paths`), so it can be
run under a distributed launcher when the data outgrow one machine.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from audit.devices import describe_device, resolve_device  # noqa: F401  (re-exported)
from audit.file_io import file_sha256
from audit.model import (
    ModelCard,
    checkpoint_sha256,
    create_eval_transform,
    library_versions,
    load_checkpoint,
    oof_path,
    read_card,
    resolve_checkpoint,
)
from audit.runs import (
    EMBEDDINGS_NAME,
    INDEX_COLUMNS,
    META_NAME,
    PREDICTIONS_NAME,
    P_AGE,
    P_GENDER,
    P_MASK,
    RUN_FORMAT,
    finish_predictions,
    write_run,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
# Workers each keep this many batches decoded ahead of the model.
PREFETCH_BATCHES = 4


class _ImageFiles(torch.utils.data.Dataset):
    """Data-relative paths -> (tensor (3,H,W), position, ok, error). A file that cannot be decoded
    gives a zero tensor with ok=False and the error text, so one bad file never stops a batch."""

    def __init__(self, root: Path, paths: Sequence[str], card: ModelCard):
        self.root = Path(root)
        self.paths = list(paths)
        self.transform = create_eval_transform(card)
        self.shape = (3, *card.image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        from audit.thumbnails import ImageUnavailable, data_image_path

        try:
            # Checked first: a FIFO swapped in after indexing would block this worker in Image.open;
            # a deleted, replaced or escaping path is one line that says to re-index.
            path = data_image_path(self.root, self.paths[i])
        except ImageUnavailable as err:
            return torch.zeros(self.shape), i, False, str(err)
        try:
            with Image.open(path) as img:  # lazily: the transform decodes JPEGs at a reduced scale
                x = self.transform(img)
            return x, i, True, ""
        except Exception as err:  # any decoding failure: PIL raises OSError, ValueError, SyntaxError...
            return torch.zeros(self.shape), i, False, f"{type(err).__name__}: {err}"


def default_workers() -> int:
    """Decoding processes: all cores."""
    return max(1, os.cpu_count() or 1)


def default_threads(workers: int) -> int:
    """Intra-op threads for CPU inference: the cores the decoders leave free, at least one.

    More threads than free cores is much slower, not a little: an OpenMP thread that waits for a
    descheduled sibling at every layer's barrier stalls the whole pass (measured 7-10x slower with
    2 threads than 1 on a busy 2-core box; see BENCHMARKS.md).
    """
    cores = max(1, os.cpu_count() or 1)
    return max(1, cores - workers) if workers > 0 else cores


@contextmanager
def _cpu_threads(device: torch.device, threads: int):
    """Set torch's intra-op threads for CPU inference; restore the process-wide setting afterwards."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def forward_batch(model, x: torch.Tensor, device: torch.device) -> dict[str, np.ndarray]:
    """One batch (B,3,H,W) -> probabilities per head, age (years) and embeddings, as numpy."""
    # NHWC: faster convolutions with oneDNN on CPU and with tensor cores on CUDA.
    x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    with torch.inference_mode(), amp:
        out, emb = model.forward_with_embedding(x)
    return {
        "mask": torch.softmax(out["mask"].float(), dim=1).cpu().numpy(),
        "gender": torch.softmax(out["gender"].float(), dim=1).cpu().numpy(),
        "age": torch.softmax(out["age"].float(), dim=1).cpu().numpy(),
        "age_reg": out["age_reg"].float().reshape(-1).cpu().numpy() if "age_reg" in out else None,
        "embedding": emb.float().cpu().numpy(),
    }


def _prepare(model, device: torch.device):
    model.eval()
    return model.to(device, memory_format=torch.channels_last)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def predict_images(model, card: ModelCard, images) -> dict[str, np.ndarray]:
    """PIL images -> {"mask": (N,3), "gender": (N,2), "age": (N,3), "class": (N,18) probabilities,
    "age_reg": (N,) years or NaN, "embedding": (N,D)}, on the model's device, with the same
    preprocessing as `predict_run`. (JPEGs not yet loaded are decoded at reduced scale, as in a run.)"""
    from audit.labels import class_probs_from_heads

    transform = create_eval_transform(card)
    device = _model_device(model)
    model.eval()
    x = torch.stack([transform(img) for img in images])
    out = forward_batch(model, x, device)
    out["class"] = class_probs_from_heads(out["mask"], out["gender"], out["age"]).astype(np.float32)
    if out["age_reg"] is None or not card.has_age_regression:
        out["age_reg"] = np.full(len(x), np.nan, dtype=np.float32)
    return out


def predict_paths(model, card: ModelCard, root: str | Path, paths: Sequence[str], *, batch_size: int = 64,
                  device: torch.device | None = None, workers: int | None = None,
                  progress: Progress | None = None) -> dict:
    """Predict a shard of data-relative image paths with a loaded model.

    Returns {"mask" (N,3), "gender" (N,2), "age" (N,3) probabilities, "age_reg" (N,) years
    (NaN without a regression head), "embedding" (N,D) float16, "ok" (N,) bool,
    "errors" {position: text}}, rows in the order of `paths`; rows with ok=False are zeros.
    """
    device = device or _model_device(model)
    workers = default_workers() if workers is None else max(0, int(workers))
    n = len(paths)
    loader = torch.utils.data.DataLoader(
        _ImageFiles(Path(root), paths, card),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
        persistent_workers=False,
    )
    result = {
        "mask": np.zeros((n, 3), np.float32),
        "gender": np.zeros((n, 2), np.float32),
        "age": np.zeros((n, 3), np.float32),
        "age_reg": np.full(n, np.nan, np.float32),
        "embedding": None,
        "ok": np.zeros(n, bool),
        "errors": {},
    }
    done = 0
    if progress is not None:
        progress(0, n, "predicting")
    for x, pos, ok, errors in loader:
        out = forward_batch(model, x, device)
        pos = pos.numpy()
        ok = ok.numpy().astype(bool)
        if result["embedding"] is None:
            result["embedding"] = np.zeros((n, out["embedding"].shape[1]), np.float16)
        for key in ("mask", "gender", "age"):
            result[key][pos[ok]] = out[key][ok]
        if out["age_reg"] is not None and card.has_age_regression:
            result["age_reg"][pos[ok]] = out["age_reg"][ok]
        result["embedding"][pos[ok]] = out["embedding"][ok]
        result["ok"][pos] = ok
        for p, good, err in zip(pos, ok, errors):
            if not good:
                result["errors"][int(p)] = err
        done += len(pos)
        if progress is not None:
            progress(done, n, "predicting")
    if result["embedding"] is None:
        result["embedding"] = np.zeros((n, card.embedding_dim or 1), np.float16)
    return result


def predict_run(index, checkpoint_path: str | Path, run_dir: str | Path, *, batch_size: int = 64,
                device: str | torch.device | None = None, workers: int | None = None,
                threads: int | None = None, progress: Progress | None = None, reuse: bool = True,
                engine: str = "local", ray_config=None) -> Path:
    """Predict every image of `index` (a DatasetIndex) with a checkpoint into the run `run_dir`.

    checkpoint_path: model.pt or its folder. device: "cuda", "cpu" or None (best). workers:
    decoding processes (default: all cores; 0 decodes in this process). threads: torch threads
    on CPU (default: `default_threads(workers)`). progress(done, total,
    message). reuse: return an existing run of the same checkpoint and data untouched.
    engine: "local" (this process, the default) or "ray" (Ray Data, `audit.ray_prediction`, with
    `ray_config`: a RayConfig; device/workers/threads are then Ray's); the run files are the same.
    Raises ValueError when the index's age bins differ from the model's.
    """
    t_start = time.perf_counter()
    checkpoint = resolve_checkpoint(checkpoint_path).resolve()
    run_dir = Path(run_dir).expanduser().absolute()
    card = read_card(checkpoint)
    if tuple(index.bins.edges) != tuple(card.age_bins.edges):
        raise ValueError(
            f"the data is indexed with age bins {index.bins.describe()} but the model predicts "
            f"{card.age_bins.describe()}: index the data with the model's bins")
    oof_file = oof_path(checkpoint)
    key = {
        "checkpoint_sha256": checkpoint_sha256(checkpoint),
        "data_fingerprint": index.fingerprint,
        "rows_sha256": _rows_sha256(index.images),
        "bins": index.bins.to_dict(),
        "oof_sha256": file_sha256(oof_file) if oof_file.is_file() else None,
        "format": RUN_FORMAT,
    }
    if reuse and _existing_run_matches(run_dir, key):
        log.info("reusing run %s (same checkpoint and data)", run_dir)
        return run_dir

    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}: use local or ray")
    dev = resolve_device(device) if engine == "local" else torch.device("cpu")
    workers = default_workers() if workers is None else max(0, int(workers))
    threads = default_threads(workers) if threads is None else max(1, int(threads))
    t0 = time.perf_counter()
    if engine == "local":
        model, card = load_checkpoint(checkpoint, device="cpu")
        model = _prepare(model, dev)
    t_load = time.perf_counter() - t0

    images = index.images
    t0 = time.perf_counter()
    if engine == "ray":  # the same map on Ray Data's actors (audit/ray_prediction.py)
        from audit.ray_prediction import RayConfig, predict_paths_ray

        ray_config = ray_config or RayConfig(batch_size=batch_size)
        result = predict_paths_ray(checkpoint, index.root, images["path"].tolist(), ray_config, progress=progress)
    else:
        with _cpu_threads(dev, threads):
            result = predict_paths(model, card, index.root, images["path"].tolist(), batch_size=batch_size,
                                   device=dev, workers=workers, progress=progress)
    t_predict = time.perf_counter() - t0

    ok = result["ok"]
    rows = images.loc[ok, list(INDEX_COLUMNS)].reset_index(drop=True)
    rows["fold"] = -1
    p_mask, p_gender, p_age = result["mask"][ok], result["gender"][ok], result["age"][ok]
    pred_age = result["age_reg"][ok]
    oof_info = _apply_oof(rows, p_mask, p_gender, p_age, pred_age, oof_file, card, index)
    predictions = finish_predictions(rows, p_mask, p_gender, p_age, pred_age)
    skipped = [{"path": images["path"].iat[i], "error": err} for i, err in sorted(result["errors"].items())]
    for item in skipped:
        log.warning("skipped unreadable image %s (%s)", item["path"], item["error"])

    meta = {
        "source": "predict",
        "checkpoint": str(checkpoint),
        **key,
        "data_root": str(Path(index.root).resolve()),
        "arch": card.arch,
        "input_size": list(card.input_size),
        "model_card": card.to_dict(),
        "oof": oof_info,
        "skipped": skipped,
        "splits": sorted(set(predictions["split"])),
        "device": describe_device(dev) if engine == "local" else "ray",
        **({"engine": result["engine"]} if "engine" in result else {}),
        "batch_size": int(batch_size),
        "workers": int(workers),
        "threads": int(threads) if dev.type == "cpu" else None,
        "versions": library_versions(),
        "timings": {
            "load_s": round(t_load, 3),
            "predict_s": round(t_predict, 3),
            "images_per_s": round(len(images) / t_predict, 2) if t_predict > 0 else None,
            "total_s": round(time.perf_counter() - t_start, 3),
        },
    }
    return write_run(run_dir, predictions, result["embedding"][ok], meta)


def _apply_oof(rows: pd.DataFrame, p_mask, p_gender, p_age, pred_age, oof_file: Path, card: ModelCard, index) -> dict:
    """Overwrite the probabilities, pred_age and fold of every row the OOF file holds (train rows,
    and eval rows when they joined the folds) with the out-of-fold ones, in place.

    Only when the OOF file belongs to this data (the card's data fingerprint equals the index's):
    a file from other data may share paths with different images. Returns meta["oof"].
    """
    train = (rows["split"] == "train").to_numpy()
    if not train.any():
        return {"used": False, "reason": "no train images"}
    if not oof_file.is_file():
        return {"used": False, "reason": f"no {oof_file.name} beside the checkpoint: train rows come from the final model (fold -1), which saw them"}
    if card.data_fingerprint != index.fingerprint:
        return {"used": False, "reason": "the checkpoint was trained on other data (fingerprint differs): train rows come from the final model (fold -1)"}
    try:
        oof = pd.read_parquet(oof_file)
    except Exception as err:  # a corrupt file must not stop prediction
        return {"used": False, "reason": f"{oof_file.name} cannot be read ({type(err).__name__}: {err})"}
    needed = ["path", "fold", *P_MASK, *P_GENDER, *P_AGE]
    missing = [c for c in needed if c not in oof.columns]
    if missing:
        return {"used": False, "reason": f"{oof_file.name} lacks columns {missing}"}
    oof = oof.drop_duplicates("path").set_index("path")
    hit = np.flatnonzero(rows["path"].isin(oof.index).to_numpy())
    found = oof.loc[rows["path"].to_numpy()[hit]]
    p_mask[hit] = found[list(P_MASK)].to_numpy(np.float32)
    p_gender[hit] = found[list(P_GENDER)].to_numpy(np.float32)
    p_age[hit] = found[list(P_AGE)].to_numpy(np.float32)
    if "pred_age" in found.columns and card.has_age_regression:
        pred_age[hit] = found["pred_age"].to_numpy(np.float32)
    fold = rows["fold"].to_numpy().copy()
    fold[hit] = found["fold"].to_numpy(np.int64)
    rows["fold"] = fold
    n_train = int(train.sum())
    train_hits = int(train[hit].sum())
    info = {"used": True, "file": str(oof_file), "rows": int(len(hit)), "train_rows": n_train,
            "eval_rows": int(len(hit)) - train_hits, "folds": sorted(int(f) for f in np.unique(fold[hit]))}
    if train_hits < n_train:
        info["missing_rows"] = n_train - train_hits
        info["note"] = "train rows without an out-of-fold prediction come from the final model (fold -1)"
    return info


def _existing_run_matches(run_dir: Path, key: dict) -> bool:
    meta_path = run_dir / META_NAME
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("source") == "predict" and all(meta.get(k) == v for k, v in key.items()) \
        and (run_dir / PREDICTIONS_NAME).is_file() and (run_dir / EMBEDDINGS_NAME).is_file()


def _rows_sha256(images: pd.DataFrame) -> str:
    """Hash of the indexed paths: the same fingerprint can index different rows (--check-images)."""
    return hashlib.sha256("\n".join(images["path"].tolist()).encode()).hexdigest()


