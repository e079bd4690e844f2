"""The plugin manager view: every installed plugin with its state and figures, and the actions
enable, disable, reload, revoke a permission, audit log, plugin log, approvals."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, OptionList

from rwq.errors import RwqError
from rwq.plugins import audit
from rwq.plugins.lifecycle import PluginState
from rwq.plugins.manager import PluginManager
from rwq.plugins.metrics import PluginSnapshot
from rwq.plugins.reloader import ReloadAttempt
from rwq.tui.audit_view import SHOWN as AUDIT_SHOWN
from rwq.tui.audit_view import AuditFilter, AuditScreen
from rwq.tui.dialogs import TextScreen
from rwq.tui.tables import cursor_key, sync_rows, update_label
from rwq.units import counted

RELOADS_SHOWN = 3
"""Latest reload attempts shown under the table (a rolled-back one says why)."""
LOG_LINES = 500
"""Log lines kept per plugin for the log view."""
COLUMNS = (
    "plugin", "state", "runtime", "version", "permissions", "cpu %", "memory",
    "calls/s", "p99 ms", "errors", "dropped",
)  # fmt: skip
STATE_STYLE = {
    PluginState.ACTIVE: "green",
    PluginState.AWAITING_APPROVAL: "bold yellow",
    PluginState.ERROR: "bold red",
    PluginState.DISABLED: "red",
    PluginState.UNLOADED: "dim",
}


class LogText(Protocol):
    """Where a plugin's log lines are read from (:class:`PluginLogs`, or the plugin host
    process's)."""

    def text(self, plugin: str) -> str: ...


class PluginLogs:
    """The latest log lines and notifications of each plugin (the manager's ``on_log``)."""

    def __init__(self, size: int = LOG_LINES) -> None:
        self.size = size
        self.lines: dict[str, deque[str]] = {}

    def add(self, plugin: str, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        lines = self.lines.setdefault(plugin, deque(maxlen=self.size))
        lines.append(f"{stamp} {level:<7} {message}")

    def text(self, plugin: str) -> str:
        return "\n".join(self.lines.get(plugin, ())) or "(no log lines yet)"


@dataclass(frozen=True)
class Permissions:
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


def permissions_of(manager: Any, name: str) -> Permissions:
    """What ``name`` was granted, waits for and was denied (the plugin host process answers
    it in one call: its grants do not cross processes)."""
    remote = getattr(manager, "permissions_summary", None)
    if remote is not None:
        summary: Permissions = remote(name)
        return summary
    now = time.time()
    granted = frozenset(
        p
        for g in manager.grants.grants_for(name)
        if g.expires_at is None or g.expires_at > now
        for p in g.permissions
    )
    denied = frozenset(p for d in manager.grants.denials_for(name) for p in d.permissions)
    pending = frozenset(
        p for a in manager.pending_approvals() if a.plugin == name for p in a.review.pending
    )
    return Permissions(granted, pending, denied - granted)


def memory(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    return f"{n / 1024:.0f} KB"


class Rates:
    """Calls/s and CPU % from successive snapshots."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, int, float]] = {}

    def of(self, snap: PluginSnapshot, now: float) -> tuple[float, float]:
        before = self.last.get(snap.name)
        self.last[snap.name] = (now, snap.calls_total, snap.cpu_seconds)
        if before is None or now <= before[0]:
            return 0.0, 0.0
        dt = now - before[0]
        calls = max(0, snap.calls_total - before[1]) / dt
        cpu = max(0.0, snap.cpu_seconds - before[2]) / dt * 100
        return calls, cpu


class RevokeScreen(ModalScreen[str | None]):
    """Pick one granted permission to revoke."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plugin: str, granted: list[str]) -> None:
        super().__init__()
        self.plugin = plugin
        self.granted = granted

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Revoke a permission of {self.plugin} (enter):")
            yield OptionList(*self.granted, id="revoke-list")
            yield Button("Cancel", id="cancel")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.granted[event.option_index])

    def on_button_pressed(self, _: Button.Pressed) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PluginsView(Vertical):
    BINDINGS = [
        Binding("e", "enable", "Enable"),
        Binding("x", "disable", "Disable"),
        Binding("l", "reload", "Reload"),
        Binding("v", "revoke", "Revoke"),
        Binding("a", "audit", "Audit"),
        Binding("o", "log", "Log"),
        Binding("A", "approvals", "Approvals"),
    ]

    class ShowApprovals(Message):
        pass

    def __init__(
        self,
        manager: PluginManager | None,
        logs: LogText,
        reload: Callable[[str], str] | None = None,
        reloads: Callable[[str], list[ReloadAttempt]] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.manager = manager
        self.logs = logs
        self.reload_plugin = reload
        self.reloads = reloads
        self.rates = Rates()

    def compose(self) -> ComposeResult:
        yield Label("", id="plugins-status")
        table: DataTable[Text | str] = DataTable(id="plugins-table", cursor_type="row")
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield Label("", id="plugins-detail")

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#plugins-table", DataTable)

    def selected(self) -> str | None:
        return cursor_key(self.table)

    def refresh_view(self) -> None:
        """Read the manager's snapshot and update the table (cheap: runs every second)."""
        manager = self.manager
        if manager is None:
            update_label(
                self.query_one("#plugins-status", Label), "Plugins are off (--no-plugins)."
            )
            return
        now = time.monotonic()
        snaps = manager.snapshot()
        rows: dict[str, tuple[Text | str, ...]] = {}
        for snap in snaps:
            calls, cpu = self.rates.of(snap, now)
            state = snap.state.value.replace("_", " ")
            if snap.cpu_throttled:
                state += " (throttled)"
            rows[snap.name] = (
                snap.name,
                Text(state, style=STATE_STYLE.get(snap.state, "")),
                snap.runtime,
                snap.version,
                str(permissions_of(manager, snap.name)),
                f"{cpu:.1f}",
                memory(snap.memory_bytes),
                f"{calls:.1f}",
                f"{snap.latency_p99 * 1000:.2f}",
                str(sum(snap.errors.values())),
                str(snap.events_dropped),
            )
        sync_rows(self.table, rows, COLUMNS)
        waiting = len(manager.pending_approvals())
        status = Text(counted(len(snaps), "plugin"))
        if waiting:
            status.append(f" · {waiting} awaiting approval (A)", style="bold yellow")
        update_label(self.query_one("#plugins-status", Label), status)
        self._detail(snaps)

    def _detail(self, snaps: list[PluginSnapshot]) -> None:
        name = self.selected()
        snap = next((s for s in snaps if s.name == name), None)
        if snap is None or self.manager is None:
            update_label(self.query_one("#plugins-detail", Label), "")
            return
        perms = permissions_of(self.manager, snap.name)
        text = Text()
        text.append(f"{snap.name} {snap.version}", style="bold")
        if snap.reason:
            text.append(f" — {snap.reason}", style="yellow")
        text.append(f"\ngranted: {', '.join(sorted(perms.granted)) or '-'}")
        if perms.pending:
            text.append(f"\npending: {', '.join(sorted(perms.pending))}", style="yellow")
        if perms.denied:
            text.append(f"\ndenied: {', '.join(sorted(perms.denied))}", style="red")
        text.append(
            f"\nevents delivered {snap.events_delivered}, coalesced {snap.events_coalesced}, "
            f"dropped {snap.events_dropped}; faults {dict(snap.faults) or 0}; "
            f"loads {snap.loads}, disables {snap.disables}"
        )
        if snap.retry_in is not None:
            text.append(f"; retried in {snap.retry_in:.0f}s")
        if snap.cpu_throttled:
            text.append(
                f"\nthrottled: {snap.throttle_note or 'over its CPU budget'}; its events are "
                "held back until it is under", style="yellow",
            )  # fmt: skip
        attempts = self.reloads(snap.name)[-RELOADS_SHOWN:] if self.reloads else []
        for attempt in reversed(attempts):
            ok = attempt.outcome == "reloaded"
            stamp = time.strftime("%H:%M:%S", time.localtime(attempt.at))
            line = f"\nreload {stamp} {attempt.version or '?'}: {attempt.outcome}"
            text.append(line + (f" — {attempt.reason}" if attempt.reason else ""),
                        style="green" if ok else "bold red")  # fmt: skip
        update_label(self.query_one("#plugins-detail", Label), text)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        if self.manager is not None:
            self._detail(self.manager.snapshot())

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.manager is not None

    def action_enable(self) -> None:
        self._run("enable", lambda m, n: f"{n}: {m.enable(n).value}")

    def action_disable(self) -> None:
        def disable(m: PluginManager, n: str) -> str:
            m.disable(n)
            return f"{n}: disabled"

        self._run("disable", disable)

    def action_reload(self) -> None:
        reload = self.reload_plugin

        def run(m: PluginManager, n: str) -> str:
            if reload is not None:
                return reload(n)
            result = m.reload(n)
            if result.ok:
                return f"{n}: reloaded {result.old_version} → {result.new_version}"
            return f"{n}: reload failed, kept {result.old_version}: {result.reason}"

        self._run("reload", run)

    @work(thread=True, group="plugin-action")
    def _run(self, verb: str, action: Callable[[PluginManager, str], str]) -> None:
        name = self.selected()
        if name is None or self.manager is None:
            return
        try:
            line = action(self.manager, name)
            severity = "warning" if "failed" in line else "information"
        except RwqError as exc:
            line, severity = f"{verb} {name}: {exc}", "error"
        self.app.call_from_thread(self.app.notify, line, severity=severity)  # type: ignore[arg-type]
        self.app.call_from_thread(self.refresh_view)

    def action_revoke(self) -> None:
        name = self.selected()
        if name is None or self.manager is None:
            return
        granted = sorted(permissions_of(self.manager, name).granted)
        if not granted:
            self.app.notify(f"{name} holds no permission", severity="warning")
            return
        manager = self.manager

        def chosen(permission: str | None) -> None:
            if permission is None:
                return
            removed = manager.revoke(name, [permission], revoked_by="tui")
            self.app.notify(f"{name}: revoked {', '.join(sorted(removed)) or 'nothing'}")
            self.refresh_view()

        self.app.push_screen(RevokeScreen(name, granted), chosen)

    def action_audit(self) -> None:
        name = self.selected()
        if name is None or self.manager is None:
            return
        manager = self.manager

        def read(where: AuditFilter) -> list[audit.AuditRecord]:
            manager.audit.flush()
            return audit.read(
                manager.audit.path, plugin=where.plugin, denied_only=where.denied_only,
                limit=AUDIT_SHOWN, routine=not where.hide_checks,
            )  # fmt: skip

        self.app.push_screen(AuditScreen(name, read))

    def action_log(self) -> None:
        name = self.selected()
        if name is not None:
            self.app.push_screen(TextScreen(f"log: {name}", self.logs.text(name)))

    def action_approvals(self) -> None:
        self.post_message(self.ShowApprovals())
