"""The grants file: the records it holds, its JSON format, and how it is changed safely.

Every change rewrites the whole file under an exclusive lock and replaces it atomically, so
two processes never lose each other's changes and a crash mid-write loses nothing. The
record dataclasses *are* the format: changing a field means bumping :data:`FORMAT`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from rwq.atomic_file import write_atomically
from rwq.errors import RwqError
from rwq.plugins.trust.scope import Scope

FORMAT = 1
"""Version of the grants file format this module reads and writes. Fields added with a
default (``Grant.signer``) keep it: an older file reads as it was written."""

Binding = tuple[str, str]
"""A plugin's ``(version, bundle_hash)``."""

Stamp = tuple[int, int, int]
"""What tells one version of the file from another: ``(inode, mtime_ns, size)``."""


def show_binding(binding: Binding) -> str:
    """A binding as messages show it: the version and the start of the bundle hash."""
    version, bundle_hash = binding
    return f"{version} ({bundle_hash[:19]})"


def show_signer(signer: Signer | None) -> str:
    """Who signed a binding, as messages show it."""
    return "unsigned" if signer is None else f"signed by {signer.name} ({signer.fingerprint})"


def show_time(when: float) -> str:
    """A wall-clock time as messages show it: local ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))


class GrantStoreError(RwqError):
    """The grants file cannot be read or written; a bad file is left as it is."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """The publisher key whose valid signature a bundle carried when it was granted."""

    name: str
    fingerprint: str


@dataclass(frozen=True)
class Grant:
    """Permissions given to one binding (version + bundle hash) of a plugin."""

    plugin: str
    permissions: frozenset[str]
    scope: Scope
    expires_at: float | None
    granted_by: str
    granted_at: float
    """When this record was made: approved, or carried over to this binding."""
    plugin_version: str
    bundle_hash: str
    rebound_from: Binding | None = None
    """The binding these grants were carried over from by an update, if any."""
    signer: Signer | None = None
    """Whose valid signature the binding carried (None: unsigned, or not validly signed).
    Grants carry over to a new binding only when a trusted key with this fingerprint signs it."""

    @property
    def binding(self) -> Binding:
        return (self.plugin_version, self.bundle_hash)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Denial:
    """Permissions the user (or a policy) refused to a plugin; remembered across versions."""

    plugin: str
    permissions: frozenset[str]
    denied_by: str
    denied_at: float
    plugin_version: str
    bundle_hash: str


# -- the format -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _GrantsFile:
    format: int
    grants: tuple[Grant, ...] = ()
    denials: tuple[Denial, ...] = ()


_FILE = TypeAdapter(_GrantsFile)


def _dump(grants: Sequence[Grant], denials: Sequence[Denial]) -> bytes:
    data = _FILE.dump_python(_GrantsFile(FORMAT, tuple(grants), tuple(denials)), mode="json")
    for record in (*data["grants"], *data["denials"]):
        record["permissions"].sort()  # frozensets: a stable order keeps diffs readable
    return (json.dumps(data, indent=1) + "\n").encode()


def parse(raw: bytes) -> tuple[tuple[Grant, ...], tuple[Denial, ...]]:
    """Grants and denials of a grants file; ``ValueError`` names the field at fault."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    fmt = data.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise ValueError(f"format {fmt} was written by a newer rwq (this one reads {FORMAT})")
    if fmt != FORMAT:
        raise ValueError(f"format: expected {FORMAT}, got {fmt!r}")
    try:
        parsed = _FILE.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None
    return parsed.grants, parsed.denials


# -- on disk --------------------------------------------------------------------------------


def stamp(path: Path) -> Stamp | None:
    """The stamp of the file at ``path`` now; ``None`` when there is none."""
    try:
        return _stamp_of(os.stat(path))
    except FileNotFoundError:
        return None


def read(path: Path) -> tuple[bytes, Stamp]:
    """The content of the file at ``path`` and the stamp of what was read.

    Raises:
        OSError: the file cannot be read (``FileNotFoundError`` when there is none).
    """
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        raw = handle.read()
    return raw, _stamp_of(st)


def _stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of the grants file at ``path`` (a ``.lock`` file beside it),
    creating its directory if needed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise GrantStoreError(path, f"cannot lock: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write(path: Path, grants: Sequence[Grant], denials: Sequence[Denial]) -> None:
    """Replace the file at ``path`` with ``grants`` and ``denials``, atomically and durably.

    Raises:
        GrantStoreError: the file could not be written (the old one is left as it was).
    """
    try:
        write_atomically(path, _dump(grants, denials))
    except OSError as exc:
        raise GrantStoreError(path, f"cannot write: {exc}") from exc
