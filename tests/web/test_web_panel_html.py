"""Plugin UI elements drawn into HTML: every element type, the input targets, and hostile text
that never becomes markup, an attribute, a script or a hidden character."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_text import HOSTILE, assert_shown_safely, hostile_text
from rwq.host.render.elements import Target
from rwq.plugins.contract.ui import validate_elements
from rwq.printable import printable
from rwq.web.panel_html import panel_html, style_classes

TAGS = {
    "div", "p", "span", "table", "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd", "ul",
    "li", "button", "kbd", "svg", "polyline", "rect",
}  # fmt: skip
ATTRIBUTES = {
    "class", "data-kind", "data-id", "data-index", "data-key", "aria-keyshortcuts",
    "aria-current", "aria-label", "type", "viewbox", "preserveaspectratio", "role", "points",
    "width", "height",
}  # fmt: skip


class Parsed(HTMLParser):
    """The tags, attributes and text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in {"rect", "polyline"}:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> Parsed:
    parsed = Parsed()
    parsed.feed(fragment)
    parsed.close()
    assert parsed.open == [], f"unclosed {parsed.open}"
    for tag, attrs in parsed.tags:
        assert tag in TAGS, tag
        assert set(attrs) <= ATTRIBUTES, (tag, attrs)
    return parsed


EVERY_TYPE: list[dict[str, Any]] = [
    {"type": "text", "text": "hello\nworld", "level": "warning", "align": "center"},
    {"type": "table", "id": "jobs", "title": "Jobs", "columns": ["id", "ms"],
     "rows": [["a", 1.5], ["b", None]], "row_styles": ["bold red", None]},
    {"type": "kv", "title": "Facts", "items": [["seen", 3], ["ok", True], ["none", None]]},
    {"type": "sparkline", "label": "ms", "values": [1, 5, 3], "min": 0, "max": 10},
    {"type": "gauge", "label": "load", "value": 75, "max": 100, "warn": 70, "crit": 90},
    {"type": "progress", "label": "done", "value": 30, "total": 60},
    {"type": "badge", "text": "3 breach", "level": "critical"},
    {"type": "list", "id": "things", "items": ["alpha", "beta"], "selected": 1},
    {"type": "button", "id": "go", "label": "Go", "key": "g", "variant": "primary"},
    {"type": "rows", "gap": 1, "children": [{"type": "text", "text": "in rows"}]},
    {"type": "columns", "widths": [1, 3], "children": [
        {"type": "badge", "text": "left"}, {"type": "text", "text": "right"}]},
]  # fmt: skip


def test_every_element_type_is_drawn_with_its_targets_in_document_order() -> None:
    drawn = panel_html(validate_elements(EVERY_TYPE))
    parsed = parse(drawn.html)
    text = "".join(parsed.text)
    for shown in ("hello\nworld", "Jobs", "1.5", "seen", "true", "ms", "75/100", "50%",
                  "3 breach", "alpha", "beta", "Go", "in rows", "right"):  # fmt: skip
        assert shown in text, shown
    assert drawn.targets == (
        Target("select", "jobs", 0, "a"),
        Target("select", "jobs", 1, "b"),
        Target("select", "things", 0, "alpha"),
        Target("select", "things", 1, "beta"),
        Target("button", "go", 0, "Go", "g"),
    )
    classes = " ".join(str(attrs.get("class")) for _, attrs in parsed.tags)
    assert "lvl-warning" in classes and "al-center" in classes
    assert "st-bold fg-red" in classes  # the row style
    gauge = next(a for t, a in parsed.tags if t == "rect" and "fill" in str(a.get("class")))
    assert gauge["class"] == "fill fg-yellow" and gauge["width"] == "75"
    button = next(a for t, a in parsed.tags if t == "button" and a.get("data-kind") == "button")
    assert button["data-key"] == "g" and "var-primary" in str(button["class"])
    selected = [a for t, a in parsed.tags if t == "li" and a.get("aria-current")]
    assert len(selected) == 1
    assert "grow-3" in classes and "grow-9" in classes  # widths 1:3 in twelfths


def test_find_names_only_targets_the_panel_shows() -> None:
    drawn = panel_html(validate_elements(EVERY_TYPE))
    assert drawn.find("button", "go", 0) == Target("button", "go", 0, "Go", "g")
    assert drawn.find("select", "things", 1) == Target("select", "things", 1, "beta")
    assert drawn.find("select", "things", 2) is None
    assert drawn.find("button", "jobs", 0) is None
    assert drawn.find("select", "nope", 0) is None


def test_a_sparkline_scales_into_its_box_and_clamps_outliers() -> None:
    drawn = panel_html(validate_elements(
        [{"type": "sparkline", "values": [0, 50, 500, -9], "min": 0, "max": 100}]
    ))  # fmt: skip
    (points,) = [a["points"] for t, a in parse(drawn.html).tags if t == "polyline"]
    ys = [float(p.split(",")[1]) for p in str(points).split()]
    assert ys == [32.0, 16.0, 0.0, 32.0]


def test_styles_map_to_classes_of_the_vocabulary_only() -> None:
    assert style_classes("bold red on white") == "st-bold fg-red bg-white"
    assert style_classes("italic on grey") == "st-italic bg-grey"
    assert style_classes("") == ""
    assert style_classes("red; background: url(x)") == ""  # never reaches here: validated


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_shown_as_the_terminal_shows_it_and_never_as_markup(text: str) -> None:
    elements = validate_elements([
        {"type": "text", "text": text},
        {"type": "table", "id": "t", "columns": [text[:64]], "rows": [[text]]},
        {"type": "kv", "items": [[text[:64], text]]},
        {"type": "badge", "text": text[:64]},
        {"type": "list", "id": "l", "items": [text]},
        {"type": "button", "id": "b", "label": text[:32] or "x"},
    ])  # fmt: skip
    drawn = panel_html(elements)
    parsed = parse(drawn.html)
    shown = "".join(parsed.text)
    assert printable(text, multiline=True) in shown
    assert_shown_safely(shown.replace("\t", ""))
    assert drawn.targets[0].value == printable(text, multiline=True)  # the row, as shown


def test_markup_in_plugin_text_stays_text() -> None:
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">"\'><b>'
    elements = validate_elements([
        {"type": "text", "text": attack},
        {"type": "table", "id": "t", "columns": ["c"], "rows": [[attack[:256]]]},
        {"type": "sparkline", "label": attack[:64], "values": [1]},
    ])  # fmt: skip
    drawn = panel_html(elements)
    assert "<script" not in drawn.html and "<img" not in drawn.html and "<b>" not in drawn.html
    assert html.escape(attack, quote=True) in drawn.html
    assert "".join(parse(drawn.html).text).count(attack) == 3  # text, cell, label


@pytest.mark.fuzz
@given(hostile_text)
def test_any_text_in_any_element_is_shown_safely(text: str) -> None:
    elements = validate_elements([
        {"type": "text", "text": text},
        {"type": "kv", "title": text, "items": [[text, text]]},
        {"type": "list", "id": "l", "items": [text], "selected": 0},
        {"type": "gauge", "label": text, "value": 1},
    ])  # fmt: skip
    parsed = parse(panel_html(elements).html)
    shown = "".join(parsed.text)
    assert printable(text, multiline=True) in shown
    assert_shown_safely(shown.replace("\t", ""))  # tabs are kept, as in the terminal


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=300))
def test_any_numbers_draw_a_sparkline_inside_its_box(values: list[float]) -> None:
    drawn = panel_html(validate_elements([{"type": "sparkline", "values": values}]))
    for tag, attrs in parse(drawn.html).tags:
        if tag == "polyline":
            for point in str(attrs["points"]).split():
                x, y = (float(v) for v in point.split(","))
                assert 0 <= x <= 240 and 0 <= y <= 32
