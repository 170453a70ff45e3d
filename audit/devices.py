"""Which torch device does the work: the one place that knows (training, prediction, serving,
Grad-CAM all ask here)."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None or "auto" -> CUDA when present, else CPU; a named device must exist (ValueError, one line)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {str(device)!r}: use cuda, cpu or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return device


def best_device() -> torch.device:
    """CUDA when present, else CPU."""
    return resolve_device(None)


def describe_device(device: torch.device) -> str:
    """ "cpu", or "cuda (NVIDIA H200)": for model cards and run metadata."""
    return str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
