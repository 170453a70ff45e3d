"""Class-activation heatmaps for one image: where did a head look to say (or not say) a class?

Built on pytorch-grad-cam. Our model returns a dict of head logits, so `HeadLogits` wraps it to
return one head's (B, K) logits, and targets are `ClassifierOutputTarget(class_index)`.
`choose_cam_layer` picks the layer from the architecture by tracing one forward pass: the last
spatial feature map before pooling for CNNs (resnet `layer4`, mobilenetv3 `blocks`, efficientnet
`bn2`, convnext `stages`/`norm_pre`), NHWC maps (swin) permuted to NCHW, and for ViT-style token
models the last block's `norm1` with a `reshape_transform` from tokens to the patch grid (the
final norm only passes gradient to the class token, which would give an empty map).

Methods: "gradcam", "gradcam++", "layercam" (gradient-based, class-specific) and "eigencam"
(gradient-free: the first principal component of the activations, the same for every class; we
fix its sign so the salient region is positive instead of being clipped away).

`GradCamExplainer(model, card)` is built once per process (the app caches it) and serialises
calls with a lock: CAM hooks live on the shared model for the duration of a call.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from audit.labels import FIELD_INFO, FIELDS
from audit.model import crop_box

HEADS = FIELDS  # one head per labelled field, in the model's output order
HEAD_SIZES = {f.name: f.n_codes for f in FIELD_INFO.values()}
GRADIENT_METHODS = ("gradcam", "gradcam++", "layercam")
GRADIENT_FREE_METHODS = ("eigencam",)
METHODS = GRADIENT_METHODS + GRADIENT_FREE_METHODS


class HeadLogits(nn.Module):
    """Adapts a dict-returning model to grad-cam: forward(x) -> model(x)[head], (B, K) logits."""

    def __init__(self, model: nn.Module, head: str):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[self.head] if isinstance(out, dict) else out


@dataclass(frozen=True)
class CamLayer:
    """The layer a CAM reads, and how to turn its output into (B, C, h, w)."""

    # dotted module name inside the traced model (e.g. "backbone.layer4")
    name: str
    module: nn.Module = field(repr=False, compare=False)
    # tokens/NHWC -> (B, C, h, w); None when the layer already gives NCHW maps
    reshape_transform: Callable | None = field(default=None, repr=False, compare=False)
    # (h, w) of the map the CAM is computed on
    grid: tuple[int, int] = (0, 0)


def _nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


class _TokensToGrid:
    """(B, prefix + h*w, C) tokens -> (B, C, h, w), dropping class/register tokens."""

    def __init__(self, num_prefix: int, grid: tuple[int, int]):
        self.num_prefix = num_prefix
        self.grid = grid

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = t[:, self.num_prefix:, :]
        h, w = self.grid
        return t.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)


def _backbone_of(model: nn.Module) -> tuple[nn.Module, str]:
    backbone = getattr(model, "backbone", None)
    return (backbone, "backbone.") if isinstance(backbone, nn.Module) else (model, "")


def _trace_shapes(module: nn.Module, input_size: tuple[int, int, int]) -> list[tuple[str, nn.Module, tuple]]:
    """One no-grad forward of zeros; (name, module, output shape) in the order outputs appeared."""
    seen: list[tuple[str, nn.Module, tuple]] = []
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(mod, _inp, out, name=name):
            if isinstance(out, torch.Tensor):
                seen.append((name, mod, tuple(out.shape)))

        handles.append(sub.register_forward_hook(hook))
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros((1, *input_size), device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return seen


def choose_cam_layer(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)) -> CamLayer:
    """The CAM target layer of a timm backbone (or a model holding one as `.backbone`).

    input_size: (C, H, W) the model is fed. Raises ValueError when no spatial layer exists.
    """
    backbone, prefix = _backbone_of(model)
    trace = _trace_shapes(backbone, tuple(input_size))
    blocks = getattr(backbone, "blocks", None)
    num_prefix = getattr(backbone, "num_prefix_tokens", None)
    if num_prefix is not None and hasattr(backbone, "patch_embed") and isinstance(blocks, nn.Sequential) \
            and hasattr(blocks[-1], "norm1"):
        # ViT / DeiT / EVA-style: tokens (B, prefix + h*w, C).
        target = blocks[-1].norm1
        shape = next(s for _n, m, s in trace if m is target)
        n_patches = shape[1] - int(num_prefix)
        grid = tuple(int(v) for v in getattr(backbone.patch_embed, "grid_size", ()) or ())
        if len(grid) != 2 or grid[0] * grid[1] != n_patches:
            side = int(round(n_patches ** 0.5))
            if side * side != n_patches:
                raise ValueError(f"cannot lay {n_patches} tokens out on a grid")
            grid = (side, side)
        name = next(n for n, m, _s in trace if m is target)
        return CamLayer(prefix + name, target, _TokensToGrid(int(num_prefix), grid), grid)

    nhwc = str(getattr(backbone, "output_fmt", "NCHW")).upper() == "NHWC"
    for name, module, shape in reversed(trace):
        if len(shape) != 4:
            continue
        h, w = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
        if h * w > 1:
            return CamLayer(prefix + name, module, _nhwc_to_nchw if nhwc else None, (int(h), int(w)))
    raise ValueError(f"no spatial feature map found in {type(backbone).__name__} for a CAM")


def _signed_projection(activations: np.ndarray) -> np.ndarray:
    """(B, C, h, w) -> (B, h, w): projection on the first principal component of the C-vectors,
    sign chosen so the larger-magnitude extreme is positive (SVD's sign is arbitrary, and the CAM
    clips negatives: a wrong sign would leave an empty map)."""
    out = []
    for act in np.nan_to_num(np.asarray(activations, dtype=np.float32)):
        flat = act.reshape(act.shape[0], -1).T  # (h*w, C)
        flat = flat - flat.mean(axis=0)
        _u, _s, vt = np.linalg.svd(flat, full_matrices=False)
        proj = (flat @ vt[0]).reshape(act.shape[1:])
        if abs(proj.min()) > abs(proj.max()):
            proj = -proj
        out.append(proj)
    return np.float32(out)


def _cam_class(method: str):
    import pytorch_grad_cam as pgc

    if method == "gradcam":
        return pgc.GradCAM
    if method == "gradcam++":
        return pgc.GradCAMPlusPlus
    if method == "layercam":
        return pgc.LayerCAM
    if method == "eigencam":

        class SignedEigenCAM(pgc.EigenCAM):
            """EigenCAM with the sign fixed (the one hook BaseCAM lets us override)."""

            def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
                return _signed_projection(activations)

        return SignedEigenCAM
    raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")


@dataclass
class CamResult:
    """One heatmap. heatmap: (H, W) float32 in [0, 1] at the original image's size."""

    heatmap: np.ndarray
    overlay: Image.Image
    method: str
    head: str
    class_index: int
    # softmax probability of class_index on this head for this image
    probability: float
    # the layer the CAM read (e.g. "backbone.layer4")
    layer: str


@dataclass
class CamPair:
    """Heatmaps for the given label and the predicted one, per method."""

    head: str
    given: int
    predicted: int
    # softmax over the head's classes, (K,)
    probabilities: np.ndarray
    # method -> CamResult
    for_given: dict[str, CamResult]
    for_predicted: dict[str, CamResult]


def overlay_heatmap(image: Image.Image | np.ndarray, heatmap: np.ndarray, *, image_weight: float = 0.55,
                    box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """RGB image (PIL or (H, W, 3) uint8) + (H, W) [0, 1] heatmap of the same size -> JET blend.

    box: (left, top, right, bottom) the model saw (its input crop); outside it the image is shown
    dimmed, without colour, so nobody reads "cold" into pixels the model never looked at.
    uint8 arithmetic in OpenCV (grad-cam's `show_cam_on_image` works in float32 and cost ~50 ms
    per 384x512 overlay here; an image pair needs three).
    """
    import cv2

    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    if rgb.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {rgb.shape[:2]}")
    heat = cv2.applyColorMap(np.uint8(np.clip(heatmap, 0, 1) * 255), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    blend = cv2.addWeighted(rgb, image_weight, heat, 1.0 - image_weight, 0.0)
    if box is not None:
        left, top, right, bottom = box
        out = rgb // 2
        out[top:bottom, left:right] = blend[top:bottom, left:right]
        blend = out
    return Image.fromarray(blend)


class GradCamExplainer:
    """Heatmaps for one image at a time from a loaded model (built once per process).

    model: `MaskAuditNet` (forward -> dict of head logits) or any module whose forward returns
    head logits; card: its `ModelCard` (input size, normalisation). device: where to run (default
    the best one present: CUDA, else CPU). cpu_threads: torch intra-op threads during a CPU call
    (None: leave torch's setting). One image through a small model gains little from threads,
    and on a busy machine OpenMP's spinning threads made it ~28x slower (BENCHMARKS.md, Grad-CAM);
    the setting is process-wide, so it is set for the call and restored after.
    """

    def __init__(self, model: nn.Module, card, device: str | torch.device | None = None,
                 cpu_threads: int | None = 1):
        from audit.devices import best_device
        from audit.model import create_eval_transform

        self.device = torch.device(device) if device is not None else best_device()
        # CAMs need float32 weights (a CPU half model is slow or unsupported).
        self.model = model.to(self.device).float().eval()
        self.card = card
        self.transform = create_eval_transform(card)
        self.layer = choose_cam_layer(self.model, tuple(card.input_size))
        self._heads = {head: HeadLogits(self.model, head) for head in HEADS}
        self._lock = threading.Lock()
        self.cpu_threads = cpu_threads if self.device.type == "cpu" else None

    @contextmanager
    def _serialised(self):
        """One call at a time: CAM hooks live on the shared model while a call runs."""
        with self._lock:
            before = torch.get_num_threads()
            if self.cpu_threads:
                torch.set_num_threads(self.cpu_threads)
            try:
                yield
            finally:
                if self.cpu_threads:
                    torch.set_num_threads(before)

    @classmethod
    def from_checkpoint(cls, path, device: str | torch.device | None = None,
                        cpu_threads: int | None = 1) -> "GradCamExplainer":
        from audit.model import load_checkpoint

        model, card = load_checkpoint(path, device=device)
        return cls(model, card, device=device, cpu_threads=cpu_threads)

    def _input(self, image: Image.Image) -> tuple[np.ndarray, torch.Tensor]:
        """-> ((H, W, 3) uint8 original-size pixels for the overlays, (1, 3, h, w) model input)."""
        # convert() first: the transform's JPEG draft mode would shrink the caller's image in place.
        rgb = image.convert("RGB")
        return np.asarray(rgb), self.transform(rgb).unsqueeze(0).to(self.device)

    def _run(self, method: str, head: str, x: torch.Tensor, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """CAMs (len(classes), h, w) at the input size, and the head's softmax (K,)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cam_class = _cam_class(method)
        batch = x.expand(len(classes), *x.shape[1:]).contiguous()
        targets = [ClassifierOutputTarget(int(c)) for c in classes]
        result = None
        with cam_class(model=self._heads[head], target_layers=[self.layer.module],
                       reshape_transform=self.layer.reshape_transform) as cam:
            result = cam(input_tensor=batch, targets=targets)
            logits = cam.outputs.detach()
        if result is None:  # BaseCAM.__exit__ swallows IndexError (e.g. a class out of range)
            raise ValueError(f"class index out of range for head {head!r}: {classes}")
        probs = torch.softmax(logits[0].float(), dim=0).cpu().numpy()
        return np.asarray(result, dtype=np.float32), probs

    def _result(self, rgb: np.ndarray, cam: np.ndarray, method: str, head: str, class_index: int,
                probs: np.ndarray) -> CamResult:
        import cv2

        h, w = rgb.shape[:2]
        # The model saw the central crop only: the map goes back over that box, zero outside it.
        box = crop_box((w, h), self.card.crop)
        left, top, right, bottom = box
        heatmap = np.zeros((h, w), dtype=np.float32)
        heatmap[top:bottom, left:right] = cv2.resize(cam.astype(np.float32), (right - left, bottom - top),
                                                     interpolation=cv2.INTER_LINEAR)
        heatmap = np.clip(heatmap, 0.0, 1.0)
        return CamResult(heatmap=heatmap, overlay=overlay_heatmap(rgb, heatmap, box=box), method=method, head=head,
                         class_index=int(class_index), probability=float(probs[class_index]),
                         layer=self.layer.name)

    def explain(self, image: Image.Image, head: str, class_index: int, method: str = "gradcam") -> CamResult:
        """Heatmap of `head`'s evidence for `class_index` in a PIL image, at the image's size."""
        _cam_class(method)
        self._validate(head, [class_index])
        rgb, x = self._input(image)
        with self._serialised():
            cams, probs = self._run(method, head, x, [int(class_index)])
        return self._result(rgb, cams[0], method, head, class_index, probs)

    def explain_pair(self, image: Image.Image, head: str, given: int, predicted: int | None = None,
                     methods: tuple[str, ...] = ("gradcam", "eigencam")) -> CamPair:
        """Heatmaps for the given label and the predicted class (argmax of the head when None).

        Gradient methods compute both classes in one batched pass; gradient-free ones once (their
        map does not depend on the class).
        """
        for m in methods:
            _cam_class(m)
        self._validate(head, [given] + ([] if predicted is None else [predicted]))
        rgb, x = self._input(image)
        with self._serialised():
            if predicted is None:
                with torch.no_grad():
                    logits = self._heads[head](x)
                predicted = int(logits[0].argmax())
            classes = [int(given)] if given == predicted else [int(given), int(predicted)]
            raw = {}
            probs = None
            for m in methods:
                run_classes = classes[:1] if m in GRADIENT_FREE_METHODS else classes
                raw[m], probs = self._run(m, head, x, run_classes)
        for_given, for_predicted = {}, {}
        for m, cams in raw.items():
            for_given[m] = self._result(rgb, cams[0], m, head, given, probs)
            if given == predicted:
                for_predicted[m] = for_given[m]
            elif len(cams) == 1:  # gradient-free: the same map, captioned with the other class
                for_predicted[m] = CamResult(for_given[m].heatmap, for_given[m].overlay, m, head,
                                             int(predicted), float(probs[predicted]), self.layer.name)
            else:
                for_predicted[m] = self._result(rgb, cams[1], m, head, predicted, probs)
        return CamPair(head=head, given=int(given), predicted=int(predicted), probabilities=probs,
                       for_given=for_given, for_predicted=for_predicted)

    def _validate(self, head: str, classes: list[int]) -> None:
        if head not in self._heads:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        n_classes = HEAD_SIZES[head]
        for c in classes:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n_classes:
                raise ValueError(f"class index for head {head!r} must be an int in [0, {n_classes}), got {c!r}")
