"""Modal screens shared by the views: confirm a destructive action, show a job or any text,
the key help. What they show is data (a job's, a plugin's): plain text, control characters
escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from rwq.printable import plain_text, printable_text
from rwq.queue.job import Job


def when(epoch_ms: float | None) -> str:
    """An epoch-milliseconds time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if not epoch_ms:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class ConfirmScreen(ModalScreen[bool]):
    """Asks before a destructive action; dismisses with True only on an explicit yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, action: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(plain_text(self.question, multiline=True), id="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.action_label} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(ModalScreen[None]):
    """A scrollable read-only text (a job, a plugin's log, the help)."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text = title
        self.body = (
            printable_text(body) if isinstance(body, Text) else plain_text(body, multiline=True)
        )

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(plain_text(self.title_text, "bold"))
            with VerticalScroll():
                yield Static(self.body, id="body")
            yield Button("Close", id="close")

    def on_button_pressed(self, _: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


def job_text(job: Job) -> Text:
    """Everything about a job, for :class:`TextScreen`."""
    text = Text()
    rows = [
        ("id", job.id),
        ("queue", job.queue),
        ("state", job.state),
        ("tenant", job.tenant or "-"),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_retries + 1}"),
        ("timeout", f"{job.timeout:g}s" if job.timeout else "none of its own"),
        ("created", when(job.created_at)),
        ("enqueued", when(job.enqueued_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("dead since", when(job.dead_at)),
        ("worker", job.worker or "-"),
        ("trace id", job.trace_id or "-"),
    ]
    for key, value in rows:
        text.append(f"{key:>11}  ", style="bold")
        text.append(f"{value}\n")
    if job.last_error:
        text.append("\nerror\n", style="bold red")
        text.append(job.last_error + "\n")
    text.append("\npayload\n", style="bold")
    text.append(json.dumps(job.payload, indent=2, ensure_ascii=False, default=str) + "\n")
    if job.result is not None:
        text.append("\nresult\n", style="bold")
        text.append(json.dumps(job.result, indent=2, ensure_ascii=False, default=str) + "\n")
    if job.result_error:
        text.append("\nresult\n", style="bold")
        text.append(job.result_error + "\n", style="dim")
    if job.traceback:
        text.append("\ntraceback\n", style="bold")
        text.append(job.traceback, style="dim")
    return text


HELP = """\
Everywhere
  1-5        queues · dead letters · workers · panels · plugins
  ?          this help
  t          next theme
  ctrl+p     command palette
  q          quit

Queues
  /          filter
  enter      peek the pending jobs
  p          pause or resume
  b          benchmark form

Dead letters
  /          filter (queue, tenant, error)
  space      select / unselect the job
  enter      inspect the job
  r          requeue the selection (or this job)
  R          requeue every matching job
  d          purge the selection (or this job)
  D          purge every matching job

Workers
  stale workers are shown in red
  the selected worker's full id and jobs are shown below the table
  periodic jobs (rwq schedule) follow, once there is one

Panels
  tab        next panel (next tab in the tabs layout)
  g          grid or tabs layout (after escape when a panel has focus)
  arrows     move within a panel
  enter      press or choose
  pgup/pgdn  scroll a panel taller than its cell
  escape     leave the panel
  other keys go to the focused panel's plugin

Plugins
  enter      details
  e / x      enable / disable
  l          reload
  v          revoke a permission
  a          audit log
  o          the plugin's log
  A          approvals waiting

With --read-only every action that changes a queue is refused and hidden.
"""
