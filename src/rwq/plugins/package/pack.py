"""``rwq plugin pack``: a plugin directory as a reproducible zip bundle with its file list (the
same files give byte-identical archives)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rwq.atomic_file import PUBLIC_FILE, write_atomically
from rwq.plugins.package.bundle import Bundle, BundleError, open_bundle
from rwq.plugins.package.file_list import FILE_LIST, SIGNATURE, file_list

__all__ = ["pack", "zip_entry"]

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Every entry's time: the zip format's earliest."""
FILE_MODE = 0o100644
COMPRESS_LEVEL = 9


def pack(source: Path, out_dir: Path) -> Path:
    """Pack the plugin directory ``source`` into ``<out_dir>/<name>-<version>.zip``: its
    files in path order with fixed times and modes, then the file list. The archive is
    written whole or not at all (an existing one is replaced).

    Raises:
        BundleError: ``source`` is not a valid plugin directory (named).
    """
    source = Path(source)
    if not source.exists():
        raise BundleError(source, "does not exist")
    if not source.is_dir():
        raise BundleError(source, "rwq plugin pack takes a plugin directory")
    bundle = open_bundle(source)
    files = tuple(
        f
        for f in bundle.files
        if f not in (FILE_LIST, SIGNATURE) and not _packed_before(f, bundle, out_dir)
    )
    listing = file_list(bundle.root, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{bundle.name}-{bundle.version}.zip"
    archive_bytes = io.BytesIO()  # bundles are at most tens of MB (BundleLimits)
    with zipfile.ZipFile(archive_bytes, "w") as archive:
        for rel in (*files, FILE_LIST):
            data = listing if rel == FILE_LIST else (bundle.root / rel).read_bytes()
            archive.writestr(zip_entry(rel), data, compresslevel=COMPRESS_LEVEL)
    write_atomically(target, archive_bytes.getvalue(), mode=PUBLIC_FILE)
    return target


def _packed_before(rel: str, bundle: Bundle, out_dir: Path) -> bool:
    """Whether the file ``rel`` of ``bundle`` is output of packing it: a bundle of it at its
    top (``rwq plugin pack . -o .``), or anything under ``out_dir`` when that is inside the
    plugin (``-o dist``). A second pack would nest the first."""
    if "/" not in rel and rel.startswith(f"{bundle.name}-") and rel.endswith(".zip"):
        return True
    root, out = bundle.root.resolve(), out_dir.resolve()
    if out == root or not out.is_relative_to(root):
        return False
    inside = out.relative_to(root).as_posix()
    return rel.startswith(f"{inside}/")


def zip_entry(name: str) -> zipfile.ZipInfo:
    """A bundle entry as ``rwq plugin pack`` writes it: fixed time and mode, deflated."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.external_attr = FILE_MODE << 16
    info.create_system = 3  # unix: the mode above is read as such
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
