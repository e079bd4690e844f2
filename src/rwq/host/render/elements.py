"""Plugin UI elements drawn with Rich: a validated element list
(:mod:`rwq.plugins.contract.ui`) becomes one renderable for a panel body, plus the panel's
interaction targets (buttons, list items, rows of tables with an ``id``) in document order."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, NewLine, RenderableType
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from rwq.plugins.contract.ui import TYPES, button_input, select_input
from rwq.printable import printable

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
_BOLD = Style(bold=True)
_DIM = Style(dim=True)
_PLAIN = Style()
FAST_PATHS = True
"""Draw one-line tables and kv lists directly (see :func:`_simple_table`); tests compare
both ways."""


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


def cells_of(text: str) -> int:
    """Cells ``text`` takes on screen: its length when it is printable ASCII (most plugin text,
    and cheap to tell), else Rich's count."""
    return len(text) if text.isascii() and text.isprintable() else cell_len(text)


def plain(value: str) -> str:
    """Plugin text as shown: control, bidi and other hidden characters escaped visibly
    (``\\n`` and ``\\t`` kept). Nor is it read as markup: the builder makes every string a
    :class:`rich.text.Text`, so ``[bold]`` or ``[@click=app.quit]`` shows as written and no
    escape sequence reaches the terminal."""
    return printable(value, multiline=True)


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


def number_text(value: float) -> str:
    return format(value, ".6g")


def gauge_number(value: float) -> str:
    """A gauge's figure: whole above 100, one decimal below (``6.8/100``, not ``6.8323``)."""
    if isinstance(value, int) or float(value).is_integer():
        return number_text(value)
    if abs(value) >= 100:
        return format(value, ".0f")
    return format(value, ".1f") if abs(value) >= 1 else format(value, ".2g")


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
        self.flat = True
        """Outside columns: elements may be drawn straight into lines."""
        # A method per type of the schema's catalog, named after it.
        self.draw: dict[str, Callable[[dict[str, Any], int], RenderableType]] = {
            kind: getattr(self, kind) for kind in TYPES
        }

    def target(self, target: Target) -> Style:
        """Register ``target``; the style its text carries (cursor highlight, and
        ``meta={"rwq_target": n}``, which a Textual click handler reads from
        ``event.style.meta``)."""
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

    def fit(self, text: Text, width: int) -> RenderableType:
        """A one-line ``text`` as lines, outside columns (Rich pads a grid cell in the text's
        own style)."""
        return _fit(text, width) if self.flat else text

    def many(self, elements: list[dict[str, Any]], width: int, gap: int = 0) -> RenderableType:
        if FAST_PATHS and self.flat:  # one block of lines: drawing the panel replays them
            blocks = [_as_lines(self.one(element, width), width) for element in elements]
            return SegmentLines.stack(blocks, gap)
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
        return self.fit(Text(plain(e["text"]), style=chosen, justify=justify), width)

    def table(self, e: dict[str, Any], width: int) -> RenderableType:
        title = e.get("title")
        header = [plain(column) for column in e["columns"]]
        cells = [_row_cells(row) for row in e["rows"]]
        element_id = e.get("id")
        styles = e.get("row_styles") or ()
        row_styles = []
        for i, cells_of_row in enumerate(cells):
            style = rich_style(styles[i]) if i < len(styles) else Style.null()
            if element_id:
                value = cells_of_row[0][0] if cells_of_row else ""
                style = style + self.target(Target("select", element_id, i, value))
            row_styles.append(style)
        fast = (
            _simple_table(plain(title) if title else None, header, cells, row_styles, width)
            if FAST_PATHS
            else None
        )
        if fast is not None:
            return fast
        table = Table(
            title=Text(plain(title), style="bold") if title else None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            expand=False,
        )
        for column in header:
            table.add_column(Text(column), overflow="ellipsis")
        for row, style in zip(cells, row_styles, strict=True):
            table.add_row(*(Text(t, justify="right" if right else None) for t, right in row),
                          style=style)  # fmt: skip
        return table

    def kv(self, e: dict[str, Any], width: int) -> RenderableType:
        title = e.get("title")
        pairs = [(plain(key), cell_text(value)) for key, value in e["items"]]
        fast = _simple_kv(pairs, width) if FAST_PATHS else None
        if fast is not None and title:
            heading = _as_lines(self.fit(Text(plain(title), style="bold"), width), width)
            return SegmentLines.stack([heading, fast])
        if fast is not None:
            return fast
        grid = Table.grid(padding=(0, 2, 0, 0))
        grid.add_column(style="dim", no_wrap=True, overflow="ellipsis")
        grid.add_column(overflow="fold")
        for key, value in pairs:
            grid.add_row(Text(key), Text(value))
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
            clamped = (v if low <= v <= high else low if v < low else high for v in values)
            chars = [SPARK_BLOCKS[round((x - low) / span * top)] for x in clamped]
        else:
            chars = [SPARK_BLOCKS[0]] * len(values)
        line.append("".join(chars), style=rich_style(e.get("style") or "cyan"))
        return self.fit(line, width)

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
        suffix = f" {gauge_number(value)}/{gauge_number(maximum)}"
        line = Text(f"{label} " if label else "", style="bold")
        line.append_text(_bar(value / maximum, max(width - line.cell_len - len(suffix), 1), style))
        line.append(suffix, style=style)
        return self.fit(line, width)

    def progress(self, e: dict[str, Any], width: int) -> RenderableType:
        fraction = min(e["value"] / (e.get("total") or 100), 1.0)
        label = plain(e.get("label") or "")
        suffix = f" {math.floor(fraction * 100):3d}%"
        line = Text(f"{label} " if label else "", style="bold")
        line.append_text(_bar(fraction, max(width - line.cell_len - len(suffix), 1), Style()))
        line.append(suffix)
        return self.fit(line, width)

    def badge(self, e: dict[str, Any], width: int) -> RenderableType:
        level = e.get("level") or "info"
        return self.fit(Text(f" {plain(e['text'])} ", style=rich_style(BADGE_STYLES[level])), width)

    def list(self, e: dict[str, Any], width: int) -> RenderableType:
        selected = e.get("selected")
        lines: list[Text] = []
        title = e.get("title")
        if title:
            lines.append(Text(plain(title), style="bold"))
        for i, item in enumerate(e["items"]):
            style = self.target(Target("select", e["id"], i, item))
            marker = SELECTED_MARK if i == selected else "  "
            line = Text(marker, style=style + rich_style("bold cyan") if i == selected else style)
            line.append(plain(item), style=style)
            lines.append(line)
        if FAST_PATHS and self.flat:
            return SegmentLines.stack([_as_lines(_fit(line, width), width) for line in lines])
        return Group(*lines)

    def button(self, e: dict[str, Any], width: int) -> RenderableType:
        key = e.get("key")
        style = self.target(Target("button", e["id"], 0, e["label"], key))
        variant = rich_style(VARIANT_STYLES[e.get("variant") or "default"])
        text = Text(f"[ {plain(e['label'])} ]", style=variant + style)
        if key:
            text.append(f" ({plain(key)})", style=rich_style("dim") + style)
        return self.fit(text, width)

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
        flat, self.flat = self.flat, False
        try:
            cells = [self.one(child, size) for child, size in zip(children, sizes, strict=True)]
        finally:
            self.flat = flat
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


Cell = tuple[str, bool]
"""A table cell as shown, and whether it is right-aligned (numbers are)."""


_ROW_CELLS: dict[tuple[Any, ...], list[Cell]] = {}


def _row_cells(row: list[Any]) -> list[Cell]:
    """A table row's cells (rows come back frame after frame: kept, like drawn rows)."""
    try:  # by value and type: 1, 1.0 and True are equal keys but show differently
        key = (*row, *map(type, row))
        cells = _ROW_CELLS.get(key)
    except TypeError:  # a cell that is not hashable: the validator lets none through
        return [_cell(c) for c in row]
    if cells is None:
        cells = [_cell(c) for c in row]
        if len(_ROW_CELLS) >= ROWS_KEPT:
            _ROW_CELLS.clear()
        _ROW_CELLS[key] = cells
    return cells


def _cell(value: Any) -> Cell:
    kind = type(value)
    if kind is str:
        return printable(value, multiline=True), False
    if kind is int or kind is float:
        return cell_text(value), True
    return cell_text(value), False


# -- fast paths -------------------------------------------------------------------------------
# A Rich Table costs milliseconds (every cell is measured and rendered through padding); a
# panel redrawn 30 times a second cannot afford that. Tables and kv lists whose cells are one
# line and fit the width (the usual case) are cut into segments directly, exactly as Rich's
# Table would draw them (a test compares both); anything else goes to Rich.


class SegmentLines:
    """Lines already cut into segments, ``width`` cells at most: rendering replays them."""

    __slots__ = ("lengths", "lines", "width")

    def __init__(
        self, lines: list[list[Segment]], width: int, lengths: list[int] | None = None
    ) -> None:
        self.lines = lines
        self.width = width
        self.lengths = lengths
        """Cells of each line, when known."""

    @classmethod
    def stack(cls, blocks: list[SegmentLines], gap: int = 0) -> SegmentLines:
        """``blocks`` one below the other, ``gap`` blank lines apart (as a Rich ``Group`` of
        them with ``NewLine(gap)`` between would draw them)."""
        lines: list[list[Segment]] = []
        lengths: list[int] | None = []
        for i, block in enumerate(blocks):
            if gap and i:
                lines.extend([] for _ in range(gap))
                if lengths is not None:
                    lengths.extend([0] * gap)
            lines.extend(block.lines)
            if lengths is not None and block.lengths is not None:
                lengths.extend(block.lengths)
            else:
                lengths = None
        return cls(lines, max((b.width for b in blocks), default=0), lengths)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Any:
        line_end = Segment.line()
        for line in self.lines:
            yield from line
            yield line_end

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


def _fit(text: Text, width: int) -> RenderableType:
    """``text`` as one line of segments when it is one line that fits ``width`` and needs no
    justifying (what Rich draws for it, without its wrapping machinery); else ``text``."""
    if not FAST_PATHS or text.justify not in (None, "default"):
        return text
    plain_text = text.plain
    if "\n" in plain_text or "\t" in plain_text:
        return text
    cells = cells_of(plain_text)
    if cells > width:
        return text
    return SegmentLines([_segments(text)], cells, [cells])


def _segments(text: Text) -> list[Segment]:
    """One line of ``text`` as Rich renders it: between any two span edges, the text's style
    with the style of every span covering that stretch added in the spans' order."""
    get_style = _CONSOLE.get_style
    base = get_style(text.style, default=_PLAIN) if text.style else _PLAIN
    plain_text = text.plain
    size = len(plain_text)
    spans = [
        (span.start, min(span.end, size), get_style(span.style, default=_PLAIN))
        for span in text.spans
        if span.style and span.end > span.start and span.start < size
    ]
    if not spans:
        return [Segment(plain_text, base)] if plain_text else []
    edges = sorted({0, size, *(start for start, _, _ in spans), *(end for _, end, _ in spans)})
    line = []
    for start, end in itertools.pairwise(edges):
        style = base
        for span_start, span_end, span_style in spans:
            if span_start <= start and end <= span_end:
                style = style + span_style
        line.append(Segment(plain_text[start:end], style))
    return line


def _as_lines(part: RenderableType, width: int) -> SegmentLines:
    """``part`` drawn into lines ``width`` cells wide at most (Rich draws what is not lines
    already)."""
    if isinstance(part, SegmentLines) and part.lengths is not None and part.width <= width:
        return part
    options = _CONSOLE.options.update(width=max(width, 1), highlight=False)
    lines = _CONSOLE.render_lines(part, options, pad=False, new_lines=False)
    lengths = [Segment.get_line_length(line) for line in lines]
    return SegmentLines(lines, max(lengths, default=0), lengths)


def _one_line(text: str) -> bool:
    return "\n" not in text and "\t" not in text


def _justified(cell: Cell, width: int, style: Style) -> list[Segment]:
    """One cell (one line, at most ``width`` cells) padded to ``width``."""
    text, right = cell
    room = width - cells_of(text)
    body = Segment(text, style)
    if room <= 0:
        return [body]
    pad = Segment(" " * room, style)
    return [pad, body] if right else [body, pad]


_CONSOLE = Console(width=1000, file=None, legacy_windows=False, color_system=None)
"""Draws elements into lines (never written to)."""


ROWS_KEPT = 4096
"""Table rows drawn lately, kept: a panel drawn again mostly shows rows it drew before."""
_ROWS: dict[tuple[tuple[Cell, ...], tuple[int, ...], Style], list[Segment]] = {}


def _simple_table(
    title: str | None,
    header: list[str],
    cells: list[list[Cell]],
    row_styles: list[Style],
    width: int,
) -> SegmentLines | None:
    """The table as Rich draws it (box SIMPLE_HEAD, no edge), or None when it needs Rich:
    a cell of several lines, or a table wider than ``width``."""
    if not header or not _one_line("".join(header)):
        return None
    texts = [[text for text, _ in row] for row in cells]
    if not _one_line("".join(["".join(row) for row in texts])):
        return None
    widths = [max(map(cells_of, column)) for column in zip(header, *texts, strict=True)]
    if not all(widths):  # Rich gives an empty column room anyway
        return None
    last = len(widths) - 1
    total = sum(widths) + 3 * last
    if total > width or (title is not None and (not _one_line(title) or cell_len(title) > total)):
        return None
    lines: list[list[Segment]] = []
    if title is not None:
        lines.append([Segment(title, _BOLD), Segment(" " * (total - cell_len(title)), _BOLD)])

    shape = tuple(widths)

    def row_line(row: list[Cell], style: Style, background: Style | None = None) -> list[Segment]:
        key = (tuple(row), shape, style)
        line = _ROWS.get(key)
        if line is not None:
            return line
        line = []
        pad = Segment(" ", style)
        # Rich gives a blank divider the row's background
        separator = Segment(" ", background or style.background_style + _PLAIN)
        for i, (cell, cells_width) in enumerate(zip(row, widths, strict=True)):
            if i:
                line += (separator, pad)
            line += _justified(cell, cells_width, style)
            if i < last:
                line.append(pad)
        # one segment per run of a style (a plain row is one): every later step, down to the
        # terminal's escape codes, works per segment
        line = list(Segment.simplify(line))
        if len(_ROWS) >= ROWS_KEPT:
            _ROWS.clear()
        _ROWS[key] = line
        return line

    lines.append(row_line([(h, False) for h in header], _BOLD, _PLAIN))
    lines.append([Segment("\u2500" * total, _PLAIN)])
    for row, style in zip(cells, row_styles, strict=True):
        lines.append(row_line(row, style))
    return SegmentLines(lines, total, [total] * len(lines))


def _simple_kv(pairs: list[tuple[str, str]], width: int) -> SegmentLines | None:
    """The key/value grid as Rich draws it (keys dim, two cells apart), or None when a key or
    value has several lines or a line is wider than ``width``."""
    if not pairs:
        return None
    keys = max(cells_of(k) for k, _ in pairs)
    values = max(cells_of(v) for _, v in pairs)
    if keys + 2 + values > width or keys == 0:
        return None
    lines = []
    for key, value in pairs:
        if not (_one_line(key) and _one_line(value)):
            return None
        line = [Segment(key + " " * (keys - cells_of(key) + 2), _DIM)]
        line.append(Segment(value + " " * (values - cells_of(value))))
        lines.append(line)
    return SegmentLines(lines, keys + 2 + values, [keys + 2 + values] * len(lines))
