"""The reference docs generated from the code that defines what they describe: one table of
them, written or checked from the repository's root by ``python -m rwq.docs [--check]``
(``make docs``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rwq.plugins.contract import events as plugin_events
from rwq.plugins.contract import host_api_doc, permissions, ui_doc
from rwq.plugins.runtimes import starlark
from rwq.queue import events as queue_events

GENERATED: dict[str, Callable[[], str]] = {
    "docs/events.md": queue_events.render_markdown,
    "docs/plugin-events.md": plugin_events.render_markdown,
    "docs/host-api.md": host_api_doc.render_markdown,
    "docs/permissions.md": permissions.render_markdown,
    "docs/ui-elements.md": ui_doc.render_markdown,
    "sdk/starlark/host-functions.md": starlark.render_markdown,
}
"""Each generated file, from the repository's root, and what renders it."""


def stale(root: Path) -> list[str]:
    """The generated files under ``root`` that differ from what the code renders now."""
    out = []
    for name, render in GENERATED.items():
        path = root / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != render():
            out.append(name)
    return out


def write(root: Path) -> list[str]:
    """Render every generated file under ``root``; the names of those that changed."""
    changed = stale(root)
    for name in changed:
        (root / name).write_text(GENERATED[name](), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path.cwd()
    if not (root / "docs").is_dir():
        print("run from the repository's root (no docs/ here)", file=sys.stderr)
        return 2
    if args == ["--check"]:
        old = stale(root)
        for name in old:
            print(f"{name} is out of date: run `make docs`", file=sys.stderr)
        return 1 if old else 0
    if args:
        print("usage: python -m rwq.docs [--check]", file=sys.stderr)
        return 2
    for name in write(root):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
