"""``rwq plugin publish``: a packed bundle added to a directory registry, its index rewritten
atomically under a lock so publishers running at once each add their version."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rwq.atomic_file import PUBLIC_FILE, write_atomically
from rwq.plugins.package.bundle import BundleError, open_bundle
from rwq.plugins.package.file_list import FILE_LIST
from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.index import (
    INDEX_FILE,
    INDEX_FORMAT,
    MAX_BUNDLE_BYTES,
    PluginEntry,
    RegistryIndex,
    Release,
    Signer,
    dump_index,
    parse_index,
)
from rwq.plugins.trust.signing import bundle_signature

__all__ = ["LOCK_FILE", "Published", "publish"]

LOCK_FILE = ".index.lock"
"""The lock file beside the index that publishers take in turn."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did."""

    name: str
    version: str
    bundle: Path
    """The bundle's copy in the registry."""
    sha256: str
    added: bool
    """False when the registry held this version with the same bytes already."""
    signer: Signer | None


@contextlib.contextmanager
def _locked(registry: Path) -> Iterator[None]:
    fd = os.open(registry / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(bundle_path: Path, registry: Path, extract_dir: Path) -> Published:
    """Add the packed zip at ``bundle_path`` to the directory registry ``registry``: copied to
    ``bundles/NAME/NAME-VERSION.zip``, then the version added to ``index.json``.

    A version published before is never replaced: the same bytes again are a no-op, others
    are refused.

    Raises:
        RegistryError: not a packed zip, its signature does not verify, the version is taken,
            or the registry cannot be read or written.
        BundleError, ManifestError: the bundle is invalid.
    """
    bundle_path = Path(bundle_path)
    if not bundle_path.exists():
        raise RegistryError("", f"{bundle_path}: does not exist")
    if bundle_path.suffix.lower() != ".zip" or not bundle_path.is_file():
        raise RegistryError(
            str(registry), f"{bundle_path}: publish takes a .zip bundle made by rwq plugin pack"
        )
    data = bundle_path.read_bytes()
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(bundle_path, f"archive is over the {MAX_BUNDLE_BYTES} byte limit")
    bundle = open_bundle(bundle_path, extract_dir=extract_dir)
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != bundle.sha256:
        raise BundleError(bundle_path, "changed while it was being published; try again")
    if FILE_LIST not in bundle.files:
        raise BundleError(bundle_path, f"has no {FILE_LIST}: pack it with rwq plugin pack")
    name, version = bundle.name, str(bundle.version)
    status = bundle_signature(bundle.root, bundle.files, name, version)
    if status.state == "invalid":
        raise BundleError(bundle_path, f"its signature does not verify: {status.reason}")
    signer = Signer(name=status.signer, fingerprint=status.fingerprint) if status.signer else None
    if registry.exists() and not registry.is_dir():
        raise RegistryError(str(registry), "not a directory: a registry is a directory")
    try:
        registry.mkdir(parents=True, exist_ok=True)  # the first publish makes the registry
    except OSError as exc:
        raise RegistryError(str(registry), f"cannot create the registry: {exc}") from None
    rel = f"bundles/{name}/{name}-{version}.zip"
    try:
        with _locked(registry):
            index = _read(registry)
            entry = index.plugins.get(name)
            existing = _same_version(entry, bundle.version) if entry else None
            if existing is not None:
                if existing.sha256 != sha256:
                    raise RegistryError(
                        str(registry),
                        f"{name} {version} is published already with other contents "
                        f"(sha256 {existing.sha256[:16]}…); publish a new version",
                    )
                if not (registry / existing.bundle).is_file():  # repair a lost file
                    _write_bundle(registry / existing.bundle, data)
                return Published(name, version, registry / existing.bundle, sha256, False, signer)
            release = Release(
                bundle=rel,
                sha256=sha256,
                size=len(data),
                api_version=bundle.manifest.api_version,
                dependencies={
                    d.name: str(d.version) for d in bundle.manifest.dependencies if not d.optional
                },
                signer=signer,
                published=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            versions = {**(entry.versions if entry else {}), version: release}
            newest = entry is None or all(bundle.version > v for v, _ in entry.sorted_versions())
            manifest = bundle.manifest
            updated = PluginEntry(
                description=manifest.description if newest or entry is None else entry.description,
                publisher=manifest.author if newest or entry is None else entry.publisher,
                versions=versions,
            )
            plugins = {**index.plugins, name: updated}
            # The bundle first: the index never names a file that is not there.
            _write_bundle(registry / rel, data)
            write_atomically(
                registry / INDEX_FILE,
                dump_index(
                    RegistryIndex(format=INDEX_FORMAT, plugins=dict(sorted(plugins.items())))
                ),
                mode=PUBLIC_FILE,
            )
    except OSError as exc:
        raise RegistryError(str(registry), f"cannot write: {exc}") from None
    return Published(name, version, registry / rel, sha256, True, signer)


def _read(registry: Path) -> RegistryIndex:
    path = registry / INDEX_FILE
    if not path.exists():
        return RegistryIndex(format=INDEX_FORMAT, plugins={})
    return parse_index(path.read_bytes(), str(path))


def _same_version(entry: PluginEntry, version: object) -> Release | None:
    for known, release in entry.sorted_versions():
        if known == version:
            return release
    return None


def _write_bundle(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, mode=PUBLIC_FILE)
