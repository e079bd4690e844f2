"""What a screen sees of a plugin host: the :class:`PluginHost` protocol, implemented in the
screen's process (:class:`rwq.host.local.LocalPluginHost`) or in a process of its own
(:class:`rwq.host.remote.RemotePluginHost`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PendingApproval
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.ops.reloader import ReloadAttempt
from rwq.plugins.package.manifest import PluginManifest

if TYPE_CHECKING:
    from rwq.host.render.renderer import PanelFrame

__all__ = [
    "CALLS",
    "Cursors",
    "Deliver",
    "Permissions",
    "PluginHost",
    "Renderer",
    "Sizes",
    "Toast",
]

Toast = Callable[[str, str, str], None]
"""``(plugin, message, level)``: a notification for the user."""
Sizes = Callable[[str], "tuple[int, int, bool] | None"]
"""A panel's body width, height and focus while it is on screen; None when it is not."""
Cursors = Callable[[str], "int | None"]
"""The selected row of a panel's list or table."""
Deliver = Callable[["list[PanelFrame]"], None]
"""Where finished panel frames go (called off the UI thread)."""


@dataclass(frozen=True)
class Permissions:
    """What a plugin was granted, waits for and was denied."""

    granted: frozenset[str]
    pending: frozenset[str]
    denied: frozenset[str]

    def __str__(self) -> str:
        parts = [f"{len(self.granted)} granted"]
        if self.pending:
            parts.append(f"{len(self.pending)} pending")
        if self.denied:
            parts.append(f"{len(self.denied)} denied")
        return ", ".join(parts)


class Renderer(Protocol):
    """Renders the panels on screen off the UI thread and delivers finished frames."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def mark(self, plugin: str) -> None:
        """Draw ``plugin`` again (its size, focus or cursor changed, or it is new on screen)."""

    def mark_all(self, plugins: Iterable[str]) -> None: ...
    def forget(self, plugin: str) -> None:
        """Deliver the next frame of ``plugin`` even if it looks like the last."""

    def stats(self) -> tuple[list[float], list[float], int]:
        """The latest render times, their host part, and how many renders so far."""


class PluginHost(Protocol):
    """The plugins of one screen: their states, the user's decisions, their panels.

    Every method may be called from the UI thread; a remote host answers from its last reply
    when the process is too slow (listings) or raises :class:`rwq.errors.RwqError`.
    """

    toast: Toast | None
    """Set by the app once it runs; until then notifications are only logged."""

    @property
    def gone(self) -> str | None:
        """Why the host stopped serving (its process died and was not restarted), for the
        views to say; None while it serves."""

    def start(self) -> None: ...
    def stop(self) -> None: ...

    # -- what the views read ---------------------------------------------------------------
    def plugins(self) -> list[str]: ...
    def state(self, name: str) -> PluginState: ...
    def manifest(self, name: str) -> PluginManifest | None: ...
    def pending_approvals(self) -> list[PendingApproval]: ...
    def snapshot(self) -> list[PluginSnapshot]: ...
    def permissions(self, name: str) -> Permissions: ...
    def log_text(self, name: str) -> str: ...
    def audit_path(self) -> Path:
        """The audit log's file, flushed."""

    def reload_history(self, name: str) -> list[ReloadAttempt]: ...

    # -- what the user decides ---------------------------------------------------------------
    def approve(self, name: str, permissions: Sequence[str] | None = None) -> PluginState: ...
    def deny(self, name: str, permissions: Sequence[str] | None = None) -> PluginState: ...
    def revoke(
        self, name: str, permissions: Sequence[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]: ...
    def enable(self, name: str) -> PluginState: ...
    def disable(self, name: str, reason: str = "disabled by the user") -> None: ...

    def reload(self, name: str) -> str:
        """Reload ``name`` as a save would (probation and rollback); a line saying how."""

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool: ...

    # -- the panels --------------------------------------------------------------------------
    def renderer(self, sizes: Sizes, deliver: Deliver, cursors: Cursors) -> Renderer: ...


CALLS = frozenset(
    {
        "plugins",
        "state",
        "manifest",
        "pending_approvals",
        "snapshot",
        "permissions",
        "log_text",
        "audit_path",
        "reload_history",
        "approve",
        "deny",
        "revoke",
        "enable",
        "disable",
        "reload",
        "on_input",
    }
)
"""The :class:`PluginHost` methods a remote host asks its process for."""
