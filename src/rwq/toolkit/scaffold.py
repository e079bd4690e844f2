"""``rwq plugin new``: a working plugin written from the templates shipped in this package
(``templates/``): a commented manifest, the source of a panel in the chosen language with
what it needs to build outside this repository, a README, fixtures and the snapshot of its
panel after them."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from rwq.errors import RwqError
from rwq.host.render.text import frame_text
from rwq.queue.keys import InvalidPluginName, check_plugin_name
from rwq.toolkit.build import Language
from rwq.toolkit.snapshot import DEFAULT_SIZE

__all__ = ["LANGUAGES", "ScaffoldError", "Scaffolded", "new_plugin"]

LANGUAGES: tuple[Language, ...] = ("starlark", "c", "assemblyscript")
SNAPSHOT = "fixtures/panel.snapshot"
"""Where the panel's snapshot is written, relative to the plugin."""
EXECUTABLE = frozenset({"build.sh"})


class ScaffoldError(RwqError):
    """A new plugin cannot be written: names the argument or directory at fault."""


@dataclass(frozen=True)
class _Language:
    runtime: str
    entry_point: str
    entry_note: str
    max_memory: str
    memory_note: str
    renamed: tuple[tuple[str, str], ...] = ()


_LANGUAGES: dict[Language, _Language] = {
    "starlark": _Language(
        "starlark", "main.star", "the Starlark file the host runs as it is (no build step)",
        "16MB", "the sandbox process's address space may grow by this much",
    ),
    "c": _Language(
        "wasm", "main.wasm", "built from main.c: rwq plugin build . (or ./build.sh)",
        "4MB", "the module's linear memory (malloc fails past it)",
    ),
    "assemblyscript": _Language(
        "wasm", "main.wasm", "built from main.ts: rwq plugin build . (or npm run build)",
        "4MB", "the module's linear memory",
        renamed=(("gitignore", ".gitignore"),),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Scaffolded:
    """A plugin written by :func:`new_plugin`."""

    path: Path
    name: str
    language: Language
    files: tuple[str, ...]
    """Its files, relative to ``path``, sorted."""


def _templates() -> Traversable:
    return resources.files("rwq.toolkit").joinpath("templates")


def new_plugin(name: str, language: str, parent: Path) -> Scaffolded:
    """Write the plugin ``name`` in ``language`` into ``parent/name``.

    Raises:
        ScaffoldError: an invalid name or language, or ``parent/name`` exists and is not an
            empty directory.
    """
    try:
        check_plugin_name(name)
    except InvalidPluginName as exc:
        raise ScaffoldError(f"NAME: {exc}") from None
    if language not in _LANGUAGES:
        raise ScaffoldError(
            f"--lang: unknown language {language!r}: choose one of {', '.join(LANGUAGES)}"
        )
    lang: Language = language  # type: ignore[assignment]
    target = parent / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        what = "directory is not empty" if target.is_dir() else "exists and is not a directory"
        raise ScaffoldError(f"{target}: {what}; choose another NAME or --dir")
    if not parent.is_dir():
        raise ScaffoldError(f"--dir: {parent} is not a directory")
    spec = _LANGUAGES[lang]
    title = name.replace("-", " ").capitalize()
    values = {
        "name": name,
        "title": title,
        "runtime": spec.runtime,
        "entry_point": spec.entry_point,
        "entry_note": spec.entry_note,
        "max_memory": spec.max_memory,
        "memory_note": spec.memory_note,
        "language": {"starlark": "Starlark", "c": "C", "assemblyscript": "AssemblyScript"}[lang],
    }
    templates = _templates()
    files: dict[str, str] = {
        "manifest.yaml": _fill(templates.joinpath("manifest.yaml").read_text("utf-8"), values),
    }
    for relative, text in _walk(templates.joinpath("fixtures"), "fixtures/"):
        files[relative] = _fill(text, values)
    renamed = dict(spec.renamed)
    for relative, text in _walk(templates.joinpath(lang), ""):
        if relative.startswith("_"):
            continue  # pieces of the README
        files[renamed.get(relative, relative)] = _fill(text, values)
    files["README.md"] = _readme(templates, lang, values)
    body = files.pop("fixtures/panel.body")
    width, height = DEFAULT_SIZE
    files[SNAPSHOT] = frame_text(title, body.rstrip("\n").split("\n"), width, height)
    try:
        target.mkdir(exist_ok=True)
        for relative, text in sorted(files.items()):
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if path.name in EXECUTABLE:
                path.chmod(0o755)
    except OSError as exc:
        raise ScaffoldError(f"cannot write {target}: {exc.strerror or exc}") from None
    return Scaffolded(target, name, lang, tuple(sorted(files)))


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _walk(directory: Traversable, prefix: str) -> list[tuple[str, str]]:
    """Every file under ``directory`` as (path relative to it with ``prefix``, its text)."""
    found: list[tuple[str, str]] = []
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.extend(_walk(entry, f"{prefix}{entry.name}/"))
        else:
            found.append((f"{prefix}{entry.name}", entry.read_text("utf-8")))
    return found


def _readme(templates: Traversable, lang: Language, values: dict[str, str]) -> str:
    parts = {
        "build": templates.joinpath(lang, "_build.md").read_text("utf-8"),
        "files": templates.joinpath(lang, "_files.md").read_text("utf-8"),
    }
    text = templates.joinpath("README.md").read_text("utf-8")
    for key, part in parts.items():
        text = text.replace("{{" + key + "}}\n", part)
    return _fill(text, values)
