"""``rwq plugin dev`` refuses bad input with one line naming the path or field, exit 2 (1
for a missing compiler), before any screen or workload starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def dev(tmp_path: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "rwq", "plugin", "dev", *args], capture_output=True, text=True,
        env=env, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_a_path_that_is_not_a_plugin(tmp_path: Path) -> None:
    done = dev(tmp_path, str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "nowhere does not exist" in one_error_line(done)
    (tmp_path / "empty").mkdir()
    done = dev(tmp_path, "empty")
    assert done.returncode == 2
    assert "empty is not a plugin directory" in one_error_line(done)


def test_a_manifest_error_names_the_field(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "rwq", "plugin", "new", "bad", "--dir", str(tmp_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    manifest = tmp_path / "bad" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 0.1.0", "version: one"))
    done = dev(tmp_path, "bad")
    assert done.returncode == 2
    assert "version" in one_error_line(done)


@pytest.mark.parametrize("language", ["c"])
def test_a_missing_compiler_says_what_to_install(tmp_path: Path, language: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "rwq", "plugin", "new", "cc", "--lang", language, "--dir",
         str(tmp_path)], check=True, capture_output=True,
    )  # fmt: skip
    empty = tmp_path / "bin"
    empty.mkdir()
    done = dev(tmp_path, "cc", path=str(empty))
    assert done.returncode == 1
    assert "clang not found on PATH" in one_error_line(done)
