"""Snapshots of the main screens as text: layout, titles, columns, key hints.

Numbers are masked (``#``): they move with time and ids, and the pilot tests check them.
A changed screen fails with a diff; ``RWQ_UPDATE_SNAPSHOTS=1 pytest tests/tui`` rewrites the
files after a deliberate change.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
import redis
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent

from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.plugins.engine.lifecycle import PluginState
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.tui.app import RwqApp
from rwq.tui.approval import ApprovalScreen
from rwq.tui.panels import PluginPanel

from .driving import drive, kill, until, until_screen

SNAPSHOTS = Path(__file__).parent / "snapshots"
FIXTURES = Path(__file__).parent / "fixtures"
UPDATE = os.environ.get("RWQ_UPDATE_SNAPSHOTS") == "1"

SCREEN = HostOptions(watch=False, screen=True)


def mask(line: str) -> str:
    line = re.sub(r"\b[0-9a-f]{12,}\b", "<id>", line)  # job ids
    line = re.sub(r"\d+(\.\d+)?", "#", line).rstrip()
    # Columns widen with their numbers: keep the order of what is shown, not the gaps.
    return re.sub(r"(?<=\S) {2,}(?=\S)", "  ", line)


def screen_text(app: App[object]) -> str:
    """The screen as plain text, the way a terminal shows it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    lines = [mask(line) for line in console.export_text().splitlines()]
    # The header centres a title of varying length, with the server's latency in it.
    lines[0] = re.sub(" +", " ", lines[0]).replace("ok <#", "ok #")
    return "\n".join(lines) + "\n"


def tables_measured(app: App[object]) -> bool:
    """Whether every table on the screen has measured its rows: a table sizes its columns
    when its app is idle, so under load a reading could show new rows in columns still as
    wide as their labels (``tenan`` for ``tenant.acme``)."""
    return not any(
        table._require_update_dimensions or table._updated_cells or table._new_rows
        for table in app.screen.query(DataTable)
    )


async def settled_text(pilot: Pilot[None], app: App[object]) -> str:
    """The screen once two readings 0.1 s apart agree, every table measured before the first,
    and the footer is drawn (a reading taken mid-refresh missed the key hints)."""
    for _ in range(50):
        measured, text = tables_measured(app), screen_text(app)
        await pilot.pause(0.1)
        footer = text.rstrip("\n").rsplit("\n", 1)[-1].strip()
        if measured and footer and screen_text(app) == text:
            return text
    return screen_text(app)


async def check(pilot: Pilot[None], name: str, app: App[object]) -> None:
    app.clear_notifications()
    text = await settled_text(pilot, app)
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"no snapshot {path.name} yet: written now, check it and commit it")
        return
    want = path.read_text(encoding="utf-8")
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True)))
        pytest.fail(f"{path.name} differs (RWQ_UPDATE_SNAPSHOTS=1 to accept):\n{diff}")


@pytest.fixture
def filled(settings: Settings, redis_client: redis.Redis) -> Settings:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    producer.enqueue_many("tenant.acme", range(7))
    producer.enqueue_many("tenant.globex", range(3))
    kill(broker, "tenant.acme", producer.enqueue_many("tenant.acme", range(2)), "timeout")
    return settings


def test_main_screens(filled: Settings, redis_client: redis.Redis) -> None:
    # One reading only (on mount): the charts then have one point whatever the timing.
    app = RwqApp(filled, redis_client, address="snapshot", poll_interval=1000)

    async def steps(pilot: Pilot[None]) -> None:
        table = app.query_one("#queue-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await pilot.pause(0.3)
        await check(pilot, "queues", app)
        await pilot.press("2")
        await until(pilot, lambda: app.query_one("#dead-table", DataTable).row_count == 2)
        await check(pilot, "dead-letters", app)
        await pilot.press("3")
        await pilot.pause(0.3)
        await check(pilot, "workers", app)
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        await check(pilot, "help", app)

    drive(app, steps)


def test_plugin_screens(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    app = RwqApp(
        host.manager.settings, redis_client, host=host, address="snapshot", poll_interval=0.2
    )

    async def steps(pilot: Pilot[None]) -> None:
        await until_screen(pilot, ApprovalScreen)
        await pilot.pause(0.2)
        await check(pilot, "approval", app)
        await pilot.press("a")
        await until(pilot, lambda: host.manager.state("counter") is PluginState.ACTIVE)
        await pilot.press("4")
        await until(pilot, lambda: app.query_one(TabbedContent).active == "panels")
        panel = app.query_one("#panel-counter", PluginPanel)
        await until(pilot, lambda: panel.frame is not None and panel.frame.view is not None)
        await pilot.pause(0.2)
        await check(pilot, "panels", app)
        await pilot.press("escape", "5")  # escape leaves the panel: its keys go to the plugin
        await until(pilot, lambda: app.query_one("#plugins-table", DataTable).row_count == 1)
        await pilot.pause(0.2)
        await check(pilot, "plugins", app)

    try:
        drive(app, steps)
    finally:
        host.stop()
