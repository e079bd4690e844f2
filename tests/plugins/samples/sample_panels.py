"""What every sample plugin test needs: a render checked against the UI element schema, the
elements or strings in it, and a plugin driven in a real plugin manager like the TUI drives it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.plugins.contract.ui import validate_elements
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.runtimes.base import PluginRuntime

WAIT = 15.0


def validated(elements: list[Any]) -> list[Any]:
    """The render output, checked against the UI element schema (ui-elements.md)."""
    return validate_elements(elements)


def find(elements: Any, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """Every element of ``kind`` (with these field values) in a render output, depth first."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if value.get("type") == kind and all(value.get(k) == v for k, v in fields.items()):
                found.append(value)
            walk(value.get("children", []))

    walk(elements)
    return found


def texts(elements: Any) -> str:
    """Every string in the render output, one a line (what the panel says)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in ("type", "style", "level", "variant", "id", "key"):
                    walk(item)

    walk(elements)
    return "\n".join(out)


class Panel:
    """One plugin in a real manager: input events in, validated renders out."""

    def __init__(self, manager: PluginManager, name: str, size: tuple[int, int] = (100, 30)):
        self.manager = manager
        self.name = name
        self.size = size

    def render(self) -> list[Any]:
        result = self.manager.render(self.name, *self.size)
        assert result.error is None, result.error
        return validated(result.elements)

    def text(self) -> str:
        return texts(self.render())

    def key(self, key: str) -> None:
        """Press ``key``; the plugin must say its panel changed."""
        assert self.manager.on_input(self.name, {"kind": "key", "key": key}), key

    def button(self, button: str) -> None:
        assert self.manager.on_input(self.name, {"kind": "button", "id": button}), button

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], what: str, timeout: float = WAIT
    ) -> list[Any]:
        """Render until ``predicate`` holds for the elements; they are returned."""
        deadline = time.monotonic() + timeout
        while True:
            elements = self.render()
            if predicate(elements):
                return elements
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {json.dumps(elements)}")
            time.sleep(0.02)

    def wait_for_text(self, predicate: Callable[[str], bool], what: str) -> str:
        """Render until ``predicate`` holds for what the panel says; that text is returned."""
        return texts(self.wait_for(lambda elements: predicate(texts(elements)), what))


def start_plugin(
    settings: Settings,
    client: Any,
    bundle: Path,
    runtimes: Mapping[str, PluginRuntime],
    *,
    grants: Iterable[str],
    queues: tuple[str, ...] | None = None,
    config: Mapping[str, Any] | None = None,
) -> PluginManager:
    """A started manager (no queue feeds) over ``bundle``'s directory, the plugin granted
    ``grants`` (scoped to ``queues``) and configured, and active; the caller stops it."""
    manager = PluginManager(
        settings.replace(plugin_dirs=str(bundle.parent)),
        runtimes,
        client,
        feeds=False,
        element_validator=validate_elements,
    )
    opened = open_bundle(bundle)
    scope = {"queues": queues} if queues is not None else {}
    manager.grants.grant(
        opened.name,
        tuple(grants),
        version=str(opened.version),
        bundle_hash=opened.sha256,
        **scope,
    )
    if config is not None:
        manager.configs.set(opened.name, dict(config))
    manager.start()
    return manager
