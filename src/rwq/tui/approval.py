"""The permission approval dialog: the plugin, each permission it asks for (level,
description, scope) with a toggle, and Allow selected / Deny / Later. The decision goes
through the plugin manager to the grant store, so it persists and is audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from rwq.host.api import PluginHost
from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.engine.manager import PendingApproval
from rwq.plugins.trust.grant_file import show_binding, show_signer
from rwq.plugins.trust.review import ReviewItem
from rwq.printable import printable_text

Choice = Literal["allow", "deny", "later"]


@dataclass(frozen=True)
class Decision:
    choice: Choice
    allowed: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()


def apply(host: PluginHost, pending: PendingApproval, decision: Decision) -> str:
    """Carry out the user's decision; returns a line describing what happened."""
    name = pending.plugin
    if decision.choice == "later":
        return f"{name}: decision postponed"
    if decision.choice == "deny" or not decision.allowed:
        host.deny(name)
        return f"{name}: permissions denied"
    if decision.refused:
        host.deny(name, sorted(decision.refused))
    state = host.approve(name, sorted(decision.allowed))
    refused = f", refused {', '.join(sorted(decision.refused))}" if decision.refused else ""
    return f"{name}: allowed {', '.join(sorted(decision.allowed))}{refused} ({state.value})"


def describe(item: ReviewItem, *, brief: bool = False) -> Text:
    """One permission on one line: name, level, scope and (unless ``brief``) description."""
    spec = CATALOG.get(item.permission)
    text = Text()
    text.append(item.permission, style="bold")
    if spec is not None:
        level = spec.level.name.lower()
        text.append(f"  {level}", style="red" if spec.level >= 3 else "yellow")
        if spec.sensitive:
            text.append(" sensitive", style="bold red")
    if item.queues != ("*",):
        text.append(f"  queues: {', '.join(item.queues)}", style="cyan")
    if item.operations != ("*",):
        text.append(f"  operations: {', '.join(item.operations)}", style="cyan")
    if spec is not None and not brief:
        text.append(f"  — {spec.description}", style="italic")
    return text


class ApprovalScreen(ModalScreen[Decision]):
    """Asks the user about one plugin's pending permissions."""

    DEFAULT_CSS = """
    /* one line per permission, its box on that line (a wrapped option put the next box on
       the wrong row); the highlighted one's whole description is below the list */
    #approval-permissions { text-wrap: nowrap; text-overflow: ellipsis; }
    #approval-detail { height: auto; padding: 0 1; color: $text-muted; }
    /* an unchecked box is empty (Textual draws a dim X, easily read as checked) */
    #approval-permissions > .selection-list--button,
    #approval-permissions > .selection-list--button-highlighted { color: $panel; }
    """

    BINDINGS = [
        Binding("a", "decide('allow')", "Allow selected"),
        Binding("d", "decide('deny')", "Deny"),
        Binding("escape,l", "decide('later')", "Later"),
    ]

    def __init__(self, pending: PendingApproval) -> None:
        super().__init__()
        self.pending = pending

    def compose(self) -> ComposeResult:
        p = self.pending
        review = p.review
        manifest = p.manifest
        head = Text()
        head.append(f"{p.plugin} {p.version}", style="bold")
        if p.update:
            head.append("  (update of a running plugin: it keeps running meanwhile)", style="dim")
        head.append(f"\nauthor: {manifest.author or '-' if manifest else '-'}")
        if manifest is not None and manifest.description:
            head.append(f"\n{manifest.description}", style="italic")
        if p.signature is not None:
            style = "green" if p.signature.trusted else "yellow"
            head.append(f"\nsignature: {p.signature}", style=style)
        head.append(f"\nbundle sha256: {review.bundle_hash}", style="dim")
        if review.previous is not None:  # granted before: say what changed since
            head.append("\nchanged since it was granted:", style="bold yellow")
            head.append(f"\n  granted: {review.previous}")
            now = show_binding((review.version, review.bundle_hash))
            head.append(f"\n  now:     {now}, {show_signer(review.signer)}")
        granted = [i for i in review.items if i.status == "granted"]
        denied = [i for i in review.items if i.status == "denied"]
        with Vertical(classes="dialog wide", id="approval"):
            yield Label(Text("Permission request", style="bold reverse"))
            yield Static(printable_text(head), id="approval-plugin")
            yield Label("Toggle with space; allowed when checked:")
            yield SelectionList[str](
                *(
                    Selection(
                        printable_text(describe(item, brief=True)),
                        item.permission,
                        not _sensitive(item),
                    )
                    for item in review.items
                    if item.status == "pending"
                ),
                id="approval-permissions",
            )
            yield Static("", id="approval-detail")
            with VerticalScroll(id="approval-known"):
                for item in granted:
                    yield Static(
                        Text("✔ already granted: ", style="green") + printable_text(describe(item))
                    )
                for item in denied:
                    yield Static(
                        Text("✘ denied before: ", style="red") + printable_text(describe(item))
                    )
            with Horizontal(classes="buttons"):
                yield Button("Allow selected (a)", variant="success", id="allow")
                yield Button("Deny (d)", variant="error", id="deny")
                yield Button("Later (l)", id="later")

    def on_mount(self) -> None:
        choices = self.query_one("#approval-permissions", SelectionList)
        choices.focus()
        if choices.option_count:
            choices.highlighted = 0
            self._show_detail(choices.get_option_at_index(0).value)

    def on_selection_list_selection_highlighted(
        self, event: SelectionList.SelectionHighlighted[str]
    ) -> None:
        self._show_detail(event.selection.value)

    def _show_detail(self, permission: str) -> None:
        item = next((i for i in self.pending.review.items if i.permission == permission), None)
        if item is not None:
            self.query_one("#approval-detail", Static).update(printable_text(describe(item)))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("allow", "deny", "later"):
            self.action_decide(event.button.id)

    def action_decide(self, choice: str) -> None:
        pending = {i.permission for i in self.pending.review.items if i.status == "pending"}
        chosen = frozenset(self.query_one("#approval-permissions", SelectionList).selected)
        if choice == "allow":
            self.dismiss(Decision("allow", chosen, frozenset(pending - chosen)))
        elif choice == "deny":
            self.dismiss(Decision("deny", frozenset(), frozenset(pending)))
        else:
            self.dismiss(Decision("later"))


def _sensitive(item: ReviewItem) -> bool:
    spec = CATALOG.get(item.permission)
    return spec is not None and spec.sensitive
