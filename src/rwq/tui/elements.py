"""Plugin UI elements drawn with Rich: a validated element list (:mod:`rwq.plugins.ui`) becomes
one renderable for a panel body, plus the panel's interaction targets (buttons, list items,
rows of tables with an ``id``) in document order.

Plugin text is never read as markup: every string becomes a :class:`rich.text.Text`, with
control characters replaced, so ``[bold]`` or ``[@click=app.quit]`` shows as written and no
escape sequence reaches the terminal. Each target's text carries
``Style(meta={"rwq_target": n})``, which a Textual click handler reads from
``event.style.meta``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Group, JustifyMethod, NewLine, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from rwq.plugins.ui import button_input, select_input

LEVEL_STYLES: dict[str, str] = {
    "ok": "green",
    "info": "cyan",
    "warning": "yellow",
    "error": "red",
    "critical": "bold white on red",
    "muted": "dim",
}
"""The colour of each level (text and the level's badge)."""
BADGE_STYLES: dict[str, str] = {
    "ok": "bold black on green",
    "info": "bold black on cyan",
    "warning": "bold black on yellow",
    "error": "bold white on red",
    "critical": "bold white on red",
    "muted": "black on grey50",
}
VARIANT_STYLES: dict[str, str] = {
    "default": "bold",
    "primary": "bold cyan",
    "warning": "bold yellow",
    "error": "bold red",
}
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SELECTED_MARK = "\u203a "
"""Before the item a list's ``selected`` names."""
_COLOUR_NAMES = {"grey": "grey50", "orange": "dark_orange"}
"""Vocabulary colours whose Rich name differs; the rest map 1:1."""
_HIGHLIGHT = Style(reverse=True)
_CONTROL: dict[int, str | None] = {
    c: "\ufffd" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)) if c != 0x0D
}
_CONTROL[0x0D] = None  # a bare carriage return would rewind the line: drop it


@dataclass(frozen=True)
class Target:
    """One interactive thing of a panel: a button, a list item, a selectable table row."""

    kind: Literal["button", "select"]
    id: str
    """The button's, list's or table's ``id``."""
    index: int
    """The item or row index; 0 for buttons."""
    value: str
    """The item's text, the row's first cell as a string, or the button's label."""
    key: str | None = None
    """The button's shortcut key."""


@dataclass(frozen=True)
class PanelView:
    """A panel body ready to paint, and its targets in document order."""

    renderable: RenderableType
    targets: tuple[Target, ...]


def input_event(target: Target) -> dict[str, Any]:
    """The ``on_input`` payload for pressing or choosing ``target``."""
    if target.kind == "button":
        return button_input(target.id)
    return select_input(target.id, target.index, target.value)


def build_panel(
    elements: list[dict[str, Any]], width: int, *, cursor: int | None = None
) -> PanelView:
    """Draw validated ``elements`` for a panel body ``width`` cells wide; the target at index
    ``cursor`` is highlighted."""
    builder = _Builder(cursor)
    body = builder.many(elements, max(int(width), 1))
    return PanelView(body, tuple(builder.targets))


_STYLE_CACHE: dict[str, Style] = {}


def rich_style(style: str | None) -> Style:
    """A vocabulary style string (``"bold red on white"``) as a Rich style."""
    if not style:
        return Style.null()
    try:
        return _STYLE_CACHE[style]
    except KeyError:
        pass
    words = " ".join(_COLOUR_NAMES.get(w, w) for w in style.split())
    result = Style.parse(words)
    if len(_STYLE_CACHE) < 4096:
        _STYLE_CACHE[style] = result
    return result


def plain(value: str) -> str:
    """Plugin text with control characters replaced (``\\n`` and ``\\t`` kept)."""
    return value.translate(_CONTROL)


def cell_text(value: Any) -> str:
    """A table cell or kv value as shown (and as a row's ``select`` value)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return format(value, ".15g")
    if isinstance(value, int):
        return str(value)
    return plain(str(value))


def _number(value: float) -> str:
    return format(value, ".6g")


def _bar(fraction: float, cells: int, style: Style) -> Text:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * cells)
    bar = Text("█" * filled, style=style)
    bar.append("░" * (cells - filled), style="dim")
    return bar


class _Builder:
    def __init__(self, cursor: int | None) -> None:
        self.cursor = cursor
        self.targets: list[Target] = []
        self.draw: dict[str, Callable[[dict[str, Any], int], RenderableType]] = {
            "text": self.text,
            "table": self.table,
            "kv": self.kv,
            "sparkline": self.sparkline,
            "gauge": self.gauge,
            "progress": self.progress,
            "badge": self.badge,
            "list": self.list,
            "button": self.button,
            "rows": self.rows,
            "columns": self.columns,
        }

    def target(self, target: Target) -> Style:
        """Register ``target``; the style its text carries (click meta, cursor highlight)."""
        n = len(self.targets)
        self.targets.append(target)
        meta = Style(meta={"rwq_target": n})
        return meta + _HIGHLIGHT if n == self.cursor else meta

    def one(self, element: dict[str, Any], width: int) -> RenderableType:
        kind = element.get("type")
        draw = self.draw.get(kind) if isinstance(kind, str) else None
        if draw is None:
            raise ValueError(f"unknown element type {kind!r}")
        return draw(element, width)

    def many(self, elements: list[dict[str, Any]], width: int, gap: int = 0) -> RenderableType:
        parts: list[RenderableType] = []
        for i, element in enumerate(elements):
            if gap and i:
                parts.append(NewLine(gap))
            parts.append(self.one(element, width))
        return parts[0] if len(parts) == 1 else Group(*parts)

    # -- one method per element type -----------------------------------------------------------

    def text(self, e: dict[str, Any], width: int) -> RenderableType:
        style = e.get("style")
        if style:
            chosen = rich_style(style)
        else:
            chosen = rich_style(LEVEL_STYLES.get(e.get("level") or "", ""))
        align = e.get("align")
        # "left" would pad every line to the width in the text's style (a red band for errors)
        justify: JustifyMethod = "default" if align in (None, "left") else align
        return Text(plain(e["text"]), style=chosen, justify=justify)

    def table(self, e: dict[str, Any], width: int) -> RenderableType:
        title = e.get("title")
        table = Table(
            title=Text(plain(title), style="bold") if title else None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            expand=False,
        )
        for column in e["columns"]:
            table.add_column(Text(plain(column)), overflow="ellipsis")
        element_id = e.get("id")
        styles = e.get("row_styles") or ()
        for i, row in enumerate(e["rows"]):
            style = rich_style(styles[i]) if i < len(styles) else Style.null()
            cells = [_cell(c) for c in row]
            if element_id:
                value = cells[0].plain if cells else ""
                style = style + self.target(Target("select", element_id, i, value))
            table.add_row(*cells, style=style)
        return table

    def kv(self, e: dict[str, Any], width: int) -> RenderableType:
        grid = Table.grid(padding=(0, 2, 0, 0))
        grid.add_column(style="dim", no_wrap=True, overflow="ellipsis")
        grid.add_column(overflow="fold")
        for key, value in e["items"]:
            grid.add_row(Text(plain(key)), Text(cell_text(value)))
        title = e.get("title")
        if not title:
            return grid
        return Group(Text(plain(title), style="bold"), grid)

    def sparkline(self, e: dict[str, Any], width: int) -> RenderableType:
        label = plain(e.get("label") or "")
        room = max(width - cell_len(label) - 2, 1)
        values = e["values"][-room:]
        line = Text(f"{label} " if label else "", style="dim")
        if not values:
            return line
        low = e.get("min")
        high = e.get("max")
        low = float(min(values) if low is None else low)
        high = float(max(values) if high is None else high)
        span = high - low
        top = len(SPARK_BLOCKS) - 1
        if span > 0 and math.isfinite(span):
            # clamp first so v - low stays within the (finite) span
            chars = [
                SPARK_BLOCKS[round((min(max(v, low), high) - low) / span * top)] for v in values
            ]
        else:
            chars = [SPARK_BLOCKS[0]] * len(values)
        line.append("".join(chars), style=rich_style(e.get("style") or "cyan"))
        return line

    def gauge(self, e: dict[str, Any], width: int) -> RenderableType:
        value = e["value"]
        maximum = e.get("max") or 100
        warn = e.get("warn")
        crit = e.get("crit")
        if crit is not None and value >= crit:
            style = rich_style("red")
        elif warn is not None and value >= warn:
            style = rich_style("yellow")
        else:
            style = rich_style(e.get("style") or "green")
        label = plain(e.get("label") or "")
        suffix = f" {_number(value)}/{_number(maximum)}"
        line = Text(f"{label} " if label else "", style="bold")
        line.append_text(_bar(value / maximum, max(width - line.cell_len - len(suffix), 1), style))
        line.append(suffix, style=style)
        return line

    def progress(self, e: dict[str, Any], width: int) -> RenderableType:
        fraction = min(e["value"] / (e.get("total") or 100), 1.0)
        label = plain(e.get("label") or "")
        suffix = f" {math.floor(fraction * 100):3d}%"
        line = Text(f"{label} " if label else "", style="bold")
        line.append_text(_bar(fraction, max(width - line.cell_len - len(suffix), 1), Style()))
        line.append(suffix)
        return line

    def badge(self, e: dict[str, Any], width: int) -> RenderableType:
        level = e.get("level") or "info"
        return Text(f" {plain(e['text'])} ", style=rich_style(BADGE_STYLES[level]))

    def list(self, e: dict[str, Any], width: int) -> RenderableType:
        selected = e.get("selected")
        lines: list[RenderableType] = []
        title = e.get("title")
        if title:
            lines.append(Text(plain(title), style="bold"))
        for i, item in enumerate(e["items"]):
            style = self.target(Target("select", e["id"], i, item))
            marker = SELECTED_MARK if i == selected else "  "
            line = Text(marker, style=style + rich_style("bold cyan") if i == selected else style)
            line.append(plain(item), style=style)
            lines.append(line)
        return Group(*lines)

    def button(self, e: dict[str, Any], width: int) -> RenderableType:
        key = e.get("key")
        style = self.target(Target("button", e["id"], 0, e["label"], key))
        variant = rich_style(VARIANT_STYLES[e.get("variant") or "default"])
        text = Text(f"[ {plain(e['label'])} ]", style=variant + style)
        if key:
            text.append(f" ({plain(key)})", style=rich_style("dim") + style)
        return text

    def rows(self, e: dict[str, Any], width: int) -> RenderableType:
        children = e["children"]
        if not children:
            return Text("")
        return self.many(children, width, e.get("gap") or 0)

    def columns(self, e: dict[str, Any], width: int) -> RenderableType:
        children = e["children"]
        if not children:
            return Text("")
        gap = e.get("gap") or 0
        weights = e.get("widths") or [1] * len(children)
        sizes = split_width(max(width - gap * (len(children) - 1), 0), weights)
        grid = Table.grid(padding=(0, gap, 0, 0))
        for size in sizes:
            grid.add_column(width=size)
        cells = [self.one(child, size) for child, size in zip(children, sizes, strict=True)]
        grid.add_row(*cells)
        return grid


def split_width(room: int, weights: list[int]) -> list[int]:
    """``room`` cells shared out in proportion to ``weights`` (largest remainders get the
    leftover cells), at least 1 each: children are drawn for exactly the width they get."""
    total = sum(weights)
    sizes = [room * w // total for w in weights]
    leftover = room - sum(sizes)
    by_remainder = sorted(range(len(weights)), key=lambda i: -(room * weights[i] % total))
    for i in by_remainder[:leftover]:
        sizes[i] += 1
    return [max(size, 1) for size in sizes]


def _cell(value: Any) -> Text:
    """A table cell; numbers right-aligned."""
    kind = type(value)
    if kind is str:
        return Text(value.translate(_CONTROL))
    if kind is int or kind is float:
        return Text(cell_text(value), justify="right")
    return Text(cell_text(value))
