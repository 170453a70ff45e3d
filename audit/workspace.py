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
DEMO_DIR_NAME = "demo"
# Folders the app's sidebar may open, separated by os.pathsep (unset: any folder; the server binds
# to localhost by default, see .streamlit/config.toml). Set it before serving the app to a team.
DATA_ROOTS_ENV = "MASK_AUDIT_DATA_ROOTS"


def workspace_dir() -> Path:
    path = Path(os.environ.get(WORKSPACE_ENV) or REPO_ROOT / "workspace").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_data_dir() -> Path:
    return workspace_dir() / DEMO_DIR_NAME


def runs_dir() -> Path:
    return workspace_dir() / "runs"


def configured_data_dir() -> Path | None:
    """The dataset named by MASK_AUDIT_DATA, or None for the demo."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def allowed_data_roots() -> list[Path] | None:
    """The folders MASK_AUDIT_DATA_ROOTS allows (resolved), or None when it is not set."""
    value = os.environ.get(DATA_ROOTS_ENV, "").strip()
    if not value:
        return None
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def data_root_allowed(path: str | Path) -> bool:
    """True when `path` (resolved: symlinks and `..` followed) lies inside an allowed root.

    The built-in demo and the folder the server was started with are always allowed; callers
    check only folders typed into the app.
    """
    roots = allowed_data_roots()
    if roots is None:
        return True
    try:
        target = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    return any(target == root or root in target.parents for root in roots)
