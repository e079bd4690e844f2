"""The TUI over a plugin host in a process of its own: the panel the process renders, the
permissions it granted, and what the panels view says while the process is down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
from textual.pilot import Pilot
from textual.widgets import DataTable, Label

from remote_counter import PLUGIN, counter_settings, granting_policy, running
from rwq.config import Settings
from rwq.host.remote import RemotePluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.tui.app import RwqApp
from rwq.tui.panels import PluginPanel

from .driving import drive, rows, until

DEADLINE = 30.0


@pytest.fixture
def plugin_settings(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Settings:
    return counter_settings(settings, tmp_path)


@pytest.fixture
def granted(plugin_settings: Settings, tmp_path: Path) -> Iterator[RemotePluginHost]:
    """A started plugin host process whose policy grants the counter what it asks."""
    yield from running(plugin_settings, granting_policy(tmp_path))


def text_of(panel: PluginPanel) -> str:
    frame = panel.frame
    if frame is None or frame.lines is None:
        return ""
    return "\n".join("".join(seg.text for seg in line) for line in frame.lines.lines)


def run_app(
    host: RemotePluginHost,
    settings: Settings,
    client: redis.Redis,
    steps: Callable[[RwqApp, Pilot[None]], Awaitable[None]],
) -> None:
    """The app over ``host`` (its plugin active) driven by ``steps``."""
    app = RwqApp(settings, client, host=host, address="t", poll_interval=0.2)

    async def run(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: host.state(PLUGIN) is PluginState.ACTIVE, timeout=DEADLINE)
        await steps(app, pilot)

    try:
        drive(app, run)
    finally:
        host.toast = None  # the app is gone


def test_the_app_shows_the_panel_rendered_by_the_process(
    granted: RemotePluginHost, plugin_settings: Settings, redis_client: redis.Redis
) -> None:
    async def steps(app: RwqApp, pilot: Pilot[None]) -> None:
        await pilot.press("4")
        panel = app.query_one(f"#panel-{PLUGIN}", PluginPanel)
        await until(pilot, lambda: "count=0" in text_of(panel), timeout=DEADLINE)
        assert panel.border_title == "Counter"
        for _ in range(3):
            await pilot.press("tab")
            if panel.has_focus:
                break
        assert panel.has_focus
        await pilot.press("i")  # the button's key, handled in the process
        await until(pilot, lambda: "count=1" in text_of(panel), timeout=DEADLINE)
        await pilot.press("n")
        await until(
            pilot,
            lambda: any("hello from counter" in str(n.message) for n in app._notifications),
            timeout=DEADLINE,
        )

    run_app(granted, plugin_settings, redis_client, steps)


def test_the_plugins_tab_shows_what_the_process_granted(
    granted: RemotePluginHost, plugin_settings: Settings, redis_client: redis.Redis
) -> None:
    async def steps(app: RwqApp, pilot: Pilot[None]) -> None:
        await pilot.press("5")
        table = app.query_one("#plugins-table", DataTable)
        await until(
            pilot,
            lambda: any(r[0] == PLUGIN and "2 granted" in r for r in rows(table)),
            timeout=10,
        )

    run_app(granted, plugin_settings, redis_client, steps)


def test_the_panels_view_says_when_the_process_died_and_shows_it_again(
    granted: RemotePluginHost, plugin_settings: Settings, redis_client: redis.Redis
) -> None:
    async def steps(app: RwqApp, pilot: Pilot[None]) -> None:
        def empty_text() -> str:
            return str(app.query_one("#panels-empty", Label).render())

        await pilot.press("4")
        panel = app.query_one(f"#panel-{PLUGIN}", PluginPanel)
        await until(pilot, lambda: "count=0" in text_of(panel), timeout=DEADLINE)
        assert granted.process is not None
        granted.process.kill()
        await until(pilot, lambda: not app.query(PluginPanel), timeout=DEADLINE)
        await until(pilot, lambda: "plugin host process stopped" in empty_text())
        assert str(granted.log_path) in empty_text() and "restarting" in empty_text()
        await until(
            pilot,
            lambda: any(
                "restarting" in str(n.message) and n.severity == "warning"
                for n in app._notifications
            ),
        )
        # it comes back by itself, and so does the panel
        await until(pilot, lambda: bool(app.query(PluginPanel)), timeout=DEADLINE)
        panel = app.query_one(f"#panel-{PLUGIN}", PluginPanel)
        await until(pilot, lambda: "count=0" in text_of(panel), timeout=DEADLINE)

    run_app(granted, plugin_settings, redis_client, steps)
