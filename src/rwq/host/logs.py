"""What the plugins say to the user: the latest log lines and notifications of each plugin,
kept for the plugin log view, and notifications passed on as toasts once a screen shows them."""

from __future__ import annotations

import logging
import time
from collections import deque

from rwq.host.api import Toast

log = logging.getLogger(__name__)

LOG_LINES = 500
"""Log lines kept per plugin."""


class PluginLogs:
    """A plugin manager's ``on_log`` and ``on_notify``: the last :data:`LOG_LINES` lines of
    each plugin, and its notifications for :attr:`toast`."""

    def __init__(self, size: int = LOG_LINES) -> None:
        self.size = size
        self.lines: dict[str, deque[str]] = {}
        self.toast: Toast | None = None
        """Set by the app once it runs; until then notifications are only kept."""

    def add(self, plugin: str, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        lines = self.lines.setdefault(plugin, deque(maxlen=self.size))
        lines.append(f"{stamp} {level:<7} {message}")

    def notify(self, plugin: str, message: str, level: str) -> None:
        self.add(plugin, f"notify:{level}", message)
        toast = self.toast
        if toast is not None:
            try:
                toast(plugin, message, level)
            except Exception:  # the app is gone
                log.debug("toast from %s dropped", plugin, exc_info=True)

    def text(self, plugin: str) -> str:
        return "\n".join(self.lines.get(plugin, ())) or "(no log lines yet)"
