"""The queues view: a filterable table of every queue and live charts of depth and throughput."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input
from textual_plotext import PlotextPlot

from rwq.queue.admin import QueueStats
from rwq.tui.source import History, Sample
from rwq.tui.tables import cursor_key, sync_rows
from rwq.units import format_age as age

CHART_QUEUES = 6
"""Most queues drawn in one chart (the deepest, or the selected one first)."""
COLUMNS = (
    ("queue", "queue"),
    ("pending", "pending"),
    ("processing", "running"),
    ("scheduled", "scheduled"),
    ("dead", "dead"),
    ("rate", "jobs/s"),
    ("failed", "failed 1m"),
    ("oldest", "oldest"),
    ("paused", "state"),
)


def matches(queue: str, pattern: str) -> bool:
    """A filter is a substring or a glob (``tenant.*``)."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(queue, pattern)
    return pattern.lower() in queue.lower()


def row(q: QueueStats, rate: float) -> tuple[Text | str, ...]:
    paused = Text("paused", style="bold yellow") if q.paused else Text("running", style="green")
    dead = Text(str(q.dead), style="red" if q.dead else "")
    return (
        q.queue,
        str(q.pending),
        str(q.processing),
        str(q.scheduled),
        dead,
        f"{rate:.1f}",
        str(q.failed_1m),
        age(q.oldest_pending_age_s),
        paused,
    )


MIN_SPAN = 60.0
"""Seconds a chart's time axis spans at least (a fresh start shows its first minute)."""


class Chart(PlotextPlot):
    """One line per queue over the history."""

    def __init__(self, title: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title

    def draw(self, history: History, series: dict[str, object], queues: Iterable[str]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        times = list(history.times)
        top = 0.0
        if times:
            xs = [t - times[-1] for t in times]
            for name in queues:
                values = list(series.get(name, ()))  # type: ignore[call-overload]
                if values:
                    plt.plot(xs[-len(values) :], values, label=name, marker="braille")
                    top = max(top, *values)
        # Counts and rates are never negative, and time runs back from now: without fixed
        # limits an empty or flat start showed "-1.00 jobs/s" and "-1.00 seconds ago".
        span = max(times[-1] - times[0], MIN_SPAN) if len(times) > 1 else MIN_SPAN
        plt.xlim(-span, 0)
        plt.ylim(0, top * 1.1 if top > 0 else 1)
        ticks = [-span * i / 4 for i in range(4, -1, -1)]
        plt.xticks(ticks, [_ago(-t) for t in ticks])
        plt.xlabel("time ago")
        self.refresh()


def _ago(seconds: float) -> str:
    if seconds < 0.5:
        return "now"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


class QueuesView(Vertical):
    """Every queue with its counts, filtered, and the charts of the selected ones."""

    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("enter", "peek", "Peek"),
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("b", "bench", "Bench"),
    ]

    class Peek(Message):
        def __init__(self, queue: str) -> None:
            super().__init__()
            self.queue = queue

    class TogglePause(Message):
        def __init__(self, queue: str, paused: bool) -> None:
            super().__init__()
            self.queue = queue
            self.paused = paused

    class Bench(Message):
        pass

    def __init__(self, history: History, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = history
        self.sample: Sample | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter queues: text or glob (tenant.*)", id="queue-filter")
        table: DataTable[Text | str] = DataTable(id="queue-table", cursor_type="row")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        with Horizontal(id="charts"):
            yield Chart("pending + scheduled", id="depth-chart")
            yield Chart("completed jobs/s", id="rate-chart")

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#queue-table", DataTable)

    def selected(self) -> str | None:
        return cursor_key(self.table)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Read-only: pause/resume is hidden from the footer and refused.
        return not (action == "toggle_pause" and getattr(self.app, "read_only", False))

    def show(self, sample: Sample) -> None:
        self.sample = sample
        pattern = self.query_one("#queue-filter", Input).value
        shown = [q for q in sample.queues if matches(q.queue, pattern)]
        self._fill(shown, sample)
        self._chart(shown)

    def _fill(self, shown: list[QueueStats], sample: Sample) -> None:
        rows = {q.queue: row(q, sample.rates.get(q.queue, 0.0)) for q in shown}
        sync_rows(self.table, rows, [key for key, _ in COLUMNS])

    def _chart(self, shown: list[QueueStats]) -> None:
        first = self.selected()
        ranked = sorted(shown, key=lambda q: (q.queue != first, -(q.pending + q.scheduled)))
        names = [q.queue for q in ranked[:CHART_QUEUES]]
        self.query_one("#depth-chart", Chart).draw(self.history, dict(self.history.depth), names)
        self.query_one("#rate-chart", Chart).draw(self.history, dict(self.history.rate), names)

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.sample is not None:
            self.show(self.sample)

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_peek()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.table.focus()

    def action_filter(self) -> None:
        self.query_one("#queue-filter", Input).focus()

    def action_peek(self) -> None:
        queue = self.selected()
        if queue is not None:
            self.post_message(self.Peek(queue))

    def action_toggle_pause(self) -> None:
        queue = self.selected()
        if queue is None or self.sample is None:
            return
        paused = next((q.paused for q in self.sample.queues if q.queue == queue), False)
        self.post_message(self.TogglePause(queue, paused))

    def action_bench(self) -> None:
        self.post_message(self.Bench())
