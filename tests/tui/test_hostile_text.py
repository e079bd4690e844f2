"""A plugin whose every string is hostile (markup, actions, emoji codes, terminal escapes, bidi
and zero-width characters): every place of the TUI that shows plugin-controlled text shows it
as text, and the app stays up. Its real-terminal twin is in ``test_tmux.py``."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from hostile_text import assert_shown_safely
from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.host.local import LocalPluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.package.manifest import load_manifest
from rwq.tui.app import RwqApp
from rwq.tui.approval import ApprovalScreen
from rwq.tui.audit_view import AuditScreen
from rwq.tui.dialogs import TextScreen
from rwq.tui.panels import PluginPanel
from rwq.tui.tables import shown as shown_cell

from .driving import drive, until, until_screen

FIXTURE = Path(__file__).parent / "fixtures" / "hostile-text"
MANIFEST = load_manifest(FIXTURE)

SCREEN = HostOptions(watch=False, screen=True)


@pytest.fixture
def hostile_host(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[LocalPluginHost]:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURE, root / "hostile-text")
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    yield host
    host.stop()


def shown(renderable: object, width: int = 100) -> str:
    """What ``renderable`` puts on a screen, as text (escapes included, if any got through)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text(styles=False)


def assert_screen_safe(app: RwqApp) -> None:
    """Every character on the app's screen (its screenshot's text) is safe to send to a
    terminal."""
    svg = app.export_screenshot()
    for char in ("\x1b", "\x9b", "\u202e", "\u202c", "\u200b", "\x07"):
        assert char not in svg, f"{char!r} reached the screen"


def test_every_place_shows_hostile_plugin_text_as_text(
    hostile_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = RwqApp(hostile_host.manager.settings, redis_client, host=hostile_host, address="t",
                 poll_interval=0.2)  # fmt: skip
    manager = hostile_host.manager

    async def steps(pilot: Pilot[None]) -> None:
        # the approval dialog: author and description as written
        await until_screen(pilot, ApprovalScreen)
        head = shown(app.screen.query_one("#approval-plugin").render())
        assert "author: [bold" in head
        assert "[/] [@click=app.quit]x :heart: [bold red]loud" in head
        await pilot.press("a")
        await until(pilot, lambda: manager.state("hostile-text") is PluginState.ACTIVE)

        # the panel: its title and every element's text, escapes made visible
        await pilot.press("4")
        panel = app.query_one("#panel-hostile-text", PluginPanel)
        await until(pilot, lambda: "evil" in shown(panel.render()))
        assert panel.panel_title == MANIFEST.ui.panel_title
        assert str(panel._border_title) == "[/] [@click=app.quit]x :heart:"
        body = shown(panel.render())
        for text in ("[/]", "[@click=app.quit]x", "[bold", ":heart:", "\\x1b[2J", "\\x9b31m",
                     "\\u202eevil\\u202c", "zero\\u200bwidth"):  # fmt: skip
            assert text in body, text
        assert_shown_safely(body)

        # a notification and a log line: shown as written, the action never runs
        for _ in range(3):
            await pilot.press("tab")
            if panel.has_focus:
                break
        assert panel.has_focus
        await pilot.press("n")
        await until(pilot, lambda: any("evil" in str(n.message) for n in app._notifications))
        [note] = [n for n in app._notifications if "evil" in str(n.message)]
        assert not note.markup and "[@click=app.quit]x" in note.message
        assert_shown_safely(note.message)
        await pilot.pause(0.3)
        assert app.is_running  # [@click=app.quit] was not read as an action
        assert_screen_safe(app)

        # its fault: the reason on the panel's border and in the plugin manager, as text
        await pilot.press("f")  # its renders fail: disabled, the reason on its border
        await until(pilot, lambda: manager.state("hostile-text") is PluginState.DISABLED)
        await until(pilot, lambda: "faults in a row" in str(panel._border_subtitle))
        assert str(panel._border_subtitle) == panel._subtitle  # plain text, not markup
        await until(pilot, lambda: "faults in a row" in shown(panel.render()))
        assert_screen_safe(app)
        await pilot.press("escape", "5")
        table = app.query_one("#plugins-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        table.focus()
        detail = app.query_one("#plugins-detail")
        await until(pilot, lambda: "evil" in str(detail._rwq_shown))
        drawn = shown_cell(detail._rwq_shown).plain  # what the label was given to draw
        assert "[@click=app.quit]x [bold :heart: \\x1b[2J" in drawn
        assert_shown_safely(drawn)
        await pilot.press("o")  # the plugin's log
        await until_screen(pilot, TextScreen)
        log = shown(app.screen.query_one("#body").render(), 400)
        assert "[@click=app.quit]x" in log and "\\x1b[2J" in log
        assert_shown_safely(log)
        await pilot.press("escape", "a")  # the audit log
        await until_screen(pilot, AuditScreen)
        assert_shown_safely(shown(app.screen.query_one("#audit-records", Static).content, 400))
        assert_screen_safe(app)
        assert app.is_running

    drive(app, steps)
