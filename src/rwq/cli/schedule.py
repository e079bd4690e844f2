"""``rwq schedule``: periodic jobs added, listed and removed at run time (``rwq admin
schedules`` lists them too); ``rwq scheduler`` fires them without a worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from rwq.cli.admin import admin_app
from rwq.cli.context import (
    JsonFlag,
    NotFoundError,
    UsageError,
    context_of,
    err,
    out,
    print_json_out,
)
from rwq.cli.table import TableColumn, fitted_table
from rwq.queue.schedules import ScheduleState, ScheduleStore
from rwq.schedule_spec import ScheduleSpecError, make_spec
from rwq.units import counted, parse_duration
from rwq.valkey.embedded import keeping_embedded

__all__ = ["schedule_app", "scheduler_cmd"]

schedule_app = typer.Typer(help="Periodic jobs: cron or every interval.", no_args_is_help=True)

_OPTION_OF_FIELD = {
    "cron": "--cron",
    "every": "--every",
    "queue": "--queue",
    "payload": "--payload",
    "priority": "--priority",
    "tenant": "--tenant",
    "timezone": "--timezone",
    "missed": "--missed",
    "name": "NAME",
}


@schedule_app.command("add")
def add_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="1-48 of letters, digits, '.', '_', '-'.")],
    queue: Annotated[str, typer.Option("--queue", "-q", help="The queue its jobs go to.")],
    cron: Annotated[
        str | None, typer.Option("--cron", help="A 5-field cron expression ('*/5 * * * *').")
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="An interval (30s, 5m, 1h), from the epoch.")
    ] = None,
    payload: Annotated[str, typer.Option("--payload", help="Each job's payload (JSON).")] = "null",
    priority: Annotated[int, typer.Option("--priority", "-p", help="0 (low) to 9 (high).")] = 5,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Each job's tenant.")] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="The cron expression's time zone (IANA name).")
    ] = "UTC",
    missed: Annotated[
        str,
        typer.Option(
            "--missed",
            help="Ticks passed while no scheduler ran: coalesce (one job for them all) or skip.",
        ),
    ] = "coalesce",
    as_json: JsonFlag = False,
) -> None:
    """Add or replace a periodic job (not one of rwq.yaml's: the file wins)."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise UsageError(f"--payload: not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError("--payload: nested too deeply") from None
    fields: dict[str, Any] = {
        "queue": queue, "cron": cron, "every": every, "payload": data, "priority": priority,
        "tenant": tenant, "timezone": timezone, "missed": missed,
    }  # fmt: skip
    if cron is not None and every is not None:
        raise UsageError("give --cron or --every, not both")
    if cron is None and every is None:
        raise UsageError("give --cron EXPRESSION or --every DURATION")
    try:
        spec = make_spec(name, {k: v for k, v in fields.items() if v is not None})
    except ScheduleSpecError as exc:
        option = _OPTION_OF_FIELD.get(exc.field, exc.field or "schedule")
        raise UsageError(f"{option}: {exc.reason}") from None
    context = context_of(ctx)
    if name in context.settings.schedule_specs:
        raise UsageError(
            f"NAME: {name!r} is a schedule of rwq.yaml, which replaces it whenever a scheduler "
            "starts: change it there"
        )
    store = ScheduleStore(context.broker)
    changed = store.add(spec)
    state = store.get(name)
    if as_json:
        print_json_out(state.to_dict() if state else {})
        return
    when = _time(state.next_ms if state else None)
    verb = "added" if changed else "unchanged:"
    out.print(f"schedule {name} {verb} {spec.expression} on {spec.queue}, next at {when}")


@schedule_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every schedule: queue, expression, next fire, last fired, last job."""
    states = ScheduleStore(context_of(ctx).broker).list()
    if as_json:
        print_json_out([s.to_dict() for s in states])
        return
    if not states:
        out.print("no schedules (rwq schedule add, or schedules: in rwq.yaml)")
        return
    out.print(schedules_table(states, out.width))


admin_app.command("schedules")(list_cmd)


@schedule_app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove a periodic job; its jobs already enqueued stay."""
    removed = ScheduleStore(context_of(ctx).broker).remove(name)
    if as_json:
        print_json_out({"schedule": name, "removed": removed})
    elif removed:
        out.print(f"schedule {name} removed")
    if not removed:
        raise NotFoundError(f"no schedule named {name!r}")


def scheduler_cmd(
    ctx: typer.Context,
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after (60s).")] = None,
) -> None:
    """Fire periodic jobs without running handlers (every rwq worker runs a scheduler too;
    any number may run: each tick enqueues one job)."""
    import signal
    import threading

    from rwq.queue.scheduler import Scheduler

    seconds = parse_duration(duration, "--duration") if duration else None
    context = context_of(ctx)
    scheduler = Scheduler(context.broker_when_reachable())
    err.print(f"scheduler started: {counted(len(scheduler.specs), 'schedule')} from rwq.yaml")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with keeping_embedded(context.settings):
        scheduler.start()
        try:
            stop.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            scheduler.stop()
    err.print(f"scheduler stopped: {scheduler.fired} job(s) enqueued")


def _time(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def schedules_table(states: list[ScheduleState], width: int) -> Any:
    """Schedules as a table as wide as the terminal."""
    return fitted_table(
        counted(len(states), "schedule"),
        [
            TableColumn("name", [s.name for s in states], priority=0),
            TableColumn("queue", [s.spec.queue for s in states], priority=1, shortest=8),
            TableColumn("expression", [s.spec.expression for s in states], priority=1),
            TableColumn("next fire", [_time(s.next_ms) for s in states], priority=2),
            TableColumn(
                "last fired",
                [_time(s.last_tick) if s.last_tick else "" for s in states],
                priority=3,
            ),
            TableColumn("last job", [s.last_job or "" for s in states], priority=4, shortest=8),
            TableColumn("fired", [str(s.fired) for s in states], priority=5, right=True),
            TableColumn("missed", [s.spec.missed for s in states], priority=6),
            TableColumn("from", [s.origin for s in states], priority=6),
        ],
        width,
    )
