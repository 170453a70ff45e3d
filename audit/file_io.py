"""Small file primitives shared by the library: content hashes, atomic writes, and why a path
is not the kind of file a caller wants."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Mapping


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(fh)` on a temporary file beside `path`, then rename it into place.

    Readers never see half a file, and a crash leaves at most a stray `.tmp` file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def path_kind(path: Path) -> tuple[str, str]:
    """What is at `path`: (kind, detail). kind: "broken_link" (detail: the link's target),
    "missing", "unreadable" (detail: the OS error), "folder", "fifo", "file" (a regular file) or
    "other" (a socket or device); detail is "" for the others."""
    if path.is_symlink() and not path.exists():
        return "broken_link", os.readlink(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing", ""
    except OSError as err:
        return "unreadable", str(err.strerror or err)
    if stat.S_ISDIR(mode):
        return "folder", ""
    if stat.S_ISFIFO(mode):
        return "fifo", ""
    if stat.S_ISREG(mode):
        return "file", ""
    return "other", ""


def path_problem(path: Path, messages: Mapping[str, str], *, show: Callable[[object], str] = str) -> str | None:
    """Why `path` is not what the caller wants, in one line: the message for its `path_kind`, with
    `{path}` and `{detail}` filled in (`show` writes paths and link targets into it); None for a kind
    without a message (the kind wanted)."""
    kind, detail = path_kind(path)
    message = messages.get(kind)
    if message is None:
        return None
    return message.format(path=show(path), detail=show(detail) if kind == "broken_link" else detail)
