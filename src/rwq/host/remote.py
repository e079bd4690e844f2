"""A plugin host in a process of its own (:mod:`rwq.host.process`), seen from the screen.

:class:`RemotePluginHost` starts the process, answers every :class:`~rwq.host.api.PluginHost`
call by asking it (errors come back as the same error types), restarts it when it dies, and
gives the panels a renderer that says which panels are on screen at what size and hands back
the frames the process draws.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.host.api import Cursors, Deliver, Permissions, Sizes, Toast
from rwq.host.frame_wire import FrameDecoder
from rwq.host.link import Link, LinkClosed
from rwq.host.messages import (
    Call,
    Failed,
    Forget,
    Frames,
    Init,
    Message,
    Notification,
    Raised,
    Ready,
    Returned,
    Stop,
    View,
)
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PendingApproval
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.ops.reloader import ReloadAttempt
from rwq.plugins.package.manifest import PluginManifest

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
"""Seconds the process may take to load its plugins and say it is ready."""
CALL_TIMEOUT = 120.0
"""Seconds a call may take (a reload waits for its probation to start)."""
POLL_TIMEOUT = 2.0
"""Seconds the views' once-a-second reads wait (on the UI thread) before they show what the
process said last time."""
STOP_TIMEOUT = 15.0
LOG_FILE = "plugin-host.log"
"""In the state dir: the process's log (the terminal belongs to the UI)."""
RESTARTS = 5
"""A process that died is started again at most this many times in :data:`RESTART_WINDOW`."""
RESTART_WINDOW = 120.0
RESTART_DELAY = 1.0
"""Seconds before the first restart; each further restart in the window waits twice as long."""


class PluginHostGone(RwqError):
    """The plugin host process is not running (it failed, or the TUI is closing)."""


class PluginHostBusy(RwqError):
    """The plugin host process did not answer in time."""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: RwqError | None = None


class RemotePluginHost:
    """A plugin host in a process of its own, seen from the TUI."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy_path: Path | None = None,
        watch: bool = True,
        with_installed: bool = True,
        granted_as_asked: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.init = Init(settings, policy_path, watch, with_installed, granted_as_asked)
        """What the process is told to host, and how (its first message)."""
        self.toast: Toast | None = None
        """Set by the app once it runs; until then notifications are only logged."""
        self.process: subprocess.Popen[bytes] | None = None
        self.down: str | None = None
        """Why the process is not serving (None while it is)."""
        self._last: dict[str, list[Any]] = {}
        """The last answer of each polled listing."""
        self._link: Link | None = None
        self._deliver: Deliver | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._halt = threading.Event()
        self._restarts: deque[float] = deque()
        """When the process was restarted (monotonic), within the last RESTART_WINDOW."""
        self.restarted = 0
        """Times the process was started again after it died."""

    @property
    def log_path(self) -> Path:
        return self.settings.state_dir / LOG_FILE

    def start(self) -> None:
        """Start the process and wait until its plugins are loaded; if it dies later it is
        started again (at most :data:`RESTARTS` times in :data:`RESTART_WINDOW`).

        Raises:
            RwqError: it could not start (its reason, and where its log is).
        """
        self._launch()

    def _launch(self) -> None:
        ours, theirs = socket.socketpair()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rwq.host.process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        theirs.close()
        link = self._link = Link(ours)
        ours.settimeout(START_TIMEOUT)
        try:
            link.send(self.init)
            reply = link.recv()
            while isinstance(reply, Notification):  # a plugin notified in its initialize
                self._notify(reply.plugin, reply.message, reply.level)
                reply = link.recv()
        except LinkClosed as exc:
            self._abandon()
            raise RwqError(
                f"the plugin host process did not start ({exc}); see {self.log_path}"
            ) from None
        if not isinstance(reply, Ready):
            self._abandon()
            if isinstance(reply, Failed):
                kind = reply.error.type.rsplit(".", 1)[-1]
                why = f"{kind}: {reply.error.message}"
            else:
                why = f"unexpected {type(reply).__name__}"
            raise RwqError(f"the plugin host process failed: {why}; see {self.log_path}")
        ours.settimeout(None)
        self.down = None  # serving (again): a death from now on is noticed by the reader
        self._reader = threading.Thread(target=self._read, name="rwq-host-link", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        link, process = self._link, self.process
        self._stopping = True  # the channel's end that follows is no failure
        self._halt.set()  # no restart from now on
        if link is not None:
            with contextlib.suppress(LinkClosed):
                link.send(Stop())
        if process is not None:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("the plugin host process did not stop in time: killed")
                process.kill()
                process.wait()
        self._closed("the TUI closed")
        if link is not None:
            link.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def _abandon(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        if self._link is not None:
            self._link.close()
        self.down = "it did not start"

    # -- death and restart -------------------------------------------------------------------

    def _died(self, why: str) -> None:
        """The process stopped serving (``why``): reap it, write its cause of death to its
        log, and start it again after a backoff unless it died too often."""
        cause = self._reap(why)
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) >= RESTARTS:
            self.down = (
                f"{cause}; it stopped {RESTARTS + 1} times in {RESTART_WINDOW:g}s, so it is not "
                "started again"
            )
            self._record(f"giving up: {self.down}")
            self._notify("plugin host", f"the plugin host stopped ({self.down}); see "
                         f"{self.log_path}", "error")  # fmt: skip
            return
        delay = RESTART_DELAY * 2 ** len(self._restarts)
        self.down = f"{cause}; restarting in {delay:g}s"
        self._record(f"restarting in {delay:g}s")
        self._notify("plugin host", f"the plugin host stopped ({cause}); restarting it in "
                     f"{delay:g}s (its log: {self.log_path})", "warning")  # fmt: skip
        threading.Thread(
            target=self._restart, args=(delay,), name="rwq-host-restart", daemon=True
        ).start()

    def _restart(self, delay: float) -> None:
        if self._halt.wait(delay):
            return
        self._restarts.append(time.monotonic())
        with self._lock:
            self._pending = {}
        try:
            self._launch()
        except RwqError as exc:
            if not self._halt.is_set():
                self._died(str(exc))
            return
        if self._halt.is_set():  # the TUI closed meanwhile
            self.stop()
            return
        self.restarted += 1
        self._record("restarted")
        self._notify("plugin host", "the plugin host process was restarted", "info")

    def _reap(self, why: str) -> str:
        """Wait for the dead process (no zombie left) and say how it ended."""
        process = self.process
        if process is None:
            return why
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # the channel broke but it runs on: end it
            process.kill()
            code = process.wait()
            return f"{why}; it no longer answered and was killed"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            cause = f"it was killed by {name}"
        else:
            cause = f"it exited with status {code}"
        self._record(f"the plugin host process (pid {process.pid}) {cause[3:]} ({why})")
        return cause

    def _record(self, line: str) -> None:
        """Append ``line`` to the process's log, from this side (a killed process writes
        nothing)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(f"{stamp} rwq tui: {line}\n")
        except OSError:
            log.warning("cannot write to %s: %s", self.log_path, line)

    # -- messages ----------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        link = self._link
        if link is None or self.down is not None:
            raise PluginHostGone(f"the plugin host is not running ({self.down or 'not started'})")
        try:
            link.send(message)
        except LinkClosed as exc:
            self._closed(str(exc))
            raise PluginHostGone(f"the plugin host is not running ({exc})") from None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run host operation ``name`` in the process; its result.

        Raises:
            RwqError: the operation failed there (the same error type, with its fields), or
                the process is gone (:class:`PluginHostGone`), or it did not answer in
                :data:`CALL_TIMEOUT` (:class:`PluginHostBusy`).
        """
        return self.call_within(CALL_TIMEOUT, name, *args, **kwargs)

    def call_within(self, timeout: float, name: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call`, waiting at most ``timeout`` seconds for the answer."""
        pending = _Pending()
        with self._lock:
            call_id = next(self._ids)
            self._pending[call_id] = pending
        try:
            self.send(Call(call_id, name, args, kwargs))
            if not pending.done.wait(timeout):
                raise PluginHostBusy(f"the plugin host did not answer {name} in {timeout:g}s")
        finally:
            with self._lock:
                self._pending.pop(call_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.value

    def _read(self) -> None:
        link = self._link
        assert link is not None
        decoder = FrameDecoder()
        while True:
            try:
                message = link.recv()
            except LinkClosed as exc:
                self._closed(str(exc))
                return
            except Exception as exc:  # a message that does not unpickle: a bug, said plainly
                log.exception("the plugin host sent an unreadable message")
                self._closed(f"unreadable message: {exc}")
                return
            if isinstance(message, Frames):
                try:
                    frames = decoder.decode(message.frames)  # kept in step even while not shown
                except Exception as exc:  # out of step with the process: a bug, said plainly
                    log.exception("the plugin host sent frames that do not follow")
                    self._closed(f"frames out of step: {exc}")
                    return
                deliver = self._deliver
                if deliver is not None:
                    try:
                        deliver(frames)
                    except Exception:  # the app is shutting down
                        log.debug("panel frames dropped", exc_info=True)
            elif isinstance(message, Returned | Raised):
                self._answered(message)
            elif isinstance(message, Notification):
                self._notify(message.plugin, message.message, message.level)

    def _answered(self, reply: Returned | Raised) -> None:
        with self._lock:
            pending = self._pending.get(reply.id)
        if pending is None:
            return  # it timed out
        if isinstance(reply, Raised):
            pending.error = reply.error.rebuild()
        else:
            pending.value = reply.value
        pending.done.set()

    def _notify(self, plugin: str, text: str, level: str) -> None:
        toast = self.toast
        if toast is None:
            log.info("%s: %s", plugin, text)
            return
        try:
            toast(plugin, text, level)
        except Exception:  # the app is gone
            log.debug("toast from %s dropped", plugin, exc_info=True)

    def _closed(self, why: str) -> None:
        """The process stopped serving: every waiting call fails, the user is told once."""
        with self._lock:
            if self.down is not None:
                return
            if self._stopping:
                why = "the TUI closed"
            self.down = why
            pending, self._pending = list(self._pending.values()), {}
        for waiting in pending:
            waiting.error = PluginHostGone(f"the plugin host stopped ({why})")
            waiting.done.set()
        if why != "the TUI closed":
            self._died(why)

    # -- the PluginHost protocol ------------------------------------------------------------

    @property
    def gone(self) -> str | None:
        why = self.down
        if why is None or why == "the TUI closed":
            return None
        return f"the plugin host process stopped ({why}); its log: {self.log_path}"

    def _listing(self, name: str) -> list[Any]:
        """A list the views poll on the UI thread: empty once the process is gone (they show
        no plugins), the last answer while it is too busy to answer within
        :data:`POLL_TIMEOUT` (the screen never waits long for it)."""
        if self.down is not None:
            return []
        try:
            result: list[Any] = self.call_within(POLL_TIMEOUT, name)
        except PluginHostGone:
            return []
        except PluginHostBusy:
            log.warning("the plugin host is slow to answer %s: showing its last answer", name)
            return list(self._last.get(name, []))
        self._last[name] = result
        return result

    def plugins(self) -> list[str]:
        return self._listing("plugins")

    def pending_approvals(self) -> list[PendingApproval]:
        return self._listing("pending_approvals")

    def snapshot(self) -> list[PluginSnapshot]:
        return self._listing("snapshot")

    def state(self, name: str) -> PluginState:
        state: PluginState = self.call("state", name)
        return state

    def manifest(self, name: str) -> PluginManifest | None:
        """The manifest of ``name``; None when the process cannot say now (asked on the UI
        thread when a panel is added: it gets the plugin's name for a title)."""
        try:
            manifest: PluginManifest | None = self.call_within(POLL_TIMEOUT, "manifest", name)
        except (PluginHostGone, PluginHostBusy):
            return None
        return manifest

    def permissions(self, name: str) -> Permissions:
        summary: Permissions = self.call("permissions", name)
        return summary

    def log_text(self, name: str) -> str:
        text: str = self.call("log_text", name)
        return text

    def audit_path(self) -> Path:
        path: Path = self.call("audit_path")
        return path

    def reload_history(self, name: str) -> list[ReloadAttempt]:
        if self.down is not None:
            return []
        history: list[ReloadAttempt] = self.call("reload_history", name)
        return history

    def approve(self, name: str, permissions: Sequence[str] | None = None) -> PluginState:
        state: PluginState = self.call("approve", name, permissions)
        return state

    def deny(self, name: str, permissions: Sequence[str] | None = None) -> PluginState:
        state: PluginState = self.call("deny", name, permissions)
        return state

    def revoke(
        self, name: str, permissions: Sequence[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]:
        removed: frozenset[str] = self.call("revoke", name, permissions, revoked_by=revoked_by)
        return removed

    def enable(self, name: str) -> PluginState:
        state: PluginState = self.call("enable", name)
        return state

    def disable(self, name: str, reason: str = "disabled by the user") -> None:
        self.call("disable", name, reason)

    def reload(self, name: str) -> str:
        line: str = self.call("reload", name)
        return line

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool:
        changed: bool = self.call("on_input", name, dict(event))
        return changed

    def renderer(self, sizes: Sizes, deliver: Deliver, cursors: Cursors) -> RemoteRenderer:
        return RemoteRenderer(self, sizes, deliver, cursors)


class RemoteRenderer:
    """The panels' renderer when the plugin host process renders them: it says which panels
    are on screen at what size (and cursor), and hands back the frames."""

    def __init__(
        self, host: RemotePluginHost, sizes: Sizes, deliver: Deliver, cursors: Cursors
    ) -> None:
        self.host = host
        self.sizes = sizes
        self.deliver = deliver
        self.cursors = cursors

    def start(self) -> None:
        self.host._deliver = self.deliver

    def stop(self) -> None:
        self.host._deliver = None

    def mark(self, plugin: str) -> None:
        """Called on the UI thread: draw ``plugin`` again (its size, focus or cursor changed,
        or it is new on screen)."""
        with contextlib.suppress(PluginHostGone):  # said once already
            self.host.send(View(plugin, self.sizes(plugin), self.cursors(plugin)))

    def mark_all(self, plugins: Iterable[str]) -> None:
        for plugin in plugins:
            self.mark(plugin)

    def forget(self, plugin: str) -> None:
        with contextlib.suppress(PluginHostGone):
            self.host.send(Forget(plugin))

    def stats(self) -> tuple[list[float], list[float], int]:
        """The process renderer's latest render times, their host part, and how many
        renders so far (for ``rwq bench tui``)."""
        stats: tuple[list[float], list[float], int] = self.host.call("renderer_stats")
        return stats
