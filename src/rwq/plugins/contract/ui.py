"""The UI element schema: what a plugin's ``render`` may return and what ``on_input`` receives.

One catalog (:data:`TYPES`, :data:`STYLE_WORDS`, :data:`LEVELS`, :data:`INPUTS`) drives both
:func:`validate_elements`, which the plugin manager runs on every render result
(``PluginManager(element_validator=validate_elements)``), and ``docs/ui-elements.md``
(:mod:`rwq.plugins.contract.ui_doc`; a test keeps the two equal). The TUI's
renderer (:mod:`rwq.host.render.elements`) draws what passes.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rwq.errors import RwqError

MAX_DEPTH = 8
"""Deepest nesting of ``rows``/``columns``: top-level elements are at depth 1."""
MAX_ELEMENTS = 2000
"""Most elements in a whole render result, nested ones included."""
MAX_GAP = 4
MAX_RENDER_BYTES = 256 * 1024
"""Largest render result (bytes of its JSON) a panel may return."""

ATTRIBUTES = ("bold", "italic", "underline", "dim", "reverse", "strike")
COLOURS = ("red", "green", "yellow", "blue", "magenta", "cyan", "white", "black", "grey", "orange")
STYLE_WORDS = (*ATTRIBUTES, *COLOURS, "on")
MAX_STYLE_WORDS = 6

LEVELS: dict[str, str] = {
    "ok": "green: all is well",
    "info": "cyan: neutral information (the badge default)",
    "warning": "yellow: needs attention soon",
    "error": "red: something failed",
    "critical": "bold white on red: needs attention now",
    "muted": "dim: background detail",
}

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class ElementError(RwqError, ValueError):
    """A render result breaks the schema: ``path`` names the element and field
    (``[1].children[0].rows[3]``), ``reason`` says what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class _Bad(Exception):
    """A field value is wrong; ``sub`` is the path inside the field (``[3]``)."""

    def __init__(self, reason: str, sub: str = "") -> None:
        self.reason = reason
        self.sub = sub


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_LARGEST = sys.float_info.max


def _number(value: Any) -> float | int:
    kind = type(value)
    if kind is int:
        if not -_LARGEST <= value <= _LARGEST:
            raise _Bad("must be a finite number, got an integer beyond a double's range")
        return int(value)
    if kind is float:
        if value - value != 0:  # NaN or infinity
            raise _Bad(f"must be a finite number, got {value!r}")
        return float(value)
    raise _Bad(f"must be a number, got {_kind(value)}")


# -- field kinds: each checks a value (raising _Bad) and describes itself for the doc ------------


@dataclass(frozen=True)
class Kind:
    """The type of a field's value, with its limits."""

    def check(self, value: Any) -> None:
        raise NotImplementedError

    @property
    def doc(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class String(Kind):
    max_len: int
    min_len: int = 0
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        if type(value) is not str:
            raise _Bad(f"must be a string, got {_kind(value)}")
        if self.choices:
            if value not in self.choices:
                raise _Bad(f"must be one of {', '.join(self.choices)}; got {value[:40]!r}")
        elif not self.min_len <= len(value) <= self.max_len:
            raise _Bad(f"must be {self.min_len}-{self.max_len} characters, got {len(value)}")

    @property
    def doc(self) -> str:
        if self.choices:
            return " / ".join(f"`{c}`" for c in self.choices)
        return f"string, {self.min_len}-{self.max_len} chars" if self.min_len else (
            f"string ≤ {self.max_len} chars")  # fmt: skip


@dataclass(frozen=True)
class Identifier(Kind):
    def check(self, value: Any) -> None:
        if type(value) is not str or _ID.fullmatch(value) is None:
            shown = repr(value[:70]) if isinstance(value, str) else _kind(value)
            raise _Bad(f"must be 1-64 characters of A-Z a-z 0-9 _ . : -, got {shown}")

    @property
    def doc(self) -> str:
        return "string, 1-64 chars of `[A-Za-z0-9_.:-]`"


@dataclass(frozen=True)
class Number(Kind):
    gt: float | None = None
    ge: float | None = None

    def check(self, value: Any) -> None:
        number = _number(value)
        if self.gt is not None and not number > self.gt:
            raise _Bad(f"must be > {self.gt:g}, got {number!r}")
        if self.ge is not None and not number >= self.ge:
            raise _Bad(f"must be ≥ {self.ge:g}, got {number!r}")

    @property
    def doc(self) -> str:
        if self.gt is not None:
            return f"number > {self.gt:g}"
        if self.ge is not None:
            return f"number ≥ {self.ge:g}"
        return "number"


@dataclass(frozen=True)
class Integer(Kind):
    lo: int
    hi: int | None = None

    def check(self, value: Any) -> None:
        if type(value) is not int:
            raise _Bad(f"must be an integer, got {_kind(value)}")
        if value < self.lo or (self.hi is not None and value > self.hi):
            top = "" if self.hi is None else str(self.hi)
            raise _Bad(f"must be an integer {self.lo}-{top}, got {value}")

    @property
    def doc(self) -> str:
        return f"integer {self.lo}-{self.hi}" if self.hi is not None else f"integer ≥ {self.lo}"


_STYLE_CACHE: dict[str, str | None] = {}


def style_error(style: str) -> str | None:
    """Why ``style`` is not a style of the vocabulary, or None when it is."""
    try:
        return _STYLE_CACHE[style]
    except KeyError:
        pass
    words = style.split()
    reason = None
    if len(words) > MAX_STYLE_WORDS:
        reason = f"style {style[:60]!r} has {len(words)} words, over {MAX_STYLE_WORDS}"
    else:
        colours = [0, 0]  # foreground, background
        background = False
        for word in words:
            if background:
                if word not in COLOURS:
                    reason = f"'on' must be followed by a colour, got {word[:20]!r}"
                    break
                background = False
            elif word == "on":
                background = True
                colours[1] += 1
            elif word in COLOURS:
                colours[0] += 1
            elif word not in ATTRIBUTES:
                reason = f"{word[:20]!r} is not a style word ({' '.join(STYLE_WORDS)})"
                break
        else:
            if background:
                reason = f"style {style[:60]!r} ends in 'on' without a colour"
            elif max(colours) > 1:
                reason = f"style {style[:60]!r} names more than one foreground or background colour"
    if len(_STYLE_CACHE) < 4096:
        _STYLE_CACHE[style] = reason
    return reason


@dataclass(frozen=True)
class Style(Kind):
    def check(self, value: Any) -> None:
        if type(value) is not str:
            raise _Bad(f"must be a style string, got {_kind(value)}")
        reason = style_error(value)
        if reason is not None:
            raise _Bad(reason)

    @property
    def doc(self) -> str:
        return "[style](#styles)"


@dataclass(frozen=True)
class Key(Kind):
    def check(self, value: Any) -> None:
        if type(value) is not str or len(value) != 1 or not value.isprintable() or value == " ":
            shown = repr(value[:10]) if isinstance(value, str) else _kind(value)
            raise _Bad(f"must be one printable character, got {shown}")

    @property
    def doc(self) -> str:
        return "one printable character (not space)"


@dataclass(frozen=True)
class Cell(Kind):
    """A table cell or kv value: string, number, bool or null."""

    max_len: int = 256

    def check(self, value: Any) -> None:
        kind = type(value)
        if kind is str:
            if len(value) > self.max_len:
                raise _Bad(f"string of {len(value)} characters, over {self.max_len}")
        elif kind is float:
            if value - value != 0:
                raise _Bad(f"must be a finite number, got {value!r}")
        elif kind is not int and kind is not bool and value is not None:
            raise _Bad(f"must be a string, number, bool or null, got {_kind(value)}")

    @property
    def doc(self) -> str:
        return f"string ≤ {self.max_len} / number / bool / null"


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    max_len: int
    min_len: int = 0
    nullable_items: bool = False

    def check(self, value: Any) -> None:
        if type(value) is not list:
            raise _Bad(f"must be a list, got {_kind(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            raise _Bad(f"has {len(value)} items, must have {self.min_len}-{self.max_len}")
        check = self.item.check
        nullable = self.nullable_items
        for i, item in enumerate(value):
            if nullable and item is None:
                continue
            try:
                check(item)
            except _Bad as bad:
                raise _Bad(bad.reason, f"[{i}]{bad.sub}") from None

    @property
    def doc(self) -> str:
        count = f"{self.min_len}-{self.max_len}" if self.min_len else f"≤ {self.max_len}"
        null = " or null" if self.nullable_items else ""
        return f"list ({count}) of {self.item.doc}{null}"


@dataclass(frozen=True)
class Numbers(Kind):
    """A list of finite numbers (checked in one tight loop: sparklines carry many)."""

    max_len: int

    def check(self, value: Any) -> None:
        if type(value) is not list:
            raise _Bad(f"must be a list, got {_kind(value)}")
        if len(value) > self.max_len:
            raise _Bad(f"has {len(value)} items, over {self.max_len}")
        for i, item in enumerate(value):
            kind = type(item)
            if kind is float:
                if item - item != 0:
                    raise _Bad(f"must be a finite number, got {item!r}", f"[{i}]")
            elif kind is not int:
                raise _Bad(f"must be a number, got {_kind(item)}", f"[{i}]")
            elif not -_LARGEST <= item <= _LARGEST:
                raise _Bad("must be a finite number, got an integer beyond a double's range",
                           f"[{i}]")  # fmt: skip

    @property
    def doc(self) -> str:
        return f"list (≤ {self.max_len}) of numbers"


@dataclass(frozen=True)
class Pair(Kind):
    key: Kind
    value: Kind

    def check(self, value: Any) -> None:
        if type(value) is not list or len(value) != 2:
            raise _Bad(f"must be a [key, value] pair, got {_kind(value)}")
        for i, (kind, item) in enumerate(((self.key, value[0]), (self.value, value[1]))):
            try:
                kind.check(item)
            except _Bad as bad:
                raise _Bad(bad.reason, f"[{i}]{bad.sub}") from None

    @property
    def doc(self) -> str:
        return f"`[key, value]`: key {self.key.doc}, value {self.value.doc}"


@dataclass(frozen=True)
class Children(Kind):
    """Nested elements; the validator walks them itself (depth and element count)."""

    def check(self, value: Any) -> None:
        if type(value) is not list:
            raise _Bad(f"must be a list of elements, got {_kind(value)}")

    @property
    def doc(self) -> str:
        return "list of elements"


# -- the catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of an element type."""

    name: str
    kind: Kind
    description: str
    required: bool = False
    default: Any = None
    """What the renderer uses when the field is absent (None: nothing)."""


@dataclass(frozen=True)
class ElementType:
    """One element type: its fields and the rules that tie fields together."""

    name: str
    description: str
    fields: tuple[Field, ...]
    rules: tuple[str, ...] = ()
    """Cross-field rules, for the doc; ``check`` enforces them."""
    check: Callable[[dict[str, Any]], None] | None = field(default=None, compare=False)
    """Raises ``_Bad`` (with the path inside the element) when a rule is broken."""
    interactive: str = ""
    """The input event it produces, if any (for the doc)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "required", tuple(f.name for f in self.fields if f.required))

    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)
    required: tuple[str, ...] = field(init=False, repr=False, compare=False)


def _table_rules(element: dict[str, Any]) -> None:
    columns = element.get("columns")
    rows = element.get("rows")
    width = len(columns) if isinstance(columns, list) else 0
    for i, row in enumerate(rows if isinstance(rows, list) else ()):
        if len(row) != width:
            raise _Bad(f"has {len(row)} cells, the table has {width} columns", f".rows[{i}]")
    styles = element.get("row_styles")
    if styles is not None and len(styles) != len(rows or ()):
        raise _Bad(f"has {len(styles)} entries for {len(rows or ())} rows", ".row_styles")


def _list_rules(element: dict[str, Any]) -> None:
    selected = element.get("selected")
    if selected is not None and selected >= len(element["items"]):
        raise _Bad(f"is {selected}, the list has {len(element['items'])} items", ".selected")


def _columns_rules(element: dict[str, Any]) -> None:
    widths = element.get("widths")
    if widths is not None and len(widths) != len(element["children"]):
        count = len(element["children"])
        raise _Bad(f"has {len(widths)} weights for {count} children", ".widths")


_TEXT = 4096
_LABEL = String(64)
_TITLE = Field("title", String(128), "shown above the element")

ID = Field("id", Identifier(), "names the element in input events")
"""The field every element type accepts."""

TYPES: dict[str, ElementType] = {
    t.name: t
    for t in (
        ElementType("text", "A paragraph of plain text (never markup).", (
            Field("text", String(_TEXT), "the text; newlines start new lines", required=True),
            Field("style", Style(), "how the text looks"),
            Field("level", String(0, choices=tuple(LEVELS)),
                  "colour by meaning (the style, when given, wins)"),
            Field("align", String(0, choices=("left", "center", "right")), "alignment",
                  default="left"),
        )),
        ElementType("table", "Rows under column headings.", (
            Field("columns", ListOf(String(64), 32, min_len=1), "the headings", required=True),
            Field("rows", ListOf(ListOf(Cell(), 32), 1000), "the rows, top first",
                  required=True),
            Field("row_styles", ListOf(Style(), 1000, nullable_items=True),
                  "one style (or null) per row"),
            _TITLE,
        ), rules=(
            "every row has exactly as many cells as there are `columns`",
            "`row_styles`, when given, has one entry per row",
            "with an `id` the table is selectable: each row is an input target",
        ), check=_table_rules, interactive="select"),
        ElementType("kv", "Key/value pairs, keys in one column and values in the next.", (
            Field("items", ListOf(Pair(String(64), Cell()), 200), "the pairs", required=True),
            _TITLE,
        )),
        ElementType("sparkline", "A one-line chart of the latest values.", (
            Field("values", Numbers(1000), "oldest first; the newest that fit are drawn",
                  required=True),
            Field("label", _LABEL, "shown before the chart"),
            Field("style", Style(), "the chart's style"),
            Field("min", Number(), "the value drawn lowest (default: the smallest value)"),
            Field("max", Number(), "the value drawn highest (default: the largest value)"),
        )),
        ElementType("gauge", "A bar showing a value against a maximum.", (
            Field("value", Number(), "the current value", required=True),
            Field("max", Number(gt=0), "the full-bar value", default=100),
            Field("label", _LABEL, "shown before the bar"),
            Field("style", Style(), "the bar's style below the thresholds"),
            Field("warn", Number(), "from this value up the bar is yellow"),
            Field("crit", Number(), "from this value up the bar is red"),
        )),
        ElementType("progress", "A progress bar with a percentage.", (
            Field("value", Number(ge=0), "work done", required=True),
            Field("total", Number(gt=0), "all the work", default=100),
            Field("label", _LABEL, "shown before the bar"),
        )),
        ElementType("badge", "A short coloured tag.", (
            Field("text", String(64), "the tag", required=True),
            Field("level", String(0, choices=tuple(LEVELS)), "its colour", default="info"),
        )),
        ElementType("list", "A list of items the user can choose from.", (
            Field("id", Identifier(), "names the list in `select` events", required=True),
            Field("items", ListOf(String(256), 500), "the items, top first", required=True),
            Field("selected", Integer(0), "the item the plugin marks as chosen"),
            _TITLE,
        ), rules=("`selected`, when given, is below the number of items",),
           check=_list_rules, interactive="select"),
        ElementType("button", "A button; click, Enter or its `key` presses it.", (
            Field("id", Identifier(), "names the button in `button` events", required=True),
            Field("label", String(32, min_len=1), "the button's text", required=True),
            Field("variant", String(0, choices=("default", "primary", "warning", "error")),
                  "its colour", default="default"),
            Field("key", Key(), "presses it when the panel has focus"),
        ), interactive="button"),
        ElementType("rows", "Elements stacked top to bottom.", (
            Field("children", Children(), "the elements", required=True),
            Field("gap", Integer(0, MAX_GAP), "blank lines between children", default=0),
        )),
        ElementType("columns", "Elements side by side.", (
            Field("children", Children(), "the elements", required=True),
            Field("widths", ListOf(Integer(1), 32), "relative width weights, one per child"),
            Field("gap", Integer(0, MAX_GAP), "blank columns between children", default=0),
        ), rules=("`widths`, when given, has one weight per child",), check=_columns_rules),
    )
}  # fmt: skip
"""Every element type, by name."""

for _type in TYPES.values():
    if "id" not in _type.by_name:
        _type.by_name["id"] = ID
del _type

_TYPE_NAMES = ", ".join(TYPES)


# -- validation ----------------------------------------------------------------------------------


def cap_elements(
    result: Any, *, max_bytes: int = MAX_RENDER_BYTES, max_elements: int = MAX_ELEMENTS
) -> list[Any]:
    """``result`` if it is a list of element objects within the size caps, else ValueError."""
    if not isinstance(result, list):
        raise ValueError(f"render must return a list of elements, got {type(result).__name__}")
    if len(result) > max_elements:
        raise ValueError(f"render returned {len(result)} elements, over {max_elements}")
    for i, element in enumerate(result):
        if not isinstance(element, dict):
            raise ValueError(f"element {i} is a {type(element).__name__}, not an object")
    try:
        size = len(json.dumps(result, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"render result is not JSON: {exc}") from None
    if size > max_bytes:
        raise ValueError(f"render result is {size} bytes of JSON, over {max_bytes}")
    return result


def validate_elements(elements: Any) -> list[dict[str, Any]]:
    """Check a render result against the schema and return it.

    The list is returned as it came (not copied, no defaults filled in: the renderer applies
    the defaults of :data:`TYPES`). An optional field set to null counts as absent.

    Raises:
        ElementError: (a ``ValueError``) naming the element path and field, e.g.
            ``[1].children[0].rows[3]: has 4 cells, the table has 3 columns``.
    """
    if not isinstance(elements, list):
        raise ElementError("", f"render must return a list of elements, got {_kind(elements)}")
    count = [0]
    _check_children(elements, "", 1, count)
    return elements


def _check_children(children: list[Any], path: str, depth: int, count: list[int]) -> None:
    for i, element in enumerate(children):
        _check_element(element, f"{path}[{i}]", depth, count)


def _check_element(element: Any, path: str, depth: int, count: list[int]) -> None:
    if type(element) is not dict:
        raise ElementError(path, f"must be an element object, got {_kind(element)}")
    count[0] += 1
    if count[0] > MAX_ELEMENTS:
        raise ElementError(path, f"more than {MAX_ELEMENTS} elements in the render result")
    if depth > MAX_DEPTH:
        raise ElementError(path, f"nested deeper than {MAX_DEPTH} levels")
    name = element.get("type")
    spec = TYPES.get(name) if type(name) is str else None
    if spec is None:
        shown = repr(name[:40]) if isinstance(name, str) else _kind(name)
        what = "has no type" if name is None else f"unknown type {shown}"
        raise ElementError(path, f"{what} (types: {_TYPE_NAMES})")
    fields = spec.by_name
    children = None
    for key, value in element.items():
        if key == "type":
            continue
        spec_field = fields.get(key)
        if spec_field is None:
            known = ", ".join(fields)
            raise ElementError(path, f"unknown field {str(key)[:40]!r} for {name} ({known})")
        if value is None and not spec_field.required:
            continue
        try:
            spec_field.kind.check(value)
        except _Bad as bad:
            raise ElementError(f"{path}.{key}{bad.sub}", bad.reason) from None
        if key == "children":
            children = value
    for key in spec.required:
        if element.get(key) is None:
            raise ElementError(path, f"{name} needs the field {key!r}")
    if spec.check is not None:
        try:
            spec.check(element)
        except _Bad as bad:
            raise ElementError(f"{path}{bad.sub}", bad.reason) from None
    if children:
        for i, child in enumerate(children):
            _check_element(child, f"{path}.children[{i}]", depth + 1, count)


# -- input events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputKind:
    """One kind of event ``on_input`` receives."""

    kind: str
    fields: tuple[tuple[str, str], ...]
    description: str
    example: str


INPUTS: dict[str, InputKind] = {
    i.kind: i
    for i in (
        InputKind("key", (("key", "Textual key name: `a`, `enter`, `up`, `ctrl+r` ..."),),
                  "A key pressed while the panel has focus. Not delivered: keys the host binds "
                  "(tab, escape, ?, page up/down: they scroll a panel taller than its cell), "
                  "up/down and Enter while the panel has targets (they move "
                  "between and press them) and a button's `key` (it presses the button).",
                  '{"kind": "key", "key": "r"}'),
        InputKind("button", (("id", "the button's `id`"),),
                  "A button pressed: clicked, Enter on it, or its `key`.",
                  '{"kind": "button", "id": "refresh"}'),
        InputKind("select", (("id", "the list's or table's `id`"),
                             ("index", "the item or row index, from 0"),
                             ("value", "the item's text, or the row's first cell as a string")),
                  "A list item or a row of a table with an `id` chosen: clicked or Enter on it.",
                  '{"kind": "select", "id": "queues", "index": 2, "value": "emails"}'),
    )
}  # fmt: skip
"""Every kind of input event, by kind."""


def key_input(key: str) -> dict[str, Any]:
    return {"kind": "key", "key": key}


def button_input(element_id: str) -> dict[str, Any]:
    return {"kind": "button", "id": element_id}


def select_input(element_id: str, index: int, value: str) -> dict[str, Any]:
    return {"kind": "select", "id": element_id, "index": index, "value": value}
