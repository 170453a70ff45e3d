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


class OutputFolderRefused(ValueError):
    """A folder no command may write its files into. `kind`: "inside_data" (the dataset or a folder
    inside it: the user's), "link" (a symbolic link), "not_a_folder", "unlistable" (`error`: the OS error)."""

    def __init__(self, kind: str, error: str = ""):
        super().__init__(f"{kind}{': ' + error if error else ''}")
        self.kind = kind
        self.error = error


def output_folder_entries(folder: Path, *, data_root: str | Path | None = None,
                          links: tuple[Path, ...] = ()) -> list[tuple[str, bool]] | None:
    """What a folder a command wants to write its files into holds: None when it does not exist,
    else its entries sorted by name as (name, a regular file and not a link). OutputFolderRefused
    when it lies in `data_root`, when it (or one of `links`) is a symbolic link, when it is not a
    folder or cannot be listed. Whether what it holds may be replaced is the caller's own rule."""
    if data_root is not None and folder.absolute().resolve().is_relative_to(Path(data_root).resolve()):
        raise OutputFolderRefused("inside_data")
    if folder.is_symlink() or any(link.is_symlink() for link in links):
        raise OutputFolderRefused("link")
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise OutputFolderRefused("not_a_folder")
    try:
        with os.scandir(folder) as it:
            return sorted((e.name, e.is_file(follow_symlinks=False)) for e in it)
    except OSError as err:
        raise OutputFolderRefused("unlistable", str(err.strerror or err)) from None
