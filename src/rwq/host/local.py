"""A plugin host in this process: the manager with its sandboxes, the hot reloader, the
control channel of ``rwq plugin reload``, the plugins' logs and the panel renderer."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rwq.errors import RwqError
from rwq.host.api import Cursors, Deliver, Permissions, Sizes, Toast
from rwq.host.logs import PluginLogs
from rwq.host.render.renderer import PanelRenderer
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PendingApproval, PluginManager
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.ops.control import ControlServer
from rwq.plugins.ops.reloader import HotReloader, ReloadAttempt
from rwq.plugins.package.manifest import PluginManifest
from rwq.queue.reaper import ReaperThread

NOTICE_FOR = 120.0
"""Seconds a failed reload is shown on the plugin's panel."""
RELOAD_TIMEOUT = 60.0
"""Seconds :meth:`LocalPluginHost.reload` waits for the reload to end."""


class LocalPluginHost:
    """The :class:`~rwq.host.api.PluginHost` of a manager running in this process (built by
    :func:`rwq.host.build.build_host`)."""

    def __init__(
        self,
        manager: PluginManager,
        reloader: HotReloader | None,
        control: ControlServer | None,
        logs: PluginLogs,
        reaper: ReaperThread | None = None,
    ) -> None:
        self.manager = manager
        self.reaper = reaper
        """Reaps dead workers' jobs while the host runs, so a host alone keeps them moving."""
        self.reloader = reloader
        """Watches the plugin files and puts every swap on probation; None in a check."""
        self.control = control
        """Answers ``rwq plugin reload NAME`` from other processes."""
        self.logs = logs
        self.gone: str | None = None
        """A host in this process serves as long as the process runs."""

    @property
    def toast(self) -> Toast | None:
        return self.logs.toast

    @toast.setter
    def toast(self, toast: Toast | None) -> None:
        self.logs.toast = toast

    def start(self) -> None:
        self.manager.start()
        if self.reloader is not None:
            self.reloader.start()
        if self.control is not None:
            self.control.start()
        if self.reaper is not None:
            self.reaper.start()

    def stop(self) -> None:
        if self.reaper is not None:
            self.reaper.stop()
        if self.control is not None:
            self.control.stop()
        if self.reloader is not None:
            self.reloader.stop()
        self.manager.stop()  # closes the runtimes too

    def __enter__(self) -> LocalPluginHost:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def states(self) -> dict[str, str]:
        """Each plugin's state, by name."""
        return {name: self.manager.state(name).value for name in self.manager.plugins()}

    # -- what the views read -------------------------------------------------------------------

    def plugins(self) -> list[str]:
        return self.manager.plugins()

    def state(self, name: str) -> PluginState:
        return self.manager.state(name)

    def manifest(self, name: str) -> PluginManifest | None:
        return self.manager.manifest(name)

    def pending_approvals(self) -> list[PendingApproval]:
        return self.manager.pending_approvals()

    def snapshot(self) -> list[PluginSnapshot]:
        return self.manager.snapshot()

    def permissions(self, name: str) -> Permissions:
        """What the running version of ``name`` was granted (grants of other versions or
        code of that name, an earlier plugin's say, give it nothing), waits for and was
        denied; every stored grant when it does not run."""
        grants = self.manager.grants
        now = time.time()
        try:
            snap = self.manager.status(name)
            running = (snap.version, snap.bundle_hash) if snap.bundle_hash else None
        except RwqError:  # not hosted here
            running = None
        granted = frozenset(
            p
            for g in grants.grants_for(name)
            if not g.expired(now) and (running is None or g.binding == running)
            for p in g.permissions
        )
        denied = frozenset(p for d in grants.denials_for(name) for p in d.permissions)
        pending = frozenset(
            p
            for a in self.manager.pending_approvals()
            if a.plugin == name
            for p in a.review.pending
        )
        return Permissions(granted, pending, denied - granted)

    def log_text(self, name: str) -> str:
        return self.logs.text(name)

    def audit_path(self) -> Path:
        self.manager.audit.flush()
        return self.manager.audit.path

    def reload_history(self, name: str) -> list[ReloadAttempt]:
        return self.reloader.history(name) if self.reloader is not None else []

    def notice(self, name: str, now: float | None = None) -> str:
        """A line for the panel of ``name`` while its latest reload attempt, if it failed,
        is recent: which version, how it ended, why (the old version keeps running)."""
        attempts = self.reload_history(name)
        if not attempts:
            return ""
        last = attempts[-1]
        if last.outcome == "reloaded" or (now or time.time()) - last.at > NOTICE_FOR:
            return ""
        version = f" of {last.version}" if last.version else ""
        reason = f": {last.reason}" if last.reason else ""
        return f"reload{version} {last.outcome}{reason}"

    # -- what the user decides -----------------------------------------------------------------

    def approve(self, name: str, permissions: Sequence[str] | None = None) -> PluginState:
        return self.manager.approve(name, permissions)

    def deny(self, name: str, permissions: Sequence[str] | None = None) -> PluginState:
        return self.manager.deny(name, permissions)

    def revoke(
        self, name: str, permissions: Sequence[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]:
        return self.manager.revoke(name, permissions, revoked_by=revoked_by)

    def enable(self, name: str) -> PluginState:
        return self.manager.enable(name)

    def disable(self, name: str, reason: str = "disabled by the user") -> None:
        self.manager.disable(name, reason)

    def reload(self, name: str) -> str:
        if self.reloader is None:
            result = self.manager.reload(name)
            if result.ok:
                return f"{name}: reloaded {result.old_version} → {result.new_version}"
            return f"{name}: reload failed, kept {result.old_version}: {result.reason}"
        attempt = self.reloader.request(name).result(timeout=RELOAD_TIMEOUT)
        version = f" {attempt.version}" if attempt.version else ""
        if attempt.outcome == "reloaded":
            line = f"{name}: reloaded{version}"
            return f"{line} ({attempt.reason})" if attempt.reason else line
        line = f"{name}: reload{version and ' of' + version} {attempt.outcome}"
        return f"{line}: {attempt.reason}" if attempt.reason else line

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool:
        return self.manager.on_input(name, event)

    # -- the panels ----------------------------------------------------------------------------

    def renderer(
        self, sizes: Sizes, deliver: Deliver, cursors: Cursors, *, draws: bool = True
    ) -> PanelRenderer:
        """The panels' renderer; ``draws=False``: frames carry only the elements."""
        return PanelRenderer(
            self.manager, sizes, deliver, cursors, notices=self.notice, draws=draws
        )
