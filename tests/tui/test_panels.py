"""Plugin panels, the approval dialog and the plugin manager view, with a real Starlark plugin
in its sandbox and the real grant store."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Label, SelectionList, Static

from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.host.local import LocalPluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.trust.grants import GrantStore
from rwq.tui.app import RwqApp
from rwq.tui.approval import ApprovalScreen
from rwq.tui.audit_view import AuditScreen
from rwq.tui.dialogs import TextScreen
from rwq.tui.panels import PluginPanel
from rwq.tui.plugins_view import RevokeScreen

from .driving import drive, until, until_screen

FIXTURES = Path(__file__).parent / "fixtures"

SCREEN = HostOptions(watch=False, screen=True)


@pytest.fixture
def plugin_host(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[LocalPluginHost]:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    yield host
    host.stop()


def grant_as_asked(settings: Settings, bundle_dir: Path) -> None:
    """Grant what the bundle's manifest asks for, as ``rwq plugin grant`` would."""
    bundle = open_bundle(bundle_dir)
    GrantStore.from_settings(settings).grant_requested(
        bundle.name,
        bundle.manifest.permissions,
        [p.name for p in bundle.manifest.permissions],
        version=str(bundle.version),
        bundle_hash=bundle.sha256,
    )


def text_of(panel: PluginPanel) -> str:
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(panel.render())
    return console.export_text()


def app_for(host: LocalPluginHost, settings: Settings, client: redis.Redis) -> RwqApp:
    return RwqApp(host.manager.settings, client, host=host, address="t", poll_interval=0.2)


async def approve_all(app: RwqApp, pilot: Pilot[None]) -> None:
    await until_screen(pilot, ApprovalScreen)
    await pilot.press("a")
    await until(pilot, lambda: app.host.state("counter") is PluginState.ACTIVE)


def test_the_approval_dialog_grants_only_what_is_checked_and_it_persists(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await until_screen(pilot, ApprovalScreen)
        screen = app.screen
        text = str(screen.query_one("#approval-plugin").render())
        assert "counter 1.0.0" in text and "rwq tests" in text and "sha256" in text
        choices = screen.query_one("#approval-permissions", SelectionList)
        assert set(choices.selected) == {"ui.notifications", "storage.read"}
        choices.deselect("storage.read")
        await pilot.pause(0.1)
        marks = {}  # the toggle glyph of each option, and whether it can be seen
        for y in range(choices.size.height):
            segments = list(choices.render_line(y))
            line = "".join(s.text for s in segments)
            for name in ("ui.notifications", "storage.read"):
                if name in line:
                    [mark] = [s for s in segments if s.text == "X"]
                    assert mark.style is not None
                    marks[name] = mark.style.color != mark.style.bgcolor
        assert marks == {"ui.notifications": True, "storage.read": False}  # unchecked: empty
        # one line per permission, each with its box (a wrapped description once put the next
        # permission's box on the wrong row); the highlighted one's description is below
        rows = ["".join(s.text for s in choices.render_line(y)) for y in range(choices.size.height)]
        boxed = [row for row in rows if "X" in row]
        assert len(boxed) == 2 and all(("ui.notif" in r) != ("storage.read" in r) for r in boxed)
        detail = str(screen.query_one("#approval-detail").render())
        assert "—" in detail and ("ui.notifications" in detail or "storage.read" in detail)
        await pilot.press("a")
        await until(pilot, lambda: app.host.state("counter") is PluginState.ACTIVE)

    drive(app, steps)
    store = GrantStore.from_settings(plugin_host.manager.settings)
    granted = {p for g in store.grants_for("counter") for p in g.permissions}
    denied = {p for d in store.denials_for("counter") for p in d.permissions}
    assert granted == {"ui.notifications"}
    assert denied == {"storage.read"}


def test_changed_unsigned_code_is_asked_about_again_showing_what_changed(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    app = app_for(plugin_host, settings, redis_client)
    source = tmp_path / "plugins" / "counter" / "main.star"

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        with source.open("a") as fh:
            fh.write("\n# changed after it was granted\n")
        assert "awaits approval" in app.host.reload("counter")
        await until_screen(pilot, ApprovalScreen)
        text = str(app.screen.query_one("#approval-plugin").render())
        assert "update of a running plugin" in text
        assert "changed since it was granted" in text
        assert "granted: 1.0.0 (" in text and "now:     1.0.0 (" in text
        assert text.count("unsigned") >= 2
        assert app.host.state("counter") is PluginState.ACTIVE  # the old code keeps serving

    drive(app, steps)


def test_deny_leaves_the_plugin_unloaded_and_its_panel_says_so(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await until_screen(pilot, ApprovalScreen)
        await pilot.press("d")
        await until(pilot, lambda: app.host.state("counter") is PluginState.UNLOADED)
        await pilot.press("4")
        panel = app.query_one("#panel-counter", PluginPanel)
        await until(pilot, lambda: "denied" in text_of(panel))

    drive(app, steps)


def test_later_postpones_until_asked_again(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await until_screen(pilot, ApprovalScreen)
        await pilot.press("l")
        await pilot.pause(0.6)  # several polls: not asked again
        assert not isinstance(app.screen, ApprovalScreen)
        assert app.host.state("counter") is PluginState.AWAITING_APPROVAL
        panel = app.query_one("#panel-counter", PluginPanel)
        await until(pilot, lambda: "awaiting approval" in text_of(panel))
        await pilot.press("5", "A")
        await until_screen(pilot, ApprovalScreen)

    drive(app, steps)


def test_panel_input_keys_buttons_lists_clicks_and_toasts(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        await pilot.press("4")
        panel = app.query_one("#panel-counter", PluginPanel)
        await until(pilot, lambda: "count=0" in text_of(panel))
        assert panel.border_title == "Counter"
        assert not panel.has_focus  # the host's keys work until the user enters a panel
        for _ in range(3):
            await pilot.press("tab")
            if panel.has_focus:
                break
        assert panel.has_focus
        await pilot.press("i")  # the button's key
        await until(pilot, lambda: "count=1" in text_of(panel))
        await pilot.press("down", "enter")  # first target: the list's first item
        await until(pilot, lambda: "chosen=alpha" in text_of(panel))
        await pilot.press("down", "enter")
        await until(pilot, lambda: "chosen=beta" in text_of(panel))
        await pilot.press("x", "ctrl+r")  # other keys go to the plugin
        await until(pilot, lambda: "keys=x,ctrl+r" in text_of(panel))
        await pilot.press("n")
        await until(
            pilot, lambda: any("hello from counter" in str(n.message) for n in app._notifications)
        )
        button = len(panel.targets) - 1
        region = panel.content_region
        # click each line until the button's line is hit
        for y in range(region.height):
            await pilot.click(PluginPanel, offset=(2, y + 1))
            if "count=2" in text_of(panel):
                break
            await pilot.pause(0.1)
        await until(pilot, lambda: "count=2" in text_of(panel))
        assert panel.targets[button].kind == "button"

    drive(app, steps)


def test_plugin_manager_view_actions(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)
    manager = plugin_host.manager

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        await pilot.press("5")
        table = app.query_one("#plugins-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        await until(pilot, lambda: str(table.get_row("counter")[1]) == "active")
        row = [str(c) for c in table.get_row("counter")]
        assert row[1] == "active" and row[2] == "starlark" and row[3] == "1.0.0"
        assert row[4] == "2 granted"
        table.focus()
        await pilot.press("x")
        await until(pilot, lambda: manager.state("counter") is PluginState.DISABLED)
        await pilot.press("e")
        await until(pilot, lambda: manager.state("counter") is PluginState.ACTIVE)
        await pilot.press("l")
        await until(pilot, lambda: any("reload" in str(n.message) for n in app._notifications))
        await pilot.press("a")
        await until_screen(pilot, AuditScreen)
        screen = app.screen

        def shown() -> list[str]:
            console = Console(width=200, record=True, file=io.StringIO())
            console.print(screen.query_one("#audit-records", Static).content)
            return [line for line in console.export_text().splitlines() if line.strip()]

        lines = shown()
        assert any("grant" in line and "ui.notifications" in line for line in lines)
        assert lines == sorted(lines, reverse=True)  # newest first
        assert not any(" check " in line and "allowed" in line for line in lines)
        label = screen.query_one("#audit-filter", Label)
        assert "routine allowed checks hidden" in str(label.render())
        await pilot.press("h")  # the routine allowed checks too
        await until(pilot, lambda: "hidden" not in str(label.render()))
        assert len(shown()) >= len(lines)
        await pilot.press("p")  # every plugin
        await until(pilot, lambda: "every plugin" in str(label.render()))
        await pilot.press("d")  # only denials
        await until(pilot, lambda: "denials only" in str(label.render()))
        assert all("DENIED" in line for line in shown() if line != "(no records)")
        await pilot.press("escape", "o")
        await until_screen(pilot, TextScreen)
        await pilot.press("escape", "v")
        await until_screen(pilot, RevokeScreen)
        await pilot.press("enter")
        await until(pilot, lambda: "1 granted" in str(table.get_row("counter")[4]))

    drive(app, steps)


def test_a_failed_reload_keeps_the_old_version_and_the_view_says_why(
    plugin_host: LocalPluginHost, settings: Settings, redis_client: redis.Redis
) -> None:
    app = app_for(plugin_host, settings, redis_client)
    manager = plugin_host.manager
    source = Path(manager.settings.plugin_dirs) / "counter" / "main.star"

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        await pilot.press("5")
        table = app.query_one("#plugins-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        await until(pilot, lambda: str(table.get_row("counter")[1]) == "active")
        source.write_text("def render(size:\n", encoding="utf-8")  # a syntax error
        grant_as_asked(manager.settings, source.parent)  # changed unsigned code: approved
        await pilot.press("l")
        await until(pilot, lambda: any("reload" in str(n.message) for n in app._notifications))
        detail = app.query_one("#plugins-detail")
        await until(pilot, lambda: "reload" in str(detail.render()))
        assert "reloaded" not in str(detail.render())
        assert manager.state("counter") is PluginState.ACTIVE  # the old version runs on
        await pilot.press("4")
        panel = app.query_one("#panel-counter", PluginPanel)
        await until(pilot, lambda: "count=0" in text_of(panel))
        # the panel's border says the new version failed while the old one keeps serving
        await until(pilot, lambda: "reload of 1.0.0 failed" in str(panel.border_subtitle))

    drive(app, steps)


def test_a_grid_row_is_as_tall_as_its_tallest_panel(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    for name in ("tall", "tall-b", "tall-c"):  # two rows: each gets half the height if not auto
        shutil.copytree(FIXTURES / "tall", root / name)
        manifest = root / name / "manifest.yaml"
        manifest.write_text(manifest.read_text().replace("name: tall", f"name: {name}"))
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    app = app_for(host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        await pilot.press("4")
        tall = app.query_one("#panel-tall", PluginPanel)
        await until(pilot, lambda: "line 29" in text_of(tall))
        await pilot.pause(0.3)
        assert tall.size.height >= 30  # every line shown, none cut by the row's height

    try:
        drive(app, steps)
    finally:
        host.stop()


def on_screen(panel: PluginPanel) -> str:
    """The body lines the panel shows now."""
    return (
        "\n".join(
            "".join(s.text for s in panel.render_line(y)).rstrip() for y in range(panel.size.height)
        )
        + "\n"
    )


def test_a_narrow_terminal_stacks_the_panels_and_a_tall_panel_scrolls(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """At 100x30 two columns squeezed every panel; a panel taller than the screen was cut."""
    import asyncio

    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    shutil.copytree(FIXTURES / "tall", root / "tall")
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    app = app_for(host, settings, redis_client)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await approve_all(app, pilot)
            await pilot.press("4")
            tall = app.query_one("#panel-tall", PluginPanel)
            counter = app.query_one("#panel-counter", PluginPanel)
            await until(pilot, lambda: tall.total_lines == 30 and counter.total_lines > 0)
            await pilot.pause(0.3)
            assert tall.region.x == counter.region.x  # one column
            assert tall.region.width > 90
            grid = app.query_one("#panel-grid")
            assert tall.region.height <= grid.size.height  # never taller than the screen
            assert "lines 1-" in str(tall._border_subtitle) and "of 30" in str(
                tall._border_subtitle
            )
            assert "line 29" not in on_screen(tall)
            for _ in range(4):
                await pilot.press("tab")
                if tall.has_focus:
                    break
            assert tall.has_focus
            await pilot.press("pagedown", "pagedown", "pagedown")
            await pilot.pause(0.2)
            shown = on_screen(tall)
            assert "line 29" in shown and "line 0\n" not in shown
            assert "of 30" in str(tall._border_subtitle)
            await pilot.press("pageup", "pageup", "pageup")
            await pilot.pause(0.2)
            assert tall.first_line == 0

    try:
        asyncio.run(main())
    finally:
        host.stop()


def test_in_the_tabs_layout_tab_moves_between_panel_tabs_and_g_stays_in_the_footer(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    shutil.copytree(FIXTURES / "tall", root / "tall")
    host = build_host(settings.replace(plugin_dirs=str(root)), redis_client, SCREEN)
    host.start()
    app = app_for(host, settings, redis_client)

    async def steps(pilot: Pilot[None]) -> None:
        await approve_all(app, pilot)
        await pilot.press("4")
        counter = app.query_one("#panel-counter", PluginPanel)
        tall = app.query_one("#panel-tall", PluginPanel)
        await until(pilot, lambda: counter.total_lines > 0 and tall.total_lines > 0)
        await pilot.press("g")
        tabs = app.query_one("#panel-tabs")
        await pilot.pause(0.1)
        first = tabs.active
        for _ in range(2):
            await pilot.press("tab")
            await pilot.pause(0.1)
            assert tabs.active != first or _ == 1
            shown = [p for p in (counter, tall) if p.display]
            assert len(shown) == 1 and shown[0].has_focus
            assert "g" in app.screen.active_bindings  # the footer still offers the layout key
            first = tabs.active if _ == 0 else first
        await pilot.press("escape", "g")  # leave the panel, back to the grid: both shown
        await pilot.pause(0.1)
        assert counter.display and tall.display
        for _ in range(4):  # from the view's tabs into the grid
            await pilot.press("tab")
            focused = [p for p in (counter, tall) if p.has_focus]
            if focused:
                break
        await pilot.press("tab")
        assert len(focused) == 1 and not focused[0].has_focus  # the next panel

    try:
        drive(app, steps)
    finally:
        host.stop()
