"""The plugin host in a process of its own, seen from the TUI: a real ``rwq.tui.plugin_process``
with the counter plugin in its sandbox, its calls, frames, toasts, death, stop and failed starts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from textual.pilot import Pilot
from textual.widgets import DataTable, Label

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.contract.ui import button_input, key_input
from rwq.plugins.lifecycle import PluginState
from rwq.tui import remote as remote_module
from rwq.tui.app import RwqApp
from rwq.tui.panels import PanelFrame, PluginPanel
from rwq.tui.remote import PluginHostBusy, PluginHostGone, RemotePluginHost

from .driving import drive, rows, until

FIXTURES = Path(__file__).parent / "fixtures"
PLUGIN = "counter"
PERMISSIONS = ["ui.notifications", "storage.read"]
POLICY = """\
plugins:
  counter:
    grant: [ui.notifications, storage.read]
"""
DEADLINE = 30.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def text_of(frame: PanelFrame) -> str:
    assert frame.lines is not None
    return "\n".join("".join(seg.text for seg in line) for line in frame.lines.lines)


class Frames:
    """A ``deliver`` callback: every frame the process sent, kept."""

    def __init__(self) -> None:
        self.frames: list[PanelFrame] = []
        self._lock = threading.Lock()

    def __call__(self, frames: list[Any]) -> None:
        with self._lock:
            self.frames.extend(frames)

    def shown(self, plugin: str, text: str) -> bool:
        with self._lock:
            frames = [f for f in self.frames if f.plugin == plugin and f.lines is not None]
        return any(text in text_of(f) for f in frames)


class Toasts:
    """A ``toast`` callback: every notification, kept."""

    def __init__(self) -> None:
        self.toasts: list[tuple[str, str, str]] = []

    def __call__(self, plugin: str, message: str, level: str) -> None:
        self.toasts.append((plugin, message, level))

    def any(self, plugin: str, text: str, level: str) -> bool:
        return any(p == plugin and text in m and lv == level for p, m, lv in list(self.toasts))


@pytest.fixture
def plugin_settings(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Settings:
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    return settings.replace(plugin_dirs=str(root))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def running(settings: Settings, policy: Path | None) -> Iterator[RemotePluginHost]:
    host = RemotePluginHost(settings, policy_path=policy, watch=False)
    try:
        host.start()
        yield host
    finally:
        host.stop()
        if host.process is not None and host.process.poll() is None:  # never leave it behind
            host.process.kill()
            host.process.wait()


@pytest.fixture
def remote(plugin_settings: Settings) -> Iterator[RemotePluginHost]:
    """A started plugin host process; the counter awaits approval."""
    yield from running(plugin_settings, None)


@pytest.fixture
def granted(plugin_settings: Settings, policy_file: Path) -> Iterator[RemotePluginHost]:
    """A started plugin host process whose policy grants the counter what it asks."""
    yield from running(plugin_settings, policy_file)


def active(host: RemotePluginHost) -> bool:
    return host.manager.state(PLUGIN) is PluginState.ACTIVE


# -- the manager's calls -------------------------------------------------------------------------


def test_the_plugin_is_listed_awaits_approval_and_approving_activates_it(
    remote: RemotePluginHost, plugin_settings: Settings
) -> None:
    manager = remote.manager
    assert remote.process is not None and remote.process.pid != os.getpid()
    assert remote.gone is None
    assert manager.plugins() == [PLUGIN]
    assert manager.state(PLUGIN) is PluginState.AWAITING_APPROVAL
    pending = manager.pending_approvals()
    assert [p.plugin for p in pending] == [PLUGIN]
    assert pending[0].version == "1.0.0"
    assert set(pending[0].review.pending) == set(PERMISSIONS)
    manifest = manager.manifest(PLUGIN)
    assert manifest is not None and manifest.name == PLUGIN

    manager.approve(PLUGIN, ["ui.notifications"])
    manager.deny(PLUGIN, ["storage.read"])
    wait_for(lambda: active(remote), "the counter to be active")
    assert manager.pending_approvals() == []
    snapshot = {s.name: s for s in manager.snapshot()}
    assert snapshot[PLUGIN].state is PluginState.ACTIVE
    assert snapshot[PLUGIN].version == "1.0.0"
    audit = manager.audit.path
    assert audit.is_file() and PLUGIN in audit.read_text(encoding="utf-8")


def test_permissions_are_summed_up_in_the_process(remote: RemotePluginHost) -> None:
    manager = remote.manager
    before = manager.permissions_summary(PLUGIN)
    assert before.pending == frozenset(PERMISSIONS)
    assert before.granted == frozenset() and before.denied == frozenset()
    manager.approve(PLUGIN, ["ui.notifications"])
    manager.deny(PLUGIN, ["storage.read"])
    wait_for(lambda: active(remote), "the counter to be active")
    after = manager.permissions_summary(PLUGIN)
    assert after.granted == frozenset({"ui.notifications"})
    assert after.denied == frozenset({"storage.read"})
    assert after.pending == frozenset()


def test_a_policy_pre_grants_and_disable_enable_go_through(granted: RemotePluginHost) -> None:
    manager = granted.manager
    assert manager.plugins() == [PLUGIN]
    wait_for(lambda: active(granted), "the counter to be active")
    assert manager.pending_approvals() == []
    manager.disable(PLUGIN)
    wait_for(lambda: manager.state(PLUGIN) is PluginState.DISABLED, "the counter disabled")
    manager.enable(PLUGIN)
    wait_for(lambda: active(granted), "the counter active again")
    assert isinstance(granted.logs.text(PLUGIN), str)
    assert isinstance(granted.reloader.history(PLUGIN), list)


# -- the renderer --------------------------------------------------------------------------------


def test_frames_come_back_for_marked_panels_and_input_changes_them(
    granted: RemotePluginHost,
) -> None:
    wait_for(lambda: active(granted), "the counter to be active")
    toasts = Toasts()
    granted.toast = toasts
    frames = Frames()
    sizes: dict[str, tuple[int, int, bool]] = {PLUGIN: (40, 10, False)}
    renderer = granted.renderer_factory(sizes.get, frames, lambda name: None)
    renderer.start()
    try:
        renderer.mark(PLUGIN)
        wait_for(lambda: frames.shown(PLUGIN, "count=0"), "the first frame")
        first = next(f for f in frames.frames if f.plugin == PLUGIN and f.lines is not None)
        assert isinstance(first, PanelFrame)
        assert first.state is PluginState.ACTIVE
        assert first.lines is not None and first.lines.width <= 40
        text = text_of(first)
        assert "chosen=None" in text and "alpha" in text and "Add one" in text

        assert granted.manager.on_input(PLUGIN, button_input("inc")) is True
        wait_for(lambda: frames.shown(PLUGIN, "count=1"), "a frame after the button")
        assert granted.manager.on_input(PLUGIN, key_input("x")) is True
        wait_for(lambda: frames.shown(PLUGIN, "keys=x"), "a frame after the key")
        assert granted.manager.on_input(PLUGIN, {"kind": "mouse"}) is False  # not handled

        granted.manager.on_input(PLUGIN, key_input("n"))
        wait_for(lambda: toasts.any(PLUGIN, "hello from counter", "warning"), "the toast")

        _render_ms, _view_ms, renders = renderer.stats()
        assert renders >= 3
        renderer.forget(PLUGIN)
        renderer.mark_all([PLUGIN])  # on screen again: drawn again
        seen = len(frames.frames)
        wait_for(lambda: len(frames.frames) > seen, "a frame after forget and mark")
    finally:
        renderer.stop()


def test_a_panel_is_drawn_at_the_size_it_is_given(granted: RemotePluginHost) -> None:
    wait_for(lambda: active(granted), "the counter to be active")
    frames = Frames()
    renderer = granted.renderer_factory(lambda name: (12, 10, False), frames, lambda name: None)
    renderer.start()
    try:
        renderer.mark(PLUGIN)
        wait_for(lambda: frames.shown(PLUGIN, "count=0"), "the first frame")
        drawn = [f for f in frames.frames if f.lines is not None]
        assert all(f.lines is not None and f.lines.width <= 12 for f in drawn)
    finally:
        renderer.stop()


# -- errors --------------------------------------------------------------------------------------


def test_calls_that_fail_there_raise_rwq_error_here(remote: RemotePluginHost) -> None:
    with pytest.raises(RwqError, match="no_such_plugin"):
        remote.manager.state("no_such_plugin")
    with pytest.raises(RwqError, match="no_such_plugin"):
        remote.manager.approve("no_such_plugin")
    with pytest.raises(RwqError, match="no_such_call"):
        remote.call("no_such_call")
    with pytest.raises(RwqError):
        remote.call("plugins", "an argument it does not take")
    assert remote.gone is None  # a failed call leaves the host serving
    assert remote.manager.plugins() == [PLUGIN]


# -- the process dies ----------------------------------------------------------------------------


def test_a_killed_process_is_reaped_logged_and_restarted(remote: RemotePluginHost) -> None:
    """A dead plugin host process was never restarted, left a zombie, and its log was empty."""
    toasts = Toasts()
    remote.toast = toasts
    dead = remote.process
    assert dead is not None
    dead.kill()
    wait_for(lambda: toasts.any("plugin host", "restarting", "warning"), "the warning toast")
    assert dead.poll() is not None  # reaped: no zombie
    said = remote.manager.gone  # what the views show instead of the plugins meanwhile
    assert said is not None and "SIGKILL" in said and str(remote.log_path) in said
    assert remote.manager.plugins() == []
    with pytest.raises(PluginHostGone):
        remote.manager.state(PLUGIN)
    frames = Frames()
    renderer = remote.renderer_factory(lambda name: (40, 10, False), frames, lambda name: None)
    renderer.start()
    renderer.mark(PLUGIN)  # quietly nothing while it is down
    renderer.stop()

    wait_for(lambda: remote.gone is None, "the restart")
    assert remote.restarted == 1 and remote.process is not dead
    assert remote.manager.plugins() == [PLUGIN]
    assert toasts.any("plugin host", "restarted", "info")
    log_text = remote.log_path.read_text(encoding="utf-8")
    assert f"(pid {dead.pid}) was killed by SIGKILL" in log_text and "restarted" in log_text

    remote.stop()
    assert remote.process.poll() is not None


def test_a_process_that_keeps_dying_is_given_up_on(
    remote: RemotePluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_module, "RESTARTS", 1)
    monkeypatch.setattr(remote_module, "RESTART_DELAY", 0.05)
    toasts = Toasts()
    remote.toast = toasts
    assert remote.process is not None
    remote.process.kill()
    wait_for(lambda: remote.restarted == 1 and remote.gone is None, "the restart")
    remote.process.kill()
    wait_for(lambda: toasts.any("plugin host", "not started again", "error"), "giving up")
    assert remote.gone is not None and "not started again" in remote.gone
    time.sleep(0.3)
    assert remote.restarted == 1 and remote.process.poll() is not None
    assert "giving up" in remote.log_path.read_text(encoding="utf-8")


def test_a_call_in_flight_fails_when_the_process_dies(remote: RemotePluginHost) -> None:
    assert remote.process is not None
    os.kill(remote.process.pid, signal.SIGSTOP)  # it cannot answer
    outcome: list[BaseException | object] = []

    def call() -> None:
        try:
            outcome.append(remote.manager.state(PLUGIN))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: bool(remote._pending) or bool(outcome), "the call to be sent")
    remote.process.kill()
    caller.join(timeout=DEADLINE)  # not the call timeout
    assert not caller.is_alive()
    [error] = outcome
    assert isinstance(error, RwqError)
    assert "plugin host" in str(error)


# -- stop ----------------------------------------------------------------------------------------


def test_a_process_too_busy_to_answer_does_not_hold_up_the_views(
    granted: RemotePluginHost,
) -> None:
    manager = granted.manager
    wait_for(lambda: active(granted), "the counter to be active")
    assert manager.plugins() == [PLUGIN]
    assert granted.process is not None
    os.kill(granted.process.pid, signal.SIGSTOP)  # it cannot answer
    try:
        assert manager.plugins() == [PLUGIN]  # the last answer, after POLL_TIMEOUT at most
        assert manager.manifest(PLUGIN) is None  # the panel gets its name for a title
        with pytest.raises(PluginHostBusy):
            granted.call_within(0.2, "state", PLUGIN)
    finally:
        os.kill(granted.process.pid, signal.SIGCONT)
    assert manager.state(PLUGIN) is PluginState.ACTIVE  # serving again
    manifest = manager.manifest(PLUGIN)
    assert manifest is not None and manifest.name == PLUGIN


def test_stop_ends_the_process_cleanly_and_quietly(remote: RemotePluginHost) -> None:
    toasts = Toasts()
    remote.toast = toasts
    process = remote.process
    assert process is not None and process.poll() is None
    remote.stop()
    assert process.poll() == 0  # it stopped when asked, it was not killed
    assert remote.gone is not None
    with pytest.raises(PluginHostGone):
        remote.manager.state(PLUGIN)
    remote.stop()  # twice: no error


def test_stop_is_no_error_for_the_user(remote: RemotePluginHost) -> None:
    toasts = Toasts()
    remote.toast = toasts
    remote.stop()
    assert toasts.toasts == []  # closing the TUI is no error
    assert remote.gone == "the TUI closed"
    assert remote.manager.gone is None  # nothing for the views to say


# -- failed starts -------------------------------------------------------------------------------


def failed_start(host: RemotePluginHost) -> RwqError:
    try:
        with pytest.raises(RwqError) as raised:
            host.start()
    finally:
        host.stop()
    assert str(host.log_path) in str(raised.value)
    assert host.gone is not None
    assert host.process is not None and host.process.poll() is not None  # not left running
    return raised.value


def test_a_policy_that_is_not_yaml_fails_the_start(
    plugin_settings: Settings, tmp_path: Path
) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text("plugins: [unclosed\n  : :\n", encoding="utf-8")
    error = failed_start(RemotePluginHost(plugin_settings, policy_path=policy, watch=False))
    assert "broken.yaml" in str(error) and "invalid YAML" in str(error)


def test_a_redis_that_is_not_there_fails_the_start(plugin_settings: Settings) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = plugin_settings.replace(redis_url=f"redis://127.0.0.1:{port}")
    error = failed_start(RemotePluginHost(settings, watch=False))
    assert "cannot reach Redis" in str(error)


def test_a_process_that_dies_before_it_is_ready_fails_the_start(
    plugin_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", shutil.which("false") or "/bin/false")
    error = failed_start(RemotePluginHost(plugin_settings, watch=False))
    assert "did not start" in str(error)


# -- the app -------------------------------------------------------------------------------------


def panel_text(panel: PluginPanel) -> str:
    frame = panel.frame
    return text_of(frame) if frame is not None and frame.lines is not None else ""


def run_app(
    host: RemotePluginHost,
    settings: Settings,
    client: redis.Redis,
    steps: Callable[[RwqApp, Pilot[None]], Awaitable[None]],
) -> None:
    """The app over ``host`` (its plugin active) driven by ``steps``."""
    wait_for(lambda: active(host), "the counter to be active")
    app = RwqApp(settings, client, host=host, address="t", poll_interval=0.2)

    async def run(pilot: Pilot[None]) -> None:
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
        await until(pilot, lambda: "count=0" in panel_text(panel), timeout=DEADLINE)
        assert panel.border_title == "Counter"
        for _ in range(3):
            await pilot.press("tab")
            if panel.has_focus:
                break
        assert panel.has_focus
        await pilot.press("i")  # the button's key, handled in the process
        await until(pilot, lambda: "count=1" in panel_text(panel), timeout=DEADLINE)
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
        await until(pilot, lambda: "count=0" in panel_text(panel), timeout=DEADLINE)
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
        await until(pilot, lambda: "count=0" in panel_text(panel), timeout=DEADLINE)

    run_app(granted, plugin_settings, redis_client, steps)


def test_a_plugin_that_notifies_while_it_starts_does_not_stop_the_start(
    plugin_settings: Settings, policy_file: Path, tmp_path: Path
) -> None:
    """A notification sent from initialize reached the TUI before "ready", and the TUI gave
    up: "the plugin host process failed: unexpected 'toast'"."""
    main = Path(plugin_settings.plugin_dirs) / "counter" / "main.star"
    main.write_text(
        main.read_text().replace(
            '    state.set("count", 0)\n',
            '    state.set("count", 0)\n    rwq.show_notification(message = "hello at start")\n',
        )
    )
    toasts = Toasts()
    host = RemotePluginHost(plugin_settings, policy_path=policy_file, watch=False)
    host.toast = toasts
    try:
        host.start()
        assert host.gone is None and host.manager.plugins() == [PLUGIN]
        assert toasts.any(PLUGIN, "hello at start", "info")
    finally:
        host.stop()
