"""The plugin host a TUI runs: a plugin manager with the real sandboxes, its hot reloader, and
where the plugins' notifications and log lines go (toasts and the plugin manager's log view)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.plugins.contract.ui import validate_elements
from rwq.plugins.headless import HeadlessHost, sandboxes
from rwq.plugins.runtimes.base import PluginRuntime
from rwq.tui.plugins_view import PluginLogs

log = logging.getLogger(__name__)

NOTICE_FOR = 120.0
"""Seconds a failed reload is shown on the plugin's panel."""
Toast = Callable[[str, str, str], None]
"""``(plugin, message, level)``."""


class PluginHost:
    """Owns the manager and the reloader for the lifetime of one TUI (in the TUI's process:
    tests, and the plugin host process itself — ``rwq tui`` runs it apart, see
    :mod:`rwq.tui.remote`)."""

    renderer_factory = None
    """The panels are rendered in this process (by the panels view's own renderer)."""

    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        policy_path: Path | None = None,
        watch: bool = True,
        runtimes_factory: Callable[[], dict[str, PluginRuntime]] = sandboxes,
        feeds: bool = True,
    ) -> None:
        self.logs = PluginLogs()
        self.toast: Toast | None = None
        """Set by the app once it runs; until then notifications are only logged."""
        self.host = HeadlessHost(
            settings, client, policy_path=policy_path, watch=watch, runtimes=runtimes_factory,
            on_notify=self._notify, on_log=self.logs.add, feeds=feeds,
            element_validator=validate_elements,
        )  # fmt: skip
        self.manager = self.host.manager
        self.reloader = self.host.reloader
        self.control = self.host.control
        """Answers ``rwq plugin reload NAME`` from other processes."""

    def start(self) -> None:
        self.host.start()

    def stop(self) -> None:
        self.host.stop()

    def notice(self, name: str, now: float | None = None) -> str:
        """A line for the panel of ``name`` while its latest reload attempt, if it failed,
        is recent: which version, how it ended, why (the old version keeps running)."""
        attempts = self.reloader.history(name)
        if not attempts:
            return ""
        last = attempts[-1]
        if last.outcome == "reloaded" or (now or time.time()) - last.at > NOTICE_FOR:
            return ""
        version = f" of {last.version}" if last.version else ""
        reason = f": {last.reason}" if last.reason else ""
        return f"reload{version} {last.outcome}{reason}"

    def reload(self, name: str) -> str:
        """Reload ``name`` the way a save does (probation and rollback included); a line
        saying how it ended."""
        attempt = self.reloader.request(name).result(timeout=60)
        line = f"{name}: reload {attempt.outcome}"
        if attempt.version:
            line += f" ({attempt.version})"
        return f"{line}: {attempt.reason}" if attempt.reason else line

    def _notify(self, plugin: str, message: str, level: str) -> None:
        self.logs.add(plugin, f"notify:{level}", message)
        toast = self.toast
        if toast is not None:
            try:
                toast(plugin, message, level)
            except Exception:  # the app is gone
                log.debug("toast from %s dropped", plugin, exc_info=True)
