"""Text rwq did not write (a plugin's, a manifest's, a bundle's, a job's) made safe to show:
invisible and terminal-controlling characters become visible escapes, and the result is plain
text, never read as Rich or Textual markup or emoji codes."""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any

from rich.console import Console
from rich.style import Style
from rich.text import Span, Text

__all__ = [
    "PlainConsole",
    "PrintableFormatter",
    "has_hidden_characters",
    "log_to_stderr",
    "marked",
    "plain_text",
    "print_json",
    "printable",
    "printable_text",
]


def _escape(code: int) -> str:
    if chr(code) in "\n\t\r":
        return repr(chr(code))[1:-1]
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F), (0xE0100, 0xE01EF),
)  # fmt: skip
"""Every format character (Unicode category Cf: bidi controls and marks, zero-width spaces
and joiners, soft hyphen, invisible operators, tag characters...), the line and paragraph
separators, variation selectors and blank fillers (Hangul, the combining grapheme joiner):
they take no cell or change how other text is drawn, so they hide text and make widths
disagree between terminals. Ranges from Unicode 14 (Python 3.11's ``unicodedata``)."""
_HIDDEN = (
    *range(0x00, 0x20),  # C0, ESC among them
    *range(0x7F, 0xA0),  # DEL and C1 (CSI is 0x9B)
    *range(0xD800, 0xE000),  # lone surrogates (a str from JSON or Starlark can hold them)
    *(code for low, high in _INVISIBLE for code in range(low, high + 1)),
)
_ONE_LINE: dict[int, str] = {code: _escape(code) for code in _HIDDEN}
_MULTILINE: dict[int, str | None] = {**_ONE_LINE, 0x0A: "\n", 0x09: "\t", 0x0D: None}
"""Keeps line feeds and tabs; drops a carriage return (a line ending, or a rewind of the
line that would let text overwrite itself)."""


def printable(value: object, *, multiline: bool = False) -> str:
    """``value`` as text that shows exactly what it holds.

    Control characters (C0, ESC, DEL, C1), bidi controls, zero-width characters, line and
    paragraph separators, tag characters and lone surrogates become escapes such as
    ``\\x1b`` or ``\\u202e``; with ``multiline`` line feeds and tabs stay and carriage
    returns are dropped.
    """
    text = value if type(value) is str else str(value)
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_MULTILINE if multiline else _ONE_LINE)


def has_hidden_characters(text: str) -> str | None:
    """The first character :func:`printable` would escape (line feeds and tabs count), as its
    escape, or None."""
    if text.isascii() and text.isprintable():
        return None
    for char in text:
        code = ord(char)
        if code in _ONE_LINE:
            return _ONE_LINE[code]
    return None


def plain_text(value: object, style: str | Style = "", *, multiline: bool = False) -> Text:
    """``value`` as a Rich :class:`~rich.text.Text` in ``style``: never markup, never emoji."""
    return Text(printable(value, multiline=multiline), style=style, end="")


class PlainConsole(Console):
    """A Rich console for output that shows data: strings given to it (printed, or cells of a
    table) are plain text with :func:`printable` applied, never markup, emoji or
    highlighting. Styled output is built from :class:`~rich.text.Text` parts."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        kwargs.setdefault("soft_wrap", True)  # a long line (a path, an id) is never cut in two
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:  # type: ignore[override]
        kwargs["markup"] = False
        kwargs["emoji"] = False
        kwargs["highlight"] = False
        return super().render_str(printable(text, multiline=True), **kwargs)


def printable_text(text: Text) -> Text:
    """``text`` with :func:`printable` applied to its characters, styles kept on what they
    covered (an escape takes the style of the character it replaces)."""
    plain = text.plain
    if plain.isascii() and plain.isprintable():
        return text
    cuts = sorted({cut for span in text.spans for cut in (span.start, span.end)})
    pieces = []
    for piece in text.divide(cuts):
        shown = printable(piece.plain, multiline=True)
        pieces.append(
            Text(
                shown,
                style=piece.style,
                spans=[Span(0, len(shown), span.style) for span in piece.spans],
                end="",
            )
        )
    out = Text("", style=text.style, end=text.end, justify=text.justify, overflow=text.overflow,
               no_wrap=text.no_wrap)  # fmt: skip
    for piece in pieces:
        out.append_text(piece)
    return out


def marked(mark: str, style: str, message: object) -> Text:
    """``message`` as plain text after ``mark`` in ``style``: ``marked("error:", "red", exc)``."""
    return Text.assemble((mark, style), " ", printable(message, multiline=True), end="")


class PrintableFormatter(logging.Formatter):
    """Log lines with :func:`printable` applied: a plugin's message or fault reason never
    writes an escape sequence into a terminal or a log file (line feeds stay, for
    tracebacks)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), multiline=True)


def log_to_stderr(level: int) -> None:
    """Send rwq's log records to standard error as printable lines, at ``level`` and above."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def print_json(data: Any, file: IO[str] | None = None) -> None:
    """``data`` as indented JSON for machines: ASCII only (every other character, a control
    or a lone surrogate among them, written as a ``\\u`` escape), so it reaches a terminal
    as inert text and never fails to encode."""
    out = file if file is not None else sys.stdout
    out.write(json.dumps(data, indent=2, ensure_ascii=True, default=str) + "\n")
    out.flush()
