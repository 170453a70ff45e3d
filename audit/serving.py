"""The classifier as a model server on LitServe: `python -m audit serve --weights weights/NAME`.

Interface (the client is `audit.model_client.ModelClient`):

- `POST /predict`, multipart/form-data with one file field `image` per image (several for a batch)
  -> `{"predictions": [{"mask": [3], "gender": [2], "age": [3] probabilities, "class_id": int,
  "confidence": float, "age_years": float | null}, ...]}` in the order sent. Optional form fields:
  `embedding=1` adds `"embedding": [D]` (the pooled backbone features); `gradcam=HEAD` (mask,
  gender or age) adds `"gradcam": {"head", "layer", "probabilities": [K], "maps": [{"method",
  "class_index", "probability", "heatmap_png"}]}`, with `gradcam_classes=C` or `C1,C2` (default:
  the head's predicted class) and `gradcam_methods=gradcam,eigencam` (default gradcam); a
  heatmap is a base64 8-bit grey PNG at the uploaded image's size, 255 = 1.0.
- `GET /card`: the model card plus `checkpoint`, `checkpoint_sha256`, `device` and batching settings.
- `GET /health`: 200 "ok" once the model is loaded (503 before).
- Bad requests get a 4xx with `{"detail": "one line"}` and the server keeps serving: 415 for a body
  that is not multipart/form-data or a file that is not a JPEG/PNG/WebP image, 413 for a request,
  a file or a pixel count over the limits (`ServeConfig`), 422 for an image that cannot be
  decoded or has a wrong shape (a side under `MIN_IMAGE_SIDE` px), 400 for a request without an
  `image` file or with bad options.

How it sits on LitServe: `MaskAuditAPI` is a `litserve.LitAPI`. LitServe hands multipart bodies to
`decode_request` as Starlette `FormData`, so several `image` fields per request need no custom
route. Dynamic batching (`max_batch_size`, `batch_timeout`) groups *requests*; each request may
hold several images, so `predict` runs one forward pass over every image of every request in the
batch and splits the result back per request. LitServe fails every request of a batch when one
hook raises, so a bad request never raises: `decode_request` returns a `RequestError` and
`encode_response` turns it into a 4xx `JSONResponse` for that request alone. Two thin additions
on LitServe's FastAPI app, where LitServe has no hook: `GET /card`, and `UploadGate` (an ASGI
middleware answering 415/413 from the headers, before a body is read: LitServe would parse a
non-form body as JSON and answer 500).

Processes: LitServe runs the model in spawned worker processes; its HTTP front end runs as a
thread here (`api_server_worker_type="thread"`: LitServe's "process" mode forks), and the
multiprocessing start method is set to spawn before LitServe creates its queue manager.

Preprocessing is the in-process one (`audit.model.create_eval_transform`, JPEG draft decoding
included) and the forward pass is `audit.prediction.forward_batch`, so a served prediction equals
`audit.prediction.predict_images` for the same file; `ImagePredictor` is also what the app uses
in-process for uploads, so both modes share one code path. Grad-CAM is `audit.gradcam`.
"""
from __future__ import annotations

import base64
import io
import logging
import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import litserve as ls
import numpy as np
import torch

from audit.labels import FIELDS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
# Formats a camera or the dataset produces; anything else is refused before decoding.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
# Smaller than this is not a face photo (and breaks the input crop); the wrong "shape" of request.
MIN_IMAGE_SIDE = 16
HEADS = FIELDS  # a Grad-CAM map explains one head; heads and fields are one list


class RequestError(Exception):
    """A bad request: HTTP status (4xx) and a one-line reason for the client."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = int(status)
        self.reason = reason


@dataclass(frozen=True)
class ServeConfig:
    """How `python -m audit serve` runs."""

    # checkpoint: weights/NAME/model.pt or its folder
    weights: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # "cuda", "cpu" or None (CUDA when present)
    device: str | None = None
    # requests grouped into one forward pass at most, and how long (seconds) to wait to fill a group
    max_batch_size: int = 8
    batch_timeout: float = 0.005
    # limits: bytes per image file, bytes per request, images per request, pixels per image
    max_image_bytes: int = 20 * 2**20
    max_request_bytes: int = 64 * 2**20
    max_images_per_request: int = 64
    max_image_pixels: int = 40_000_000
    # seconds a request may wait in LitServe's queue before it gets a 504
    request_timeout: float = 60.0
    # torch threads of a CPU worker: OpenMP threads that wait for a descheduled sibling stall a
    # small model's every layer on a busy box (see GradCamExplainer), so one by default
    cpu_threads: int = 1

    def validate(self) -> "ServeConfig":
        """Raises ValueError (one line) for a setting that cannot work."""
        if self.host not in ("127.0.0.1", "0.0.0.0", "::"):
            raise ValueError(f"--host must be 127.0.0.1 (this machine only), 0.0.0.0 or :: (all interfaces), got {self.host!r}")
        if not 1024 <= int(self.port) <= 65535:
            raise ValueError(f"--port must be within 1024..65535, got {self.port}")
        if self.device not in (None, "cpu", "cuda"):
            raise ValueError(f"--device must be cuda or cpu, got {self.device!r}")
        if self.max_batch_size < 1:
            raise ValueError("--max-batch-size must be at least 1")
        if self.cpu_threads < 1:
            raise ValueError("--threads must be at least 1")
        if not 0 <= self.batch_timeout <= 10:
            raise ValueError("--batch-timeout must be within 0..10 seconds")
        if self.max_request_bytes < 1024 or self.max_image_bytes < 1024:
            raise ValueError("--max-request-mb and --max-image-mb must be at least 0.001 (1 kB)")
        return self


# ----------------------------------------------------------------------------- images in


@dataclass
class PreparedImage:
    """One upload, checked and preprocessed. tensor: (3, H, W) model input; data: the file's bytes
    (kept for Grad-CAM, which needs the full-size image); size: (width, height) in pixels."""

    tensor: torch.Tensor
    data: bytes
    size: tuple[int, int]


def open_upload(data: bytes, *, max_bytes: int = ServeConfig.max_image_bytes,
                max_pixels: int = ServeConfig.max_image_pixels):
    """Bytes of an uploaded file -> an unloaded PIL image, or RequestError (415/413/422).

    Only the header is read here; pixels are decoded by the model's transform (which decodes
    JPEGs at a reduced scale, as a run does).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(422, "empty file: no image in it")
    if len(data) > max_bytes:
        raise RequestError(413, f"image file of {len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB limit")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise RequestError(415, "not an image (JPEG, PNG or WebP expected)") from None
    except Image.DecompressionBombError:
        raise RequestError(413, "image has too many pixels") from None
    except Exception as err:  # a broken header: PIL raises OSError, SyntaxError, ValueError...
        raise RequestError(422, f"image cannot be decoded ({type(err).__name__})") from None
    if img.format not in ACCEPTED_FORMATS:
        raise RequestError(415, f"{img.format} images are not accepted (JPEG, PNG or WebP expected)")
    width, height = img.size
    if width * height > max_pixels:
        raise RequestError(413, f"image of {width}x{height} pixels is over the {max_pixels:,}-pixel limit")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise RequestError(422, f"image of {width}x{height} pixels is too small (at least {MIN_IMAGE_SIDE} px a side)")
    return img


def check_upload(data: bytes, *, max_bytes: int = ServeConfig.max_image_bytes,
                 max_pixels: int = ServeConfig.max_image_pixels) -> tuple[int, int]:
    """`open_upload`'s checks plus a full decode (truncated pixel data is found here, not later):
    (width, height) in pixels, or RequestError. For callers that must report each bad file on its own."""
    img = open_upload(data, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        with img:
            img.load()
            return img.size
    except Exception as err:  # truncated or corrupt pixel data
        raise RequestError(422, f"image cannot be decoded ({type(err).__name__}: {str(err).strip()[:80]})") from None


# ----------------------------------------------------------------------------- the predictor


@dataclass(frozen=True)
class GradcamRequest:
    """Grad-CAM asked for one head. classes: 1 or 2 class indices (None: the head's predicted class)."""

    head: str
    classes: tuple[int, ...] | None = None
    methods: tuple[str, ...] = ("gradcam",)


class ImagePredictor:
    """A loaded checkpoint that predicts uploaded images: the server's worker and the app's
    in-process mode. Calls are not thread-safe (Grad-CAM hooks live on the model); the server
    calls it from one worker thread, the app serialises calls.

    checkpoint: model.pt or its folder. device: "cuda", "cpu", "cuda:N" or None (best).
    cpu_threads: torch threads during a CPU call, restored after (the setting is process-wide);
    None leaves torch's setting alone (the server sets its worker's once).
    """

    def __init__(self, checkpoint: str | Path, device: str | torch.device | None = None,
                 cpu_threads: int | None = 1):
        from audit.model import checkpoint_sha256, create_eval_transform, load_checkpoint, resolve_checkpoint
        from audit.devices import resolve_device

        self.checkpoint = resolve_checkpoint(checkpoint).resolve()
        self.device = resolve_device(device)
        model, card = load_checkpoint(self.checkpoint, device="cpu")
        model.eval()
        # NHWC, as a run predicts (audit.prediction): the same kernels, the same numbers.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.card = card
        self.checkpoint_sha256 = checkpoint_sha256(self.checkpoint)
        self.transform = create_eval_transform(card)
        self._explainer = None
        self._lock = threading.Lock()
        self.cpu_threads = cpu_threads if self.device.type == "cpu" else None

    def info(self) -> dict:
        """What answers: {"card": {...}, "checkpoint", "checkpoint_sha256", "device"}."""
        from audit.devices import describe_device

        return {"card": self.card.to_dict(), "checkpoint": str(self.checkpoint),
                "checkpoint_sha256": self.checkpoint_sha256, "device": describe_device(self.device)}

    def prepare(self, data: bytes, **limits) -> PreparedImage:
        """File bytes -> PreparedImage, or RequestError (see `open_upload`; 422 when decoding fails)."""
        img = open_upload(data, **limits)
        size = img.size
        try:
            with img:
                tensor = self.transform(img)
        except Exception as err:  # truncated or corrupt pixel data
            raise RequestError(422, f"image cannot be decoded ({type(err).__name__}: {str(err).strip()[:80]})") from None
        return PreparedImage(tensor, data, size)

    def forward(self, tensors: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        """(3,H,W) tensors -> {"mask": (N,3), "gender": (N,2), "age": (N,3), "class": (N,18)
        probabilities, "age_reg": (N,) years or NaN, "embedding": (N,D)} in one forward pass."""
        from audit.labels import class_probs_from_heads
        from audit.prediction import forward_batch

        out = forward_batch(self.model, torch.stack(list(tensors)), self.device)
        out["class"] = class_probs_from_heads(out["mask"], out["gender"], out["age"])
        if out["age_reg"] is None or not self.card.has_age_regression:
            out["age_reg"] = np.full(len(tensors), np.nan, dtype=np.float32)
        return out

    def predict(self, images: Sequence[PreparedImage], *, embedding: bool = False,
                gradcam: GradcamRequest | None = None) -> list[dict]:
        """Prepared images -> one prediction dict each (the server's JSON, see the module docstring)."""
        if not images:
            return []
        with self._lock:
            before = torch.get_num_threads()
            if self.cpu_threads:
                torch.set_num_threads(self.cpu_threads)
            try:
                out = self.forward([im.tensor for im in images])
                return [self.prediction_dict(out, i, images[i], embedding=embedding, gradcam=gradcam)
                        for i in range(len(images))]
            finally:
                if self.cpu_threads:
                    torch.set_num_threads(before)

    def prediction_dict(self, out: dict, i: int, image: PreparedImage, *, embedding: bool = False,
                        gradcam: GradcamRequest | None = None) -> dict:
        """Row `i` of `forward`'s output as the server's JSON-ready dict."""
        age = float(out["age_reg"][i])
        result = {
            "mask": [float(v) for v in out["mask"][i]],
            "gender": [float(v) for v in out["gender"][i]],
            "age": [float(v) for v in out["age"][i]],
            "class_id": int(np.argmax(out["class"][i])),
            "confidence": float(np.max(out["class"][i])),
            "age_years": None if math.isnan(age) else age,
        }
        if embedding:
            result["embedding"] = [float(v) for v in out["embedding"][i]]
        if gradcam is not None:
            predicted = int(np.argmax(out[gradcam.head][i]))
            result["gradcam"] = self.gradcam(image.data, gradcam, predicted)
        return result

    def explainer(self):
        """The Grad-CAM explainer on this model, built on first use."""
        if self._explainer is None:
            from audit.gradcam import GradCamExplainer

            self._explainer = GradCamExplainer(self.model, self.card, device=self.device)
        return self._explainer

    def gradcam(self, data: bytes, request: GradcamRequest, predicted: int) -> dict:
        """Grad-CAM maps of one image (file bytes) for 1 or 2 classes of a head, as JSON-ready dict."""
        from PIL import Image

        classes = list(request.classes or (predicted,))
        given, other = classes[0], classes[-1]
        with Image.open(io.BytesIO(data)) as img:
            pair = self.explainer().explain_pair(img, request.head, given, other, methods=request.methods)
        maps = []
        for method in request.methods:
            results = [pair.for_given[method]] + ([pair.for_predicted[method]] if other != given else [])
            for res in results:
                maps.append({"method": method, "class_index": res.class_index, "probability": res.probability,
                             "heatmap_png": encode_heatmap(res.heatmap)})
        return {"head": request.head, "layer": self.explainer().layer.name,
                "probabilities": [float(p) for p in pair.probabilities], "maps": maps}


def encode_heatmap(heatmap: np.ndarray) -> str:
    """(H, W) float heatmap in [0, 1] -> base64 of an 8-bit grey PNG (255 = 1.0)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.uint8(np.round(np.clip(heatmap, 0, 1) * 255)), mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_heatmap(text: str) -> np.ndarray:
    """`encode_heatmap`'s output -> (H, W) float32 in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------- requests


@dataclass
class ParsedRequest:
    """One decoded /predict request: its images and options."""

    images: list[PreparedImage]
    embedding: bool = False
    gradcam: GradcamRequest | None = None


def parse_options(form) -> tuple[bool, GradcamRequest | None]:
    """(embedding?, Grad-CAM request) from a request's form fields; RequestError(400) when bad."""
    from audit.gradcam import HEAD_SIZES, METHODS

    embedding = str(form.get("embedding", "") or "").strip().lower() in ("1", "true", "yes")
    head = str(form.get("gradcam", "") or "").strip().lower()
    if not head:
        return embedding, None
    if head not in HEADS:
        raise RequestError(400, f"gradcam must be one of {', '.join(HEADS)}, got {head[:20]!r}")
    classes = None
    text = str(form.get("gradcam_classes", "") or "").strip()
    if text:
        try:
            classes = tuple(int(c) for c in text.split(","))
        except ValueError:
            raise RequestError(400, "gradcam_classes must be one or two class indices, e.g. 0 or 0,2") from None
        if not 1 <= len(classes) <= 2 or not all(0 <= c < HEAD_SIZES[head] for c in classes):
            raise RequestError(400, f"gradcam_classes must be one or two indices in 0..{HEAD_SIZES[head] - 1}")
    methods = tuple(m.strip().lower() for m in str(form.get("gradcam_methods", "") or "gradcam").split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise RequestError(400, f"gradcam_methods must be among {', '.join(METHODS)}")
    return embedding, GradcamRequest(head, classes, methods)


class MaskAuditAPI(ls.LitAPI):
    """The LitServe API: see the module docstring. Built in the parent, pickled to spawned workers."""

    def __init__(self, config: ServeConfig):
        super().__init__(max_batch_size=config.max_batch_size, batch_timeout=config.batch_timeout,
                         api_path="/predict")
        self.config = config
        self.predictor: ImagePredictor | None = None

    def setup(self, device):
        if str(device).startswith("cpu"):
            torch.set_num_threads(max(1, int(self.config.cpu_threads)))  # this worker process only
        self.predictor = ImagePredictor(self.config.weights, device=device, cpu_threads=None)
        log.info("model %s loaded on %s", self.predictor.card.arch, device)

    def decode_request(self, request, **kwargs):
        """Starlette FormData -> ParsedRequest, or a RequestError (returned, never raised)."""
        try:
            if not hasattr(request, "getlist"):
                raise RequestError(415, "send the images as multipart/form-data, one file field named 'image' each")
            uploads = request.getlist("image")
            if not uploads:
                raise RequestError(400, "no 'image' field in the request")
            if len(uploads) > self.config.max_images_per_request:
                raise RequestError(413, f"{len(uploads)} images in one request is over the limit of "
                                        f"{self.config.max_images_per_request}")
            embedding, gradcam = parse_options(request)
            images = []
            for n, upload in enumerate(uploads, 1):
                if not hasattr(upload, "file"):
                    raise RequestError(400, f"'image' field {n} is text, not a file")
                upload.file.seek(0)
                data = upload.file.read()
                try:
                    images.append(self.predictor.prepare(data, max_bytes=self.config.max_image_bytes,
                                                         max_pixels=self.config.max_image_pixels))
                except RequestError as err:
                    if len(uploads) > 1:
                        err = RequestError(err.status, f"image {n} ({upload.filename or 'unnamed'}): {err.reason}")
                    raise err from None
            return ParsedRequest(images, embedding, gradcam)
        except RequestError as err:
            return err

    def batch(self, inputs):
        return list(inputs)

    def predict(self, x, **kwargs):
        """ParsedRequest(s) -> per request: a list of prediction dicts, or its RequestError.

        One forward pass over every image of every good request in the batch."""
        single = not isinstance(x, list)
        requests = [x] if single else x
        good = [r for r in requests if isinstance(r, ParsedRequest)]
        images = [im for r in good for im in r.images]
        out = self.predictor.forward([im.tensor for im in images]) if images else None
        results, start = [], 0
        for r in requests:
            if not isinstance(r, ParsedRequest):
                results.append(r)
                continue
            rows = []
            for i, image in enumerate(r.images, start):
                try:
                    rows.append(self.predictor.prediction_dict(out, i, image, embedding=r.embedding, gradcam=r.gradcam))
                except Exception as err:  # e.g. Grad-CAM on an odd image: this request fails, not the batch
                    rows = RequestError(422, f"Grad-CAM failed ({type(err).__name__}: {str(err).strip()[:80]})")
                    break
            results.append(rows)
            start += len(r.images)
        return results[0] if single else results

    def unbatch(self, output):
        return output

    def encode_response(self, output, **kwargs):
        if isinstance(output, RequestError):
            from fastapi.responses import JSONResponse

            return JSONResponse(status_code=output.status, content={"detail": output.reason})
        return {"predictions": output}


class UploadGate:
    """ASGI middleware for POST /predict: 415 unless the body is multipart/form-data, 413 when
    Content-Length is over the limit; answered from the headers before the body is read."""

    def __init__(self, app, *, max_bytes: int, path: str = "/predict"):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") == self.path:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            reason = None
            if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
                status, reason = 415, "send the images as multipart/form-data, one file field named 'image' each"
            else:
                try:
                    length = int(headers.get("content-length", "0") or 0)
                except ValueError:
                    length = 0
                if length > self.max_bytes:
                    status, reason = 413, f"request of {length / 2**20:.1f} MB is over the {self.max_bytes / 2**20:.0f} MB limit"
            if reason is not None:
                from starlette.responses import JSONResponse

                await JSONResponse(status_code=status, content={"detail": reason})(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------- the server


def accelerator_for(device: str | None) -> str:
    """--device -> LitServe's accelerator ("cuda" only where a GPU is present)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return device


def card_payload(config: ServeConfig, accelerator: str) -> dict:
    """GET /card: the model card plus what serves it (read from disk in the HTTP process)."""
    from audit.model import checkpoint_sha256, read_card, resolve_checkpoint

    checkpoint = resolve_checkpoint(config.weights).resolve()
    return {"card": read_card(checkpoint).to_dict(), "checkpoint": str(checkpoint),
            "checkpoint_sha256": checkpoint_sha256(checkpoint), "device": accelerator,
            "max_batch_size": config.max_batch_size, "batch_timeout": config.batch_timeout,
            "max_image_bytes": config.max_image_bytes, "max_images_per_request": config.max_images_per_request}


def create_server(config: ServeConfig) -> ls.LitServer:
    """A LitServer for `config` (not started). Raises ValueError / FileNotFoundError for bad settings."""
    from audit.model import resolve_checkpoint

    config.validate()
    checkpoint = resolve_checkpoint(config.weights)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    accelerator = accelerator_for(config.device)
    card = card_payload(config, accelerator)  # read once: a broken card fails here, not per request
    server = ls.LitServer(MaskAuditAPI(config), accelerator=accelerator, devices=1, workers_per_device=1,
                          timeout=config.request_timeout, max_payload_size=config.max_request_bytes,
                          middlewares=[(UploadGate, {"max_bytes": config.max_request_bytes})],
                          model_metadata={"arch": card["card"]["arch"], "checkpoint_sha256": card["checkpoint_sha256"]})

    @server.app.get("/card")
    async def model_card() -> dict:
        return card

    return server


def serve(config: ServeConfig, server: ls.LitServer | None = None) -> None:
    """Run the server (`create_server(config)` unless given) until interrupted (Ctrl+C / SIGTERM)."""
    import multiprocessing
    import signal

    server = server or create_server(config)
    # LitServe's queue manager starts a process with the default start method (fork on Linux).
    multiprocessing.set_start_method("spawn", force=True)

    def stop(_signum, _frame):
        # LitServe logs its thread front end's shutdown as errors (it tries to terminate() a thread).
        logging.getLogger("litserve").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt  # LitServe's graceful shutdown path: its worker processes end too

    # SIGTERM (service managers, tests) would otherwise kill this process and orphan the workers.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        server.run(host=config.host, port=int(config.port), num_api_servers=1, api_server_worker_type="thread",
                   generate_client_file=False, log_level="warning")
    except SystemExit as err:  # uvicorn exits when it cannot bind
        code = err.code if isinstance(err.code, int) else 1
    except Exception as err:  # a worker that failed to start: one line, not a trace
        print(f"error: the model server stopped: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        # The workers are gone; uvicorn's thread has no stop hook in LitServe and would keep the
        # process alive, so leave now.
        print("Model server stopped", flush=True)
        sys.stderr.flush()
        os._exit(code)


def port_is_free(host: str, port: int) -> bool:
    """True when (host, port) can be bound now (checked before minutes of worker start-up)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError:
            return False
    return True
