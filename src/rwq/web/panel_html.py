"""Plugin UI elements drawn into HTML for the browser: the same validated element list the
TUI draws with Rich (:mod:`rwq.host.render.elements`) becomes one HTML fragment, plus the
panel's input targets (buttons, list items, rows of tables with an ``id``).

Plugin text is treated exactly as strictly as in the terminal, then once more for HTML: every
string goes through :func:`rwq.printable.printable` (control, bidi and hidden characters shown
as visible escapes) and is then HTML-escaped, attribute values included. Nothing a plugin
sends becomes markup, a URL, an inline style or a script: styles and levels are words of a
closed vocabulary mapped to CSS classes, numbers are formatted here, charts are SVG drawn from
numbers. The page's Content-Security-Policy forbids inline script and inline style besides.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rwq.host.render.elements import Target, cell_text, gauge_number, number_text
from rwq.plugins.contract.ui import ATTRIBUTES, COLOURS, LEVELS, TYPES
from rwq.printable import printable

__all__ = ["PanelHtml", "panel_html"]

SPARK_POINTS = 120
"""The newest values a sparkline draws."""
SPARK_WIDTH = 240
SPARK_HEIGHT = 32
GROW_STEPS = 12
"""Relative column widths are rounded to twelfths (a class each: no inline styles)."""
_VARIANTS = ("default", "primary", "warning", "error")
_ALIGNS = ("left", "center", "right")


@dataclass(frozen=True)
class PanelHtml:
    """A panel body as an HTML fragment and its targets in document order."""

    html: str
    targets: tuple[Target, ...]

    def find(self, kind: str, element_id: str, index: int) -> Target | None:
        """The target a click names, or None when the panel has no such target."""
        for target in self.targets:
            if target.kind == kind and target.id == element_id and target.index == index:
                return target
        return None


def panel_html(elements: list[dict[str, Any]]) -> PanelHtml:
    """Validated ``elements`` (:func:`rwq.plugins.contract.ui.validate_elements`) as HTML."""
    builder = _Builder()
    body = "".join(builder.one(element) for element in elements)
    return PanelHtml(body, tuple(builder.targets))


def text_of(value: object) -> str:
    """Plugin text as HTML: shown as the terminal shows it, then escaped."""
    return html.escape(printable(value, multiline=True), quote=True)


def style_classes(style: str | None) -> str:
    """A vocabulary style (``"bold red on white"``) as CSS classes (``st-bold fg-red
    bg-white``); a word outside the vocabulary (the validator let none through) is dropped."""
    if not style:
        return ""
    classes = []
    background = False
    for word in style.split():
        if word == "on":
            background = True
        elif word in COLOURS:
            classes.append(f"{'bg' if background else 'fg'}-{word}")
            background = False
        elif word in ATTRIBUTES:
            classes.append(f"st-{word}")
    return " ".join(classes)


def _level(level: object, default: str = "") -> str:
    return f"lvl-{level}" if isinstance(level, str) and level in LEVELS else default


def _classes(*names: str) -> str:
    return " ".join(name for name in names if name)


def _title(e: dict[str, Any]) -> str:
    title = e.get("title")
    return f'<div class="el-title">{text_of(title)}</div>' if title else ""


def _bar(fraction: float, kind: str) -> str:
    """A horizontal bar filled to ``fraction`` (0-1), as SVG."""
    filled = round(min(max(fraction, 0.0), 1.0) * 1000) / 10
    return (
        '<svg class="el-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
        f'aria-label="{filled:g}%"><rect class="track" width="100" height="8"/>'
        f'<rect class="fill {kind}" width="{filled:g}" height="8"/></svg>'
    )


def _meter(kind: str, label: object, fraction: float, look: str, figure: str) -> str:
    """A gauge or progress bar: its label, the bar filled to ``fraction``, its figure."""
    heading = f'<span class="label">{text_of(label)}</span>' if label else ""
    return (
        f'<div class="{kind}">{heading}{_bar(fraction, look)}'
        f'<span class="figure {look}">{figure}</span></div>'
    )


class _Builder:
    def __init__(self) -> None:
        self.targets: list[Target] = []
        # A method per type of the schema's catalog, named after it.
        self.draw: dict[str, Callable[[dict[str, Any]], str]] = {
            kind: getattr(self, kind) for kind in TYPES
        }

    def one(self, element: dict[str, Any]) -> str:
        kind = element.get("type")
        draw = self.draw.get(kind) if isinstance(kind, str) else None
        if draw is None:
            raise ValueError(f"unknown element type {kind!r}")
        return draw(element)

    def target(self, kind: Literal["button", "select"], element_id: str, index: int,
               value: str, key: str | None = None) -> str:  # fmt: skip
        """Register a target; the attributes that name it on its HTML element."""
        self.targets.append(Target(kind, element_id, index, value, key))
        return (
            f' data-kind="{kind}" data-id="{html.escape(element_id, quote=True)}"'
            f' data-index="{index}"'
        )

    # -- one method per element type -----------------------------------------------------------

    def text(self, e: dict[str, Any]) -> str:
        look = style_classes(e.get("style")) or _level(e.get("level"))
        align = e.get("align") if e.get("align") in _ALIGNS else "left"
        return f'<p class="{_classes("el-text", f"al-{align}", look)}">{text_of(e["text"])}</p>'

    def table(self, e: dict[str, Any]) -> str:
        element_id = e.get("id")
        styles = e.get("row_styles") or ()
        head = "".join(f"<th>{text_of(column)}</th>" for column in e["columns"])
        rows = []
        for i, row in enumerate(e["rows"]):
            cells = [cell_text(value) for value in row]
            look = style_classes(styles[i]) if i < len(styles) else ""
            attributes = ""
            if element_id:
                attributes = self.target("select", element_id, i, cells[0] if cells else "")
                look = _classes(look, "target")
            body = "".join(
                f'<td class="num">{html.escape(text)}</td>'
                if isinstance(value, int | float) and not isinstance(value, bool)
                else f"<td>{html.escape(text, quote=True)}</td>"
                for value, text in zip(row, cells, strict=True)
            )
            cls = f' class="{look}"' if look else ""
            rows.append(f"<tr{cls}{attributes}>{body}</tr>")
        return (
            f'<div class="el-table">{_title(e)}<table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )

    def kv(self, e: dict[str, Any]) -> str:
        pairs = "".join(
            f"<dt>{text_of(key)}</dt><dd>{html.escape(cell_text(value), quote=True)}</dd>"
            for key, value in e["items"]
        )
        return f'<div class="el-kv">{_title(e)}<dl>{pairs}</dl></div>'

    def sparkline(self, e: dict[str, Any]) -> str:
        label = e.get("label")
        values = e["values"][-SPARK_POINTS:]
        heading = f'<span class="label">{text_of(label)}</span>' if label else ""
        if not values:
            return f'<div class="el-spark">{heading}</div>'
        low = e.get("min")
        high = e.get("max")
        low = float(min(values) if low is None else low)
        high = float(max(values) if high is None else high)
        span = high - low
        step = SPARK_WIDTH / max(len(values) - 1, 1)
        points = []
        for i, value in enumerate(values):
            if span > 0 and math.isfinite(span):
                clamped = min(max(float(value), low), high)
                y = SPARK_HEIGHT - (clamped - low) / span * SPARK_HEIGHT
            else:
                y = SPARK_HEIGHT
            points.append(f"{i * step:.1f},{y:.1f}")
        look = style_classes(e.get("style")) or "fg-cyan"
        return (
            f'<div class="el-spark">{heading}<svg class="{look}" '
            f'viewBox="0 -1 {SPARK_WIDTH} {SPARK_HEIGHT + 2}" preserveAspectRatio="none" '
            f'role="img" aria-label="{len(values)} values, last {number_text(values[-1])}">'
            f'<polyline points="{" ".join(points)}"/></svg></div>'
        )

    def gauge(self, e: dict[str, Any]) -> str:
        value = e["value"]
        maximum = e.get("max") or 100
        warn = e.get("warn")
        crit = e.get("crit")
        if crit is not None and value >= crit:
            look = "fg-red"
        elif warn is not None and value >= warn:
            look = "fg-yellow"
        else:
            look = style_classes(e.get("style")) or "fg-green"
        figure = f"{gauge_number(value)}/{gauge_number(maximum)}"
        return _meter("el-gauge", e.get("label"), value / maximum, look, figure)

    def progress(self, e: dict[str, Any]) -> str:
        fraction = min(e["value"] / (e.get("total") or 100), 1.0)
        return _meter("el-progress", e.get("label"), fraction, "fg-cyan", f"{fraction * 100:.0f}%")

    def badge(self, e: dict[str, Any]) -> str:
        level = _level(e.get("level"), "lvl-info")
        return f'<span class="el-badge {level}">{text_of(e["text"])}</span>'

    def list(self, e: dict[str, Any]) -> str:
        element_id = e["id"]
        selected = e.get("selected")
        items = []
        for i, item in enumerate(e["items"]):
            text = printable(item, multiline=True)
            chosen = ' class="selected" aria-current="true"' if i == selected else ""
            attributes = self.target("select", element_id, i, text)
            items.append(
                f'<li{chosen}><button type="button" class="target"{attributes}>'
                f"{html.escape(text, quote=True)}</button></li>"
            )
        return f'<div class="el-list">{_title(e)}<ul>{"".join(items)}</ul></div>'

    def button(self, e: dict[str, Any]) -> str:
        variant = e.get("variant") if e.get("variant") in _VARIANTS else "default"
        label = printable(e["label"], multiline=False)
        key = e.get("key")
        attributes = self.target("button", e["id"], 0, label, key)
        shortcut = ""
        if key:
            shortcut = f' data-key="{text_of(key)}" aria-keyshortcuts="{text_of(key)}"'
            label_html = f"{html.escape(label)} <kbd>{text_of(key)}</kbd>"
        else:
            label_html = html.escape(label)
        return (
            f'<button type="button" class="el-button var-{variant}"{attributes}{shortcut}>'
            f"{label_html}</button>"
        )

    def rows(self, e: dict[str, Any]) -> str:
        children = "".join(self.one(child) for child in e["children"])
        return f'<div class="el-rows gap-{int(e.get("gap") or 0)}">{children}</div>'

    def columns(self, e: dict[str, Any]) -> str:
        children = e["children"]
        weights = e.get("widths") or [1] * len(children)
        total = sum(weights) or 1
        parts = []
        for child, weight in zip(children, weights, strict=False):
            grow = max(1, min(GROW_STEPS, round(weight / total * GROW_STEPS)))
            parts.append(f'<div class="col grow-{grow}">{self.one(child)}</div>')
        return f'<div class="el-columns gap-{int(e.get("gap") or 0)}">{"".join(parts)}</div>'
