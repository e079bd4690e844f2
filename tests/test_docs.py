"""Docs that are generated from code stay in step with it; the README starts as it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rwq.docs import GENERATED, stale, write

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_a_generated_doc_is_what_its_code_renders(name: str) -> None:
    doc = (ROOT / name).read_text(encoding="utf-8")
    assert doc == GENERATED[name](), "run: make docs"


def test_make_docs_rewrites_what_is_stale_and_check_says_so(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "sdk" / "starlark").mkdir(parents=True)
    assert stale(tmp_path) == sorted(GENERATED, key=list(GENERATED).index)
    check = [sys.executable, "-m", "rwq.docs", "--check"]
    out = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "docs/events.md is out of date: run `make docs`" in out.stderr
    assert write(tmp_path) == list(GENERATED)
    assert stale(tmp_path) == []
    out = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stderr == ""


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "`make install` only installs" in readme  # installing without opening the dashboard


def test_readme_says_what_make_demo_does_without_a_terminal() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Without a terminal" in readme and "headless" in readme and "until\nCtrl-C" in readme
