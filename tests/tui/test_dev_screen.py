"""``rwq plugin dev``'s screen over a plugin host process: a new Starlark plugin's panel in
front, an edit seen on the panel, a broken edit keeping the last good version with the error
in the dev pane, and the dev plugin granted what it asks for while another plugin is asked."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent, Tabs

from rwq.config import Settings
from rwq.host.remote import RemotePluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.loading import AS_ASKED_BY
from rwq.plugins.trust.grants import GrantStore
from rwq.toolkit.scaffold import new_plugin
from rwq.tui.app import RwqApp
from rwq.tui.approval import ApprovalScreen
from rwq.tui.dev import DevSession
from rwq.tui.panels import PanelsView, PluginPanel

from .driving import drive, until

FIXTURES = Path(__file__).parent / "fixtures"
DEADLINE = 30.0


def text_of(panel: PluginPanel) -> str:
    frame = panel.frame
    if frame is None or frame.lines is None:
        return ""
    return "\n".join("".join(seg.text for seg in line) for line in frame.lines.lines)


def pane_text(app: RwqApp) -> str:
    return str(app.query_one("#dev-text", Static).render())


def test_the_dev_screen_follows_edits_keeps_the_last_good_version_and_grants_as_asked(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "work").mkdir()
    plugin = new_plugin("devp", "starlark", tmp_path / "work").path
    others = tmp_path / "others"
    shutil.copytree(FIXTURES / "counter", others / "counter")  # asks for two permissions
    hosted = settings.replace(plugin_dirs=f"{plugin}:{others}")
    host = RemotePluginHost(hosted, with_installed=False, granted_as_asked=frozenset({"devp"}))
    app = RwqApp(
        hosted, redis_client, host=host, address="t", poll_interval=0.2,
        dev=DevSession("devp", plugin, None, "the tests"),
    )  # fmt: skip
    source = plugin / "main.star"

    async def steps(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: host.state("devp") is PluginState.ACTIVE, DEADLINE)
        # the other plugin is asked about; the dev plugin never is
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), DEADLINE)
        assert isinstance(app.screen, ApprovalScreen)
        assert app.screen.pending.plugin == "counter"
        assert host.state("counter") is PluginState.AWAITING_APPROVAL
        assert [p.plugin for p in host.pending_approvals()] == ["counter"]
        await pilot.press("l")  # later
        permissions = host.permissions("devp")
        assert permissions.granted == {"events.subscribe", "admin.stats.read"}
        assert not permissions.pending
        # its panel in front, alone in the tabs layout
        view = app.query_one(PanelsView)
        await until(pilot, lambda: view.tabs_layout, DEADLINE)
        assert app.query_one(TabbedContent).active == "panels"
        assert view.query_one("#panel-tabs", Tabs).active == "tab-devp"
        panel = view.panels["devp"]
        await until(pilot, lambda: "no failures yet" in text_of(panel), DEADLINE)
        await until(pilot, lambda: "hook" in pane_text(app), DEADLINE)
        assert "render" in pane_text(app)  # its hook timings
        lines = pane_text(app).splitlines()  # one line each, no newline shown escaped
        assert "\\n" not in pane_text(app)
        assert "build: none (Starlark runs as written)" in lines
        assert any(line.startswith("devp 0.1.0: active") for line in lines)
        assert "\ngranted as asked: admin.stats.read, events.subscribe\n" in pane_text(app)

        source.write_text(source.read_text().replace("no failures yet", "nothing failed (v2)"))
        await until(pilot, lambda: "nothing failed (v2)" in text_of(panel), DEADLINE)

        source.write_text(source.read_text() + "\ndef broken(:\n")
        await until(
            pilot,
            lambda: any(a.outcome == "failed" for a in host.reload_history("devp")),
            DEADLINE,
        )
        await until(pilot, lambda: "failed" in pane_text(app), DEADLINE)
        assert host.state("devp") is PluginState.ACTIVE
        assert "nothing failed (v2)" in text_of(panel)  # the last good version runs on

    host.start()
    try:
        drive(app, steps)
    finally:
        host.toast = None
        host.stop()
    grants = GrantStore.from_settings(hosted).grants_for("devp")
    assert grants and {g.granted_by for g in grants} == {AS_ASKED_BY}
    assert not GrantStore.from_settings(hosted).grants_for("counter")


def test_the_dev_plugin_alone_has_the_keys_at_once(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Its panel in front is focused, so its buttons' keys reach it without a click (with one
    panel, no change of tab focuses it)."""
    plugin = new_plugin("alone", "starlark", tmp_path).path
    hosted = settings.replace(plugin_dirs=str(plugin))
    host = RemotePluginHost(hosted, with_installed=False, granted_as_asked=frozenset({"alone"}))
    app = RwqApp(
        hosted, redis_client, host=host, address="t", poll_interval=0.2,
        dev=DevSession("alone", plugin, None, "the tests"),
    )  # fmt: skip

    async def steps(pilot: Pilot[None]) -> None:
        view = app.query_one(PanelsView)
        await until(pilot, lambda: "alone" in view.panels, DEADLINE)
        panel = view.panels["alone"]
        await until(pilot, lambda: "no failures yet" in text_of(panel), DEADLINE)
        for _ in range(3):  # a key pressed while a redraw had the focus away is lost: again
            await until(pilot, lambda: panel.has_focus, DEADLINE)
            await pilot.press("d")  # Requeue dead letters: there are none
            try:
                await until(pilot, lambda: "no dead letters to requeue" in text_of(panel), 10)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the panel never answered d")
        # focus lost to nothing (a panel hidden for a moment): the panel takes it back
        app.set_focus(None)
        await until(pilot, lambda: panel.has_focus, DEADLINE)
        # Esc gives the keys to the tabs on purpose: they stay there
        await pilot.press("escape")
        before = app.history.times[-1]
        # three readings later (each could have taken the keys back), they are still there
        await until(pilot, lambda: sum(t > before for t in app.history.times) >= 3, DEADLINE)
        assert not panel.has_focus and app.focused is not None

    host.start()
    try:
        drive(app, steps)
    finally:
        host.stop()
