"""Batch prediction on Ray Data: `python -m audit predict DATA --weights ... --engine ray`.

The same map as `audit.prediction.predict_paths`, run by Ray Data so it can spread over the cores
of one machine or over a cluster (`--address auto` or `ray://head:10001`):

    from_items(position, path) -> map_batches(decode_images)     CPU tasks: read + decode + resize
                               -> map_batches(HeadsPredictor)    an actor pool, one model per actor
                                                                 (num_gpus=G each when G > 0)
                               -> rows back in the driver, put in place by position

(With CPU actors Ray Data fuses the two stages into the actors, which saves a copy of every
decoded batch; with GPU actors their resources differ, so decoding stays in CPU tasks.)

Decoding uses the in-process transform (`audit.model.create_eval_transform`, JPEG draft decoding
included) and the forward pass is `audit.prediction.forward_batch` (CUDA with fp16 autocast on a
GPU actor), so the run files equal the in-process ones to float tolerance; `predict_run(...,
engine="ray")` writes them (out-of-fold rows, meta, embeddings) exactly as the default path does.

`gpu_decode=True` (GPU actors only) ships JPEG bytes to the actors and decodes them in batches
with torchvision's `decode_jpeg(device="cuda")` (PNGs are still decoded in the CPU tasks: there is
no GPU PNG decoder). It is faster on a GPU box but not bit-identical to the default path (full
decode + tensor resize instead of PIL's reduced-scale JPEG decoding), so it is opt-in.

On a cluster every node needs this project's Python packages (requirements.txt), the data at the
same path (shared storage) and Ray of the same version; the checkpoint travels in Ray's object
store and the `audit` package as a runtime_env py_module, so neither needs copying.

Ray is optional (requirements-ray.txt); `RayUnavailable` says how to install it.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


class RayUnavailable(RuntimeError):
    """Ray is not installed (or too old)."""


@dataclass(frozen=True)
class RayConfig:
    """How a Ray prediction runs."""

    # None: a local Ray on this machine (started and stopped here); "auto" or "ray://HOST:10001":
    # an existing cluster
    address: str | None = None
    # model actors in the pool; each holds one copy of the model
    workers: int = 2
    # GPUs per model actor (0: CPU actors); fractions share a GPU between actors
    num_gpus_per_worker: float = 0.0
    # CPUs per model actor (torch threads) and per decode task
    cpus_per_worker: float = 1.0
    # images per forward pass
    batch_size: int = 64
    # decode JPEGs on the GPU in the actors (torchvision); needs num_gpus_per_worker > 0
    gpu_decode: bool = False

    def validate(self) -> "RayConfig":
        if self.workers < 1:
            raise ValueError("--ray-workers must be at least 1")
        if self.num_gpus_per_worker < 0:
            raise ValueError("--num-gpus-per-worker must be 0 or more")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.gpu_decode and self.num_gpus_per_worker <= 0:
            raise ValueError("GPU JPEG decoding needs --num-gpus-per-worker above 0")
        if self.address not in (None, "", "auto") and not str(self.address).startswith(("ray://", "localhost", "127.")) \
                and ":" not in str(self.address):
            raise ValueError(f"--address must be auto, ray://HOST:PORT or HOST:PORT, got {self.address!r}")
        return self


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayUnavailable("Ray is not installed: pip install -r requirements-ray.txt "
                             "(or run without --engine ray)") from None
    return ray


# ----------------------------------------------------------------------------- the stages


def decode_images(batch: dict, *, root: str, card: dict, gpu_jpeg: bool = False) -> dict:
    """CPU task: {"pos" (B,), "path" (B,)} -> {"pos", "x" (B,3,H,W) float32, "ok" (B,) bool,
    "error" (B,) str, "jpeg" (B,) object: the file's bytes when left to the GPU, else b""}.
    A file that cannot be decoded gives zeros with ok=False, as `predict_paths` does."""
    import torch
    from PIL import Image

    from audit.model import ModelCard, create_eval_transform
    from audit.thumbnails import ImageUnavailable, data_image_path

    card = ModelCard.from_dict(card)
    transform = create_eval_transform(card)
    shape = (3, *card.image_size)
    xs, oks, errors, jpegs = [], [], [], []
    for rel in batch["path"]:
        try:
            # as audit.prediction does: a FIFO would block Image.open; a path escaping the data
            # folder, deleted or replaced since indexing, is one line that says to re-index
            path = data_image_path(root, str(rel))
        except ImageUnavailable as err:
            xs.append(torch.zeros(shape))
            oks.append(False)
            errors.append(str(err))
            jpegs.append(b"")
            continue
        try:
            if gpu_jpeg and path.suffix.lower() in (".jpg", ".jpeg"):
                data = path.read_bytes()
                xs.append(torch.zeros(shape))
                jpegs.append(data)
            else:
                with Image.open(path) as img:
                    xs.append(transform(img))
                jpegs.append(b"")
            oks.append(True)
            errors.append("")
        except Exception as err:  # any decoding failure, as in audit.prediction._ImageFiles
            xs.append(torch.zeros(shape))
            oks.append(False)
            errors.append(f"{type(err).__name__}: {err}")
            jpegs.append(b"")
    out = {"pos": np.asarray(batch["pos"], dtype=np.int64), "x": torch.stack(xs).numpy(),
           "ok": np.asarray(oks, dtype=bool), "error": np.asarray(errors, dtype=object)}
    if gpu_jpeg:
        jpeg_column = np.empty(len(jpegs), dtype=object)  # 1-D of bytes (not a fixed-width 'S' array)
        jpeg_column[:] = jpegs
        out["jpeg"] = jpeg_column
    return out


class HeadsPredictor:
    """Ray Data actor: one model, loaded once; decoded batches -> probabilities and embeddings."""

    def __init__(self, checkpoint_ref, *, use_gpu: bool, threads: int):
        import ray
        import torch

        from audit.model import load_checkpoint

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, int(threads)))
        payload = ray.get(checkpoint_ref) if isinstance(checkpoint_ref, ray.ObjectRef) else checkpoint_ref
        with tempfile.TemporaryDirectory() as tmp:  # load_checkpoint reads a file
            path = Path(tmp) / "model.pt"
            path.write_bytes(payload)
            model, card = load_checkpoint(path, device="cpu")
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.card = card

    def _gpu_jpegs(self, x, jpegs) -> None:
        """Decode the JPEG rows on the GPU in one batch and put them into x (B,3,H,W) in place."""
        import torch
        import torchvision.transforms.functional as TF
        from torchvision.io import ImageReadMode, decode_jpeg

        from audit.model import crop_box

        rows = [i for i, data in enumerate(jpegs) if data]
        if not rows:
            return
        datas = [torch.frombuffer(bytearray(jpegs[i]), dtype=torch.uint8) for i in rows]
        images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)
        h, w = self.card.image_size
        try:  # the card's resize interpolation, as the CPU transform uses
            interpolation = TF.InterpolationMode(self.card.interpolation)
        except ValueError:
            interpolation = TF.InterpolationMode.BILINEAR
        mean = torch.tensor(self.card.mean, device=self.device).view(3, 1, 1)
        std = torch.tensor(self.card.std, device=self.device).view(3, 1, 1)
        for i, img in zip(rows, images):
            left, top, right, bottom = crop_box((img.shape[2], img.shape[1]), self.card.crop)
            img = img[:, top:bottom, left:right].float() / 255.0
            img = TF.resize(img, [h, w], interpolation=interpolation, antialias=True)
            x[i] = ((img - mean) / std).to(x.device)

    def __call__(self, batch: dict) -> dict:
        import torch

        from audit.prediction import forward_batch

        x = torch.from_numpy(np.ascontiguousarray(batch["x"]))
        if "jpeg" in batch and any(bool(d) for d in batch["jpeg"]):
            x = x.to(self.device)
            self._gpu_jpegs(x, list(batch["jpeg"]))
        out = forward_batch(self.model, x, self.device)
        n = len(batch["pos"])
        age = out["age_reg"] if out["age_reg"] is not None and self.card.has_age_regression \
            else np.full(n, np.nan, np.float32)
        return {"pos": batch["pos"], "ok": batch["ok"], "error": batch["error"],
                "mask": out["mask"], "gender": out["gender"], "age": out["age"],
                "age_reg": np.asarray(age, np.float32), "embedding": out["embedding"].astype(np.float16)}


# ----------------------------------------------------------------------------- the driver


def _init_ray(ray, config: RayConfig) -> bool:
    """Connect to (or start) Ray. Returns True when this call started it (and so must stop it)."""
    if ray.is_initialized():
        return False
    import audit

    package = str(Path(audit.__file__).resolve().parent)
    runtime_env = {"py_modules": [package]}
    # Ray Data logs every execution plan at INFO; the progress bar says enough
    logging.getLogger("ray").setLevel(logging.WARNING)
    quiet = {"log_to_driver": False, "ignore_reinit_error": True, "logging_level": logging.WARNING}
    if config.address:
        ray.init(address=config.address, runtime_env=runtime_env, **quiet)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, runtime_env=runtime_env, include_dashboard=False, **quiet)
    return True


def predict_paths_ray(checkpoint: str | Path, root: str | Path, paths: Sequence[str], config: RayConfig = RayConfig(),
                      *, progress: Progress | None = None) -> dict:
    """Like `audit.prediction.predict_paths`, on Ray Data: the same dict ({"mask" (N,3), "gender"
    (N,2), "age" (N,3), "age_reg" (N,), "embedding" (N,D) float16, "ok" (N,), "errors" {pos: text}})
    with rows in the order of `paths`. Adds "engine": what ran it."""
    ray = require_ray()
    config.validate()
    from audit.model import read_card, resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint)
    card = read_card(checkpoint)
    n = len(paths)
    result = {
        "mask": np.zeros((n, 3), np.float32),
        "gender": np.zeros((n, 2), np.float32),
        "age": np.zeros((n, 3), np.float32),
        "age_reg": np.full(n, np.nan, np.float32),
        "embedding": np.zeros((n, card.embedding_dim or 1), np.float16),
        "ok": np.zeros(n, bool),
        "errors": {},
    }
    if progress is not None:
        progress(0, n, "predicting (ray)")
    if n == 0:
        return result
    import time

    t_start = time.perf_counter()
    started = _init_ray(ray, config)
    t_init = time.perf_counter() - t_start
    t_first = None
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own bar (progress) is enough
        weights = ray.put(checkpoint.read_bytes())
        items = [{"pos": i, "path": p} for i, p in enumerate(paths)]
        # enough blocks for every actor to get work, not so many that scheduling dominates
        blocks = max(min(config.workers, n), min(-(-n // config.batch_size), 4 * (os.cpu_count() or 1)))
        use_gpu = config.num_gpus_per_worker > 0
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(decode_images, batch_size=config.batch_size, batch_format="numpy",
                            fn_kwargs={"root": str(Path(root).resolve()), "card": card.to_dict(),
                                       "gpu_jpeg": config.gpu_decode},
                            num_cpus=config.cpus_per_worker)
        ds = ds.map_batches(HeadsPredictor, batch_size=config.batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=config.workers),
                            fn_constructor_kwargs={"checkpoint_ref": weights, "use_gpu": use_gpu,
                                                   "threads": max(1, int(config.cpus_per_worker))},
                            num_gpus=config.num_gpus_per_worker if use_gpu else None,
                            num_cpus=0 if use_gpu else config.cpus_per_worker)
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            pos = np.asarray(batch["pos"], dtype=np.int64)
            ok = np.asarray(batch["ok"], dtype=bool)
            for key in ("mask", "gender", "age"):
                result[key][pos[ok]] = batch[key][ok]
            if card.has_age_regression:
                result["age_reg"][pos[ok]] = batch["age_reg"][ok]
            if result["embedding"].shape[1] != batch["embedding"].shape[1]:
                result["embedding"] = np.zeros((n, batch["embedding"].shape[1]), np.float16)
            result["embedding"][pos[ok]] = batch["embedding"][ok]
            result["ok"][pos] = ok
            for p, good, err in zip(pos, ok, batch["error"]):
                if not good:
                    result["errors"][int(p)] = str(err)
            done += len(pos)
            if t_first is None:  # Ray start, actor start-up (imports, model load) and the first batch
                t_first = time.perf_counter() - t_start
            if progress is not None:
                progress(done, n, "predicting (ray)")
        resources = ray.cluster_resources()
        result["engine"] = {"engine": "ray", "ray_version": ray.__version__,
                            "address": config.address or "local", "workers": config.workers,
                            "num_gpus_per_worker": config.num_gpus_per_worker, "gpu_decode": config.gpu_decode,
                            "cluster_cpus": float(resources.get("CPU", 0)),
                            "cluster_gpus": float(resources.get("GPU", 0)),
                            "init_s": round(t_init, 2), "first_batch_s": round(t_first or 0.0, 2),
                            "total_s": round(time.perf_counter() - t_start, 2)}
    finally:
        if started:
            ray.shutdown()
    return result
