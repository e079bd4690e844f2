"""What the toolkit tests need of this machine: the compilers, and ``rwq`` as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
NODE_MODULES = REPO / "sdk" / "assemblyscript" / "node_modules"


def rwq(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """``rwq ARGS`` in a new process, without the caller's ``RWQ_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


def needs_clang() -> None:
    if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld build C plugins: run `make toolchains`")


def needs_asc() -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "assemblyscript").is_dir():
        pytest.fail("node and the AssemblyScript compiler build these plugins: make toolchains")
