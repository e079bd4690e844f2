"""A bundle's file list: every file's SHA-256, ``sha256sum``-style, made when a bundle is packed
and checked whenever it is opened."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from rwq.errors import RwqError

__all__ = ["FILE_LIST", "SIGNATURE", "FileListError", "file_list", "read_file_list", "verify_files"]

FILE_LIST = "FILES.sha256"
"""The file list inside a packed bundle: ``<sha256>  <path>`` per file, sorted by path (the
format of ``sha256sum``, so ``sha256sum -c FILES.sha256`` checks an unpacked bundle)."""
SIGNATURE = "SIGNATURE.json"
"""A signed bundle's signature (``rwq plugin sign``): beside the file list, not in it."""
_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")


class FileListError(RwqError):
    """A bundle's file list is malformed, or its files are not the ones it lists."""

    def __init__(self, bundle: Path, reason: str) -> None:
        self.bundle = bundle
        self.reason = reason
        super().__init__(f"{bundle}: {reason}")


def file_list(root: Path, files: tuple[str, ...]) -> bytes:
    """The file list of ``files`` (relative POSIX paths under ``root``), the list left out."""
    lines = []
    for rel in sorted(f for f in files if f not in (FILE_LIST, SIGNATURE)):
        digest = hashlib.sha256()
        with (root / rel).open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {rel}\n")
    return "".join(lines).encode("utf-8")


def read_file_list(bundle: Path, text: bytes) -> dict[str, str]:
    """Path -> SHA-256 hex from a file list's ``text``.

    Raises:
        FileListError: a line is not ``<64 hex>  <path>``, or a path is listed twice.
    """
    listed: dict[str, str] = {}
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        match = _LINE.match(line)
        if match is None:
            raise FileListError(bundle, f"{FILE_LIST} line {number}: expected '<sha256>  <path>'")
        digest, rel = match.groups()
        if rel in listed:
            raise FileListError(bundle, f"{FILE_LIST} line {number}: {rel} is listed twice")
        listed[rel] = digest
    return listed


def verify_files(
    bundle: Path, root: Path, files: tuple[str, ...], digests: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """The file list of the bundle at ``bundle`` (its ``files`` under ``root``) once every
    file matches it; None when it has none. ``digests`` (path -> SHA-256 hex) saves hashing
    the files again when the caller has.

    Raises:
        FileListError: a file was added, removed or changed since the list was made (named).
    """
    if FILE_LIST not in files:
        return None
    listed = read_file_list(bundle, (root / FILE_LIST).read_bytes())
    present = {f for f in files if f not in (FILE_LIST, SIGNATURE)}
    added = sorted(present - listed.keys())
    if added:
        raise FileListError(bundle, f"{added[0]} is not in {FILE_LIST} (added since packed)")
    missing = sorted(listed.keys() - present)
    if missing:
        raise FileListError(bundle, f"{missing[0]} is in {FILE_LIST} but not in the bundle")
    actual = (
        dict(digests) if digests is not None else read_file_list(bundle, file_list(root, files))
    )
    changed = sorted(rel for rel, digest in listed.items() if actual[rel] != digest)
    if changed:
        raise FileListError(bundle, f"{changed[0]} changed since it was packed")
    return listed
