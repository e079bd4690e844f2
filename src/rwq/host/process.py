"""The plugin host process of a screen: ``python -m rwq.host.process FD``.

The plugins are hosted here, so the screen's process only paints: their event handling and
rendering never compete with the screen for the GIL, and a host stuck on a plugin cannot freeze
it. The messages are :mod:`rwq.host.messages`; the log goes to ``<state dir>/plugin-host.log``.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rwq.host.api import CALLS
from rwq.host.build import HostOptions, build_host
from rwq.host.frame_wire import FrameEncoder
from rwq.host.link import Link, LinkClosed
from rwq.host.local import LocalPluginHost
from rwq.host.messages import (
    Call,
    ErrorInfo,
    Failed,
    Forget,
    Frames,
    Init,
    Notification,
    Raised,
    Ready,
    RemoteError,
    Returned,
    Stop,
    View,
)
from rwq.host.render.renderer import PanelFrame, PanelRenderer
from rwq.printable import log_to_stderr
from rwq.procfs import thread_cpu

log = logging.getLogger(__name__)


class HostProcess:
    """Serves one screen over ``link`` until it says :class:`Stop` or goes away."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.views: dict[str, tuple[int, int, bool] | None] = {}
        """Panels on screen: their body size and focus, as the screen last said."""
        self.cursors: dict[str, int | None] = {}
        self._calls = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rwq-host-call")
        self._encoder = FrameEncoder()
        """Frames go out as their changes to the plugin's previous frame (the renderer's
        thread is the only sender)."""

    def serve(self) -> None:
        init = self.link.recv()
        if not isinstance(init, Init):
            raise LinkClosed(f"expected Init, got {type(init).__name__}")
        from rwq.connection import connect

        try:
            client = connect(init.settings)
        except Exception as exc:  # said to the screen, which stops with it
            self.link.send(Failed(ErrorInfo.of(exc)))
            return
        try:
            options = HostOptions(
                policy_path=init.policy_path,
                watch=init.watch,
                with_installed=init.with_installed,
                granted_as_asked=init.granted_as_asked,
                screen=True,
            )
            host = build_host(init.settings, client, options)
        except Exception as exc:  # a bad policy file, an unreadable plugins dir
            self.link.send(Failed(ErrorInfo.of(exc)))
            client.close()
            return
        host.toast = self._toast
        renderer = host.renderer(self.views.get, self._frames, self.cursors.get)
        try:
            try:
                host.start()
                renderer.start()
            except Exception as exc:
                log.exception("the plugin host did not start")
                self.link.send(Failed(ErrorInfo.of(exc)))
                return
            self.link.send(Ready())
            self._loop(host, renderer)
        finally:
            self._calls.shutdown(wait=False, cancel_futures=True)
            for stop in (renderer.stop, host.stop, client.close):
                try:
                    stop()
                except Exception:  # the others are stopped all the same
                    log.exception("stopping the plugin host: %s failed", stop)

    def _loop(self, host: LocalPluginHost, renderer: PanelRenderer) -> None:
        while True:
            try:
                message = self.link.recv()
            except LinkClosed:
                return  # the screen is gone
            if isinstance(message, View):
                self.views[message.plugin] = message.size
                self.cursors[message.plugin] = message.cursor
                renderer.mark(message.plugin)
            elif isinstance(message, Forget):
                renderer.forget(message.plugin)
            elif isinstance(message, Call):
                self._calls.submit(self._answer, host, renderer, message)
            elif isinstance(message, Stop):
                return
            else:
                log.warning("plugin host: unexpected %s ignored", type(message).__name__)

    def _answer(self, host: LocalPluginHost, renderer: PanelRenderer, call: Call) -> None:
        reply: Returned | Raised
        try:
            reply = Returned(call.id, self._run(host, renderer, call))
        except Exception as exc:  # the caller raises the same error
            reply = Raised(call.id, ErrorInfo.of(exc))
        try:
            self.link.send(reply)
        except LinkClosed:
            pass
        except Exception as exc:  # a result that does not pickle: a bug here, said plainly
            log.exception("plugin host: the result of %s could not be sent", call.method)
            unsent = RemoteError(type(exc).__name__, f"{call.method}: {exc}")
            self.link.send(Raised(call.id, ErrorInfo.of(unsent)))

    @staticmethod
    def _run(host: LocalPluginHost, renderer: PanelRenderer, call: Call) -> Any:
        # Besides the PluginHost methods: the figures of `rwq bench tui`.
        if call.method == "renderer_stats":
            return renderer.stats()
        if call.method == "thread_cpu":
            return thread_cpu()
        if call.method not in CALLS:
            raise RemoteError("LookupError", f"no such plugin host call: {call.method}")
        return getattr(host, call.method)(*call.args, **call.kwargs)

    def _frames(self, frames: list[PanelFrame]) -> None:
        self.link.send(Frames(self._encoder.encode(frames)))

    def _toast(self, plugin: str, message: str, level: str) -> None:
        self.link.send(Notification(plugin, message, level))


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
