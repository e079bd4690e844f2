"""The plugin host in a process of its own, seen from the TUI: a real ``rwq.host.process``
with the counter plugin in its sandbox, its calls, frames, toasts, death, stop and failed starts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from remote_counter import PERMISSIONS, PLUGIN, counter_settings, granting_policy, running
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.host import remote as remote_module
from rwq.host.messages import RemoteError
from rwq.host.remote import PluginHostBusy, PluginHostGone, RemotePluginHost
from rwq.host.render.renderer import PanelFrame
from rwq.plugins.contract.ui import button_input, key_input
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import LifecycleError, UnknownPlugin
from rwq.plugins.trust.grants import GrantStore

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
    return counter_settings(settings, tmp_path)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return granting_policy(tmp_path)


@pytest.fixture
def remote(plugin_settings: Settings) -> Iterator[RemotePluginHost]:
    """A started plugin host process; the counter awaits approval."""
    yield from running(plugin_settings, None)


@pytest.fixture
def granted(plugin_settings: Settings, policy_file: Path) -> Iterator[RemotePluginHost]:
    """A started plugin host process whose policy grants the counter what it asks."""
    yield from running(plugin_settings, policy_file)


def active(host: RemotePluginHost) -> bool:
    return host.state(PLUGIN) is PluginState.ACTIVE


# -- the manager's calls -------------------------------------------------------------------------


def test_the_plugin_is_listed_awaits_approval_and_approving_activates_it(
    remote: RemotePluginHost, plugin_settings: Settings
) -> None:
    manager = remote
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
    audit = manager.audit_path()
    assert audit.is_file() and PLUGIN in audit.read_text(encoding="utf-8")


def test_permissions_are_summed_up_in_the_process(remote: RemotePluginHost) -> None:
    manager = remote
    before = manager.permissions(PLUGIN)
    assert before.pending == frozenset(PERMISSIONS)
    assert before.granted == frozenset() and before.denied == frozenset()
    manager.approve(PLUGIN, ["ui.notifications"])
    manager.deny(PLUGIN, ["storage.read"])
    wait_for(lambda: active(remote), "the counter to be active")
    after = manager.permissions(PLUGIN)
    assert after.granted == frozenset({"ui.notifications"})
    assert after.denied == frozenset({"storage.read"})
    assert after.pending == frozenset()


def test_grants_of_other_code_of_that_name_are_not_shown_as_granted(
    plugin_settings: Settings,
) -> None:
    """An earlier plugin named like this one left grants: they give this code nothing, and
    its permissions say so (the dev pane listed them as granted)."""
    GrantStore.from_settings(plugin_settings).grant(
        PLUGIN, ["storage.read"], version="1.0.0", bundle_hash="0" * 64
    )
    for host in running(plugin_settings, None):
        permissions = host.permissions(PLUGIN)
        assert permissions.granted == frozenset()
        assert permissions.pending == frozenset(PERMISSIONS)


def test_a_policy_pre_grants_and_disable_enable_go_through(granted: RemotePluginHost) -> None:
    manager = granted
    assert manager.plugins() == [PLUGIN]
    wait_for(lambda: active(granted), "the counter to be active")
    assert manager.pending_approvals() == []
    manager.disable(PLUGIN)
    wait_for(lambda: manager.state(PLUGIN) is PluginState.DISABLED, "the counter disabled")
    manager.enable(PLUGIN)
    wait_for(lambda: active(granted), "the counter active again")
    assert isinstance(granted.log_text(PLUGIN), str)
    assert isinstance(granted.reload_history(PLUGIN), list)


# -- the renderer --------------------------------------------------------------------------------


def test_frames_come_back_for_marked_panels_and_input_changes_them(
    granted: RemotePluginHost,
) -> None:
    wait_for(lambda: active(granted), "the counter to be active")
    toasts = Toasts()
    granted.toast = toasts
    frames = Frames()
    sizes: dict[str, tuple[int, int, bool]] = {PLUGIN: (40, 10, False)}
    renderer = granted.renderer(sizes.get, frames, lambda name: None)
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

        assert granted.on_input(PLUGIN, button_input("inc")) is True
        wait_for(lambda: frames.shown(PLUGIN, "count=1"), "a frame after the button")
        assert granted.on_input(PLUGIN, key_input("x")) is True
        wait_for(lambda: frames.shown(PLUGIN, "keys=x"), "a frame after the key")
        assert granted.on_input(PLUGIN, {"kind": "mouse"}) is False  # not handled

        granted.on_input(PLUGIN, key_input("n"))
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
    renderer = granted.renderer(lambda name: (12, 10, False), frames, lambda name: None)
    renderer.start()
    try:
        renderer.mark(PLUGIN)
        wait_for(lambda: frames.shown(PLUGIN, "count=0"), "the first frame")
        drawn = [f for f in frames.frames if f.lines is not None]
        assert all(f.lines is not None and f.lines.width <= 12 for f in drawn)
    finally:
        renderer.stop()


# -- errors --------------------------------------------------------------------------------------


def test_errors_cross_with_their_type_and_fields(remote: RemotePluginHost) -> None:
    with pytest.raises(UnknownPlugin, match="no_such_plugin") as unknown:
        remote.state("no_such_plugin")
    assert unknown.value.plugin == "no_such_plugin"
    with pytest.raises(UnknownPlugin, match="no_such_plugin"):
        remote.approve("no_such_plugin")
    with pytest.raises(LifecycleError) as lifecycle:
        remote.enable(PLUGIN)  # it awaits approval: nothing to enable
    assert lifecycle.value.plugin == PLUGIN and "awaiting" in lifecycle.value.reason
    with pytest.raises(RemoteError, match="no_such_call") as not_a_call:
        remote.call("no_such_call")
    assert not_a_call.value.kind == "LookupError"
    with pytest.raises(RemoteError, match="TypeError") as bad_arguments:
        remote.call("plugins", "an argument it does not take")
    assert bad_arguments.value.kind == "TypeError"
    assert isinstance(bad_arguments.value, RwqError)
    assert remote.gone is None  # a failed call leaves the host serving
    assert remote.plugins() == [PLUGIN]


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
    said = remote.gone  # what the views show instead of the plugins meanwhile
    assert said is not None and "SIGKILL" in said and str(remote.log_path) in said
    assert remote.plugins() == []
    with pytest.raises(PluginHostGone):
        remote.state(PLUGIN)
    frames = Frames()
    renderer = remote.renderer(lambda name: (40, 10, False), frames, lambda name: None)
    renderer.start()
    renderer.mark(PLUGIN)  # quietly nothing while it is down
    renderer.stop()

    wait_for(lambda: remote.restarted == 1 and remote.gone is None, "the restart")
    assert remote.process is not dead
    assert remote.plugins() == [PLUGIN]
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
    restarting = [t for t in threading.enumerate() if t.name == "rwq-host-restart"]
    assert not any(t.is_alive() for t in restarting)  # no restart under way, none planned
    assert remote.restarted == 1 and remote.process.poll() is not None
    assert "giving up" in remote.log_path.read_text(encoding="utf-8")


def test_a_call_in_flight_fails_when_the_process_dies(remote: RemotePluginHost) -> None:
    assert remote.process is not None
    os.kill(remote.process.pid, signal.SIGSTOP)  # it cannot answer
    outcome: list[BaseException | object] = []

    def call() -> None:
        try:
            outcome.append(remote.state(PLUGIN))
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
    manager = granted
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
    assert remote.down is not None
    with pytest.raises(PluginHostGone):
        remote.state(PLUGIN)
    remote.stop()  # twice: no error


def test_stop_is_no_error_for_the_user(remote: RemotePluginHost) -> None:
    toasts = Toasts()
    remote.toast = toasts
    remote.stop()
    assert toasts.toasts == []  # closing the TUI is no error
    assert remote.down == "the TUI closed"
    assert remote.gone is None  # nothing for the views to say


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
        assert host.gone is None and host.plugins() == [PLUGIN]
        assert toasts.any(PLUGIN, "hello at start", "info")
    finally:
        host.stop()
