"""The audit log screen of the plugin manager: newest first, filtered by plugin, to denials
only, or without the routine allowed checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from rwq.plugins.trust.audit import AuditRecord
from rwq.printable import plain_text
from rwq.units import counted

SHOWN = 500
"""The newest records read for the screen."""


@dataclass(frozen=True)
class AuditFilter:
    """Which records the screen shows."""

    plugin: str | None
    """Only this plugin's (and the delegation chains it took part in); None: every plugin."""
    denied_only: bool = False
    hide_checks: bool = True
    """Leave out allowed capability checks (a busy plugin makes thousands a minute)."""

    def describe(self) -> str:
        parts = [f"plugin {self.plugin}" if self.plugin else "every plugin"]
        parts.append("denials only" if self.denied_only else "allowed and denied")
        if self.hide_checks and not self.denied_only:
            parts.append("routine allowed checks hidden")
        return ", ".join(parts)


Reader = Callable[[AuditFilter], list[AuditRecord]]
"""Reads the records a filter selects, oldest first (the audit file's order)."""


class AuditScreen(ModalScreen[None]):
    """Audit records, newest first; ``p`` this plugin / every plugin, ``d`` denials only,
    ``h`` hide or show the routine allowed checks."""

    BINDINGS = [
        Binding("p", "switch('plugin')", "This plugin / all"),
        Binding("d", "switch('denied_only')", "Denials only"),
        Binding("h", "switch('hide_checks')", "Routine checks"),
        Binding("escape,q", "close", "Close"),
    ]

    def __init__(self, plugin: str, read: Reader) -> None:
        super().__init__()
        self.plugin = plugin
        self.read = read
        self.where = AuditFilter(plugin)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(Text("Audit log", style="bold"))
            yield Label("", id="audit-filter")
            with VerticalScroll():
                yield Static("", id="audit-records")
            yield Label(Text("p this plugin / all · d denials only · h routine checks · "
                             "escape close", style="dim"))  # fmt: skip
            yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        records = self.read(self.where)[-SHOWN:][::-1]  # newest first
        self.query_one("#audit-filter", Label).update(
            plain_text(f"{self.where.describe()}: {counted(len(records), 'record')}, newest first")
        )
        body = Text()
        for record in records:
            line = plain_text(record.describe(), "" if record.allowed else "bold red")
            body.append_text(line)
            body.append("\n")
        self.query_one("#audit-records", Static).update(body if records else "(no records)")

    def action_switch(self, what: str) -> None:
        where = self.where
        if what == "plugin":
            where = replace(where, plugin=None if where.plugin else self.plugin)
        elif what == "denied_only":
            where = replace(where, denied_only=not where.denied_only)
        else:
            where = replace(where, hide_checks=not where.hide_checks)
        self.where = where
        self.show()

    def on_button_pressed(self, _: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
