"""Plugin bundles: directories and zips, their hashes, and every way a hostile one is refused."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rwq.errors import RwqError
from rwq.plugins.package.bundle import BundleError, BundleLimits, open_bundle
from rwq.plugins.package.manifest import ManifestError

DESIGN_EXAMPLE = Path(__file__).parents[1] / "fixtures" / "design-example"
MiB = 1024 * 1024


def manifest_text(**changes: Any) -> str:
    data: dict[str, Any] = {
        "name": "demo",
        "version": "1.0.0",
        "api_version": "v1",
        "runtime": "starlark",
        "entry_point": "main.star",
    }
    data.update(changes)
    return yaml.safe_dump(data)


LAYOUT: dict[str, bytes | str] = {
    "manifest.yaml": manifest_text(),
    "main.star": "def render(ctx):\n    return []\n",
    "assets/styles.css": "panel { color: green; }\n",
    "assets/config.json": '{"threshold": 5}\n',
    "docs/README.md": "# Demo\n",
    "docs/examples/basic.md": "example\n",
    "tests/integration/test_demo.star": "pass\n",
}


def make_dir(root: Path, files: dict[str, bytes | str] = LAYOUT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    return root


def make_zip(path: Path, files: dict[str, bytes | str] = LAYOUT) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, content in files.items():
            archive.writestr(rel, content)
    return path


def add_entry(path: Path, info: zipfile.ZipInfo, content: bytes | str) -> Path:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, content)
    return path


def refused(path: Path, extract_dir: Path, **limits: Any) -> BundleError:
    with pytest.raises(BundleError) as info:
        open_bundle(path, extract_dir=extract_dir, limits=BundleLimits(**limits))
    assert isinstance(info.value, RwqError)
    assert str(path) in str(info.value)
    return info.value


def nothing_extracted(extract_dir: Path) -> bool:
    return not extract_dir.exists() or not any(extract_dir.iterdir())


# -- directories ------------------------------------------------------------------------------


def test_design_example_bundle() -> None:
    bundle = open_bundle(DESIGN_EXAMPLE)
    assert bundle.kind == "dir"
    assert bundle.name == "tenant-sla-monitor"
    assert str(bundle.version) == "1.2.3"
    assert bundle.files == ("main.wasm", "manifest.yaml")
    assert bundle.entry_point == DESIGN_EXAMPLE.resolve() / "main.wasm"
    assert bundle.root == DESIGN_EXAMPLE.resolve()
    assert len(bundle.sha256) == 64
    again = open_bundle(DESIGN_EXAMPLE)
    assert again == bundle and hash(again) == hash(bundle)


def test_directory_bundle_with_the_design_layout(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo")
    bundle = open_bundle(root)
    assert bundle.files == tuple(sorted(LAYOUT))
    assert bundle.entry_point.read_text().startswith("def render")
    assert bundle.size == sum(len(str(c).encode()) for c in LAYOUT.values())


def test_directory_hash_is_stable_and_content_addressed(tmp_path: Path) -> None:
    first = open_bundle(make_dir(tmp_path / "a")).sha256
    assert open_bundle(tmp_path / "a").sha256 == first
    # Same files written in another order, at another time, elsewhere: same hash.
    reordered = dict(reversed(list(LAYOUT.items())))
    assert open_bundle(make_dir(tmp_path / "b", reordered)).sha256 == first
    (tmp_path / "b" / "assets" / "styles.css").write_text("panel { color: red; }\n")
    assert open_bundle(tmp_path / "b").sha256 != first
    # Moving bytes from one file's end to the next file's start changes the hash too.
    moved = {**LAYOUT, "docs/README.md": "# Demo", "docs/examples/basic.md": "\nexample\n"}
    assert open_bundle(make_dir(tmp_path / "c", moved)).sha256 != first


def test_version_control_litter_is_ignored(tmp_path: Path) -> None:
    first = open_bundle(make_dir(tmp_path / "a")).sha256
    make_dir(tmp_path / "a", {".git/HEAD": "ref: main\n", "__pycache__/x.pyc": b"\0"})
    bundle = open_bundle(tmp_path / "a")
    assert bundle.sha256 == first
    assert not any(f.startswith((".git", "__pycache__")) for f in bundle.files)


def test_symlink_in_a_directory_bundle(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo")
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (root / "assets" / "leak.txt").symlink_to(secret)
    err = refused(root, tmp_path / "x")
    assert "assets/leak.txt is a symbolic link" in err.reason


def test_symlinked_subdirectory_in_a_directory_bundle(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo")
    (root / "docs" / "etc").symlink_to("/etc", target_is_directory=True)
    assert "docs/etc is a symbolic link" in refused(root, tmp_path / "x").reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_file_in_a_directory_bundle(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo")
    os.mkfifo(root / "assets" / "pipe")
    assert "assets/pipe is not a regular file" in refused(root, tmp_path / "x").reason


def test_directory_limits(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo", {**LAYOUT, "assets/big.bin": b"x" * 5000})
    assert "over the 4096 limit" in refused(root, tmp_path / "x", max_file_bytes=4096).reason
    assert "exceed the 5000 byte" in refused(root, tmp_path / "x", max_total_bytes=5000).reason
    assert "more than 3 files" in refused(root, tmp_path / "x", max_files=3).reason


def test_directory_missing_manifest_or_entry_point(tmp_path: Path) -> None:
    no_manifest = make_dir(tmp_path / "a", {"main.star": "pass\n"})
    assert "no manifest.yaml" in refused(no_manifest, tmp_path / "x").reason
    no_entry = make_dir(tmp_path / "b", {"manifest.yaml": manifest_text()})
    assert "entry point 'main.star'" in refused(no_entry, tmp_path / "x").reason


def test_invalid_manifest_in_a_bundle_names_the_file(tmp_path: Path) -> None:
    root = make_dir(tmp_path / "demo", {**LAYOUT, "manifest.yaml": manifest_text(name="Bad!")})
    with pytest.raises(ManifestError) as info:
        open_bundle(root)
    assert info.value.path == str(root.resolve() / "manifest.yaml")
    assert info.value.problems[0][0] == "name"


def test_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    assert "not a bundle" in refused(tmp_path / "notes.txt", tmp_path / "x").reason
    assert "does not exist" in refused(tmp_path / "absent", tmp_path / "x").reason


# -- zips: happy path -------------------------------------------------------------------------


def test_zip_bundle_is_extracted_by_hash(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    extract_dir = tmp_path / "extracted"
    bundle = open_bundle(archive, extract_dir=extract_dir)
    assert bundle.kind == "zip"
    assert bundle.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert bundle.root == extract_dir / f"demo-{bundle.sha256[:12]}"
    assert bundle.files == tuple(sorted(LAYOUT))
    assert bundle.entry_point == bundle.root / "main.star"
    for rel, content in LAYOUT.items():
        assert (bundle.root / rel).read_text() == content
    assert [p.name for p in extract_dir.iterdir()] == [bundle.root.name]  # no staging left


def test_zip_extraction_is_reused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    extract_dir = tmp_path / "extracted"
    first = open_bundle(archive, extract_dir=extract_dir)
    (first.root / "marker").write_text("still here")
    again = open_bundle(archive, extract_dir=extract_dir)
    assert again.root == first.root and again.sha256 == first.sha256
    assert (again.root / "marker").exists()
    # Different bytes, different extraction.
    changed = make_zip(tmp_path / "demo.zip", {**LAYOUT, "docs/README.md": "# v2\n"})
    assert open_bundle(changed, extract_dir=extract_dir).root != first.root


def test_zip_with_directory_entries(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    add_entry(archive, zipfile.ZipInfo("assets/empty/"), b"")
    bundle = open_bundle(archive, extract_dir=tmp_path / "x")
    assert "assets/empty" not in bundle.files


def test_zip_needs_an_extract_dir(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    with pytest.raises(BundleError, match="directory to extract to"):
        open_bundle(archive)


# -- zips: hostile ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.txt", "'..'"),
        ("assets/../../evil.txt", "'..'"),
        ("/etc/evil.txt", "absolute path"),
        ("..\\evil.txt", "backslash"),
        ("C:/evil.txt", "':'"),
        ("assets//evil.txt", "empty path component"),
        ("./main.star", "'.'"),
    ],
)
def test_zip_path_traversal(tmp_path: Path, name: str, reason: str) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    add_entry(archive, zipfile.ZipInfo(name), "pwned")
    extract_dir = tmp_path / "deep" / "extracted"
    err = refused(archive, extract_dir)
    assert repr(name) in err.reason and reason in err.reason
    assert nothing_extracted(extract_dir)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_entry(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    info = zipfile.ZipInfo("assets/passwd")
    info.create_system = 3  # unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    add_entry(archive, info, "/etc/passwd")
    extract_dir = tmp_path / "extracted"
    assert "symbolic link" in refused(archive, extract_dir).reason
    assert nothing_extracted(extract_dir)


def test_zip_device_entry(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    info = zipfile.ZipInfo("assets/dev")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o666) << 16
    add_entry(archive, info, "")
    assert "not a regular file" in refused(archive, tmp_path / "x").reason


def test_zip_bomb_over_the_file_cap(tmp_path: Path) -> None:
    # 20 MB of zeros deflates to ~20 KB: small archive, declared size over the 16 MB cap.
    archive = make_zip(tmp_path / "bomb.zip", {**LAYOUT, "assets/zeros": bytes(20 * MiB)})
    assert archive.stat().st_size < 100_000
    extract_dir = tmp_path / "extracted"
    assert "over the 16777216 limit" in refused(archive, extract_dir).reason
    assert nothing_extracted(extract_dir)


def test_zip_bomb_by_compression_ratio(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {**LAYOUT, "assets/zeros": bytes(2 * MiB)})
    extract_dir = tmp_path / "extracted"
    err = refused(archive, extract_dir)
    assert "inflates" in err.reason and "200:1" in err.reason
    assert nothing_extracted(extract_dir)


def test_zip_bomb_by_total_size(tmp_path: Path) -> None:
    files = {**LAYOUT, **{f"assets/part{i}": os.urandom(300_000) for i in range(4)}}
    archive = make_zip(tmp_path / "many.zip", files)
    err = refused(archive, tmp_path / "x", max_total_bytes=1_000_000)
    assert "exceed the 1000000 byte limit" in err.reason


def _patch_declared_size(data: bytes, name: bytes, size: int, crc: int | None = None) -> bytes:
    """Rewrite the uncompressed size (and CRC) of entry ``name`` in both its headers."""
    out = bytearray(data)
    local = 0
    while True:  # local file headers
        local = out.find(b"PK\x03\x04", local)
        if local < 0:
            break
        name_len = struct.unpack_from("<H", out, local + 26)[0]
        if out[local + 30 : local + 30 + name_len] == name:
            struct.pack_into("<L", out, local + 22, size)
            if crc is not None:
                struct.pack_into("<L", out, local + 14, crc)
        local += 4
    central = 0
    while True:  # central directory headers
        central = out.find(b"PK\x01\x02", central)
        if central < 0:
            break
        name_len = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46 : central + 46 + name_len] == name:
            struct.pack_into("<L", out, central + 24, size)
            if crc is not None:
                struct.pack_into("<L", out, central + 16, crc)
        central += 4
    return bytes(out)


def test_zip_that_lies_about_its_size(tmp_path: Path) -> None:
    # Declares 1 KB (under every cap and below the ratio check) but inflates to 512 KB.
    archive = make_zip(tmp_path / "liar.zip", {**LAYOUT, "assets/blob": bytes(512 * 1024)})
    archive.write_bytes(_patch_declared_size(archive.read_bytes(), b"assets/blob", 1024))
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("assets/blob").file_size == 1024
    extract_dir = tmp_path / "extracted"
    err = refused(archive, extract_dir)
    assert "inflates past" in err.reason or "corrupt" in err.reason
    assert nothing_extracted(extract_dir)  # the staging directory was removed


def test_zip_lie_with_a_matching_checksum_is_contained(tmp_path: Path) -> None:
    # With the CRC of the first 1 KB forged too, nothing is corrupt any more: the most the
    # archive can do is be cut short at its declared size, never inflate past it.
    archive = make_zip(tmp_path / "liar.zip", {**LAYOUT, "assets/blob": bytes(512 * 1024)})
    forged = _patch_declared_size(
        archive.read_bytes(), b"assets/blob", 1024, crc=zlib.crc32(bytes(1024))
    )
    archive.write_bytes(forged)
    try:
        bundle = open_bundle(archive, extract_dir=tmp_path / "x")
    except BundleError:
        return
    assert (bundle.root / "assets" / "blob").stat().st_size <= 1024
    assert bundle.size <= sum(len(str(c).encode()) for c in LAYOUT.values()) + 1024


def test_zip_with_too_many_entries(tmp_path: Path) -> None:
    files = {**LAYOUT, **{f"assets/{i}.txt": "x" for i in range(20)}}
    archive = make_zip(tmp_path / "many.zip", files)
    # Refused from the end record, before zipfile reads the central directory...
    assert "entries, over the 20 limit" in refused(archive, tmp_path / "x", max_files=10).reason
    # ...or by counting files when directory entries are allowed for.
    assert "more than 20 files" in refused(archive, tmp_path / "x", max_files=20).reason


def test_encrypted_entry(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + 8] |= 0x1  # general purpose flag of the first central directory entry
    archive.write_bytes(bytes(data))
    assert "encrypted" in refused(archive, tmp_path / "x").reason


def test_duplicate_entries(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        add_entry(archive, zipfile.ZipInfo("main.star"), "evil()")
    assert "duplicates 'main.star'" in refused(archive, tmp_path / "x").reason
    case = make_zip(tmp_path / "case.zip", {**LAYOUT, "Main.star": "evil()"})
    assert "duplicates" in refused(case, tmp_path / "x").reason


def test_file_used_as_a_directory(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip", {**LAYOUT, "docs": "a file", "docs/x": "y"})
    assert "inside a file" in refused(archive, tmp_path / "x").reason


def test_oversize_archive(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    assert "archive is" in refused(archive, tmp_path / "x", max_archive_bytes=100).reason


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "junk.zip").write_bytes(os.urandom(1000))
    assert "not a zip archive" in refused(tmp_path / "junk.zip", tmp_path / "x").reason


def test_zip_missing_manifest_or_entry_point(tmp_path: Path) -> None:
    no_manifest = make_zip(tmp_path / "a.zip", {"main.star": "pass\n"})
    assert "no manifest.yaml" in refused(no_manifest, tmp_path / "x").reason
    nested = make_zip(tmp_path / "b.zip", {f"demo/{k}": v for k, v in LAYOUT.items()})
    assert "found demo/manifest.yaml" in refused(nested, tmp_path / "x").reason
    no_entry = make_zip(tmp_path / "c.zip", {"manifest.yaml": manifest_text()})
    extract_dir = tmp_path / "x"
    assert "entry point 'main.star'" in refused(no_entry, extract_dir).reason
    assert nothing_extracted(extract_dir)


def test_zip_invalid_manifest_names_the_member(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip", {**LAYOUT, "manifest.yaml": "name: [\n"})
    with pytest.raises(ManifestError) as info:
        open_bundle(archive, extract_dir=tmp_path / "x")
    assert info.value.path == f"{archive}!manifest.yaml"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_extracted_files_are_not_executable(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "demo.zip")
    info = zipfile.ZipInfo("assets/run.sh")
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o4755) << 16
    add_entry(archive, info, "#!/bin/sh\n")
    bundle = open_bundle(archive, extract_dir=tmp_path / "x")
    mode = (bundle.root / "assets" / "run.sh").stat().st_mode
    assert not mode & (stat.S_IXUSR | stat.S_ISUID)


# -- hostile archives --------------------------------------------------------------------------

_MANIFEST = (
    "name: z\nversion: '1.0.0'\napi_version: v1\nruntime: starlark\nentry_point: main.star\n"
)
_names = st.one_of(
    st.sampled_from(["manifest.yaml", "main.star", "manifest.yml", "../x", "/abs", "a/../b",
                     "a\\b", "C:x", "dir/", "a//b", ".", "a/./b", "\x00", "é/ü", "MANIFEST.YAML"]),
    st.text(min_size=1, max_size=12),
)  # fmt: skip


@pytest.mark.fuzz
@given(st.lists(st.tuples(_names, st.binary(max_size=64)), max_size=6), st.binary(max_size=64))
def test_any_archive_is_a_bundle_or_a_bundle_or_manifest_error(
    members: list[tuple[str, bytes]], tail: bytes
) -> None:
    """Zips of any names and contents (the valid manifest and entry point among the
    choices), and bytes appended to them: only the project's own errors."""
    root = Path(tempfile.mkdtemp())
    archive = root / "b.zip"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names
            with zipfile.ZipFile(archive, "w") as zf:
                for name, data in members:
                    body = _MANIFEST.encode() if name == "manifest.yaml" and not data else data
                    try:
                        zf.writestr(name, body)
                    except (ValueError, OSError, IndexError):
                        continue  # zipfile itself cannot write the name
        with archive.open("ab") as fh:
            fh.write(tail)
        try:
            open_bundle(archive, extract_dir=root / "out")
        except (BundleError, ManifestError) as error:
            assert str(archive) in str(error)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.fuzz
@given(st.binary(max_size=400))
def test_any_bytes_named_zip_are_a_bundle_error(data: bytes) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        archive = root / "b.zip"
        archive.write_bytes(b"PK\x03\x04" + data if data[:1] == b"\x00" else data)
        with pytest.raises((BundleError, ManifestError)):
            open_bundle(archive, extract_dir=root / "out")
    finally:
        shutil.rmtree(root, ignore_errors=True)
