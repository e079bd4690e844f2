"""Plugin UI elements drawn with Rich: each type as plain text, the targets and their order,
the cursor highlight, the click meta, and plugin text never read as markup."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.segment import Segment

from hostile_text import assert_shown_safely, hostile_text
from rwq.host.render.elements import PanelView, Target, build_panel, input_event, rich_style
from rwq.host.render.renderer import draw_view
from rwq.plugins.contract.ui import ElementError, validate_elements

WIDTH = 40


def draw(elements: list[dict[str, Any]], width: int = WIDTH, cursor: int | None = None) -> str:
    view = build_panel(validate_elements(elements), width, cursor=cursor)
    console = Console(width=width, record=True, file=io.StringIO(), color_system="truecolor")
    console.print(view.renderable)
    return console.export_text()


def segments(view: PanelView, width: int = WIDTH) -> list[Segment]:
    console = Console(width=width, file=io.StringIO(), color_system="truecolor")
    return list(console.render(view.renderable))


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_text_with_style_level_and_align() -> None:
    out = lines(draw([
        {"type": "text", "text": "left\nsecond line"},
        {"type": "text", "text": "right", "align": "right", "level": "error"},
        {"type": "text", "text": "mid", "align": "center", "style": "bold grey on orange"},
    ]))  # fmt: skip
    assert out[:2] == ["left", "second line"]
    assert out[2] == " " * (WIDTH - 5) + "right"
    assert out[3].strip() == "mid" and out[3].index("mid") == (WIDTH - 3) // 2


def test_styles_map_onto_rich_styles() -> None:
    assert rich_style("bold grey on orange") == rich_style("bold grey50 on dark_orange")
    style = rich_style("italic underline strike dim reverse red on white")
    assert style.italic and style.underline and style.strike and style.dim and style.reverse
    assert style.color is not None and style.color.name == "red"
    assert style.bgcolor is not None and style.bgcolor.name == "white"
    assert not rich_style(None) and not rich_style("")


def test_level_colours_a_text_and_style_wins() -> None:
    view = build_panel([{"type": "text", "text": "boom", "level": "critical"}], WIDTH)
    styled = [s.style for s in segments(view) if s.text == "boom"]
    assert styled and styled[0] is not None
    assert styled[0].bold and styled[0].bgcolor is not None and styled[0].bgcolor.name == "red"
    view = build_panel([{"type": "text", "text": "calm", "level": "error", "style": "green"}], 20)
    style = next(s.style for s in segments(view) if s.text == "calm")
    assert style is not None and style.color is not None and style.color.name == "green"


def test_table_with_title_rows_and_cells() -> None:
    out = draw([{
        "type": "table", "title": "Queues", "columns": ["queue", "depth", "ok"],
        "rows": [["emails", 12, True], ["reports", 0.1 + 0.2, None]],
        "row_styles": ["bold", None],
    }])  # fmt: skip
    rows = lines(out)
    assert rows[0] == "Queues"
    assert rows[1].split() == ["queue", "depth", "ok"]
    assert rows[3].split() == ["emails", "12", "true"]
    assert rows[4].split() == ["reports", "0.3"]
    # numbers are right-aligned under their heading
    assert rows[3].index("12") + 2 == rows[4].index("0.3") + 3


def test_kv_is_two_columns() -> None:
    rows = lines(draw([{"type": "kv", "title": "Totals",
                        "items": [["done", 10], ["failed", None], ["state", "up"]]}]))  # fmt: skip
    assert rows[0] == "Totals"
    assert [r.split() for r in rows[1:4]] == [["done", "10"], ["failed"], ["state", "up"]]
    assert rows[1].index("10") == rows[3].index("up")


def test_sparkline_scales_the_latest_values() -> None:
    assert lines(draw([{"type": "sparkline", "values": [0, 2, 14], "label": "rate"}])) == [
        "rate ▁▂█"
    ]
    out = lines(draw([{"type": "sparkline", "values": [5, 5, 5]}]))
    assert out == ["▁▁▁"]
    # fixed min/max: values outside are clamped
    out = lines(draw([{"type": "sparkline", "values": [-5, 50, 100, 500], "min": 0, "max": 100}]))
    assert out == ["▁▅██"]
    # extremes: a span too small or too large for a double, integers at a double's edge
    assert lines(draw([{"type": "sparkline", "values": [-2.2e-308], "max": 0.0}])) == ["▁"]
    big = 10**308
    assert lines(draw([{"type": "sparkline", "values": [-big, 0, big]}])) == ["▁▁▁"]
    assert lines(draw([{"type": "sparkline", "values": [1e308], "min": -1e308, "max": 0}])) == ["█"]
    # only the last width - len(label) - 2 values fit
    values = [0] * 100 + [1] * 10
    row = lines(draw([{"type": "sparkline", "values": values, "label": "x"}], width=20))[0]
    assert row == "x " + "▁" * 7 + "█" * 10


def test_gauge_colours_at_the_thresholds() -> None:
    row = lines(draw([{"type": "gauge", "value": 50, "label": "cpu"}], width=30))[0]
    assert row.startswith("cpu ") and row.endswith(" 50/100")
    assert abs(row.count("█") - row.count("░")) <= 1  # half full
    assert len(row) == 30

    def bar_colour(value: float) -> str | None:
        element = {"type": "gauge", "value": value, "max": 10, "warn": 7, "crit": 9}
        view = build_panel([element], 30)
        style = next(s.style for s in segments(view, 30) if "█" in s.text)
        return style.color.name if style is not None and style.color is not None else None

    assert bar_colour(5) == "green"
    assert bar_colour(7) == "yellow"
    assert bar_colour(9.5) == "red"


def test_progress_shows_the_percentage() -> None:
    row = lines(draw([{"type": "progress", "value": 1, "total": 4, "label": "copy"}], width=30))
    assert row[0].startswith("copy ") and row[0].endswith(" 25%")
    over = lines(draw([{"type": "progress", "value": 500}], width=30))[0]
    assert over.endswith("100%") and "░" not in over


def test_badge_list_and_buttons() -> None:
    out = lines(draw([
        {"type": "badge", "text": "LIVE", "level": "ok"},
        {"type": "list", "id": "w", "title": "Workers", "items": ["w1", "w2"], "selected": 1},
        {"type": "button", "id": "go", "label": "Go", "key": "g", "variant": "primary"},
        {"type": "button", "id": "stop", "label": "Stop"},
    ]))  # fmt: skip
    assert out == [" LIVE", "Workers", "  w1", "\u203a w2", "[ Go ] (g)", "[ Stop ]"]


def test_rows_gap_and_columns_side_by_side() -> None:
    out = lines(draw([
        {"type": "rows", "gap": 2, "children": [
            {"type": "text", "text": "top"}, {"type": "text", "text": "bottom"}]},
        {"type": "columns", "widths": [1, 3], "children": [
            {"type": "text", "text": "L"}, {"type": "text", "text": "R"}]},
    ]))  # fmt: skip
    assert out[:4] == ["top", "", "", "bottom"]
    assert out[4].startswith("L") and out[4].index("R") == WIDTH // 4


def test_columns_give_children_exactly_their_width() -> None:
    gauges = [{"type": "gauge", "value": 50, "label": "g"}] * 3
    for width in (50, 51, 57, 80):
        elements = [{"type": "columns", "gap": 1, "widths": [2, 3, 3], "children": gauges}]
        out = lines(draw(elements, width=width))
        assert len(out) == 1 and len(out[0]) == width, out
        assert out[0].count("50/100") == 3


def test_targets_in_document_order_and_their_events() -> None:
    elements = [
        {"type": "button", "id": "refresh", "label": "Refresh", "key": "r"},
        {"type": "table", "columns": ["n"], "rows": [["not a target"]]},  # no id
        {"type": "columns", "children": [
            {"type": "list", "id": "queues", "items": ["emails", "reports"]},
            {"type": "table", "id": "jobs", "columns": ["id", "state"],
             "rows": [[7, "done"], [None, "new"]]},
        ]},
        {"type": "button", "id": "purge", "label": "Purge", "variant": "error"},
    ]  # fmt: skip
    view = build_panel(validate_elements(elements), WIDTH)
    assert view.targets == (
        Target("button", "refresh", 0, "Refresh", "r"),
        Target("select", "queues", 0, "emails"),
        Target("select", "queues", 1, "reports"),
        Target("select", "jobs", 0, "7"),
        Target("select", "jobs", 1, ""),
        Target("button", "purge", 0, "Purge"),
    )
    assert input_event(view.targets[0]) == {"kind": "button", "id": "refresh"}
    assert input_event(view.targets[2]) == {
        "kind": "select", "id": "queues", "index": 1, "value": "reports"}  # fmt: skip
    assert input_event(view.targets[3]) == {"kind": "select", "id": "jobs", "index": 0,
                                             "value": "7"}  # fmt: skip


def test_every_target_carries_its_click_meta() -> None:
    elements = [
        {"type": "list", "id": "l", "items": ["alpha", "beta"]},
        {"type": "table", "id": "t", "columns": ["name"], "rows": [["gamma"]]},
        {"type": "button", "id": "b", "label": "delta", "key": "d"},
        {"type": "text", "text": "epsilon"},
    ]
    view = build_panel(elements, WIDTH)
    meta = {s.text.strip(): s.style.meta.get("rwq_target") if s.style else None
            for s in segments(view) if s.text.strip()}  # fmt: skip
    assert meta["alpha"] == 0 and meta["beta"] == 1 and meta["gamma"] == 2
    assert meta["[ delta ]"] == 3 and meta["(d)"] == 3
    assert meta["epsilon"] is None


def test_the_cursor_target_is_drawn_reversed() -> None:
    elements = [
        {"type": "list", "id": "l", "items": ["alpha", "beta"]},
        {"type": "button", "id": "b", "label": "go"},
        {"type": "table", "id": "t", "columns": ["name"], "rows": [["gamma"], ["delta"]]},
    ]

    def reversed_texts(cursor: int | None) -> set[str]:
        view = build_panel(elements, WIDTH, cursor=cursor)
        return {s.text.strip() for s in segments(view)
                if s.text.strip() and s.style is not None and s.style.reverse}  # fmt: skip

    assert reversed_texts(None) == set()
    assert reversed_texts(1) == {"beta"}
    assert reversed_texts(2) == {"[ go ]"}
    assert reversed_texts(4) == {"delta"}


def test_plugin_text_is_never_markup() -> None:
    hostile = "[bold]x[/bold] [@click=app.quit]quit[/] [link=file:///etc]y[/link] :smile:"
    elements = [
        {"type": "text", "text": hostile},
        {"type": "table", "title": "[red]t", "columns": ["[b]c"], "rows": [["[i]cell"]]},
        {"type": "kv", "items": [["[b]k", "[u]v"]]},
        {"type": "list", "id": "l", "items": ["[blink]item"]},
        {"type": "button", "id": "b", "label": "[@click=app.quit]"},
        {"type": "badge", "text": "[reverse]"},
    ]
    out = draw(elements, width=120)
    for literal in (hostile, "[red]t", "[b]c", "[i]cell", "[b]k", "[u]v", "[blink]item",
                    "[ [@click=app.quit] ]", " [reverse] "):  # fmt: skip
        assert literal in out, literal
    view = build_panel(elements, 120)
    for segment in segments(view, 120):
        style = segment.style
        assert style is None or (style.link is None and "@click" not in style.meta)


def test_control_characters_never_reach_the_terminal() -> None:
    out = draw([{"type": "text", "text": "a\x1b[2Jb\rc\x07d\x9bz"}])
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\x9b" not in out
    assert out.startswith("a\\x1b[2Jbc\\x07d\\x9bz")


def test_bidi_controls_and_lone_surrogates_show_as_escapes() -> None:
    out = draw([{"type": "text", "text": "\u202eevil \u2066x\u2069 \ud800 \u200e"}])
    assert out.startswith("\\u202eevil \\u2066x\\u2069 \\ud800 \\u200e")


def test_an_empty_panel_and_empty_containers_draw() -> None:
    assert draw([]).strip() == ""
    assert (
        draw([{"type": "rows", "children": []}, {"type": "columns", "children": []}]).strip() == ""
    )


# -- any valid panel draws -----------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**300), 10**300)
words = hostile_text  # any unicode, control and bidi characters, markup and emoji codes
styles = st.tuples(
    st.sampled_from(["", "bold", "dim strike", "italic underline reverse"]),
    st.sampled_from(["", "red", "grey", "orange"]),
    st.sampled_from(["", "on white", "on grey"]),
).map(lambda parts: " ".join(p for p in parts if p))
levels = st.sampled_from(["ok", "info", "warning", "error", "critical", "muted"])
ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,8}", fullmatch=True)
cells = st.none() | st.booleans() | finite | words


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=5))
    element = {"type": "table", "columns": draw(st.lists(words, min_size=width,
                                                         max_size=width))}  # fmt: skip
    element["rows"] = rows
    if draw(st.booleans()):
        element["id"] = draw(ids)
    if draw(st.booleans()):
        element["row_styles"] = draw(st.lists(st.none() | styles, min_size=len(rows),
                                              max_size=len(rows)))  # fmt: skip
    return element


@st.composite
def lists(draw: st.DrawFn) -> dict[str, Any]:
    items = draw(st.lists(words, max_size=5))
    selected = draw(st.none() | st.integers(0, len(items) - 1)) if items else None
    return {"type": "list", "id": draw(ids), "items": items, "selected": selected}


leaves = st.one_of(
    st.builds(lambda t, s, lv, a: {"type": "text", "text": t, "style": s, "level": lv,
                                    "align": a}, words, st.none() | styles, st.none() | levels,
              st.sampled_from(["left", "center", "right"])),
    tables(),
    st.builds(lambda items: {"type": "kv", "items": items},
              st.lists(st.tuples(words, cells).map(list), max_size=4)),
    st.builds(lambda v, lo, hi, label: {"type": "sparkline", "values": v, "min": lo, "max": hi,
                                         "label": label},
              st.lists(finite, max_size=50), st.none() | finite, st.none() | finite,
              st.none() | words),
    st.builds(lambda v, m, w, c: {"type": "gauge", "value": v, "max": m, "warn": w, "crit": c},
              finite, st.floats(min_value=1e-300, max_value=1e300), st.none() | finite,
              st.none() | finite),
    st.builds(lambda v, t: {"type": "progress", "value": v, "total": t},
              st.floats(min_value=0, max_value=1e300), st.floats(min_value=1e-300,
                                                                  max_value=1e300)),
    st.builds(lambda t, lv: {"type": "badge", "text": t, "level": lv}, words, levels),
    lists(),
    st.builds(lambda i, label, k: {"type": "button", "id": i, "label": label, "key": k},
              ids, st.text(min_size=1, max_size=32),
              st.none() | st.sampled_from(["a", "Z", "1", "!", "é"])),
)  # fmt: skip
panels = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda c, g: {"type": "rows", "children": c, "gap": g},
                  st.lists(inner, max_size=3), st.integers(0, 4)),
        st.lists(inner, max_size=3).flatmap(lambda c: st.builds(
            lambda w, g: {"type": "columns", "children": c, "widths": w, "gap": g},
            st.none() | st.lists(st.integers(1, 10**6), min_size=len(c), max_size=len(c)),
            st.integers(0, 4))),
    ),
    max_leaves=8,
)  # fmt: skip


def count_targets(element: dict[str, Any]) -> int:
    kind = element["type"]
    if kind == "button":
        return 1
    if kind == "list":
        return len(element["items"])
    if kind == "table":
        return len(element["rows"]) if element.get("id") else 0
    return sum(count_targets(c) for c in element.get("children", ()))


@settings(max_examples=150, deadline=None)
@given(st.lists(panels, max_size=4), st.integers(1, 120))
def test_any_valid_panel_draws(elements: list[dict[str, Any]], width: int) -> None:
    view = build_panel(validate_elements(elements), width, cursor=0)
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(view.renderable)
    out = console.export_text()
    assert "\x1b" not in out
    assert len(view.targets) == sum(count_targets(e) for e in elements)


@pytest.mark.fuzz
@given(st.lists(panels, max_size=4), st.integers(1, 120), st.none() | st.integers(0, 5))
def test_any_panel_of_hostile_text_draws_inside_its_width(
    elements: list[dict[str, Any]], width: int, cursor: int | None
) -> None:
    """Through validation and the renderer's own drawing: no crash, no character that
    controls the terminal or hides text, no line wider than the panel."""
    try:
        checked = validate_elements(elements)
    except ElementError:
        return
    drawn = draw_view(RENDER_CONSOLE, build_panel(checked, width, cursor=cursor), width)
    for line in drawn.lines:
        assert Segment.get_line_length(line) <= width
        for segment in line:
            assert "\n" not in segment.text
            assert_shown_safely(segment.text)


RENDER_CONSOLE = Console(file=io.StringIO(), width=200, legacy_windows=False)


def test_table_cells_equal_in_value_show_as_their_own_type() -> None:
    """Rows are cached by value: 1, 1.0 and True are equal in Python but draw differently."""
    for rows, shown in (([[1]], "1"), ([[True]], "true"), ([[1.5]], "1.5"), ([[True]], "true")):
        text = draw([{"type": "table", "columns": ["v"], "rows": rows}])
        assert lines(text)[2].strip() == shown, rows
    text = draw([{"type": "table", "columns": ["a", "b"], "rows": [[1, True], [True, 1]]}])
    assert [line.split() for line in lines(text)[2:4]] == [["1", "true"], ["true", "1"]]


def test_a_gauge_formats_its_value() -> None:
    """A gauge read "6.8323/100"."""
    assert draw([{"type": "gauge", "value": 6.8323, "label": "load"}]).rstrip().endswith("6.8/100")
    assert draw([{"type": "gauge", "value": 250.75, "max": 1000}]).rstrip().endswith("251/1000")
    assert draw([{"type": "gauge", "value": 0.04321}]).rstrip().endswith("0.043/100")
    assert draw([{"type": "gauge", "value": 42}]).rstrip().endswith("42/100")
