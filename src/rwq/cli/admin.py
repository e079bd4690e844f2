"""``rwq admin``: inspect and operate queues: stats, peek, one job, dead letters, requeue,
purge, pause, resume and workers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from rwq.cli.context import (
    JsonFlag,
    NotFoundError,
    UsageError,
    context_of,
    out,
    print_json_out,
)
from rwq.cli.job import QueueOption, print_job
from rwq.cli.table import TableColumn, fitted_table
from rwq.queue.admin import PEEK_TARGETS
from rwq.queue.handle import JobNotFound
from rwq.queue.job import Job
from rwq.units import counted, format_age

__all__ = ["admin_app"]

admin_app = typer.Typer(help="Inspect and operate queues.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters.", no_args_is_help=True)
admin_app.add_typer(dlq_app, name="dlq")


@admin_app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-queue depths, totals, throughput and oldest pending age."""
    stats = context_of(ctx).admin.stats(queue or None)
    if as_json:
        print_json_out(stats.to_dict())
        return
    table = Table(title=f"rwq queues ({stats.workers} workers)")
    table.add_column("queue", no_wrap=True)
    for col in ("pend", "run", "sched", "dead", "done", "failed", "/min", "oldest", "paused"):
        table.add_column(col, justify="right")
    for q in stats.queues:
        table.add_row(
            q.queue, str(q.pending), str(q.processing), str(q.scheduled), str(q.dead),
            str(q.completed_total), str(q.failed_total), str(q.throughput_1m),
            format_age(q.oldest_pending_age_s), "yes" if q.paused else "",
        )  # fmt: skip
    out.print(table)


def _jobs_table(title: str, jobs: list[Job]) -> Table:
    """Jobs as a table as wide as the terminal: ids whole (users copy them), then the columns
    that fit, most useful first (shortened before they are left out)."""
    return fitted_table(
        title,
        [
            TableColumn("id", [j.id for j in jobs], priority=0),
            TableColumn("queue", [j.queue for j in jobs], priority=1, shortest=8),
            TableColumn("tenant", [j.tenant or "" for j in jobs], priority=4, shortest=6),
            TableColumn("prio", [str(j.priority) for j in jobs], priority=6, right=True),
            TableColumn(
                "attempts",
                [f"{j.attempts}/{j.max_retries + 1}" for j in jobs],
                priority=5,
                right=True,
            ),
            TableColumn("state", [j.state for j in jobs], priority=2),
            TableColumn(
                "error",
                [(j.last_error or "").strip() for j in jobs],
                priority=3,
                shortest=10,
                widest=60,
            ),
            TableColumn(
                "payload",
                [json.dumps(j.payload, ensure_ascii=False) for j in jobs],
                priority=7,
                shortest=10,
                widest=60,
            ),
        ],
        out.width,
    )


@admin_app.command("peek")
def peek_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A queue name, or 'dead' for dead letters.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many jobs.")] = 10,
    state: Annotated[
        str, typer.Option("--state", help="pending, scheduled, dead, completed or processing.")
    ] = "pending",
    as_json: JsonFlag = False,
) -> None:
    """Show the next jobs of a queue without taking them."""
    if state not in PEEK_TARGETS:
        raise UsageError(f"--state: must be one of {', '.join(PEEK_TARGETS)}, got {state!r}")
    admin = context_of(ctx).admin
    jobs = admin.dlq_list(limit=n).jobs if target == "dead" else admin.peek(target, n, state)
    shown = "dead" if target == "dead" else state
    if as_json:
        print_json_out([j.to_dict() for j in jobs])
    elif not jobs:
        out.print(f"no {shown} jobs" + ("" if target == "dead" else f" on {target}"))
    else:
        out.print(_jobs_table(f"{target} ({shown})", jobs))


@admin_app.command("job")
def job_cmd(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    queue: QueueOption = None,
    as_json: JsonFlag = False,
) -> None:
    """One job by its id: state, queue, times, attempts, worker, error and result."""
    job = context_of(ctx).admin.find_job(job_id, queue)
    if job is None:
        raise NotFoundError(str(JobNotFound(job_id, queue)))
    if as_json:
        print_json_out(job.to_dict())
    else:
        print_job(job)


@dlq_app.command("list")
def dlq_list_cmd(
    ctx: typer.Context,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    error: Annotated[str | None, typer.Option("--error", help="Error text contains.")] = None,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Dead letters, newest first, filtered and paged."""
    page = context_of(ctx).admin.dlq_list(
        queue=queue, tenant=tenant, error=error, offset=offset, limit=limit
    )
    if as_json:
        jobs = [j.to_dict() for j in page.jobs]
        print_json_out({"total": page.total, "offset": offset, "jobs": jobs})
        return
    if not page.jobs:
        out.print("no dead letters match" if page.total == 0 else
                  f"no dead letters at offset {offset} ({page.total} match)")  # fmt: skip
        return
    shown = f"{offset + 1}-{offset + len(page.jobs)}"
    out.print(_jobs_table(f"dead letters {shown} of {page.total}", page.jobs))


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{what}: refusing without --yes (no terminal to ask on)")
    if not typer.confirm(f"{what}?"):
        raise typer.Exit(1)


@admin_app.command("requeue")
def requeue_cmd(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter job ids.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Requeue into this queue.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Move dead letters back to pending (their queue, or --to)."""
    if not ids and not all_jobs:
        raise UsageError("requeue: give job ids or --all")
    if ids and all_jobs:
        raise UsageError("requeue: give job ids or --all, not both")
    if all_jobs:
        _confirm(yes, f"requeue every dead letter{' of ' + queue if queue else ''}")
    admin = context_of(ctx).admin
    missing = (
        [] if all_jobs else [i for i in ids or [] if i not in admin.find_dead(ids or [], queue)]
    )
    count = (
        admin.requeue(ids or [], all_jobs=all_jobs, queue=queue, to=to)
        if (all_jobs or len(missing) < len(ids or []))
        else 0
    )
    if as_json:
        print_json_out({"requeued": count, "not_found": missing})
    else:
        out.print(f"requeued {count} job(s)")
    if missing:
        where = f" of {queue}" if queue else ""
        raise NotFoundError(f"no dead letter{where} with id {', '.join(missing)}")


@admin_app.command("purge")
def purge_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A queue name, 'dead' or 'all'.")],
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", help="With dead/all: only this queue.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm the deletion.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete pending+scheduled jobs of a queue, dead letters, or everything."""
    scope = f" of {queue}" if queue else ""
    _confirm(yes, f"purge {target}{scope}")
    count = context_of(ctx).admin.purge(target, queue=queue)
    if as_json:
        print_json_out({"purged": count})
    else:
        out.print(f"purged {count} job(s)")


@admin_app.command("pause")
def pause_cmd(ctx: typer.Context, queue: str, as_json: JsonFlag = False) -> None:
    """Stop workers taking jobs from QUEUE (enqueue still works)."""
    changed = context_of(ctx).admin.pause(queue)
    if as_json:
        print_json_out({"queue": queue, "paused": True, "changed": changed})
    else:
        out.print(f"{queue} paused" if changed else f"{queue} was already paused")


@admin_app.command("resume")
def resume_cmd(ctx: typer.Context, queue: str, as_json: JsonFlag = False) -> None:
    """Let workers take jobs from QUEUE again."""
    changed = context_of(ctx).admin.resume(queue)
    if as_json:
        print_json_out({"queue": queue, "paused": False, "changed": changed})
    else:
        out.print(f"{queue} resumed" if changed else f"{queue} was not paused")


@admin_app.command("workers")
def workers_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Registered workers: host, pid, queues, current jobs, last heartbeat."""
    workers = context_of(ctx).admin.workers()
    if as_json:
        print_json_out([asdict(w) for w in workers])
        return
    if not workers:
        out.print("no workers are registered")
        return
    now = datetime.now().timestamp() * 1000
    beats = [
        format_age((now - w.last_heartbeat) / 1000) + " ago" if w.last_heartbeat else "lost"
        for w in workers
    ]
    out.print(
        fitted_table(
            counted(len(workers), "worker"),
            [
                TableColumn("id", [w.id for w in workers], priority=0),
                TableColumn("host", [w.host for w in workers], priority=4, shortest=8),
                TableColumn("pid", [str(w.pid) for w in workers], priority=5, right=True),
                TableColumn(
                    "queues",
                    [",".join(w.queues) for w in workers],
                    priority=3,
                    shortest=8,
                    widest=40,
                ),
                TableColumn("state", [w.state for w in workers], priority=1),
                TableColumn(
                    "current", [str(len(w.current_jobs)) for w in workers], priority=2, right=True
                ),
                TableColumn(
                    "processed", [str(w.processed) for w in workers], priority=6, right=True
                ),
                TableColumn("heartbeat", beats, priority=2),
            ],
            out.width,
        )
    )
