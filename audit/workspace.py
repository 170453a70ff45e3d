"""Where the app keeps what it makes: the demo dataset, runs, thumbnails, reviews, exports.

The workspace defaults to `./workspace` (git-ignored) and can be moved with MASK_AUDIT_WORKSPACE.
The dataset defaults to the demo and can be set with MASK_AUDIT_DATA (or `--data` / the sidebar).
"""
from __future__ import annotations

import os
from pathlib import Path

WORKSPACE_ENV = "MASK_AUDIT_WORKSPACE"
DATA_ENV = "MASK_AUDIT_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO_ROOT / "weights"
DEMO_WEIGHTS = WEIGHTS_DIR / "demo"


def workspace_dir() -> Path:
    path = Path(os.environ.get(WORKSPACE_ENV) or REPO_ROOT / "workspace").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_data_dir() -> Path:
    return workspace_dir() / "demo"


def runs_dir() -> Path:
    return workspace_dir() / "runs"


def configured_data_dir() -> Path | None:
    """The dataset named by MASK_AUDIT_DATA, or None for the demo."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None
