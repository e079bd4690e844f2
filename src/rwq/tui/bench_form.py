"""The bench form: how many jobs, run, a progress bar, the figures of ``rwq bench queue``, which
the command line hands the app (the TUI does not depend on the bench)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.outage import REDIS_FAILURES
from rwq.printable import plain_text
from rwq.units import format_figure

BENCH_ERRORS: tuple[type[BaseException], ...] = (RwqError, OSError, *REDIS_FAILURES)

MIN_JOBS = 100
MAX_JOBS = 1_000_000

Progress = Callable[[str, float], None]
"""``(phase, done from 0 to 1)``."""
QueueBench = Callable[..., dict[str, Any]]
"""``(settings, *, jobs, progress) -> figures``: ``rwq bench queue`` (on a throwaway Valkey when
rwq uses the embedded one, else under a private key prefix of the configured server)."""


def parse_jobs(text: str) -> int:
    """The form's job count, or ValueError saying what is wrong."""
    try:
        jobs = int(text.replace("_", "").replace(",", "").strip())
    except ValueError:
        raise ValueError(f"jobs: {text!r} is not a whole number") from None
    if not MIN_JOBS <= jobs <= MAX_JOBS:
        raise ValueError(f"jobs: {jobs} is not between {MIN_JOBS} and {MAX_JOBS}")
    return jobs


class BenchScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, settings: Settings, bench: QueueBench) -> None:
        super().__init__()
        self.settings = settings
        self.bench = bench
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="bench"):
            yield Label("Queue benchmark (rwq bench queue)", classes="title")
            with Horizontal(classes="row"):
                yield Label("jobs ")
                yield Input("20000", id="bench-jobs", restrict=r"[0-9_,]*")
            yield ProgressBar(total=100, id="bench-progress", show_eta=False)
            yield Label("", id="bench-phase")
            yield Static("", id="bench-result")
            with Horizontal(classes="buttons"):
                yield Button("Run", variant="primary", id="run")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.start()
        else:
            self.action_close()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.start()

    def start(self) -> None:
        if self.running:
            return
        try:
            jobs = parse_jobs(self.query_one("#bench-jobs", Input).value)
        except ValueError as exc:
            self.query_one("#bench-phase", Label).update(plain_text(str(exc), "red"))
            return
        self.running = True
        self.query_one("#run", Button).disabled = True
        self.run_bench(jobs)

    @work(thread=True, exclusive=True)
    def run_bench(self, jobs: int) -> None:
        def progress(phase: str, done: float) -> None:
            self.app.call_from_thread(self._progress, phase, done)

        try:
            result = self.bench(self.settings, jobs=jobs, progress=progress)
            shown: Table | Text = figures_table(result)
        except BENCH_ERRORS as exc:
            shown = plain_text(f"bench failed: {exc}", "red")
        self.app.call_from_thread(self._finished, shown)

    def _progress(self, phase: str, done: float) -> None:
        self.query_one("#bench-progress", ProgressBar).update(progress=done * 100)
        self.query_one("#bench-phase", Label).update(phase)

    def _finished(self, shown: Table | Text) -> None:
        self.running = False
        self.query_one("#run", Button).disabled = False
        self.query_one("#bench-result", Static).update(shown)

    def action_close(self) -> None:
        self.dismiss(None)


def figures_table(result: dict[str, Any]) -> Table:
    """The bench's figures as a table: what was measured, and its value."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key.replace("_", " "), format_figure(value))
    return table
