"""Fixtures of the security suite: hostile plugins copied to a tmp dir (WAT compiled there)
and a well-behaved bystander plugin."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
import yaml

PLUGINS = Path(__file__).parent / "plugins"

BYSTANDER_SOURCE = textwrap.dedent(
    """
    # Well-behaved: counts every event it is handed.
    def on_event(events):
        state.set("seen", state.get("seen", 0) + len(events))
        return {"changed": True}

    def render(size):
        return [{"type": "text", "text": "seen %d" % state.get("seen", 0)}]
    """
).lstrip()


@pytest.fixture
def hostile(tmp_path: Path) -> Callable[..., Path]:
    """``hostile(name)``: a copy of ``plugins/<name>`` ready to load (``main.wat`` compiled
    to ``main.wasm``)."""

    def copy(name: str, into: Path | None = None) -> Path:
        target = (into or tmp_path / "hostile") / name
        shutil.copytree(PLUGINS / name, target)
        source = target / "main.wat"
        if source.is_file():
            (target / "main.wasm").write_bytes(wasmtime.wat2wasm(source.read_text("utf-8")))
        return target

    return copy


@pytest.fixture
def bystander() -> Callable[[Path], Path]:
    """``bystander(dir)``: writes the well-behaved Starlark plugin ``bystander`` into ``dir``."""

    def write(root: Path) -> Path:
        target = root / "bystander"
        target.mkdir(parents=True)
        manifest = {
            "name": "bystander",
            "version": "1.0.0",
            "api_version": "v1",
            "runtime": "starlark",
            "entry_point": "main.star",
            "permissions": ["events.subscribe"],
            "events": [{"type": "job.*"}],
            "resources": {"timeout": "1s"},
        }
        (target / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
        (target / "main.star").write_text(BYSTANDER_SOURCE, encoding="utf-8")
        return target

    return write
