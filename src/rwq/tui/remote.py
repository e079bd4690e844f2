"""The TUI's end of its plugin host process (:mod:`rwq.tui.plugin_process`).

:class:`RemotePluginHost` starts the process and stands in for :class:`~rwq.tui.host.PluginHost`
in the app: its ``manager`` answers the calls the views make (plugins, snapshots, approvals,
permissions, enable / disable / reload, input) by asking the process, and its renderer factory gives
the panels view a renderer that tells the process which panels are on screen at what size and
hands the finished frames it sends back to the panels. The UI process then only paints.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.tui.frame_wire import FrameDecoder
from rwq.tui.link import Link, LinkClosed

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

Sizes = Callable[[str], "tuple[int, int, bool] | None"]
Cursors = Callable[[str], "int | None"]
Deliver = Callable[[list[Any]], None]
Toast = Callable[[str, str, str], None]


class PluginHostGone(RwqError):
    """The plugin host process is not running (it failed, or the TUI is closing)."""


class PluginHostBusy(RwqError):
    """The plugin host process did not answer in time."""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    value: Any = None


class RemotePluginHost:
    """A plugin host in a process of its own, seen from the TUI."""

    notice = None
    """Reload notices are drawn by the process itself (see ``PanelsView``)."""

    def __init__(
        self, settings: Settings, *, policy_path: Path | None = None, watch: bool = True
    ) -> None:
        self.settings = settings
        self.policy_path = policy_path
        self.watch = watch
        self.toast: Toast | None = None
        """Set by the app once it runs; until then notifications are only logged."""
        self.manager = RemoteManager(self)
        self.logs = RemoteLogs(self)
        self.reloader = RemoteReloader(self)
        self.process: subprocess.Popen[bytes] | None = None
        self.gone: str | None = None
        """Why the process is not serving (None while it is)."""
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
                [sys.executable, "-m", "rwq.tui.plugin_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        theirs.close()
        link = self._link = Link(ours)
        ours.settimeout(START_TIMEOUT)
        try:
            link.send(("init", self.settings, self.policy_path, self.watch))
            reply = link.recv()
            while reply[0] == "toast":  # a plugin notified while it started (initialize)
                self._notify(*reply[1:])
                reply = link.recv()
        except LinkClosed as exc:
            self._abandon()
            raise RwqError(
                f"the plugin host process did not start ({exc}); see {self.log_path}"
            ) from None
        if reply[0] != "ready":
            self._abandon()
            why = reply[1] if reply[0] == "error" else f"unexpected {reply[0]!r}"
            raise RwqError(f"the plugin host process failed: {why}; see {self.log_path}")
        ours.settimeout(None)
        self.gone = None  # serving (again): a death from now on is noticed by the reader
        self._reader = threading.Thread(target=self._read, name="rwq-host-link", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        link, process = self._link, self.process
        self._stopping = True  # the channel's end that follows is no failure
        self._halt.set()  # no restart from now on
        if link is not None:
            with contextlib.suppress(LinkClosed):
                link.send(("stop",))
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
        self.gone = "it did not start"

    # -- death and restart -------------------------------------------------------------------

    def _died(self, why: str) -> None:
        """The process stopped serving (``why``): reap it, write its cause of death to its
        log, and start it again after a backoff unless it died too often."""
        cause = self._reap(why)
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) >= RESTARTS:
            self.gone = (
                f"{cause}; it stopped {RESTARTS + 1} times in {RESTART_WINDOW:g}s, so it is not "
                "started again"
            )
            self._record(f"giving up: {self.gone}")
            self._notify("plugin host", f"the plugin host stopped ({self.gone}); see "
                         f"{self.log_path}", "error")  # fmt: skip
            return
        delay = RESTART_DELAY * 2 ** len(self._restarts)
        self.gone = f"{cause}; restarting in {delay:g}s"
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

    def send(self, message: Any) -> None:
        link = self._link
        if link is None or self.gone is not None:
            raise PluginHostGone(f"the plugin host is not running ({self.gone or 'not started'})")
        try:
            link.send(message)
        except LinkClosed as exc:
            self._closed(str(exc))
            raise PluginHostGone(f"the plugin host is not running ({exc})") from None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run host operation ``name`` in the process; its result.

        Raises:
            RwqError: the operation failed there (its message), or the process is gone
                (:class:`PluginHostGone`), or it did not answer in :data:`CALL_TIMEOUT`
                (:class:`PluginHostBusy`).
        """
        return self.call_within(CALL_TIMEOUT, name, *args, **kwargs)

    def call_within(self, timeout: float, name: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call`, waiting at most ``timeout`` seconds for the answer."""
        pending = _Pending()
        with self._lock:
            call_id = next(self._ids)
            self._pending[call_id] = pending
        try:
            self.send(("call", call_id, name, args, kwargs))
            if not pending.done.wait(timeout):
                raise PluginHostBusy(f"the plugin host did not answer {name} in {timeout:g}s")
        finally:
            with self._lock:
                self._pending.pop(call_id, None)
        if not pending.ok:
            raise RwqError(str(pending.value))
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
            kind = message[0]
            if kind == "frames":
                try:
                    frames = decoder.decode(message[1])  # kept in step even while not shown
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
            elif kind == "result":
                _, call_id, ok, value = message
                with self._lock:
                    pending = self._pending.get(call_id)
                if pending is not None:
                    pending.ok, pending.value = ok, value
                    pending.done.set()
            elif kind == "toast":
                self._notify(*message[1:])

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
            if self.gone is not None:
                return
            if self._stopping:
                why = "the TUI closed"
            self.gone = why
            pending, self._pending = list(self._pending.values()), {}
        for waiting in pending:
            waiting.ok, waiting.value = False, f"the plugin host stopped ({why})"
            waiting.done.set()
        if why != "the TUI closed":
            self._died(why)

    # -- the panels ----------------------------------------------------------------------------

    def renderer_factory(self, sizes: Sizes, deliver: Deliver, cursors: Cursors) -> RemoteRenderer:
        return RemoteRenderer(self, sizes, deliver, cursors)

    def reload(self, name: str) -> str:
        """Reload ``name`` as a file save would (probation and rollback included)."""
        result: str = self.call("reload", name)
        return result


class RemoteRenderer:
    """The panels view's renderer when the panels are rendered by the plugin host process: it
    says which panels are on screen at what size (and cursor), and hands back the frames."""

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
            self.host.send(("view", plugin, self.sizes(plugin), self.cursors(plugin)))

    def mark_all(self, plugins: Iterable[str]) -> None:
        for plugin in plugins:
            self.mark(plugin)

    def forget(self, plugin: str) -> None:
        with contextlib.suppress(PluginHostGone):
            self.host.send(("forget", plugin))

    def stats(self) -> tuple[list[float], list[float], int]:
        """The process renderer's latest render times, their host part, and how many
        renders so far (for ``rwq bench tui``)."""
        stats: tuple[list[float], list[float], int] = self.host.call("renderer_stats")
        return stats


class RemoteManager:
    """The plugin manager operations the views use, answered by the plugin host process."""

    def __init__(self, host: RemotePluginHost) -> None:
        self.host = host
        self.audit = RemoteAudit(host)
        self._last: dict[str, list[Any]] = {}
        """The last answer of each polled listing."""

    @property
    def gone(self) -> str | None:
        """Why there are no plugins any more (the process stopped), for the views to say."""
        why = self.host.gone
        if why is None or why == "the TUI closed":
            return None
        return f"the plugin host process stopped ({why}); its log: {self.host.log_path}"

    def _listing(self, name: str) -> list[Any]:
        """A list the views poll on the UI thread: empty once the process is gone (they show
        no plugins), the last answer while it is too busy to answer within
        :data:`POLL_TIMEOUT` (the screen never waits long for it)."""
        if self.host.gone is not None:
            return []
        try:
            result: list[Any] = self.host.call_within(POLL_TIMEOUT, name)
        except PluginHostGone:
            return []
        except PluginHostBusy:
            log.warning("the plugin host is slow to answer %s: showing its last answer", name)
            return list(self._last.get(name, []))
        self._last[name] = result
        return result

    def plugins(self) -> list[str]:
        return self._listing("plugins")

    def pending_approvals(self) -> list[Any]:
        return self._listing("pending_approvals")

    def snapshot(self) -> list[Any]:
        return self._listing("snapshot")

    def state(self, name: str) -> Any:
        return self.host.call("state", name)

    def manifest(self, name: str) -> Any:
        """The manifest of ``name``; None when the process cannot say now (asked on the UI
        thread when a panel is added: it gets the plugin's name for a title)."""
        try:
            return self.host.call_within(POLL_TIMEOUT, "manifest", name)
        except (PluginHostGone, PluginHostBusy):
            return None

    def approve(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.host.call("approve", name, *args, **kwargs)

    def deny(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.host.call("deny", name, *args, **kwargs)

    def revoke(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.host.call("revoke", name, *args, **kwargs)

    def enable(self, name: str) -> Any:
        return self.host.call("enable", name)

    def disable(self, name: str, *args: Any) -> None:
        self.host.call("disable", name, *args)

    def reload(self, name: str) -> Any:
        return self.host.call("reload_now", name)

    def permissions_summary(self, name: str) -> Any:
        """Granted, pending and denied permissions of ``name`` (the plugins view's column)."""
        return self.host.call("permissions_summary", name)

    def on_input(self, name: str, event: Any) -> bool:
        changed: bool = self.host.call("on_input", name, dict(event))
        return changed


class RemoteAudit:
    def __init__(self, host: RemotePluginHost) -> None:
        self.host = host

    def flush(self) -> None:
        self.host.call("audit_path")  # flushes, then says where

    @property
    def path(self) -> Path:
        path: Path = self.host.call("audit_path")
        return path


class RemoteLogs:
    def __init__(self, host: RemotePluginHost) -> None:
        self.host = host

    def text(self, plugin: str) -> str:
        text: str = self.host.call("logs_text", plugin)
        return text


class RemoteReloader:
    def __init__(self, host: RemotePluginHost) -> None:
        self.host = host

    def history(self, name: str) -> list[Any]:
        if self.host.gone is not None:
            return []
        result: list[Any] = self.host.call("reload_history", name)
        return result
