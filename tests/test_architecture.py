"""The import rules of docs/architecture.md, checked on the source: a package may import only
the layers its rule names, and the plugin host never loads Textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: str = "rwq") -> set[str]:
    """Every ``root`` module ``path`` imports, at any depth (lazy imports count too)."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or _module_name(path)).split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == root or name.startswith(f"{root}.")}


def _package_files(package: str) -> list[Path]:
    path = SRC / Path(*package.split("."))
    if path.with_suffix(".py").is_file():  # a module of its own
        return [path.with_suffix(".py")]
    return sorted(path.rglob("*.py"))


def _violations(package: str, allowed: tuple[str, ...]) -> list[str]:
    out = []
    for path in _package_files(package):
        for name in sorted(_imports(path)):
            if not any(name == a or name.startswith(f"{a}.") for a in allowed):
                out.append(f"{path.relative_to(SRC)} imports {name}")
    return out


PURE_BASE = (
    "rwq.atomic_file",
    "rwq.errors",
    "rwq.units",
    "rwq.printable",
    "rwq.yaml_input",
    "rwq.config",
    "rwq.procfs",
    "rwq.schedule_spec",
    "rwq.outage",
)
"""The bottom layer: it imports only itself."""
BASE = (*PURE_BASE, "rwq.connection")
"""What every package above the Valkey processes may import (``rwq.connection`` starts the
embedded Valkey)."""

_PLUGIN_BASE = ("rwq.plugins.contract", "rwq.queue", *BASE)

RULES = {
    # Valkey processes know settings and nothing of the queue above them.
    "rwq.valkey": ("rwq.valkey", *PURE_BASE),
    # The queue stands alone: plugins, the TUI and the command line are built on it.
    "rwq.queue": ("rwq.queue", *BASE),
    # The contract is what plugins and runtimes agree on: it stands on the queue's data and
    # nothing else of the plugin system.
    "rwq.plugins.contract": ("rwq.plugins.contract", "rwq.errors", "rwq.queue"),
    # A runtime runs untrusted code against the contract; it knows nothing of the host.
    "rwq.plugins.runtimes": ("rwq.plugins.runtimes", "rwq.plugins.contract", "rwq.errors"),
    # The plugin system needs no screen and no command line.
    "rwq.plugins": ("rwq.plugins", "rwq.queue", *BASE),
    # Inside it, from the bottom up: plugins as files, trust, the event bus stand on the
    # contract alone; the host API service on them and the runtimes; the engine on all of
    # those; operations on a running host on the engine.
    "rwq.plugins.package": ("rwq.plugins.package", *_PLUGIN_BASE),
    "rwq.plugins.trust": ("rwq.plugins.trust", "rwq.plugins.package", *_PLUGIN_BASE),
    # Registries hand out bundles: plugins as files, checked by their signatures.
    "rwq.plugins.registry": (
        "rwq.plugins.registry",
        "rwq.plugins.package",
        "rwq.plugins.trust",
        *_PLUGIN_BASE,
    ),
    "rwq.plugins.eventbus": ("rwq.plugins.eventbus", *_PLUGIN_BASE),
    "rwq.plugins.host_api": (
        "rwq.plugins.host_api",
        "rwq.plugins.trust",
        "rwq.plugins.eventbus",
        "rwq.plugins.runtimes",
        *_PLUGIN_BASE,
    ),
    "rwq.plugins.engine": (
        "rwq.plugins.engine",
        "rwq.plugins.package",
        "rwq.plugins.trust",
        "rwq.plugins.eventbus",
        "rwq.plugins.host_api",
        "rwq.plugins.runtimes",
        *_PLUGIN_BASE,
    ),
    # A plugin host serves screens without being one.
    "rwq.host": ("rwq.host", "rwq.plugins", "rwq.queue", *BASE),
    "rwq.plugins.ops": (
        "rwq.plugins.ops",
        "rwq.plugins.engine",
        "rwq.plugins.package",
        *_PLUGIN_BASE,
    ),
    # The plugin author's toolkit stands on the plugin host (a snapshot is its renderer's).
    "rwq.toolkit": ("rwq.toolkit", "rwq.host", "rwq.plugins", "rwq.queue", *BASE),
    # The asyncio API: the queue's encoding sent on redis.asyncio clients.
    "rwq.aio": ("rwq.aio", "rwq.queue", *BASE),
    "rwq.demo": ("rwq.demo", "rwq.queue", "rwq.valkey", *BASE),
    "rwq.docs": ("rwq.docs", "rwq.plugins", "rwq.queue", *BASE),
    "rwq.bench": (  # measures the shipped sample plugins too
        "rwq.bench",
        "rwq.samples",
        "rwq.tui",
        "rwq.web",
        "rwq.host",
        "rwq.plugins",
        "rwq.queue",
        "rwq.valkey",
        *BASE,
    ),
    # The screen sees plugins through the host; the command line hands it what it runs.
    "rwq.tui": ("rwq.tui", "rwq.host", "rwq.plugins", "rwq.queue", "rwq.valkey", *BASE),
    # The web server is a screen of its own: it stands on the queue (and its asyncio client),
    # the plugin system and the plugin host, never on Textual, the TUI or the command line.
    "rwq.web": ("rwq.web", "rwq.aio", "rwq.host", "rwq.plugins", "rwq.queue", *BASE),
}
SCREENLESS = ("rwq.valkey", "rwq.queue", "rwq.plugins", "rwq.host", "rwq.toolkit", "rwq.web")
"""Packages that never import Textual: the plugin host process runs them without a screen."""


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_imports_only_what_its_rule_allows(package: str) -> None:
    assert _package_files(package), f"{package} has no modules"
    assert _violations(package, RULES[package]) == []


@pytest.mark.parametrize("module", PURE_BASE)
def test_the_bottom_layer_imports_only_itself(module: str) -> None:
    assert _violations(module, PURE_BASE) == []


def test_connection_stands_on_the_bottom_layer_and_the_valkey_processes() -> None:
    assert _violations("rwq.connection", (*BASE, "rwq.valkey")) == []


def test_the_checker_sees_a_forbidden_import() -> None:
    module = SRC / "rwq" / "plugins" / "contract" / "errors.py"
    assert "rwq.errors" in _imports(module)
    assert _violations("rwq.plugins.contract", ("rwq.plugins.contract",)) != []


@pytest.mark.parametrize("package", SCREENLESS)
def test_a_screenless_package_never_imports_textual(package: str) -> None:
    found = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _package_files(package)
        for name in sorted(_imports(path, "textual"))
    ]
    assert found == []


def test_the_plugin_host_process_loads_no_textual() -> None:
    """What ``rwq tui`` starts as its plugin host process, and everything it builds, imported
    in a fresh interpreter: not one Textual module comes along."""
    probe = (
        "import sys, rwq.host.process, rwq.host.check, rwq.host.build, rwq.host.remote\n"
        "import rwq.plugins.runtimes.wasm, rwq.plugins.runtimes.starlark\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def _package_of(module: str) -> str:
    """The package a module belongs to for the cycle check: a top-level one under ``rwq``
    (``rwq.errors`` is its own), or a sub-package of ``rwq.plugins``."""
    parts = module.split(".")
    if parts[:2] == ["rwq", "plugins"] and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / "rwq").rglob("*.py")):
        source = _package_of(_module_name(path))
        for name in _imports(path):
            target = _package_of(name)
            if target not in (source, "rwq"):
                graph.setdefault(source, set()).add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from where it closes)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    assert _cycles(_package_graph()) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
