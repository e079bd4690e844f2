"""Replacing a file whole: readers see the old contents or the new, never part of either, and a
failed write leaves the old file as it was."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["PUBLIC_FILE", "write_atomically"]

PUBLIC_FILE = 0o644
"""The ``mode`` of a file others read (bundles, a registry's files), less the umask."""


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data``: written to a temporary file beside it, synced, renamed
    over it, then the directory synced (where the filesystem can) so the rename lasts.

    Args:
        path: the file to replace (or create).
        data: its new contents.
        mode: the new file's permissions, less the umask (``0o644`` for a file others
            read: a bundle, a registry's index); by default readable by its owner only, as
            grants and keys must be.

    Raises:
        OSError: the file could not be written; ``path`` is unchanged and no temporary file
            is left behind.
    """
    directory = path.parent
    fd, tmp = _temporary(path, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Some filesystems cannot fsync a directory; the file is complete either way.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _temporary(path: Path, mode: int | None) -> tuple[int, str]:
    """A new temporary file beside ``path``, open for writing: mode 0600, or ``mode`` with
    the umask applied by the kernel as it creates it."""
    prefix, suffix = f".{path.name}.", ".tmp"
    if mode is None:
        return tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(path.parent / f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:  # another writer's name: draw again
            continue
