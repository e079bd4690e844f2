"""Text rwq did not write, made safe to show: visible escapes, never markup or emoji."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from rich.table import Table
from rich.text import Text

from hostile_text import HOSTILE, assert_shown_safely, hostile_text
from rwq.printable import (
    PlainConsole,
    has_hidden_characters,
    marked,
    plain_text,
    printable,
    printable_text,
)

pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain [bold] :heart:", "plain [bold] :heart:"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x9b31m", "\\x9b31m"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\u202eevil", "\\u202eevil"),
        ("\ud800", "\\ud800"),
        ("\u2028", "\\u2028"),
        ("\U000e0041", "\\U000e0041"),
        ("宽 é", "宽 é"),
    ],
)
def test_hidden_characters_become_visible_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_multiline_keeps_line_feeds_and_tabs_and_drops_carriage_returns() -> None:
    assert printable("a\r\nb\tc\x1b", multiline=True) == "a\nb\tc\\x1b"


def test_has_hidden_characters_names_the_first() -> None:
    assert has_hidden_characters("ok [bold] 宽") is None
    assert has_hidden_characters("x\u202ey\x1b") == "\\u202e"


def test_printable_text_keeps_styles_on_what_they_covered() -> None:
    text = Text("ab\x1bcd")
    text.stylize("red", 1, 4)
    shown = printable_text(text)
    assert shown.plain == "ab\\x1bcd"
    [span] = shown.spans
    assert (span.start, span.end, str(span.style)) == (1, 7, "red")
    clean = Text("clean")
    assert printable_text(clean) is clean


def test_plain_console_never_reads_markup_emoji_or_escapes() -> None:
    buffer = io.StringIO()
    console = PlainConsole(file=buffer, width=200, color_system=None)
    table = Table("key")
    for raw in HOSTILE:
        console.print(raw)
        table.add_row(raw)
    console.print(table)
    console.print(marked("error:", "red", "[@click=app.quit]x :heart: \x1b[2J"))
    out = buffer.getvalue()
    assert "[@click=app.quit]x" in out and ":heart:" in out and "[/]" in out
    assert "\u2764" not in out  # no emoji
    assert_shown_safely(out)


@given(hostile_text)
def test_any_text_is_shown_without_hidden_characters(raw: str) -> None:
    assert_shown_safely(printable(raw))
    assert_shown_safely(printable(raw, multiline=True).replace("\t", " "))
    assert plain_text(raw).plain == printable(raw)


@given(hostile_text, hostile_text)
def test_any_styled_text_is_shown_without_hidden_characters(a: str, b: str) -> None:
    text = Text.assemble((a, "bold"), b)
    assert_shown_safely(printable_text(text).plain.replace("\t", " "))


def test_every_format_character_is_escaped() -> None:
    """Found by review: format characters beyond the bidi and zero-width ones, variation
    selectors and blank fillers (U+3164 pushed panel borders out of line) reached screens."""
    import unicodedata

    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            assert printable(char) != char, hex(code)
    for char in ("\u3164", "\u115f", "\ufe0f", "\U000e0100", "\u034f", "\u17b4"):
        assert printable(char).startswith("\\u") or printable(char).startswith("\\U")
