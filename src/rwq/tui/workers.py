"""The workers view: every registered worker, its queues and current jobs; lost ones (their
heartbeat expired) and stale ones in red; the selected worker's full id and job ids below the
table; then the periodic jobs the workers' schedulers fire (shown once there is one)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from rwq.printable import plain_text
from rwq.queue.admin import WorkerInfo
from rwq.queue.schedules import ScheduleState
from rwq.tui.source import Sample, is_stale
from rwq.tui.tables import cursor_key, sync_rows, update_label
from rwq.units import counted
from rwq.units import format_age as age

COLUMNS = ("id", "host", "pid", "queues", "state", "running", "processed", "failed", "heartbeat")
SHORT_ID = 8
"""Characters of a job id shown in the running column (its end: ids are time-ordered)."""
HOST_WIDTH = 16
SCHEDULE_COLUMNS = ("name", "queue", "expression", "next fire", "last fired", "last job", "fired")
QUEUES_WIDTH = 20


def short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def worker_label(worker_id: str) -> str:
    """The part of a worker id that tells it apart: ``host:pid:xxxxxx`` shows ``xxxxxx`` (the
    host and pid have columns of their own)."""
    return worker_id.rsplit(":", 1)[-1] if worker_id.count(":") >= 2 else short(worker_id, 16)


def _when(ms: int | None, now: float) -> str:
    """A tick relative to ``now`` (epoch s): ``in 4s`` or ``12s ago``."""
    if ms is None:
        return "never"
    delta = ms / 1000 - now
    return f"in {age(delta)}" if delta >= 0 else f"{age(-delta)} ago"


class WorkersView(Vertical):
    DEFAULT_CSS = """
    WorkersView #workers-table { height: 1fr; }
    WorkersView #workers-detail { height: auto; padding: 0 1; }
    WorkersView #schedules-table { height: auto; max-height: 12; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.known: dict[str, WorkerInfo] = {}

    def compose(self) -> ComposeResult:
        yield Label("", id="workers-status")
        table: DataTable[Text | str] = DataTable(id="workers-table", cursor_type="row")
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield Label("", id="workers-detail")
        yield Label("", id="schedules-status")
        schedules: DataTable[Text | str] = DataTable(id="schedules-table", cursor_type="row")
        for name in SCHEDULE_COLUMNS:
            schedules.add_column(name, key=name)
        yield schedules

    def on_mount(self) -> None:
        self._show_schedules([], 0.0)

    def show(self, sample: Sample) -> None:
        rows: dict[str, tuple[Text | str, ...]] = {}
        stale_count = lost_count = 0
        self.known = {w.id: w for w in sample.workers}
        for w in sample.workers:
            stale = is_stale(w, sample.taken_at)
            lost = not w.alive  # its lease expired: dead, or cut off from Redis
            lost_count += lost
            stale_count += stale and not lost
            state = "lost" if lost else "stale" if stale else w.state
            style = "bold red" if stale else ""
            beat = age(sample.taken_at - w.last_heartbeat / 1000) if w.last_heartbeat else "lost"
            jobs = w.current_jobs[0][-SHORT_ID:] if w.current_jobs else ""
            if jobs and (shown := w.current_progress.get(w.current_jobs[0], "")):
                jobs += " " + shown.split(" ", 1)[0]  # its percentage
            more = f" +{len(w.current_jobs) - 1}" if len(w.current_jobs) > 1 else ""
            rows[w.id] = (
                Text(worker_label(w.id), style=style),
                short(w.host, HOST_WIDTH),
                str(w.pid),
                short(", ".join(w.queues), QUEUES_WIDTH),
                Text(state, style=style or "green"),
                f"{len(w.current_jobs)}/{w.concurrency} {jobs}{more}".strip(),
                str(w.processed),
                str(w.failed),
                Text(beat, style=style),
            )
        sync_rows(self.query_one("#workers-table", DataTable), rows, COLUMNS)
        status = Text(counted(len(sample.workers), "worker"))
        if lost_count:
            status.append(f", {lost_count} lost (heartbeat expired)", style="bold red")
        if stale_count:
            status.append(f", {stale_count} stale", style="bold red")
        update_label(self.query_one("#workers-status", Label), status)
        self._detail()
        self._show_schedules(sample.schedules, sample.taken_at)

    def _show_schedules(self, schedules: list[ScheduleState], now: float) -> None:
        table = self.query_one("#schedules-table", DataTable)
        label = self.query_one("#schedules-status", Label)
        table.display = label.display = bool(schedules)
        rows: dict[str, tuple[Text | str, ...]] = {}
        for s in schedules:
            rows[s.name] = (
                s.name,
                short(s.spec.queue, QUEUES_WIDTH),
                s.spec.expression,
                _when(s.next_ms, now),
                _when(s.last_tick, now) if s.last_tick else "",
                s.last_job or "",
                str(s.fired),
            )
        sync_rows(table, rows, SCHEDULE_COLUMNS)
        update_label(label, counted(len(schedules), "schedule"))

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        key = cursor_key(self.query_one("#workers-table", DataTable))
        worker = self.known.get(key or "")
        if worker is None:
            update_label(self.query_one("#workers-detail", Label), "")
            return
        text = Text()
        text.append(worker.id, style="bold")
        text.append(f"  on {worker.host}, pid {worker.pid}; queues: {', '.join(worker.queues)}")
        text.append(f"\nrunning {len(worker.current_jobs)} of {worker.concurrency}")
        for job_id in worker.current_jobs:
            text.append(f"\n  {job_id}")
            if progress := worker.current_progress.get(job_id):
                text.append("  ")
                text.append_text(plain_text(progress, "cyan"))  # the handler's text: data
        update_label(self.query_one("#workers-detail", Label), text)
