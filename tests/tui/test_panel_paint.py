"""A panel paints its body lines itself (between the border and padding Textual drew once);
what it paints must be what Textual's own styles cache paints, cell by cell, in every state."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widget import Widget

from rwq.host.render.elements import SegmentLines, build_panel
from rwq.host.render.renderer import THROTTLED_NOTE, PanelFrame
from rwq.plugins.contract.ui import validate_elements
from rwq.plugins.engine.lifecycle import PluginState
from rwq.printable import printable
from rwq.tui.panels import PluginPanel


def elements(k: int) -> list[dict[str, Any]]:
    rows = [[f"j{i + k}", f"tenant-{(i + k) % 7}", (i + k) * 7 % 100, "ok"] for i in range(6)]
    return [
        {"type": "text", "text": f"events {k}", "level": "error"},
        {"type": "kv", "items": [["seen", k], ["ok", True]]},
        {"type": "sparkline", "label": "ms", "values": list(range(k, k + 20)), "style": "magenta"},
        {"type": "gauge", "label": "load", "value": k % 100, "warn": 50, "crit": 90},
        {"type": "badge", "text": "LIVE", "level": "ok"},
        {"type": "table", "id": "t", "columns": ["job", "tenant", "ms", "status"], "rows": rows,
         "row_styles": ["bold on blue", None, None, None, None, "dim"]},
    ]  # fmt: skip


def frame_of(k: int, width: int, seq: int) -> PanelFrame:
    view = build_panel(validate_elements(elements(k)), width, cursor=1)
    console = Console(file=io.StringIO(), width=200, legacy_windows=False)
    lines = console.render_lines(
        view.renderable, console.options.update(width=width), pad=False, new_lines=False
    )
    drawn = SegmentLines(lines, width, [sum(len(s.text) for s in line) for line in lines])
    return PanelFrame("p", view, PluginState.ACTIVE, "", 0.0, drawn, seq=seq)


def cells(strips: list[Strip]) -> list[list[tuple[str, Style | None]]]:
    return [[(ch, seg.style) for seg in strip for ch in seg.text] for strip in strips]


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PluginPanel("p", "Panel", min_width=30, min_height=12, resizable=True)


@contextlib.asynccontextmanager
async def shown_panel() -> AsyncIterator[tuple[PanelApp, Pilot[None], PluginPanel]]:
    """A panel on a 70x30 screen, mounted and laid out."""
    app = PanelApp()
    async with app.run_test(size=(70, 30)) as pilot:
        panel = app.query_one(PluginPanel)
        await pilot.pause()
        yield app, pilot, panel


def test_the_panels_own_body_lines_match_textuals() -> None:
    async def main() -> None:
        async with shown_panel() as (app, pilot, panel):
            width = panel.size.width
            checked = 0
            for k, (focused, problem, note) in enumerate(
                [(False, False, ""), (True, False, ""), (True, True, "stale"), (False, True, "")]
            ):
                if focused:
                    panel.focus()
                else:
                    app.set_focus(None)
                panel.set_class(problem, "-problem")
                panel.border_subtitle = note
                for step in range(3):  # a frame, then frames reusing some of its lines
                    panel.show(frame_of(k * 3 + step, width, seq=k * 3 + step + 1))
                    await pilot.pause()
                    full = Region(0, 0, *panel.region.size)
                    own = panel._body_lines(full)
                    assert own is not None
                    panel._styles_cache.clear()
                    textual = Widget.render_lines(panel, full)
                    assert cells(own) == cells(textual), (focused, problem, note, step)
                    part = Region(0, 2, panel.region.width, 3)
                    assert cells(panel.render_lines(part)) == cells(textual[2:5])
                    checked += 1
            assert checked == 12

    asyncio.run(main())


def test_a_partial_width_is_left_to_textual() -> None:
    async def main() -> None:
        async with shown_panel() as (_app, pilot, panel):
            panel.show(frame_of(1, panel.size.width, seq=1))
            await pilot.pause()
            assert panel._body_lines(Region(3, 0, 10, 5)) is None
            assert len(panel.render_lines(Region(3, 0, 10, 5))) == 5

    asyncio.run(main())


def test_a_throttled_panel_says_so_on_its_border() -> None:
    async def main() -> None:
        async with shown_panel() as (_app, pilot, panel):
            calm = frame_of(1, panel.size.width, seq=1)
            panel.show(dataclasses.replace(calm, note=THROTTLED_NOTE))
            await pilot.pause()
            assert panel.has_class("-throttled") and not panel.has_class("-problem")
            assert "throttled" in str(panel.border_subtitle)
            panel.show(dataclasses.replace(frame_of(2, panel.size.width, seq=2), base_seq=1))
            await pilot.pause()
            assert not panel.has_class("-throttled") and not panel.border_subtitle

    asyncio.run(main())


def test_a_frame_changing_one_line_repaints_that_line() -> None:
    """The regions a frame marks for repaint are the rows of its changed lines: its first
    line changed alone is drawn at once, not with the next full repaint."""

    async def main() -> None:
        async with shown_panel() as (_app, pilot, panel):
            width = panel.size.width
            first = frame_of(1, width, seq=1)
            panel.show(first)
            await pilot.pause()
            top = panel.content_offset.y
            for line in (0, 3):
                assert first.lines is not None
                lines = [list(row) for row in first.lines.lines]
                lines[line] = [Segment(f"changed line {line}")]
                changed = dataclasses.replace(
                    first, lines=SegmentLines(lines, width), seq=2 + line, base_seq=first.seq,
                    changed=(line,),
                )  # fmt: skip
                panel.show(changed)
                assert panel._repaint_regions == {Region(0, top + line, panel.region.width, 1)}
                await pilot.pause()
                painted = panel.render_lines(Region(0, top + line, panel.region.width, 1))
                assert f"changed line {line}" in painted[0].text
                panel.show(dataclasses.replace(first, seq=3 + line, base_seq=2 + line,
                                               changed=(line,)))  # fmt: skip
                first = panel.frame  # type: ignore[assignment]
                await pilot.pause()

    asyncio.run(main())


class HostilePanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PluginPanel("p", "[/] [@click=app.quit]x :heart:", min_width=30, min_height=12,
                          resizable=True)  # fmt: skip


def test_a_hostile_title_and_note_are_drawn_as_text() -> None:
    """Textual reads a string border title as markup: ``[/]`` crashed the TUI (MarkupError)."""
    note = "disabled: [/] [@click=app.quit]x [bold :heart: \x1b[2J \u202eevil"

    async def main() -> None:
        app = HostilePanelApp()
        async with app.run_test(size=(120, 30)) as pilot:
            panel = app.query_one(PluginPanel)
            await pilot.pause()
            panel.show(dataclasses.replace(frame_of(1, panel.size.width, seq=1), note=note))
            await pilot.pause()
            assert str(panel._border_title) == "[/] [@click=app.quit]x :heart:"
            assert str(panel._border_subtitle) == printable(note[:60])
            drawn = "".join(s.text for strip in panel.render_lines(panel.region.reset_offset)
                            for s in strip)  # fmt: skip
            assert "[/] [@click=app.quit]x :heart:" in drawn
            assert "[bold :heart: \\x1b[2J \\u202eevil" in drawn
            assert "\x1b" not in drawn and "\u202e" not in drawn
            assert app.is_running

    asyncio.run(main())
