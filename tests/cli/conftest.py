"""The command line as a user runs it: ``rwq`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Rwq = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rwq(tmp_path: Path, valkey_url: str) -> Rwq:
    """The command in a subprocess, with a private state dir, on the session's Valkey."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": valkey_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env,
            cwd=tmp_path, timeout=300,
        )  # fmt: skip

    return run
