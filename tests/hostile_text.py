"""Strings a hostile plugin, manifest, bundle or job sends to a screen, and a strategy that
mixes them into ordinary text: markup, actions, emoji codes, terminal escapes, C1 controls,
bidi controls, lone surrogates, wide and zero-width characters."""

from __future__ import annotations

from hypothesis import strategies as st

from rwq.printable import has_hidden_characters

HOSTILE = (
    "[/]",
    "[@click=app.quit]x",
    "[@click=app.quit]x[/]",
    "[bold",
    "[bold red]loud[/bold red]",
    ":heart:",
    ":thumbs_up: :smiley:",
    "\x1b[2J\x1b]0;pwn\x07",
    "\x1b[31mred",
    "\x9b2J",
    "\x90dcs\x9c",
    "a\rb",
    "\x00\x08\x7f",
    "\u202eevil\u202c",
    "\u2066isolate\u2069",
    "\u200emark\u200f",
    "\ud800lone\udfff",
    "line\u2028sep\u2029",
    "\U000e0041\U000e0042",
    "宽字符",
    "e\u0301\u200b\u200d",
)
"""Every class of hostile text at least once (the issue's examples among them)."""

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=6).map("".join),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
).map(lambda text: text[:40])
"""Text of at most 40 characters made of hostile pieces and arbitrary code points (surrogates
included)."""


def assert_shown_safely(shown: str) -> None:
    """``shown`` (text as it reaches a screen) holds no character that controls a terminal or
    hides text; line feeds are the only control character allowed."""
    hidden = has_hidden_characters(shown.replace("\n", ""))
    assert hidden is None, f"{hidden} reached the screen in {shown!r}"
