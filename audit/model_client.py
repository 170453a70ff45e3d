"""The app's side of the model server (audit/serving.py): `ModelClient(url)`.

`predict(images)` sends image files (bytes, paths, or PIL images) in one multipart request and
returns the server's prediction dicts, in order. `explain_pair(image, head, given, predicted)`
returns an `audit.gradcam.CamPair` built from the server's heatmaps, with overlays drawn here on
the original pixels exactly as `GradCamExplainer` draws them, so a page shows remote and
in-process Grad-CAM through the same code. `card()` and `health()` read `GET /card` and
`GET /health`.

Every failure is a `ModelServerError` with a one-line message (unreachable, timed out, or the
server's own 4xx reason), never a stack trace for the page to show.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

MODEL_URL_ENV = "MASK_AUDIT_MODEL_URL"


class ModelServerError(RuntimeError):
    """The model server could not answer: a one-line reason."""


def configured_model_url() -> str:
    """MASK_AUDIT_MODEL_URL, or "" (in-process)."""
    import os

    return os.environ.get(MODEL_URL_ENV, "").strip()


def normalise_url(url: str) -> str:
    """"host:8700" or "http://host:8700/" -> "http://host:8700"; ValueError when it is no URL."""
    from urllib.parse import urlparse

    url = (url or "").strip().rstrip("/")
    if not url:
        raise ValueError("empty model server URL")
    if "://" not in url:
        url = "http://" + url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an http(s) URL: {url[:80]}")
    return url


def _as_upload(image, n: int) -> tuple[str, bytes]:
    """(file name, file bytes) for one image: bytes as they are, a path's file as it is on disk
    (so the server decodes exactly what a run decodes), a PIL image as PNG (lossless)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"image{n}", bytes(image)
    if isinstance(image, (str, Path)):
        path = Path(image)
        return path.name, path.read_bytes()
    if hasattr(image, "save"):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return f"image{n}.png", buf.getvalue()
    raise TypeError(f"cannot send {type(image).__name__} as an image (bytes, a path or a PIL image)")


class ModelClient:
    """HTTP client of one model server. url: e.g. "http://127.0.0.1:8700". timeout: seconds per call."""

    def __init__(self, url: str, *, timeout: float = 60.0):
        import requests

        self.url = normalise_url(url)
        self.timeout = float(timeout)
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"ModelClient({self.url!r})"

    def _call(self, method: str, route: str, **kwargs):
        import requests

        try:
            response = self._session.request(method, self.url + route, timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except requests.Timeout:
            raise ModelServerError(f"the model server at {self.url} did not answer within {self.timeout:.0f} s") from None
        except requests.RequestException as err:
            raise ModelServerError(f"the model server at {self.url} cannot be reached ({type(err).__name__})") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            reason = str(detail or response.text or response.reason).strip().splitlines()
            raise ModelServerError(f"the model server refused the request ({response.status_code}: "
                                   f"{reason[0][:200] if reason else response.reason})")
        return response

    def health(self) -> bool:
        """True when the server answers /health with 200 (model loaded)."""
        try:
            return self._call("GET", "/health", timeout=min(self.timeout, 5.0)).status_code == 200
        except ModelServerError:
            return False

    def card(self) -> dict:
        """GET /card: {"card": model card dict, "checkpoint", "checkpoint_sha256", "device", ...}."""
        return self._call("GET", "/card", timeout=min(self.timeout, 10.0)).json()

    def predict(self, images: Sequence, *, embedding: bool = False, gradcam: str | None = None,
                gradcam_classes: Sequence[int] | None = None,
                gradcam_methods: Sequence[str] = ("gradcam",)) -> list[dict]:
        """Images (bytes, paths or PIL images) -> the server's prediction dicts, in order:
        {"mask": [3], "gender": [2], "age": [3], "class_id", "confidence", "age_years"} (+ "embedding",
        "gradcam" when asked; see audit/serving.py)."""
        images = list(images)
        if not images:
            return []
        files = [("image", _as_upload(img, n)) for n, img in enumerate(images, 1)]
        data = {}
        if embedding:
            data["embedding"] = "1"
        if gradcam:
            data["gradcam"] = gradcam
            data["gradcam_methods"] = ",".join(gradcam_methods)
            if gradcam_classes:
                data["gradcam_classes"] = ",".join(str(int(c)) for c in gradcam_classes)
        predictions = self._call("POST", "/predict", files=files, data=data).json().get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(images):
            raise ModelServerError(f"the model server at {self.url} answered {len(predictions or [])} predictions "
                                   f"for {len(images)} images")
        return predictions

    def explain_pair(self, image, head: str, given: int, predicted: int | None = None,
                     methods: tuple[str, ...] = ("gradcam", "eigencam"), *, crop: float | None = None):
        """Grad-CAM of one image for the given and the predicted class of `head` (the head's argmax
        when None) -> `audit.gradcam.CamPair`, like `GradCamExplainer.explain_pair`.

        crop: the model's input crop (ModelCard.crop), for dimming what the model never saw;
        None reads it from the server's card.
        """
        from PIL import Image

        from audit.gradcam import CamPair, CamResult, overlay_heatmap
        from audit.model import crop_box
        from audit.serving import decode_heatmap

        classes = [int(given)] if predicted is None else [int(given), int(predicted)]
        name, data = _as_upload(image, 1)
        prediction = self.predict([data], gradcam=head, gradcam_classes=classes, gradcam_methods=methods)[0]
        if predicted is None:
            # the server explained the given class only; the head's predicted class needs its own map
            head_probs = prediction[head]
            predicted = int(np.argmax(head_probs))
            if predicted != int(given):
                prediction = self.predict([data], gradcam=head, gradcam_classes=[int(given), predicted],
                                          gradcam_methods=methods)[0]
        cam = prediction["gradcam"]
        if crop is None:
            crop = float(self.card()["card"].get("crop", 1.0))
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"))
        height, width = rgb.shape[:2]
        box = crop_box((width, height), crop)
        results: dict[tuple[str, int], CamResult] = {}
        for m in cam["maps"]:
            heatmap = decode_heatmap(m["heatmap_png"])
            if heatmap.shape != (height, width):
                raise ModelServerError(f"the model server's heatmap {heatmap.shape} does not match the image {(height, width)}")
            results[(m["method"], int(m["class_index"]))] = CamResult(
                heatmap=heatmap, overlay=overlay_heatmap(rgb, heatmap, box=box), method=m["method"], head=head,
                class_index=int(m["class_index"]), probability=float(m["probability"]), layer=str(cam["layer"]))
        for_given, for_predicted = {}, {}
        for method in methods:
            g = results[(method, int(given))]
            p = results.get((method, int(predicted)))
            for_given[method] = g
            # gradient-free maps (EigenCAM) are one map for every class, captioned with the other class
            for_predicted[method] = p if p is not None else CamResult(
                g.heatmap, g.overlay, method, head, int(predicted), float(cam["probabilities"][int(predicted)]), g.layer)
        return CamPair(head=head, given=int(given), predicted=int(predicted),
                       probabilities=np.asarray(cam["probabilities"], dtype=np.float32),
                       for_given=for_given, for_predicted=for_predicted)
