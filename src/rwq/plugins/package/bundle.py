"""Plugin bundles: a directory or a ``.zip`` holding a manifest, an entry point and assets.

The layout follows the design document (``manifest.yaml``, ``main.wasm`` or ``main.star``,
``assets/``, ``docs/``, ``tests/``; other files are allowed). :func:`open_bundle` refuses
anything that could escape the bundle or exhaust the host: links, special files, paths with
``..``, absolute or backslashed names, oversize files and archives, zip bombs, encrypted
entries. A zip is extracted once per content hash, atomically, into ``extract_dir``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from rwq.errors import RwqError
from rwq.plugins.package.file_list import SIGNATURE, FileListError, verify_files
from rwq.plugins.package.manifest import (
    MANIFEST_NAMES,
    MAX_MANIFEST_BYTES,
    PluginManifest,
    parse_manifest_yaml,
)
from rwq.plugins.package.version import Version

_MiB = 1024 * 1024
_CHUNK = 64 * 1024
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = b"PK\x06\x07"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

IGNORED_NAMES = frozenset({".git", ".hg", ".svn", "__pycache__", ".DS_Store", "node_modules"})
"""Entries of a directory bundle that are skipped (version control, OS and build litter: an
AssemblyScript plugin's compiler lives in its ``node_modules``); they are neither hashed nor
readable through the bundle."""


@dataclass(frozen=True)
class BundleLimits:
    """What a bundle may hold; larger ones are refused."""

    max_file_bytes: int = 16 * _MiB
    max_total_bytes: int = 64 * _MiB
    """Sum of the (uncompressed) file sizes."""
    max_files: int = 2000
    max_archive_bytes: int = 64 * _MiB
    """Size of a ``.zip`` file itself."""
    max_ratio: float = 200.0
    """Largest compression ratio of a zip entry of at least ``ratio_min_bytes``."""
    ratio_min_bytes: int = 1 * _MiB
    max_path_length: int = 255
    max_depth: int = 16

    @property
    def max_entries(self) -> int:
        """Zip entries, directory entries included."""
        return 2 * self.max_files


DEFAULT_LIMITS = BundleLimits()


class BundleError(RwqError):
    """A bundle is unsafe, malformed or incomplete."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class BundleModified(BundleError):
    """A packed bundle's files are not those its file list names: changed since it was packed
    (and signed, when it carries a signature)."""

    def __init__(self, path: Path | str, reason: str, signed: bool) -> None:
        self.signed = signed
        super().__init__(path, reason)


@dataclass(frozen=True)
class Bundle:
    """An opened, checked plugin bundle."""

    path: Path
    """Where the bundle was found (the directory or the ``.zip``)."""
    manifest: PluginManifest
    sha256: str
    """Hex digest: of the zip file's bytes, or of a directory's sorted paths and contents."""
    kind: Literal["dir", "zip"]
    root: Path
    """The directory the bundle's files can be read from (an extraction for a zip)."""
    entry_point: Path
    size: int
    """Total bytes of the bundle's files."""
    files: tuple[str, ...]
    """Relative POSIX paths of every file, sorted."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> Version:
        return self.manifest.version


def open_bundle(
    path: Path,
    *,
    extract_dir: Path | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> Bundle:
    """Open and check the bundle at ``path``: a directory or a ``.zip`` file.

    Args:
        path: The bundle.
        extract_dir: Where zips are extracted (``<extract_dir>/<name>-<sha256[:12]>/``);
            required for a zip.
        limits: Size and count limits.

    Raises:
        BundleError: the bundle is unsafe, too large, or lacks a manifest or entry point.
        ManifestError: the manifest is invalid.
    """
    path = Path(path)
    if path.is_dir():
        return _open_dir(path, limits)
    if path.is_file() and path.suffix.lower() == ".zip":
        if extract_dir is None:
            raise BundleError(path, "a zip bundle needs a directory to extract to")
        return _listed(_open_zip(path, Path(extract_dir), limits))
    if not path.exists():
        raise BundleError(path, "does not exist")
    raise BundleError(path, "not a bundle: expected a directory or a .zip file")


def _listed(bundle: Bundle, digests: Mapping[str, str] | None = None) -> Bundle:
    """``bundle`` once its files are those its file list names, if it has one (a packed
    bundle): a file added, removed or changed since it was packed is refused, named.
    ``digests``: each file's SHA-256 hex, when the caller hashed them already."""
    try:
        verify_files(bundle.path, bundle.root, bundle.files, digests)
    except FileListError as exc:
        raise BundleModified(bundle.path, exc.reason, SIGNATURE in bundle.files) from None
    return bundle


# -- directories ---------------------------------------------------------------------------


def _open_dir(path: Path, limits: BundleLimits) -> Bundle:
    root = path.resolve()  # the bundle itself may be a link (a plugin under development)
    found = _scan_dir(path, root, limits)
    digest = hashlib.sha256()
    manifest_name = _manifest_name(path, [rel for rel, _ in found])
    manifest_text = b""
    total = 0
    digests: dict[str, str] = {}
    for rel, size in found:
        data_hash, data = _hash_file(path, root, rel, size, keep=rel == manifest_name)
        digests[rel] = data_hash.hex()
        # Framing (name, NUL, size) keeps ("ab", "c") and ("a", "bc") from colliding.
        digest.update(rel.encode("utf-8") + b"\0" + size.to_bytes(8, "big") + data_hash)
        total += size
        if data is not None:
            manifest_text = data
    manifest = parse_manifest_yaml(manifest_text, root / manifest_name)
    files = tuple(rel for rel, _ in found)
    _require_entry_point(path, manifest, files)
    bundle = Bundle(
        path=path,
        manifest=manifest,
        sha256=digest.hexdigest(),
        kind="dir",
        root=root,
        entry_point=root / manifest.entry_point,
        size=total,
        files=files,
    )
    return _listed(bundle, digests)


def _scan_dir(path: Path, root: Path, limits: BundleLimits) -> list[tuple[str, int]]:
    """Every file under ``root`` as (relative path, size), sorted, checked against limits."""
    found: list[tuple[str, int]] = []
    total = 0
    pending: list[tuple[Path, str, int]] = [(root, "", 0)]
    while pending:
        directory, prefix, depth = pending.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            raise BundleError(path, f"cannot list {prefix or '.'}: {exc.strerror}") from None
        for entry in entries:
            if entry.name in IGNORED_NAMES:
                continue
            rel = prefix + entry.name
            if entry.is_symlink():
                raise BundleError(path, f"{rel} is a symbolic link; bundles may not hold links")
            if entry.is_dir(follow_symlinks=False):
                if depth + 1 >= limits.max_depth:
                    raise BundleError(path, f"{rel}: nested deeper than {limits.max_depth}")
                pending.append((Path(entry.path), rel + "/", depth + 1))
                continue
            if not entry.is_file(follow_symlinks=False):
                raise BundleError(path, f"{rel} is not a regular file")
            size = entry.stat(follow_symlinks=False).st_size
            total += size
            _check_sizes(path, rel, size, total, len(found) + 1, limits)
            found.append((rel, size))
    found.sort()
    return found


def _hash_file(
    path: Path, root: Path, rel: str, size: int, *, keep: bool
) -> tuple[bytes, bytes | None]:
    """The sha256 of one file (and its bytes when ``keep``), refusing a file swapped for a
    link or grown since it was listed."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(root / rel, flags)
    except OSError as exc:
        raise BundleError(path, f"cannot read {rel}: {exc.strerror}") from None
    digest = hashlib.sha256()
    kept: list[bytes] = []
    read = 0
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise BundleError(path, f"{rel} is not a regular file")
        while chunk := fh.read(_CHUNK):
            read += len(chunk)
            if read > size:
                break
            digest.update(chunk)
            if keep:
                kept.append(chunk)
    if read != size:
        raise BundleError(path, f"{rel} changed while it was being read")
    return digest.digest(), b"".join(kept) if keep else None


# -- zip archives --------------------------------------------------------------------------


def _open_zip(path: Path, extract_dir: Path, limits: BundleLimits) -> Bundle:
    with path.open("rb") as fh:
        archive_size = os.fstat(fh.fileno()).st_size
        if archive_size > limits.max_archive_bytes:
            raise BundleError(
                path, f"archive is {archive_size} bytes, over the {limits.max_archive_bytes} limit"
            )
        # Hash the very bytes zipfile will read: one open file, read twice.
        digest = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
        sha256 = digest.hexdigest()
        _check_end_record(path, fh, archive_size, limits)
        try:
            with zipfile.ZipFile(fh) as archive:
                members = _check_members(path, archive, limits)
                files = tuple(rel for _, rel in members)
                manifest_name = _manifest_name(path, list(files))
                info = next(i for i, rel in members if rel == manifest_name)
                with archive.open(info) as src:
                    text = src.read(MAX_MANIFEST_BYTES + 1)
                manifest = parse_manifest_yaml(text, f"{path}!{manifest_name}")
                _require_entry_point(path, manifest, files)
                root = _extract(path, archive, members, extract_dir, manifest.name, sha256, limits)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
            OSError,
            struct.error,
        ) as exc:
            raise BundleError(path, f"corrupt or unsupported archive: {exc}") from None
    return Bundle(
        path=path,
        manifest=manifest,
        sha256=sha256,
        kind="zip",
        root=root,
        entry_point=root / manifest.entry_point,
        size=sum(info.file_size for info, _ in members),
        files=files,
    )


_CD_BYTES_PER_ENTRY = 1024
"""Central-directory bytes allowed per permitted entry (46 fixed, a name, extra fields)."""


def _check_end_record(path: Path, fh: IO[bytes], size: int, limits: BundleLimits) -> None:
    # zipfile loads the whole central directory into memory before we can count entries;
    # read the entry count from the end record first so a million-entry archive costs nothing.
    tail_size = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise BundleError(path, "not a zip archive (no end of central directory record)")
    _sig, disk, cd_disk, _disk_entries, entries, cd_size, cd_offset, _comment = _EOCD.unpack_from(
        tail, at
    )
    if (
        entries == 0xFFFF
        or cd_size == 0xFFFFFFFF
        or cd_offset == 0xFFFFFFFF
        or (at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR)
    ):
        raise BundleError(path, "ZIP64 archives are not supported")
    if disk or cd_disk:
        raise BundleError(path, "multi-part archives are not supported")
    if entries > limits.max_entries:
        raise BundleError(path, f"{entries} entries, over the {limits.max_entries} limit")
    # zipfile parses the whole central directory whatever count the end record claims: bound
    # its size too (an entry with a name under 1 KiB takes far less than this).
    if cd_size > limits.max_entries * _CD_BYTES_PER_ENTRY:
        raise BundleError(
            path, f"a {cd_size}-byte central directory, too large for {limits.max_entries} entries"
        )
    fh.seek(0)


def _check_members(
    path: Path, archive: zipfile.ZipFile, limits: BundleLimits
) -> list[tuple[zipfile.ZipInfo, str]]:
    """The archive's file entries with their relative paths, after every safety check."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise BundleError(path, f"{len(infos)} entries, over the {limits.max_entries} limit")
    seen: dict[str, str] = {}
    directories: set[str] = set()
    members: list[tuple[zipfile.ZipInfo, str]] = []
    total = 0
    for info in infos:
        name = info.filename
        problem = _unsafe_name(name, limits)
        if problem:
            raise BundleError(path, f"entry {name!r}: {problem}")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise BundleError(
                path, f"entry {name!r} is a symbolic link; bundles may not hold links"
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(path, f"entry {name!r} is not a regular file")
        if info.flag_bits & 0x1:
            raise BundleError(path, f"entry {name!r} is encrypted")
        rel = name.rstrip("/")
        # Case and Unicode form differ between filesystems; two names that land on one
        # file would let the second silently replace the first after hashing.
        key = unicodedata.normalize("NFC", rel).casefold()
        if key in seen:
            raise BundleError(path, f"entry {name!r} duplicates {seen[key]!r}")
        seen[key] = name
        if info.is_dir():
            directories.add(key)
            continue
        total += info.file_size
        _check_sizes(path, rel, info.file_size, total, len(members) + 1, limits)
        if info.file_size >= limits.ratio_min_bytes and (
            info.compress_size == 0 or info.file_size / info.compress_size > limits.max_ratio
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise BundleError(
                path,
                f"entry {name!r} inflates {ratio:.0f}:1, over the {limits.max_ratio:.0f}:1 limit",
            )
        members.append((info, rel))
    file_keys = set(seen) - directories
    for key, name in seen.items():
        parts = key.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in file_keys:
                raise BundleError(path, f"entry {name!r} is inside a file, not a directory")
    members.sort(key=lambda m: m[1])
    return members


def _unsafe_name(name: str, limits: BundleLimits) -> str | None:
    if not name:
        return "empty name"
    if name.startswith("/"):
        return "absolute path"
    if "\\" in name:
        return "backslash in the name"
    if ":" in name:
        return "':' in the name (a drive or stream on Windows)"
    if _CONTROL.search(name):
        return "control character in the name"
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "'..', '.' or empty path component"
    if len(name) > limits.max_path_length:
        return f"name longer than {limits.max_path_length}"
    if len(parts) > limits.max_depth:
        return f"nested deeper than {limits.max_depth}"
    return None


def _extract(
    path: Path,
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, str]],
    extract_dir: Path,
    name: str,
    sha256: str,
    limits: BundleLimits,
) -> Path:
    final = extract_dir / f"{name}-{sha256[:12]}"
    if final.is_dir():
        return final  # the same bytes were extracted before (renamed into place complete)
    try:
        extract_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=extract_dir))
    except OSError as exc:
        raise BundleError(path, f"cannot extract to {extract_dir}: {exc.strerror}") from None
    try:
        total = 0
        for info, rel in members:
            target = staging.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("xb") as dst:
                written = 0
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    # Declared sizes are the attacker's word; count what actually comes out.
                    if written > min(info.file_size, limits.max_file_bytes):
                        raise BundleError(path, f"entry {rel!r} inflates past its declared size")
                    if total > limits.max_total_bytes:
                        raise BundleError(
                            path, f"contents exceed the {limits.max_total_bytes} byte limit"
                        )
                    dst.write(chunk)
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process extracted it first
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(path, f"cannot extract to {extract_dir}: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


# -- shared --------------------------------------------------------------------------------


def _check_sizes(
    path: Path, rel: str, size: int, total: int, count: int, limits: BundleLimits
) -> None:
    if size > limits.max_file_bytes:
        raise BundleError(path, f"{rel} is {size} bytes, over the {limits.max_file_bytes} limit")
    if total > limits.max_total_bytes:
        raise BundleError(path, f"contents exceed the {limits.max_total_bytes} byte limit")
    if count > limits.max_files:
        raise BundleError(path, f"more than {limits.max_files} files")


def _manifest_name(path: Path, files: list[str]) -> str:
    present = [name for name in MANIFEST_NAMES if name in files]
    if len(present) > 1:
        raise BundleError(path, f"both {' and '.join(present)}; keep one")
    if present:
        return present[0]
    nested = [f for f in files if f.rsplit("/", 1)[-1] in MANIFEST_NAMES]
    hint = f" (found {nested[0]}; it must be at the top of the bundle)" if nested else ""
    raise BundleError(path, f"no {MANIFEST_NAMES[0]}{hint}")


def _require_entry_point(path: Path, manifest: PluginManifest, files: tuple[str, ...]) -> None:
    if manifest.entry_point not in files:
        sources = manifest.runtime == "wasm" and any(f.endswith((".c", ".ts")) for f in files)
        hint = f": build it first with rwq plugin build {path}" if sources else ""
        raise BundleError(
            path, f"entry point {manifest.entry_point!r} named by the manifest is missing{hint}"
        )
