"""The workers view: every registered worker, its queues and current jobs, stale ones in red."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from rwq.tui.source import Sample, is_stale
from rwq.tui.tables import sync_rows, update_label
from rwq.units import format_age as age

COLUMNS = ("id", "host", "pid", "queues", "state", "running", "processed", "failed", "heartbeat")


class WorkersView(Vertical):
    def compose(self) -> ComposeResult:
        yield Label("", id="workers-status")
        table: DataTable[Text | str] = DataTable(id="workers-table", cursor_type="row")
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table

    def show(self, sample: Sample) -> None:
        rows: dict[str, tuple[Text | str, ...]] = {}
        stale_count = 0
        for w in sample.workers:
            stale = is_stale(w, sample.taken_at)
            stale_count += stale
            style = "bold red" if stale else ""
            beat = age(sample.taken_at - w.last_heartbeat / 1000) if w.last_heartbeat else "lost"
            jobs = ", ".join(w.current_jobs[:3]) + (" …" if len(w.current_jobs) > 3 else "")
            rows[w.id] = (
                Text(w.id, style=style),
                w.host,
                str(w.pid),
                ", ".join(w.queues),
                Text("stale" if stale else w.state, style=style or "green"),
                f"{len(w.current_jobs)}/{w.concurrency} {jobs}".strip(),
                str(w.processed),
                str(w.failed),
                Text(beat, style=style),
            )
        sync_rows(self.query_one("#workers-table", DataTable), rows, COLUMNS)
        status = Text(f"{len(sample.workers)} workers")
        if stale_count:
            status.append(f", {stale_count} stale", style="bold red")
        update_label(self.query_one("#workers-status", Label), status)
