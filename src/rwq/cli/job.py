"""``rwq job``: one job by its id: ``rwq job wait`` blocks until it ends; and how a job is
shown (also by ``rwq admin job``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from rwq.cli.context import (
    JsonFlag,
    NotFoundError,
    UsageError,
    context_of,
    err,
    out,
    print_json_out,
)
from rwq.queue.handle import JobNotFound, WaitTimeout, wait_for_job
from rwq.queue.job import Job
from rwq.units import UnitError, format_age, parse_duration

__all__ = ["EXIT_CODES", "QueueOption", "job_app", "print_job"]

job_app = typer.Typer(help="One job by its id.", no_args_is_help=True)

EXIT_CODES = {"completed": 0, "dead": 3, "deleted": 4, "cancelled": 5, "timeout": 124}
"""``rwq job wait``'s exit status by how the wait ended (1: an error, such as no such job)."""

QueueOption = Annotated[
    str | None, typer.Option("--queue", "-q", help="Look on this queue only (default: all).")
]


def _when(ms: float | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def print_job(job: Job) -> None:
    """A job's fields, one per line, for people (``--json`` prints :meth:`Job.to_dict`)."""
    rows = [
        ("state", job.state),
        ("queue", job.queue),
        ("tenant", job.tenant or "-"),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_retries + 1}"),
        ("enqueued", _when(job.enqueued_at)),
        ("scheduled for", _when(job.run_at)) if job.state == "scheduled" else None,
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)
         + (f" (ran {job.duration_ms:.1f} ms)" if job.duration_ms is not None else "")),
        ("dead", _when(job.dead_at)) if job.dead_at is not None else None,
        ("worker", job.worker or "-"),
        ("timeout", format_age(job.timeout) if job.timeout is not None else "-"),
        ("progress", job.progress_text) if job.progress_text else None,
        ("unique key", job.unique_key) if job.unique_key else None,
        ("result kept", format_age(job.result_ttl)) if job.result_ttl is not None else None,
        ("error", job.last_error) if job.last_error else None,
        ("payload", _json(job.payload)),
    ]  # fmt: skip
    if job.state == "completed":
        rows.append(("result", _json(job.result)))
        if job.result_error:
            rows.append(("result note", job.result_error))
    out.print(f"job {job.id}")
    for row in rows:
        if row is not None:
            out.print(f"  {row[0] + ':':<14} {row[1]}")
    if job.traceback:
        out.print("  traceback:")
        for line in job.traceback.rstrip("\n").splitlines():
            out.print(f"    {line}")


@job_app.command("wait")
def wait_cmd(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    queue: QueueOption = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", "-t", help="Give up after this long (30s, 5m); default: never."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Block until a job ends and print how. Exit status: 0 completed, 3 dead-lettered, 4
    deleted before it ended, 5 cancelled, 124 still running at --timeout, 1 no such job."""
    seconds = None
    if timeout is not None:
        try:
            seconds = parse_duration(timeout, "--timeout")
        except UnitError as exc:
            raise UsageError(str(exc)) from None
    context = context_of(ctx)
    job = context.admin.find_job(job_id, queue)
    if job is None:
        raise NotFoundError(str(JobNotFound(job_id, queue)))
    try:
        ended = wait_for_job(context.broker, job.queue, job_id, seconds)
    except WaitTimeout as exc:
        if as_json:
            print_json_out({"id": job_id, "queue": job.queue, "outcome": "timeout",
                            "state": exc.state, "job": None})  # fmt: skip
        else:
            err.print(str(exc))
        raise typer.Exit(EXIT_CODES["timeout"]) from None
    except JobNotFound as exc:  # deleted between the lookup and the wait
        raise NotFoundError(str(exc)) from None
    if as_json:
        print_json_out({"id": job_id, "queue": job.queue, "outcome": ended.state,
                        "state": ended.state,
                        "job": ended.job.to_dict() if ended.job else None})  # fmt: skip
    elif ended.job is None:
        shown = {"completed": "completed (its result is not kept: result_ttl 0)",
                 "dead": "was dead-lettered, then deleted",
                 "deleted": "was deleted before it ended"}  # fmt: skip
        out.print(f"job {job_id} {shown.get(ended.state, ended.state)}")
    else:
        print_job(ended.job)
    raise typer.Exit(EXIT_CODES.get(ended.state, 1))
