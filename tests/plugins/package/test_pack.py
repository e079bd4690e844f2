"""``rwq plugin pack``: reproducible zip bundles with their file list, and bundles refused once a
file differs from the list."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from rwq.plugins.package.bundle import BundleError, open_bundle
from rwq.plugins.package.file_list import FILE_LIST
from rwq.plugins.package.pack import pack

HELLO = Path(__file__).parents[3] / "sdk" / "starlark" / "hello"


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    source = tmp_path / "src" / "hello"
    shutil.copytree(HELLO, source)
    (source / "lib").mkdir()
    (source / "lib" / "extra.txt").write_text("more\n", encoding="utf-8")
    return source


def test_the_same_files_give_the_same_bytes(plugin: Path, tmp_path: Path) -> None:
    first = pack(plugin, tmp_path / "a").read_bytes()
    for path in plugin.rglob("*"):  # new times and modes: the archive does not change
        os.utime(path, (1e9, 1e9))
        path.chmod(0o700 if path.is_dir() else 0o600)
    second = pack(plugin, tmp_path / "b")
    assert second.read_bytes() == first
    assert second.name == "hello-starlark-0.1.0.zip"
    with zipfile.ZipFile(second) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["lib/extra.txt", "main.star", "manifest.yaml", FILE_LIST]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_packing_into_the_plugin_again_gives_the_same_bundle(plugin: Path) -> None:
    """``rwq plugin pack . -o dist`` (or ``-o .``) twice: the second pack does not take the
    first bundle in."""
    for out in (plugin, plugin / "dist"):
        first = pack(plugin, out).read_bytes()
        second = pack(plugin, out)
        assert second.read_bytes() == first
        with zipfile.ZipFile(second) as archive:
            assert not [n for n in archive.namelist() if n.endswith(".zip")]
    (plugin / "dist" / "notes.zip").write_bytes(b"not ours")  # nothing under dist goes in
    with zipfile.ZipFile(pack(plugin, plugin / "dist")) as archive:
        assert not [n for n in archive.namelist() if n.startswith("dist/")]


def test_the_file_list_holds_every_files_sha256(plugin: Path, tmp_path: Path) -> None:
    bundle_path = pack(plugin, tmp_path / "out")
    with zipfile.ZipFile(bundle_path) as archive:
        listing = archive.read(FILE_LIST).decode()
    expected = "".join(
        f"{hashlib.sha256((plugin / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in ("lib/extra.txt", "main.star", "manifest.yaml")
    )
    assert listing == expected
    bundle = open_bundle(bundle_path, extract_dir=tmp_path / "x")
    assert bundle.name == "hello-starlark" and FILE_LIST in bundle.files


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: (d / "main.star").write_text("# changed\n"), "main.star changed since"),
        (lambda d: (d / "new.star").write_text("x = 1\n"), "new.star is not in FILES.sha256"),
        (lambda d: (d / "lib" / "extra.txt").unlink(), "lib/extra.txt is in FILES.sha256 but"),
        (lambda d: (d / FILE_LIST).write_text("nonsense\n"), "FILES.sha256 line 1: expected"),
    ],
)
def test_a_bundle_whose_files_differ_from_its_list_is_refused(
    plugin: Path, tmp_path: Path, change: object, reason: str
) -> None:
    bundle_path = pack(plugin, tmp_path / "out")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle_path) as archive:
        archive.extractall(unpacked)
    assert open_bundle(unpacked).name == "hello-starlark"  # as packed: fine
    change(unpacked)  # type: ignore[operator]
    with pytest.raises(BundleError, match=re.escape(reason)) as refused:
        open_bundle(unpacked)
    assert str(unpacked) in str(refused.value)


def test_a_zip_changed_after_packing_is_refused(plugin: Path, tmp_path: Path) -> None:
    bundle_path = pack(plugin, tmp_path / "out")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle_path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "main.star":
                data += b"\nrwq.enqueue_job(queue = 'x', payload = {})\n"
            dst.writestr(info, data)
    with pytest.raises(BundleError, match=r"main\.star changed since it was packed"):
        open_bundle(tampered, extract_dir=tmp_path / "x")


def test_pack_needs_a_plugin_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        pack(tmp_path / "nowhere", tmp_path)
    (tmp_path / "file.zip").write_bytes(b"")
    with pytest.raises(BundleError, match="takes a plugin directory"):
        pack(tmp_path / "file.zip", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest"):
        pack(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
