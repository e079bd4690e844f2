"""A panel as plain text: the elements drawn by the TUI's renderer, without colours, inside
the panel's rounded border with its title, at a fixed size. What ``rwq plugin check
--snapshot`` stores and compares."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console

from rwq.host.render.elements import build_panel
from rwq.host.render.renderer import draw_view
from rwq.plugins.contract.ui import validate_elements
from rwq.printable import printable

__all__ = ["BORDER_CELLS", "MIN_SIZE", "body_size", "frame_text", "panel_text"]

BORDER_CELLS = (4, 2)
"""Cells the border and padding take (columns: border and one cell of padding each side;
rows: the top and bottom border), as the TUI's panels draw them."""
MIN_SIZE = (20, 5)
"""The smallest panel drawn as text (columns, rows)."""

_CONSOLE = Console(width=200, color_system=None, markup=False, emoji=False, highlight=False)


def body_size(width: int, height: int) -> tuple[int, int]:
    """The body of a ``width`` x ``height`` panel: the size its plugin's ``render`` gets."""
    return width - BORDER_CELLS[0], height - BORDER_CELLS[1]


def panel_text(title: str, elements: list[Any], width: int, height: int) -> str:
    """``elements`` (a render result; validated here) drawn as the TUI draws them into a
    ``width`` x ``height`` panel titled ``title``, as plain text.

    Raises:
        rwq.plugins.contract.ui.ElementError: an element the TUI would refuse.
    """
    inner, _ = body_size(width, height)
    view = build_panel(validate_elements(elements), inner)
    lines = draw_view(_CONSOLE, view, inner)
    body = ["".join(segment.text for segment in line) for line in lines.lines]
    return frame_text(title, body, width, height)


def frame_text(title: str, body: list[str], width: int, height: int) -> str:
    """``body`` lines in a rounded border ``width`` x ``height`` with ``title`` on its top
    edge; lines past the height are cut and counted on the bottom edge. Ends with a newline."""
    inner, rows = body_size(width, height)
    shown = [set_cell_size(line.rstrip(), inner) for line in body[:rows]]
    shown += [" " * inner] * (rows - len(shown))
    top = _edge("╭", "╮", f" {printable(title)} " if title else "", width)
    left = len(body) - rows
    bottom = _edge("╰", "╯", f" {left} more line{'s' * (left != 1)} " if left > 0 else "", width)
    return "\n".join([top, *(f"│ {line} │" for line in shown), bottom]) + "\n"


def _edge(start: str, end: str, label: str, width: int) -> str:
    room = width - 2
    if label:
        label = set_cell_size(label, min(cell_len(label), room - 1))
        return f"{start}─{label}{'─' * (room - 1 - cell_len(label))}{end}"
    return f"{start}{'─' * room}{end}"
