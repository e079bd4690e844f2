"""Reading a registry: from a directory (a path or a ``file://`` URL) or over HTTP(S). Every read
is capped while it streams, so a hostile or broken server can neither fill the disk nor hold a
command forever; each error names the registry and the file."""

from __future__ import annotations

import abc
import os
import re
import stat
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.index import (
    INDEX_FILE,
    MAX_BUNDLE_BYTES,
    MAX_INDEX_BYTES,
    RegistryIndex,
    parse_index,
)

__all__ = [
    "DirectorySource",
    "HttpSource",
    "RegistrySource",
    "Sink",
    "open_source",
    "registry_directory",
]

TIMEOUT_S = 30.0
"""Longest wait for a connection or for the next bytes of a response."""
_CHUNK = 64 * 1024


class Sink(Protocol):
    """Where downloaded bytes go (a file opened for writing, or anything that takes them)."""

    def write(self, data: bytes, /) -> int: ...


class RegistrySource(abc.ABC):
    """Where a registry's index and bundles are read from."""

    location: str
    """The registry as the user wrote it (a URL or a directory): what errors name."""

    def read_index(self) -> RegistryIndex:
        """The registry's checked index.

        Raises:
            RegistryError: it cannot be read, is over :data:`MAX_INDEX_BYTES` or malformed.
        """
        return parse_index(self.read(INDEX_FILE, MAX_INDEX_BYTES), self.describe(INDEX_FILE))

    def read(self, rel: str, limit: int) -> bytes:
        """The file ``rel`` (a path the index checked) whole, at most ``limit`` bytes."""
        chunks: list[bytes] = []
        self._stream(rel, limit, _Collect(chunks))
        return b"".join(chunks)

    def download(self, rel: str, limit: int, target: Sink) -> int:
        """Write the file ``rel`` to ``target``, refusing it once it passes ``limit`` bytes;
        the bytes written."""
        return self._stream(rel, min(limit, MAX_BUNDLE_BYTES), target)

    def describe(self, rel: str) -> str:
        """Where ``rel`` is read from, for messages."""
        return f"{self.location.rstrip('/')}/{rel}"

    @abc.abstractmethod
    def _stream(self, rel: str, limit: int, target: Sink) -> int: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release what reading held (connections)."""

    def __enter__(self) -> RegistrySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Collect:
    """A write target that keeps the chunks in memory (small files: the index)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def write(self, data: bytes) -> int:
        self.chunks.append(data)
        return len(data)


def _too_large(where: str, limit: int) -> str:
    return f"{where} is larger than {limit} bytes; refused"


class DirectorySource(RegistrySource):
    """A registry in a local directory."""

    def __init__(self, location: str, root: Path) -> None:
        self.location = location
        self.root = root

    def _stream(self, rel: str, limit: int, target: Sink) -> int:
        where = self.describe(rel)
        if not self.root.is_dir():
            raise RegistryError(self.location, "no such registry directory")
        path = self.root / rel
        try:
            # The index holds plain relative names; a link must not lead out of the registry.
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise RegistryError(self.location, f"{rel} leads out of the registry")
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise RegistryError(self.location, f"{rel}: not found") from None
        except OSError as exc:
            raise RegistryError(self.location, f"cannot read {rel}: {exc.strerror}") from None
        written = 0
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RegistryError(self.location, f"{rel} is not a regular file")
            if info.st_size > limit:
                raise RegistryError(self.location, _too_large(rel, limit))
            while chunk := fh.read(_CHUNK):
                written += len(chunk)
                if written > limit:  # grown since it was looked at
                    raise RegistryError(self.location, _too_large(where, limit))
                target.write(chunk)
        return written

    def close(self) -> None:
        """Nothing is held between reads of a directory."""


class HttpSource(RegistrySource):
    """A registry served over HTTP(S) by any static file server."""

    def __init__(self, location: str, *, timeout: float = TIMEOUT_S) -> None:
        self.location = location
        self.base = location if location.endswith("/") else location + "/"
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": "rwq-plugin-registry", "Accept-Encoding": "identity"},
            trust_env=True,
        )

    def _stream(self, rel: str, limit: int, target: Sink) -> int:
        url = self.base + rel  # rel is plain names joined by '/', checked by the index
        written = 0
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    # The standard phrase, not the server's words.
                    reason = httpx.codes.get_reason_phrase(response.status_code) or "error"
                    raise RegistryError(
                        self.location, f"{rel}: HTTP {response.status_code} {reason}"
                    )
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise RegistryError(self.location, _too_large(rel, limit))
                for chunk in response.iter_bytes(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise RegistryError(self.location, _too_large(rel, limit))
                    target.write(chunk)
        except httpx.TimeoutException:
            raise RegistryError(self.location, f"{rel}: timed out") from None
        except httpx.HTTPError as exc:
            raise RegistryError(self.location, f"{rel}: {_failure(exc)}") from None
        return written

    def close(self) -> None:
        self.client.close()


def _failure(exc: httpx.HTTPError) -> str:
    """What went wrong in words, without the exception class or the errno:
    ``cannot connect (connection refused)``."""
    said = re.sub(r"^\[Errno -?\d+\] ", "", str(exc).strip()).rstrip(".")
    said = said[:1].lower() + said[1:]
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({said})" if said else "cannot connect"
    return said or type(exc).__name__


def open_source(location: str, *, timeout: float = TIMEOUT_S) -> RegistrySource:
    """The source of the registry at ``location``: an ``http(s)://`` URL, a ``file://`` URL or
    a directory.

    Raises:
        RegistryError: another scheme, or a URL without a host.
    """
    directory = registry_directory(location)
    if directory is not None:
        return DirectorySource(location, directory)
    parts = urlsplit(location)
    if not parts.hostname:
        raise RegistryError(location, "the URL names no host")
    if parts.query or parts.fragment:
        raise RegistryError(location, "a registry URL has no query or fragment")
    return HttpSource(location, timeout=timeout)


def registry_directory(location: str) -> Path | None:
    """The directory of the registry at ``location`` (a path or a ``file://`` URL); None when
    it is an ``http(s)://`` URL.

    Raises:
        RegistryError: another scheme, or a ``file://`` URL naming another host.
    """
    parts = urlsplit(location)
    scheme = parts.scheme.lower() if "://" in location else ""
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise RegistryError(location, "a file:// registry is on this machine (file:///PATH)")
        return Path(unquote(parts.path))
    if scheme:
        raise RegistryError(
            location, "a registry is an http://, https:// or file:// URL, or a directory"
        )
    return Path(location).expanduser()
