"""The plugin manager view: every installed plugin with its state and figures, and the actions
enable, disable, reload, revoke a permission, audit log, plugin log, approvals."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, OptionList

from rwq.errors import RwqError
from rwq.host.api import PluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.trust import audit
from rwq.tui.audit_view import SHOWN as AUDIT_SHOWN
from rwq.tui.audit_view import AuditFilter, AuditScreen
from rwq.tui.dialogs import TextScreen
from rwq.tui.tables import cursor_key, sync_rows, update_label
from rwq.units import counted

RELOADS_SHOWN = 3
"""Latest reload attempts shown under the table (a rolled-back one says why)."""
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

    def __init__(self, host: PluginHost | None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.host = host
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
        host = self.host
        if host is None:
            update_label(
                self.query_one("#plugins-status", Label), "Plugins are off (--no-plugins)."
            )
            return
        now = time.monotonic()
        snaps = host.snapshot()
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
                str(host.permissions(snap.name)),
                f"{cpu:.1f}",
                memory(snap.memory_bytes),
                f"{calls:.1f}",
                f"{snap.latency_p99 * 1000:.2f}",
                str(sum(snap.errors.values())),
                str(snap.events_dropped),
            )
        sync_rows(self.table, rows, COLUMNS)
        waiting = len(host.pending_approvals())
        status = Text(counted(len(snaps), "plugin"))
        if waiting:
            status.append(f" · {waiting} awaiting approval (A)", style="bold yellow")
        update_label(self.query_one("#plugins-status", Label), status)
        self._detail(snaps)

    def _detail(self, snaps: list[PluginSnapshot]) -> None:
        name = self.selected()
        snap = next((s for s in snaps if s.name == name), None)
        if snap is None or self.host is None:
            update_label(self.query_one("#plugins-detail", Label), "")
            return
        perms = self.host.permissions(snap.name)
        text = Text()
        text.append(f"{snap.name} {snap.version}", style="bold")
        if snap.reason:
            text.append(f" — {snap.reason}", style="yellow")
        if snap.signature is not None:
            style = "green" if snap.signature.trusted else "yellow"
            text.append(f"\nsignature: {snap.signature}", style=style)
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
        attempts = self.host.reload_history(snap.name)[-RELOADS_SHOWN:]
        for attempt in reversed(attempts):
            ok = attempt.outcome == "reloaded"
            stamp = time.strftime("%H:%M:%S", time.localtime(attempt.at))
            line = f"\nreload {stamp} {attempt.version or '?'}: {attempt.outcome}"
            text.append(line + (f" — {attempt.reason}" if attempt.reason else ""),
                        style="green" if ok else "bold red")  # fmt: skip
        update_label(self.query_one("#plugins-detail", Label), text)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        if self.host is not None:
            self._detail(self.host.snapshot())

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.host is not None

    def action_enable(self) -> None:
        self._run("enable", lambda h, n: f"{n}: {h.enable(n).value}")

    def action_disable(self) -> None:
        def disable(h: PluginHost, n: str) -> str:
            h.disable(n)
            return f"{n}: disabled"

        self._run("disable", disable)

    def action_reload(self) -> None:
        self._run("reload", lambda h, n: h.reload(n))

    @work(thread=True, group="plugin-action")
    def _run(self, verb: str, action: Callable[[PluginHost, str], str]) -> None:
        name = self.selected()
        if name is None or self.host is None:
            return
        try:
            line = action(self.host, name)
            severity = "warning" if "failed" in line else "information"
        except RwqError as exc:
            line, severity = f"{verb} {name}: {exc}", "error"
        self.app.call_from_thread(self.app.notify, line, severity=severity)  # type: ignore[arg-type]
        self.app.call_from_thread(self.refresh_view)

    def action_revoke(self) -> None:
        name = self.selected()
        host = self.host
        if name is None or host is None:
            return
        granted = sorted(host.permissions(name).granted)
        if not granted:
            self.app.notify(f"{name} holds no permission", severity="warning")
            return

        def chosen(permission: str | None) -> None:
            if permission is None:
                return
            removed = host.revoke(name, [permission], revoked_by="tui")
            if removed:
                line = (
                    f"{name}: revoked {', '.join(sorted(removed))}; reload it (l) to be asked again"
                )
            else:
                line = f"{name}: held none of that"
            self.app.notify(line)
            self.refresh_view()

        self.app.push_screen(RevokeScreen(name, granted), chosen)

    def action_audit(self) -> None:
        name = self.selected()
        host = self.host
        if name is None or host is None:
            return

        def read(where: AuditFilter) -> list[audit.AuditRecord]:
            return audit.read(
                host.audit_path(), plugin=where.plugin, denied_only=where.denied_only,
                limit=AUDIT_SHOWN, routine=not where.hide_checks,
            )  # fmt: skip

        self.app.push_screen(AuditScreen(name, read))

    def action_log(self) -> None:
        name = self.selected()
        if name is not None and self.host is not None:
            self.app.push_screen(TextScreen(f"log: {name}", self.host.log_text(name)))

    def action_approvals(self) -> None:
        self.post_message(self.ShowApprovals())
