"""Replacing a file whole: the new contents in one piece, the old file kept when writing fails,
no temporary file left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rwq.atomic_file import write_atomically


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert [p.name for p in tmp_path.iterdir()] == ["grants.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grants.json"
    write_atomically(path, b"old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["grants.json"]


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "nowhere" / "file", b"x")


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o644)])
def test_a_public_file_takes_its_mode_less_the_umask(
    tmp_path: Path, umask: int, expected: int
) -> None:
    """Bundles and a registry's index were written 0600: a web server running as another
    user could not serve them."""
    before = os.umask(umask)
    try:
        write_atomically(tmp_path / "index.json", b"{}", mode=0o644)
        write_atomically(tmp_path / "grants.json", b"{}")
    finally:
        os.umask(before)
    assert (tmp_path / "index.json").stat().st_mode & 0o777 == expected
    assert (tmp_path / "grants.json").stat().st_mode & 0o777 == 0o600  # private by default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grants.json", "index.json"]
