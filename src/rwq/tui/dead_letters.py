"""The dead-letters view: browse and filter dead jobs, inspect one, requeue or purge one, a
selection or every match (each destructive action confirmed, its count reported)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label

from rwq.queue.admin import Admin
from rwq.queue.job import Job
from rwq.tui.dialogs import ConfirmScreen, TextScreen, job_text
from rwq.tui.source import ACTION_ERRORS
from rwq.tui.tables import cursor_key, shown, sync_rows, update_label
from rwq.units import format_age as age

COLUMNS = ("", "id", "queue", "tenant", "error", "attempts", "dead for")
PAGE = 500
"""Dead letters listed at once (the counts and the "every match" actions cover all)."""


@dataclass(frozen=True)
class DeadFilter:
    queue: str | None = None
    tenant: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, queue: str, tenant: str, error: str) -> DeadFilter:
        return cls(queue.strip() or None, tenant.strip() or None, error.strip() or None)


def matching(admin: Admin, where: DeadFilter) -> list[Job]:
    """Every dead letter the filter matches (paged through, newest first)."""
    jobs: list[Job] = []
    while True:
        page = admin.dlq_list(
            queue=where.queue, tenant=where.tenant, error=where.error, offset=len(jobs), limit=PAGE
        )
        jobs.extend(page.jobs)
        if not page.jobs or len(jobs) >= page.total:
            return jobs


def by_queue(jobs: Iterable[Job]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for job in jobs:
        grouped[job.queue].append(job.id)
    return dict(grouped)


def requeue(admin: Admin, jobs: Iterable[Job]) -> int:
    """Move these dead letters back to their queues; how many moved."""
    return sum(admin.requeue(ids, queue=queue) for queue, ids in by_queue(jobs).items())


def purge(admin: Admin, jobs: Iterable[Job]) -> int:
    """Delete these dead letters for good; how many were deleted."""
    return sum(admin.delete_dead(queue, ids) for queue, ids in by_queue(jobs).items())


class DeadLettersView(Vertical):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("space", "toggle_selected", "Select"),
        Binding("r", "requeue(False)", "Requeue"),
        Binding("R", "requeue(True)", "Requeue all"),
        Binding("d", "purge(False)", "Purge"),
        Binding("D", "purge(True)", "Purge all"),
        Binding("f5", "reload", "Refresh"),
    ]

    def __init__(self, admin: Admin, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.admin = admin
        self.jobs: dict[str, Job] = {}
        self.total = 0
        self.chosen: set[str] = set()
        self.where = DeadFilter()

    def compose(self) -> ComposeResult:
        with Horizontal(id="dead-filters"):
            yield Input(placeholder="queue", id="dead-queue")
            yield Input(placeholder="tenant", id="dead-tenant")
            yield Input(placeholder="error contains", id="dead-error")
        yield Label("", id="dead-status")
        table: DataTable[Text | str] = DataTable(id="dead-table", cursor_type="row")
        for column in COLUMNS:
            table.add_column(column or " ", key=column or "mark")
        yield table

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#dead-table", DataTable)

    def on_mount(self) -> None:
        self.action_reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in ("requeue", "purge") and getattr(self.app, "read_only", False))

    # -- loading ---------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load(self.where)

    @work(thread=True, exclusive=True, group="dead-load")
    def load(self, where: DeadFilter) -> None:
        try:
            page = self.admin.dlq_list(
                queue=where.queue, tenant=where.tenant, error=where.error, limit=PAGE
            )
        except ACTION_ERRORS as exc:
            self.app.call_from_thread(self._status, Text(str(exc), style="red"))
            return
        self.app.call_from_thread(self._fill, page.jobs, page.total)

    def _status(self, line: Text | str) -> None:
        update_label(self.query_one("#dead-status", Label), line)

    def _fill(self, jobs: list[Job], total: int) -> None:
        """Show a fresh page: in place when the same jobs are listed, else rebuilt with the
        cursor kept on the same job (or row) and the selection kept."""
        table = self.table
        self.jobs = {job.id: job for job in jobs}
        self.chosen &= set(self.jobs)
        self.total = total
        now = time.time()
        rows = {job.id: self._row(job, now) for job in jobs}
        if [k.value for k in table.rows] == list(rows):
            sync_rows(table, rows, [c.key.value or "" for c in table.ordered_columns])
        else:
            at, row = cursor_key(table), table.cursor_row
            table.clear()
            for key, cells in rows.items():
                table.add_row(*(shown(cell) for cell in cells), key=key)
            if jobs:
                keys = list(rows)
                table.move_cursor(row=keys.index(at) if at in rows else min(row, len(keys) - 1))
        self._count()

    def _row(self, job: Job, now: float) -> tuple[Text | str, ...]:
        dead_for = age(now - job.dead_at / 1000) if job.dead_at else "-"
        error = (job.last_error or "").splitlines()[0][:80] if job.last_error else ""
        return (
            self._mark(job.id),
            job.id,
            job.queue,
            job.tenant or "-",
            Text(error, style="red"),
            str(job.attempts),
            dead_for,
        )

    def _mark(self, job_id: str) -> Text:
        return Text("✔", style="bold green") if job_id in self.chosen else Text(" ")

    def _count(self) -> None:
        listed = len(self.jobs)
        more = f" (showing the newest {listed})" if listed < self.total else ""
        self._status(
            f"{self.total} dead letters match{more} · {len(self.chosen)} selected · "
            "space select, enter inspect, r/R requeue, d/D purge"
        )

    # -- filtering and selection -----------------------------------------------------------

    def on_input_changed(self, _: Input.Changed) -> None:
        self.where = DeadFilter.of(
            self.query_one("#dead-queue", Input).value,
            self.query_one("#dead-tenant", Input).value,
            self.query_one("#dead-error", Input).value,
        )
        self.load(self.where)

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.table.focus()

    def action_filter(self) -> None:
        self.query_one("#dead-queue", Input).focus()

    def current(self) -> Job | None:
        key = cursor_key(self.table)
        return self.jobs.get(key) if key is not None else None

    def action_toggle_selected(self) -> None:
        job = self.current()
        if job is None:
            return
        self.chosen ^= {job.id}
        self.table.update_cell(job.id, "mark", self._mark(job.id))
        self._count()

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        job = self.current()
        if job is not None:
            self.app.push_screen(TextScreen(f"dead letter {job.id}", job_text(job)))

    # -- requeue and purge -----------------------------------------------------------------

    def _targets(self, every: bool) -> tuple[str, list[Job] | None]:
        """What an action applies to: a description and the jobs (None: every match)."""
        if every:
            return f"every dead letter matching ({self.total})", None
        if self.chosen:
            return f"{len(self.chosen)} selected dead letters", [
                self.jobs[i] for i in sorted(self.chosen)
            ]
        job = self.current()
        if job is None:
            return "", []
        return f"dead letter {job.id}", [job]

    def action_requeue(self, every: bool) -> None:
        self._confirmed("Requeue", every)

    def action_purge(self, every: bool) -> None:
        self._confirmed("Purge", every)

    def _confirmed(self, verb: str, every: bool) -> None:
        what, jobs = self._targets(every)
        if jobs is not None and not jobs:
            self.app.notify("no dead letter here", severity="warning")
            return
        if every and self.total == 0:
            self.app.notify("no dead letter matches", severity="warning")
            return
        permanent = " They are deleted for good." if verb == "Purge" else ""

        def answered(yes: bool | None) -> None:
            if yes:
                self.apply(verb, jobs, self.where)

        self.app.push_screen(ConfirmScreen(f"{verb} {what}?{permanent}", action=verb), answered)

    @work(thread=True, group="dead-change")
    def apply(self, verb: str, jobs: list[Job] | None, where: DeadFilter) -> None:
        try:
            targets = matching(self.admin, where) if jobs is None else jobs
            change = requeue if verb == "Requeue" else purge
            done = change(self.admin, targets)
        except ACTION_ERRORS as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        past = "requeued" if verb == "Requeue" else "purged"
        self.app.call_from_thread(self.app.notify, f"{done} of {len(targets)} dead letters {past}")
        self.app.call_from_thread(self._changed)

    def _changed(self) -> None:
        self.chosen.clear()
        self.action_reload()
