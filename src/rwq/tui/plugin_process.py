"""The plugin host process of a TUI: ``python -m rwq.tui.plugin_process FD``.

The TUI's plugin host — the plugin manager with its sandboxes, event dispatch, hot reloader and
the panel renderer — runs here, in a process of its own, so the UI process only paints: the
plugins' event handling and rendering never compete with the screen for Python's GIL, and a
host stuck on a plugin cannot freeze the UI.

Over the inherited socket (:mod:`rwq.tui.link`) the TUI sends ``init`` first, then which panels
are on screen at what size (``view``), calls (``call``: a whitelisted manager or host
operation, answered with ``result``) and ``stop``; this process sends ``ready``, finished panel
frames (``frames``), notifications (``toast``) and results. Its log goes to
``<state dir>/plugin-host.log`` (the terminal belongs to the UI).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from rwq.printable import log_to_stderr
from rwq.procfs import thread_cpu
from rwq.tui.frame_wire import FrameEncoder
from rwq.tui.host import PluginHost
from rwq.tui.link import Link, LinkClosed
from rwq.tui.panels import PanelRenderer
from rwq.tui.plugins_view import permissions_of

log = logging.getLogger(__name__)

NOTICES_EVERY = 1.0
"""Seconds between looks at the panels' reload notices."""


class HostProcess:
    """Serves one TUI over ``link`` until it says ``stop`` or goes away."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.views: dict[str, tuple[int, int, bool] | None] = {}
        """Panels on screen: their body size and focus, as the TUI last said."""
        self.cursors: dict[str, int | None] = {}
        self.noticed: dict[str, str] = {}
        self._halt = threading.Event()
        self._calls = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rwq-host-call")
        self._encoder = FrameEncoder()
        """Frames go out as their changes to the plugin's previous frame (the renderer's
        thread is the only sender)."""

    def serve(self) -> None:
        kind, settings, policy, watch = self.link.recv()
        if kind != "init":
            raise LinkClosed(f"expected init, got {kind!r}")
        from rwq.connection import connect

        try:
            client = connect(settings)
        except Exception as exc:  # said to the TUI, which stops with it
            self.link.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        try:
            host = PluginHost(settings, client, policy_path=policy, watch=watch)
        except Exception as exc:  # a bad policy file, an unreadable plugins dir
            self.link.send(("error", f"{type(exc).__name__}: {exc}"))
            client.close()
            return
        host.toast = self._toast
        renderer = PanelRenderer(
            host.manager, self.views.get, self._frames, self.cursors.get, notices=host.notice
        )
        calls = self._table(host, renderer)
        try:
            try:
                host.start()
                renderer.start()
            except Exception as exc:
                log.exception("the plugin host did not start")
                self.link.send(("error", f"{type(exc).__name__}: {exc}"))
                return
            self.link.send(("ready",))
            threading.Thread(
                target=self._watch_notices, args=(host, renderer), name="rwq-host-notices",
                daemon=True,
            ).start()  # fmt: skip
            self._loop(renderer, calls)
        finally:
            self._halt.set()
            self._calls.shutdown(wait=False, cancel_futures=True)
            for stop in (renderer.stop, host.stop, client.close):
                try:
                    stop()
                except Exception:  # the others are stopped all the same
                    log.exception("stopping the plugin host: %s failed", stop)

    def _loop(self, renderer: PanelRenderer, calls: dict[str, Callable[..., Any]]) -> None:
        while True:
            try:
                message = self.link.recv()
            except LinkClosed:
                return  # the TUI is gone
            kind = message[0]
            if kind == "view":
                _, plugin, size, cursor = message
                self.views[plugin] = size
                self.cursors[plugin] = cursor
                renderer.mark(plugin)
            elif kind == "forget":
                renderer.forget(message[1])
            elif kind == "call":
                _, call_id, name, args, kwargs = message
                self._calls.submit(self._answer, calls, call_id, name, args, kwargs)
            elif kind == "stop":
                return
            else:
                log.warning("plugin host: unknown message %r ignored", kind)

    def _answer(
        self,
        calls: dict[str, Callable[..., Any]],
        call_id: int,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        function = calls.get(name)
        try:
            if function is None:
                raise LookupError(f"no such plugin host call: {name}")
            reply = ("result", call_id, True, function(*args, **kwargs))
        except Exception as exc:  # the caller gets the message, as the error it would see
            reply = ("result", call_id, False, f"{exc}" or type(exc).__name__)
        try:
            self.link.send(reply)
        except LinkClosed:
            pass
        except Exception as exc:  # a result that does not pickle: a bug here, said plainly
            log.exception("plugin host: the result of %s could not be sent", name)
            self.link.send(("result", call_id, False, f"{name}: {type(exc).__name__}: {exc}"))

    @staticmethod
    def _table(host: PluginHost, renderer: PanelRenderer) -> dict[str, Callable[..., Any]]:
        """What the TUI may call, by name."""
        manager = host.manager

        def renderer_stats() -> tuple[list[float], list[float], int]:
            return list(renderer.render_ms), list(renderer.view_ms), renderer.renders

        def audit_path() -> Path:
            manager.audit.flush()
            return manager.audit.path

        return {
            "plugins": manager.plugins,
            "state": manager.state,
            "manifest": manager.manifest,
            "pending_approvals": manager.pending_approvals,
            "snapshot": manager.snapshot,
            "approve": manager.approve,
            "deny": manager.deny,
            "revoke": manager.revoke,
            "enable": manager.enable,
            "disable": manager.disable,
            "reload_now": manager.reload,
            "on_input": manager.on_input,
            "permissions_summary": partial(permissions_of, manager),
            "audit_path": audit_path,
            "logs_text": host.logs.text,
            "reload": host.reload,
            "reload_history": host.reloader.history,
            "renderer_stats": renderer_stats,
            "thread_cpu": thread_cpu,
        }

    def _frames(self, frames: list[Any]) -> None:
        self.link.send(("frames", self._encoder.encode(frames)))

    def _toast(self, plugin: str, message: str, level: str) -> None:
        self.link.send(("toast", plugin, message, level))

    def _watch_notices(self, host: PluginHost, renderer: PanelRenderer) -> None:
        """Draw again the panels whose reload notice came or went (no plugin state changes
        then, so nothing else would)."""
        while not self._halt.wait(NOTICES_EVERY):
            for name in list(self.views):
                notice = host.notice(name)
                if notice != self.noticed.get(name, ""):
                    self.noticed[name] = notice
                    renderer.mark(name)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    link = Link(sock)
    log_to_stderr(logging.INFO)
    faulthandler.enable()  # a crash in native code leaves its stack in the log
    log.info("plugin host process %d started", os.getpid())
    try:
        HostProcess(link).serve()
    except LinkClosed:
        pass
    except BaseException:
        log.exception("the plugin host process failed")
        raise
    finally:
        link.close()


if __name__ == "__main__":
    main()
