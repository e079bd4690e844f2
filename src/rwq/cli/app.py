"""The ``rwq`` command line: server, enqueue, worker, admin, demo and bench."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.table import Table

from rwq.cli.plugin import PluginsDir, plugin_app
from rwq.cli.table import TableColumn, fitted_table
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.paths import with_plugin_dirs
from rwq.printable import PlainConsole, log_to_stderr, marked, print_json
from rwq.queue.admin import PEEK_TARGETS, Admin
from rwq.queue.broker import Broker
from rwq.queue.job import DEFAULT_PRIORITY, Job
from rwq.queue.producer import Producer
from rwq.units import counted, format_age, format_figure, parse_duration
from rwq.valkey.embedded import keeping_embedded

app = typer.Typer(
    help="rwq: a reliable Redis work queue with a plugin-driven terminal UI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
server_app = typer.Typer(help="Manage the embedded Valkey server.", no_args_is_help=True)
admin_app = typer.Typer(help="Inspect and operate queues.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure rwq on this machine.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(dlq_app, name="dlq")
app.add_typer(bench_app, name="bench")
app.add_typer(plugin_app, name="plugin")

out = PlainConsole()
err = PlainConsole(stderr=True)


class UsageError(RwqError):
    """A command-line argument is malformed."""


class NotFoundError(RwqError):
    """What a command was asked to act on does not exist."""


DEMO_HANDLERS = "rwq.demo.workload:handlers"


@dataclass
class Context:
    """What the root options set up; the broker connects on first use."""

    settings: Settings
    _broker: Broker | None = field(default=None, repr=False)

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            from rwq.connection import connect

            self._broker = Broker(connect(self.settings), self.settings)
        return self._broker

    @property
    def admin(self) -> Admin:
        return Admin(self.broker)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def root(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="redis://, rediss://, unix:// or redis+cluster://host:port,host:port "
            "(default: $RWQ_REDIS_URL, else the embedded Valkey).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (default ./rwq.yaml).")
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option("--read-only/--read-write", help="Refuse every change to queues."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    log_to_stderr(logging.INFO if verbose else logging.WARNING)
    ctx.obj = Context(Settings.load(config, redis_url=redis_url, read_only=read_only))


def _ctx(ctx: typer.Context) -> Context:
    obj = ctx.obj
    assert isinstance(obj, Context)
    return obj


def _print_json(data: Any) -> None:
    print_json(data, out.file)


# -- server ----------------------------------------------------------------------------------


def _embedded(ctx: typer.Context) -> Any:
    from rwq.valkey.embedded import EmbeddedServer

    settings = _ctx(ctx).settings
    return EmbeddedServer(settings.state_dir, settings.persistence)


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start the embedded Valkey (or report the one already running)."""
    url = _embedded(ctx).ensure()
    out.print(f"embedded valkey running at {url}")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the embedded Valkey (saving its data when persistence is on)."""
    if _embedded(ctx).stop():
        out.print("embedded valkey stopped")
    else:
        out.print("embedded valkey was not running")


@server_app.command("status")
def server_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show whether the embedded Valkey runs, where, and how big it is."""
    status = _embedded(ctx).status()
    if as_json:
        _print_json(asdict(status) if status else {"running": False})
        return
    if status is None:
        out.print("embedded valkey is not running (it starts on demand)")
        raise typer.Exit(3)
    out.print(
        f"running: pid {status.pid}, {status.url}, persistence "
        f"{'on' if status.persistence else 'off'}, up {status.uptime_s:.0f}s, "
        f"{status.keys} keys, {status.used_memory / 1e6:.1f} MB"
    )


# -- enqueue ---------------------------------------------------------------------------------


def _read_payload(raw: str) -> Any:
    """PAYLOAD is JSON text, ``@file`` or ``-`` for standard input."""
    source = "PAYLOAD"
    data: bytes
    if raw == "-":
        data, source = sys.stdin.buffer.read(), "PAYLOAD (stdin)"
    elif raw.startswith("@"):
        path = Path(raw[1:])
        try:
            data, source = path.read_bytes(), f"PAYLOAD file {path}"
        except OSError as exc:
            raise UsageError(f"cannot read PAYLOAD file {path}: {exc.strerror}") from None
    else:
        data = raw.encode("utf-8", "surrogateescape")  # bytes the terminal gave us
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source} is nested too deeply") from None


def _is_text(value: str) -> bool:
    """Whether a command-line value is text (arguments that are not UTF-8 arrive as lone
    surrogates)."""
    return value.isascii() or not any("\udc80" <= c <= "\udcff" for c in value)


def _parse_at(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(
            f"--at: expected an ISO time (2026-01-31T12:00:00) or epoch seconds, got {text!r}"
        ) from None


def _enqueue(
    ctx: typer.Context,
    queue: str,
    payload: str,
    priority: int,
    tenant: str | None,
    delay: str | None,
    at: str | None,
    max_retries: int | None,
    job_id: str | None,
    trace_id: str | None,
    as_json: bool,
) -> None:
    data = _read_payload(payload)
    for option, value in (("--tenant", tenant), ("--job-id", job_id), ("--trace-id", trace_id)):
        if value is not None and not _is_text(value):
            raise UsageError(f"{option}: not UTF-8 text")
    producer = Producer(_ctx(ctx).broker)
    job = producer.enqueue(
        queue,
        data,
        priority=priority,
        tenant=tenant,
        delay=parse_duration(delay, "--delay") if delay else None,
        at=_parse_at(at) if at else None,
        max_retries=max_retries,
        job_id=job_id,
        trace_id=trace_id,
    )
    if as_json:
        stored = None if job.state == "duplicate" else _ctx(ctx).admin.job(queue, job.id)
        _print_json((stored or job).to_dict())  # as stored: with the server's enqueued_at
    elif job.state == "duplicate":
        out.print(f"job {job.id} already exists on {queue}; not enqueued again")
    else:
        out.print(f"enqueued {job.id} on {queue} ({job.state})")


_PRIORITY = typer.Option("--priority", "-p", min=0, max=9, help="0 (low) to 9 (high).")
_TENANT = typer.Option("--tenant", help="Tenant the job belongs to.")
_DELAY = typer.Option("--delay", help="Run after this long (30s, 5m).")
_AT = typer.Option("--at", help="Run at this time (ISO 8601 or epoch seconds).")
_RETRIES = typer.Option("--max-retries", min=0, help="Retries before dead-lettering.")
_JOB_ID = typer.Option("--job-id", help="Use this id (enqueue is idempotent by id).")
_TRACE = typer.Option("--trace-id", help="Trace id carried with the job.")
_PAYLOAD_HELP = "Job payload: JSON text, @file.json, or - for stdin."


@app.command("enqueue")
def enqueue_cmd(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    payload: Annotated[str, typer.Argument(help=_PAYLOAD_HELP)],
    priority: Annotated[int, _PRIORITY] = DEFAULT_PRIORITY,
    tenant: Annotated[str | None, _TENANT] = None,
    delay: Annotated[str | None, _DELAY] = None,
    at: Annotated[str | None, _AT] = None,
    max_retries: Annotated[int | None, _RETRIES] = None,
    job_id: Annotated[str | None, _JOB_ID] = None,
    trace_id: Annotated[str | None, _TRACE] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue one job."""
    _enqueue(
        ctx, queue, payload, priority, tenant, delay, at, max_retries, job_id, trace_id, as_json
    )


# The same command under ``rwq admin enqueue``.
admin_app.command("enqueue")(enqueue_cmd)


# -- worker ----------------------------------------------------------------------------------


def load_handlers(spec: str) -> Mapping[str, Any]:
    """Handlers from ``module:attr``: a mapping of queue -> callable, or one callable for
    every queue."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        hint = (
            " (the demo's handlers, which sleep and fail on purpose, are "
            f"{DEMO_HANDLERS}; `rwq demo` runs them)"
            if spec == "demo"
            else ""
        )
        raise UsageError(f"--app: expected module:attr, got {spec!r}{hint}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app: cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module failed while it was imported: its error
        raise UsageError(
            f"--app: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"--app: module {module_name!r} has no attribute {attr!r}") from None
    if callable(target) and not isinstance(target, Mapping):
        return {"*": target}
    if isinstance(target, Mapping) and all(callable(h) for h in target.values()):
        return target
    raise UsageError(f"--app: {spec} must be a callable or a mapping of queue -> callable")


@app.command("worker")
def worker_cmd(
    ctx: typer.Context,
    queues: Annotated[
        list[str],
        typer.Option("--queue", "-q", help="Queue to serve; repeat, highest priority first."),
    ],
    app_spec: Annotated[
        str,
        typer.Option(
            "--app",
            help="Your handlers: module:attr naming a mapping of queue -> callable, or one "
            "callable for every queue.",
        ),
    ],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 1,
    prefetch: Annotated[
        int, typer.Option("--prefetch", min=0, help="Extra jobs taken per fetch.")
    ] = 0,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics here.")
    ] = None,
    breaker: Annotated[
        bool, typer.Option("--breaker/--no-breaker", help="Per-queue circuit breaker.")
    ] = True,
    max_jobs: Annotated[int | None, typer.Option("--max-jobs", min=1)] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after (60s).")] = None,
) -> None:
    """Process jobs until interrupted: SIGTERM or Ctrl-C lets running jobs finish for up to
    shutdown_timeout (30s), then hands the rest back to their queues; a second signal at once."""
    from rwq.queue.breaker import BreakerPolicy
    from rwq.queue.worker import Worker, WorkerOptions

    handlers = load_handlers(app_spec)
    options = WorkerOptions(
        concurrency=concurrency,
        prefetch=prefetch,
        metrics_port=metrics_port,
        breaker=BreakerPolicy(enabled=breaker),
    )
    worker = Worker(_ctx(ctx).broker, queues, handlers, options)
    err.print(f"worker {worker.id} serving {', '.join(worker.queues)}")
    with keeping_embedded(_ctx(ctx).settings):
        worker.run(
            max_jobs=max_jobs,
            duration=parse_duration(duration, "--duration") if duration else None,
        )
    err.print(f"worker {worker.id} stopped: {worker.processed} completed, {worker.failed} failed")


# -- admin -----------------------------------------------------------------------------------


@admin_app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-queue depths, totals, throughput and oldest pending age."""
    stats = _ctx(ctx).admin.stats(queue or None)
    if as_json:
        _print_json(stats.to_dict())
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
    admin = _ctx(ctx).admin
    jobs = admin.dlq_list(limit=n).jobs if target == "dead" else admin.peek(target, n, state)
    shown = "dead" if target == "dead" else state
    if as_json:
        _print_json([j.to_dict() for j in jobs])
    elif not jobs:
        out.print(f"no {shown} jobs" + ("" if target == "dead" else f" on {target}"))
    else:
        out.print(_jobs_table(f"{target} ({shown})", jobs))


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
    page = _ctx(ctx).admin.dlq_list(
        queue=queue, tenant=tenant, error=error, offset=offset, limit=limit
    )
    if as_json:
        jobs = [j.to_dict() for j in page.jobs]
        _print_json({"total": page.total, "offset": offset, "jobs": jobs})
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
    admin = _ctx(ctx).admin
    missing = (
        [] if all_jobs else [i for i in ids or [] if i not in admin.find_dead(ids or [], queue)]
    )
    count = (
        admin.requeue(ids or [], all_jobs=all_jobs, queue=queue, to=to)
        if (all_jobs or len(missing) < len(ids or []))
        else 0
    )
    if as_json:
        _print_json({"requeued": count, "not_found": missing})
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
    count = _ctx(ctx).admin.purge(target, queue=queue)
    if as_json:
        _print_json({"purged": count})
    else:
        out.print(f"purged {count} job(s)")


@admin_app.command("pause")
def pause_cmd(ctx: typer.Context, queue: str, as_json: JsonFlag = False) -> None:
    """Stop workers taking jobs from QUEUE (enqueue still works)."""
    changed = _ctx(ctx).admin.pause(queue)
    if as_json:
        _print_json({"queue": queue, "paused": True, "changed": changed})
    else:
        out.print(f"{queue} paused" if changed else f"{queue} was already paused")


@admin_app.command("resume")
def resume_cmd(ctx: typer.Context, queue: str, as_json: JsonFlag = False) -> None:
    """Let workers take jobs from QUEUE again."""
    changed = _ctx(ctx).admin.resume(queue)
    if as_json:
        _print_json({"queue": queue, "paused": False, "changed": changed})
    else:
        out.print(f"{queue} resumed" if changed else f"{queue} was not paused")


@admin_app.command("workers")
def workers_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Registered workers: host, pid, queues, current jobs, last heartbeat."""
    workers = _ctx(ctx).admin.workers()
    if as_json:
        _print_json([asdict(w) for w in workers])
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


# -- the TUI ---------------------------------------------------------------------------------


@app.command("tui")
def tui_cmd(
    ctx: typer.Context,
    plugins: Annotated[
        bool, typer.Option("--plugins/--no-plugins", help="Host the installed plugins.")
    ] = True,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Pre-grant plugin permissions from this policy file."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Hot-reload plugins changed on disk.")
    ] = True,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Refuse and hide every destructive action.")
    ] = False,
    plugins_dir: PluginsDir = None,
) -> None:
    """The dashboard: queues, charts, dead letters, workers, plugin panels."""
    from rwq.tui.launch import launch

    settings = with_plugin_dirs(_ctx(ctx).settings, plugins_dir, "--plugins-dir")
    if read_only:
        settings = settings.replace(read_only=True)
    with keeping_embedded(settings):
        launch(settings, plugins=plugins, policy=policy, watch=watch)


# -- demo and bench --------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Stop after this long (e.g. 30s).")
    ] = None,
    tui: Annotated[
        bool, typer.Option("--tui/--no-tui", help="The dashboard, or log lines.")
    ] = True,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 2,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, max=100_000, help="Jobs per second produced.")
    ] = 50.0,
    plugins: Annotated[
        Path | None,
        typer.Option(
            "--plugins",
            help="Host the plugins of this directory (default: the sample plugins shipped with "
            "rwq).",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Pre-grant plugin permissions from this policy file."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A multi-tenant workload on the embedded Valkey with two workers and the dashboard."""
    if not math.isfinite(rate):
        raise UsageError(f"--rate: expected a number of jobs per second, got {rate}")
    from rwq.demo.run import Dashboard, run_demo
    from rwq.plugins.headless import HeadlessHost
    from rwq.samples import SAMPLES_DIR

    settings = with_plugin_dirs(_ctx(ctx).settings, [plugins or SAMPLES_DIR], "--plugins")
    dashboard: Dashboard | None = None
    if tui and sys.stdout.isatty() and not as_json:
        from rwq.tui.launch import launch

        def dashboard(target: Settings, client: Any, seconds: float | None) -> None:
            launch(target, client=client, policy=policy, quit_after=seconds)

    def host_plugins(target: Settings, client: Any) -> HeadlessHost:
        return HeadlessHost(target, client, policy_path=policy, watch=False)

    with keeping_embedded(settings):
        summary = run_demo(
            settings,
            duration=parse_duration(duration, "--duration") if duration else None,
            live=tui and sys.stdout.isatty(),
            workers=workers,
            rate=rate,
            console=err if as_json else None,  # keep stdout pure JSON
            dashboard=dashboard,
            plugins=host_plugins,
        )
    if as_json:
        _print_json(asdict(summary))
    else:
        out.print(str(summary))


@bench_app.command("queue")
def bench_queue_cmd(
    ctx: typer.Context,
    jobs: Annotated[int, typer.Option("--jobs", "-n", min=100)] = 50_000,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue, process and latency figures (a throwaway server unless --redis-url)."""
    from rwq.bench.queue import run_queue_bench

    result = run_queue_bench(_ctx(ctx).settings, jobs=jobs)
    if as_json:
        _print_json(result)
        return
    _print_figures(result)


@bench_app.command("plugins")
def bench_plugins_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Capability checks, event delivery and host API calls of the plugin core."""
    from rwq.bench.plugins import run_plugins_bench

    result = run_plugins_bench(_ctx(ctx).settings)
    if as_json:
        _print_json(result)
        return
    _print_figures(result)


@bench_app.command("tui")
def bench_tui_cmd(
    ctx: typer.Context,
    panels: Annotated[int, typer.Option("--panels", min=1, help="Plugin panels on screen.")] = 20,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Events a second for each panel.")
    ] = 30.0,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="Length of the measured window.")
    ] = 10.0,
    as_json: JsonFlag = False,
) -> None:
    """The TUI in a pseudo-terminal with many panels changing: CPU, render and paint times."""
    from rwq.bench.tui import run_tui_bench

    result = run_tui_bench(_ctx(ctx).settings, panels=panels, rate=rate, seconds=seconds)
    if as_json:
        _print_json(result)
        return
    _print_figures(result)


def _print_figures(figures: Mapping[str, Any], indent: int = 0) -> None:
    """A benchmark's figures for people: one ``name: value`` a line, nested ones indented."""
    for key, value in figures.items():
        if isinstance(value, Mapping):
            out.print(f"{' ' * indent}{key}:")
            _print_figures(value, indent + 2)
        else:
            out.print(f"{' ' * indent}{key}: {format_figure(value)}", soft_wrap=True)


def main() -> None:
    """Entry point: run the app; errors become one line on stderr and exit status 1.

    An exception rwq did not raise on purpose is a bug: one line says so (exit status 70) and
    ``RWQ_DEBUG=1`` shows its traceback."""
    try:
        app()
    except RwqError as exc:
        err.print(marked("error:", "red", exc), soft_wrap=True)
        sys.exit(1)
    except redis.RedisError as exc:
        err.print(marked("error:", "red", f"redis: {exc}"), soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("RWQ_DEBUG"):
            raise
        err.print(
            marked(
                "error:",
                "red",
                f"internal error {type(exc).__name__}: {exc} — a bug in rwq; rerun with "
                "RWQ_DEBUG=1 for the traceback and report it",
            ),
            soft_wrap=True,
        )
        sys.exit(70)
