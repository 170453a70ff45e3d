"""The classifier: a timm backbone with mask / gender / age heads, its model card and checkpoints.

`create_model(arch)` builds a `MaskAuditNet` whose forward returns per-head logits; the 18-class
probability is the product of the heads (`audit.labels.class_probs_from_heads`). How to feed the
model (input size, mean, std, interpolation) comes from timm's data config, is written into the
`ModelCard`, and `create_eval_transform(card)` / `create_train_transform(card)` build the
preprocessing from the card, never from constants.

A checkpoint is `<dir>/model.pt` (weights, fp16, plus an embedded copy of the card) with the card
as readable JSON beside it (`model.json`) and, when made by `audit.training`, the out-of-fold
probabilities of every train image in `oof.parquet`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audit.devices import best_device
from audit.labels import DEFAULT_BINS, N_AGE_BINS, N_GENDER, N_MASK, AgeBins
from audit.file_io import file_sha256

CHECKPOINT_FORMAT = "mask-audit-checkpoint/1"
CHECKPOINT_NAME = "model.pt"
OOF_NAME = "oof.parquet"
# The age-regression head predicts (age - AGE_CENTER) / AGE_SCALE; forward() returns years.
AGE_CENTER = 40.0
AGE_SCALE = 20.0


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights for the backbone could not be fetched (no network, no cache)."""


class PretrainedFileMismatch(ValueError):
    """A Mask Audit checkpoint given as --pretrained-file does not fit the model asked for (one line)."""


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint is and how to feed it; written as JSON beside the weights."""

    # timm architecture name, e.g. "resnet18", "mobilenetv3_small_100"
    arch: str
    # model input (channels, height, width) in pixels
    input_size: tuple[int, int, int]
    # per-channel normalisation applied after scaling pixels to [0, 1]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # resize interpolation ("bilinear", "bicubic", ...), from timm's data config
    interpolation: str = "bicubic"
    # fraction of the image's height and width kept around its centre before resizing (1 = all of
    # it): the face is central, so a crop gives it more of a small input's pixels
    crop: float = 1.0
    # the age bins the age head predicts (AgeBins.to_dict())
    bins: dict = field(default_factory=DEFAULT_BINS.to_dict)
    # whether forward() has an "age_reg" output (years)
    has_age_regression: bool = True
    # size of the pooled backbone features returned by embed() (D)
    embedding_dim: int = 0
    # label scheme, for readers of the JSON: how the 18 classes follow from the heads
    label_scheme: str = "class_id = mask*6 + gender*3 + age_bin; mask 0 wear, 1 incorrect, 2 not wear; gender 0 male, 1 female"
    # where the backbone's starting weights came from: "imagenet", "none" or a file path
    pretrained: str = "none"
    # DatasetIndex.fingerprint of the data it was trained on ("" when untrained)
    data_fingerprint: str = ""
    # data root it was trained on (informational; may not exist on another machine)
    data_root: str = ""
    # K of the person-grouped K-fold that produced the out-of-fold probabilities (0: none)
    folds: int = 0
    # epochs per model (each fold model and the final model)
    epochs: int = 0
    # metrics: {"oof": {...}, "eval": {...}}, each with macro_f1 (18-class) and per-head accuracy
    metrics: dict = field(default_factory=dict)
    # the training configuration (TrainConfig as a dict)
    train_config: dict = field(default_factory=dict)
    # library versions that made it
    versions: dict = field(default_factory=dict)
    # ISO-8601 UTC time it was made
    created: str = ""
    # the command that reproduces this checkpoint
    how_to_reproduce: str = ""
    # seconds spent training (all folds and the final model)
    train_seconds: float = 0.0
    # the device it trained on ("cpu", "cuda (NVIDIA H200)"); speeds differ, results only slightly
    train_device: str = ""

    @property
    def age_bins(self) -> AgeBins:
        return AgeBins.from_dict(self.bins)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.input_size[1]), int(self.input_size[2])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}  # newer cards may carry more fields
        for key in ("input_size", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "ModelCard":
        return dataclasses.replace(self, **changes)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class MaskAuditNet(nn.Module):
    """timm backbone (pooled features, D) + linear heads.

    forward(x: (B,3,H,W) normalised) -> {"mask": (B,3), "gender": (B,2), "age": (B,3) logits,
    "age_reg": (B,) years}.
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int, card: ModelCard, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.card = card
        self.embedding_dim = embedding_dim
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.mask = nn.Linear(embedding_dim, N_MASK)
        self.gender = nn.Linear(embedding_dim, N_GENDER)
        self.age = nn.Linear(embedding_dim, N_AGE_BINS)
        self.age_reg = nn.Linear(embedding_dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> pooled backbone features (B,D)."""
        return self.backbone(x)

    def heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled features (B,D) -> head outputs (see class docstring)."""
        f = self.dropout(features)
        return {
            "mask": self.mask(f),
            "gender": self.gender(f),
            "age": self.age(f),
            "age_reg": self.age_reg(f).squeeze(1) * AGE_SCALE + AGE_CENTER,
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.embed(x))

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One pass -> (head outputs, pooled features (B,D))."""
        features = self.embed(x)
        return self.heads(features), features


def _timm_create(arch: str, *, pretrained: bool, img_size, drop_rate: float, pretrained_file=None):
    import timm

    kwargs = {"num_classes": 0, "drop_rate": drop_rate}
    if pretrained_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
    if img_size is not None:
        # Token models (ViT, ...) fix their input size at construction; CNNs don't take it.
        try:
            return timm.create_model(arch, pretrained=pretrained, img_size=tuple(img_size), **kwargs)
        except TypeError:
            pass
    return timm.create_model(arch, pretrained=pretrained, **kwargs)


def create_model(
    arch: str,
    *,
    pretrained: bool = True,
    pretrained_file: str | Path | None = None,
    bins: AgeBins = DEFAULT_BINS,
    img_size: tuple[int, int] | None = None,
    drop_rate: float = 0.0,
    crop: float = 1.0,
) -> MaskAuditNet:
    """A timm backbone by name with mask / gender / age heads; `model.card` says how to feed it.

    pretrained: ImageNet weights via timm (download or cache); pretrained_file: a local timm/torch
    state dict for the backbone instead (implies pretrained). img_size: (H, W) overriding the
    architecture's default input size; crop: the central fraction of each image the model sees
    (ModelCard.crop). Raises ValueError for an unknown architecture and
    PretrainedWeightsUnavailable when the weights cannot be fetched.
    """
    import timm
    from timm.data import resolve_model_data_config

    if not timm.is_model(arch):
        raise ValueError(f"unknown timm architecture {arch!r} (see timm.list_models())")
    crop = validate_crop(crop)
    start_from = None  # a Mask Audit checkpoint (domain pretraining): backbone and heads both start from it
    if pretrained_file is not None:
        pretrained_file = Path(pretrained_file).expanduser()
        if not pretrained_file.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {pretrained_file}")
        pretrained = True
        start_from = _mask_audit_payload(pretrained_file)
        if start_from is not None:
            _check_pretrained_card(ModelCard.from_dict(start_from["card"]), arch, pretrained_file)
            pretrained = False
    try:
        backbone = _timm_create(arch, pretrained=pretrained, img_size=img_size, drop_rate=0.0,
                                pretrained_file=pretrained_file if start_from is None else None)
    except (OSError, RuntimeError, ConnectionError) as err:
        if not pretrained or pretrained_file is not None:
            raise
        if isinstance(err, PretrainedWeightsUnavailable):
            raise
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {arch!r} could not be downloaded ({type(err).__name__}); "
            "train from scratch with --no-pretrained, or pass --pretrained-file PATH "
            "(a local timm/torch state dict for this architecture)"
        ) from err

    config = resolve_model_data_config(backbone)
    input_size = tuple(int(v) for v in config["input_size"])
    if img_size is not None:
        input_size = (input_size[0], int(img_size[0]), int(img_size[1]))
    embedding_dim = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
    card = ModelCard(
        arch=arch,
        input_size=input_size,
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        interpolation=str(config.get("interpolation") or "bicubic"),
        crop=crop,
        bins=bins.to_dict(),
        has_age_regression=True,
        embedding_dim=embedding_dim,
        pretrained=str(pretrained_file) if pretrained_file is not None else ("imagenet" if pretrained else "none"),
        versions=library_versions(),
        created=_now(),
    )
    model = MaskAuditNet(backbone, embedding_dim, card, drop_rate=drop_rate)
    if start_from is not None:
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in start_from["state_dict"].items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise PretrainedFileMismatch(f"{pretrained_file} does not fit {arch!r}: {first}") from None
    return model


def _mask_audit_payload(path: Path) -> dict | None:
    """The payload of a Mask Audit checkpoint (format, card, state_dict), or None for any other file
    (a plain timm/torch state dict goes to timm as before)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file torch can read safely: timm gets to try (and explain)
        return None
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        return payload
    return None


def _check_pretrained_card(card: "ModelCard", arch: str, path: Path) -> None:
    if card.arch != arch:
        raise PretrainedFileMismatch(
            f"{path} was trained as {card.arch!r}, not {arch!r}: use --arch {card.arch} or another --pretrained-file")


def pretrained_card(path: str | Path) -> "ModelCard | None":
    """The model card of a Mask Audit checkpoint used as a starting point (None for other files):
    its input size and crop are the ones to fine-tune at."""
    payload = _mask_audit_payload(Path(path).expanduser())
    return ModelCard.from_dict(payload["card"]) if payload is not None else None


def library_versions() -> dict:
    import PIL
    import timm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------- checkpoints


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a folder holding `model.pt` -> the .pt file path."""
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix == "":
        return path / CHECKPOINT_NAME
    return path


def oof_path(checkpoint: str | Path) -> Path:
    """Where the out-of-fold probabilities of a checkpoint's training data live."""
    return resolve_checkpoint(checkpoint).parent / OOF_NAME


def save_checkpoint(model: MaskAuditNet, card: ModelCard, path: str | Path, *, half: bool = True) -> Path:
    """Write the weights (fp16 by default: half the size, no loss that matters for inference) to
    `path` (a .pt file, or a folder -> folder/model.pt) and the card to `path.with_suffix('.json')`."""
    path = resolve_checkpoint(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        state[key] = tensor.half() if half and tensor.is_floating_point() else tensor.clone()
    payload = {"format": CHECKPOINT_FORMAT, "card": json.loads(card.to_json()), "state_dict": state}
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    path.with_suffix(".json").write_text(card.to_json() + "\n", encoding="utf-8")
    return path


def read_card(path: str | Path) -> ModelCard:
    """The model card of a checkpoint (from the JSON beside it, else from the .pt)."""
    path = resolve_checkpoint(path)
    json_path = path.with_suffix(".json")
    if json_path.is_file():
        return ModelCard.from_json(json_path.read_text(encoding="utf-8"))
    return ModelCard.from_dict(_load_payload(path)["card"])


class CheckpointError(ValueError):
    """A file that is not a usable Mask Audit checkpoint (not one, cut short, other weights); one line."""


def _one_line(err: Exception, limit: int = 160) -> str:
    """An exception's first sentence on one line (torch's unpickling errors run to paragraphs)."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_payload(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (zip), OSError (cut short: Errno 22), EOFError
        raise CheckpointError(f"{path} is not a readable checkpoint (not a torch file, or cut short: "
                              f"{type(err).__name__}: {_one_line(err)}); train one with `python -m audit train`") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a Mask Audit checkpoint (expected format {CHECKPOINT_FORMAT})")
    if not isinstance(payload.get("card"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path} lacks its model card or weights (a damaged checkpoint)")
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[MaskAuditNet, ModelCard]:
    """Checkpoint (.pt or its folder) -> (model in eval mode, float32, on `device` or the best one; card).

    The card embedded in the .pt is authoritative: it was written with those weights.
    Raises FileNotFoundError when absent and CheckpointError (a ValueError, one line) for a file
    that is not a checkpoint, is cut short, or holds weights that do not fit its card.
    """
    path = resolve_checkpoint(path)
    payload = _load_payload(path)
    try:
        card = ModelCard.from_dict(payload["card"])
        model = create_model(card.arch, pretrained=False, bins=card.age_bins, img_size=card.image_size)
    except (TypeError, KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} holds a model card that cannot build a model ({_one_line(err)})") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()
             if isinstance(v, torch.Tensor)}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit the {card.arch} its card names "
                              f"({_one_line(err)})") from None
    model.card = card
    model.eval()
    return model.to(torch.device(device) if device is not None else best_device()), card


def checkpoint_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the checkpoint file's bytes."""
    return file_sha256(resolve_checkpoint(path))


# ---------------------------------------------------------------- preprocessing


def _interpolation_mode(name: str):
    """A card's interpolation name -> torchvision's InterpolationMode (bilinear when unknown)."""
    from torchvision.transforms import InterpolationMode

    try:
        return InterpolationMode(name)
    except ValueError:
        return InterpolationMode.BILINEAR


def load_rgb(img, size: tuple[int, int], interpolation="bilinear", crop: float = 1.0):
    """PIL image -> RGB PIL image of (H, W) = `size`, as the model sees it before normalising.

    crop < 1 keeps the central `crop` fraction of the height and width first (`crop_box`).
    JPEGs not yet loaded are decoded at a reduced scale (`Image.draft`, which keeps the image at
    least (W, H) / crop): DCT-domain downscaling is several times faster than a full decode plus resize.
    interpolation: an InterpolationMode or a card's name for one.
    """
    import torchvision.transforms.functional as TF

    h, w = size
    if getattr(img, "format", None) == "JPEG" and hasattr(img, "draft"):
        img.draft("RGB", (math.ceil(w / crop), math.ceil(h / crop)))
    img = img.convert("RGB")
    if crop < 1.0:
        img = img.crop(crop_box(img.size, crop))
    if img.size != (w, h):
        if isinstance(interpolation, str):
            interpolation = _interpolation_mode(interpolation)
        img = TF.resize(img, [h, w], interpolation=interpolation, antialias=True)
    return img


def crop_box(image_size: tuple[int, int], crop: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the central `crop` fraction of a (W, H) image, in pixels."""
    W, H = image_size
    cw, ch = max(1, round(W * crop)), max(1, round(H * crop))
    left, top = (W - cw) // 2, (H - ch) // 2
    return left, top, left + cw, top + ch


def validate_crop(crop: float) -> float:
    crop = float(crop)
    if not 0.2 <= crop <= 1.0:
        raise ValueError(f"crop must be within [0.2, 1] (the kept fraction of the image), got {crop}")
    return crop


class ImageTransform:
    """PIL image -> float tensor (3,H,W) normalised as the card says.

    JPEGs are decoded at a reduced scale (`Image.draft`) when the file is at least twice the
    input size: DCT-domain downscaling is several times faster than a full decode plus resize.
    """

    def __init__(self, card: ModelCard, *, train: bool = False):
        self.size = card.image_size
        self.mean = list(card.mean)
        self.std = list(card.std)
        self.train = train
        self.interpolation = _interpolation_mode(card.interpolation)
        self.crop = float(card.crop)
        self._augment = None
        if train:
            from torchvision import transforms as T

            # Flips keep every label; faces vary in scale, position and lighting. Kept moderate:
            # a full-range hue jitter stopped a from-scratch model learning the mask head within
            # 500 steps (held-out mask accuracy 0.25 vs 0.75 with hue=0.1, measured), and a hue
            # turn on 30% of images plus 15% greyscale cost out-of-fold mask accuracy (0.87-0.92
            # vs 0.97) without helping on unseen eval mask styles (BENCHMARKS.md "Classifier").
            self._augment = T.Compose([
                T.RandomHorizontalFlip(),
                T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.85, 1.1),
                               interpolation=T.InterpolationMode.BILINEAR),
                T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1),
            ])

    def __call__(self, img) -> torch.Tensor:
        return self.from_prepared(load_rgb(img, self.size, self.interpolation, self.crop))

    def from_prepared(self, img) -> torch.Tensor:
        """An image already cropped and resized by `load_rgb` (e.g. training's decode cache) ->
        tensor: augmentation (train) and normalisation only, so the crop is never applied twice."""
        import torchvision.transforms.functional as TF

        if img.size != (self.size[1], self.size[0]):
            raise ValueError(f"prepared image is {img.size[0]}x{img.size[1]} (W x H), expected "
                             f"{self.size[1]}x{self.size[0]}: pass it through load_rgb first")
        if self._augment is not None:
            img = self._augment(img)
        tensor = TF.to_tensor(img)
        return TF.normalize(tensor, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"ImageTransform(size={self.size}, crop={self.crop}, train={self.train}, "
                f"interpolation={self.interpolation.value})")


def create_eval_transform(card: ModelCard) -> ImageTransform:
    """Resize to the card's input size and normalise: PIL image -> (3,H,W) float tensor."""
    return ImageTransform(card, train=False)


def create_train_transform(card: ModelCard) -> ImageTransform:
    """Eval preprocessing plus augmentation (flip, small affine, colour jitter)."""
    return ImageTransform(card, train=True)
