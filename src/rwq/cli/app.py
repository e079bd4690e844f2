"""The ``rwq`` command line: the root options, server, enqueue, worker, tui and demo;
``rwq admin`` is :mod:`rwq.cli.admin`, ``rwq plugin`` :mod:`rwq.cli.plugin` and ``rwq bench``
:mod:`rwq.cli.bench`."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import redis
import typer

from rwq.cli import unique as uniq
from rwq.cli.admin import admin_app
from rwq.cli.bench import bench_app
from rwq.cli.context import (
    Context,
    JsonFlag,
    UsageError,
    context_of,
    err,
    out,
    print_json_out,
)
from rwq.cli.dev import dev_cmd  # noqa: F401  (registers plugin dev)
from rwq.cli.job import job_app
from rwq.cli.plugin import HostPlugins, PluginsDir, PolicyFile, WatchPlugins, plugin_app
from rwq.cli.registry import install_cmd  # noqa: F401  (registers install, publish, search...)
from rwq.cli.schedule import schedule_app, scheduler_cmd
from rwq.cli.signing import trust_app  # noqa: F401  (registers keygen, sign, verify, trust)
from rwq.cli.toolkit import new_cmd  # noqa: F401  (registers new, build, check)
from rwq.cli.web import register as register_web
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.outage import OUTAGE_ERRORS, describe
from rwq.plugins.package.paths import with_plugin_dirs
from rwq.printable import log_to_stderr, marked
from rwq.queue.job import DEFAULT_PRIORITY, JobError
from rwq.queue.producer import DuplicateJob, Producer, parse_result_ttl
from rwq.queue.timeouts import Isolation, TimeoutValueError, parse_timeout
from rwq.units import parse_duration
from rwq.valkey.embedded import keeping_embedded

app = typer.Typer(
    help="rwq: a reliable Redis work queue with a plugin-driven terminal UI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
server_app = typer.Typer(help="Manage the embedded Valkey server.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(admin_app, name="admin")
app.add_typer(job_app, name="job")
app.add_typer(bench_app, name="bench")
app.add_typer(plugin_app, name="plugin")
app.add_typer(schedule_app, name="schedule")
app.command("scheduler")(scheduler_cmd)
register_web(app)

DEMO_HANDLERS = "rwq.demo.workload:handlers"


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


# -- server ----------------------------------------------------------------------------------


def _embedded(ctx: typer.Context) -> Any:
    from rwq.valkey.embedded import EmbeddedServer

    settings = context_of(ctx).settings
    return EmbeddedServer(settings.state_dir, settings.persistence, settings.fsync)


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
        print_json_out(asdict(status) if status else {"running": False})
        return
    if status is None:
        out.print("embedded valkey is not running (it starts on demand)")
        raise typer.Exit(3)
    out.print(
        f"running: pid {status.pid}, {status.url}, persistence "
        f"{f'on (fsync {status.fsync})' if status.persistence else 'off'}, "
        f"up {status.uptime_s:.0f}s, "
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
    timeout: str | None,
    as_json: bool,
    unique: uniq.UniqueOptions | None = None,
    result_ttl: str | None = None,
) -> None:
    data = _read_payload(payload)
    seconds = _timeout_option(timeout)
    kept = _result_ttl_option(result_ttl)
    unique = unique or uniq.UniqueOptions()
    unique_args = unique.checked()
    for option, value in (("--tenant", tenant), ("--job-id", job_id), ("--trace-id", trace_id)):
        if value is not None and not _is_text(value):
            raise UsageError(f"{option}: not UTF-8 text")
    producer = Producer(context_of(ctx).broker)
    job_id = unique.own_id(job_id)
    try:
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
            timeout=seconds,
            result_ttl=kept,
            **unique_args,
        )
    except DuplicateJob as exc:
        raise uniq.DuplicateError(f"{exc} (--on-duplicate existing prints it)") from None
    if unique.shown_existing(job.job, job_id, as_json):
        return
    if as_json:
        stored = None if job.state == "duplicate" else context_of(ctx).admin.job(queue, job.id)
        print_json_out((stored or job).to_dict())  # as stored: with the server's enqueued_at
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
_TIMEOUT = typer.Option(
    "--timeout",
    help="How long its handler may run (30s, 5m); past it the run fails with JobTimeout "
    "(then retried or dead-lettered). Default: the queue's (queue_timeouts) or the worker's.",
)
_RESULT_TTL = typer.Option(
    "--result-ttl",
    help="How long its result is kept once it completes (10m, 1d; 0: not kept). Default: the "
    "setting result_ttl.",
)
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
    timeout: Annotated[str | None, _TIMEOUT] = None,
    unique_key: Annotated[str | None, uniq.UNIQUE_KEY_OPTION] = None,
    unique_ttl: Annotated[str | None, uniq.UNIQUE_TTL_OPTION] = None,
    on_duplicate: Annotated[str, uniq.ON_DUPLICATE_OPTION] = "refuse",
    result_ttl: Annotated[str | None, _RESULT_TTL] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue one job."""
    _enqueue(
        ctx, queue, payload, priority, tenant, delay, at, max_retries, job_id, trace_id,
        timeout, as_json, uniq.UniqueOptions(unique_key, unique_ttl, on_duplicate), result_ttl,
    )  # fmt: skip


def _timeout_option(text: str | None) -> float | None:
    """The seconds of a ``--timeout`` option (a positive duration)."""
    if text is None:
        return None
    try:
        return parse_timeout(text, "--timeout")
    except TimeoutValueError as exc:
        raise UsageError(str(exc)) from None


def _result_ttl_option(text: str | None) -> float | None:
    """The seconds of a ``--result-ttl`` option (0 to 30 days)."""
    if text is None:
        return None
    try:
        return parse_result_ttl(text, "--result-ttl")
    except JobError as exc:
        raise UsageError(str(exc)) from None


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
            "callable for every queue; an async def is awaited on the worker's event loop.",
        ),
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Handlers running at once, sync and async together (threads, child "
            "processes or coroutines).",
        ),
    ] = 1,
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
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="How long a handler may run (30s, 5m) when neither its job (enqueue "
            "--timeout) nor the setting queue_timeouts says. Default: no limit.",
        ),
    ] = None,
    isolation: Annotated[
        str,
        typer.Option(
            "--isolation",
            help="thread: handlers run in this process (one past its timeout fails its job "
            "but cannot be stopped); process: in long-lived child processes, one per "
            "--concurrency slot (one past its timeout is killed; a crash fails only its job).",
        ),
    ] = "thread",
    child_max_jobs: Annotated[
        int | None,
        typer.Option(
            "--child-max-jobs",
            min=1,
            help="With --isolation process: replace a child after this many jobs, giving "
            "back what its handlers leaked.",
        ),
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also fire periodic jobs (rwq schedule); any number of schedulers may run.",
        ),
    ] = True,
) -> None:
    """Process jobs until interrupted: SIGTERM or Ctrl-C lets running jobs finish for up to
    shutdown_timeout (30s), then hands the rest back to their queues; a second signal at once."""
    from rwq.queue.breaker import BreakerPolicy
    from rwq.queue.worker import Worker, WorkerOptions

    if isolation not in tuple(Isolation):
        raise UsageError(f"--isolation: expected thread or process, got {isolation!r}")
    seconds = _timeout_option(timeout)
    if child_max_jobs is not None and isolation != Isolation.PROCESS:
        raise UsageError("--child-max-jobs: only with --isolation process")
    handlers = load_handlers(app_spec)
    options = WorkerOptions(
        concurrency=concurrency,
        prefetch=prefetch,
        metrics_port=metrics_port,
        breaker=BreakerPolicy(enabled=breaker),
        timeout=seconds,
        isolation=Isolation(isolation),
        child_max_jobs=child_max_jobs,
    )
    # Started during an outage, it waits for the server (a long-running process).
    worker = Worker(context_of(ctx).broker_when_reachable(), queues, handlers, options)
    err.print(f"worker {worker.id} serving {', '.join(worker.queues)}")
    with keeping_embedded(context_of(ctx).settings):
        periodic = _start_scheduler(ctx) if scheduler else None
        try:
            worker.run(
                max_jobs=max_jobs,
                duration=parse_duration(duration, "--duration") if duration else None,
            )
        finally:
            if periodic is not None:
                periodic.stop()
    err.print(f"worker {worker.id} stopped: {worker.processed} completed, {worker.failed} failed")


@app.command("reaper")
def reaper_cmd(
    ctx: typer.Context,
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after (60s).")] = None,
) -> None:
    """Hand the jobs of dead workers back to their queues, every reaper_interval, until
    interrupted: for when no worker (nor TUI, plugin host or demo) runs to do it. Survives
    Redis outages."""
    import threading

    from rwq.queue.reaper import Reaper

    context = context_of(ctx)
    owner = f"reaper:{os.getpid()}"
    reaper = Reaper(context.broker_when_reachable(), owner, logging.getLogger("rwq.reaper"))
    stop = threading.Event()
    seconds = parse_duration(duration, "--duration") if duration else None
    if seconds is not None:
        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True
        timer.start()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    err.print(f"reaper {owner} on {context.server}, every {context.settings.reaper_interval:g}s")
    # Ctrl-C: stop, not an error
    with keeping_embedded(context.settings), contextlib.suppress(KeyboardInterrupt):
        reaper.run(stop.wait, on_reaped=_print_reaped)
    err.print(f"reaper {owner} stopped")


def _print_reaped(workers: list[str], requeued: int, dead: int) -> None:
    out.print(
        f"reaped {len(workers)} dead worker(s) ({', '.join(workers)}): {requeued} job(s) "
        f"requeued, {dead} dead-lettered"
    )


def _start_scheduler(ctx: typer.Context) -> Any:
    """The worker's scheduler threads."""
    from rwq.queue.scheduler import Scheduler

    scheduler = Scheduler(context_of(ctx).broker)
    scheduler.start()
    return scheduler


# -- the TUI ---------------------------------------------------------------------------------


@app.command("tui")
def tui_cmd(
    ctx: typer.Context,
    plugins: HostPlugins = True,
    policy: PolicyFile = None,
    watch: WatchPlugins = True,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Refuse and hide every destructive action.")
    ] = False,
    plugins_dir: PluginsDir = None,
) -> None:
    """The dashboard: queues, charts, dead letters, workers, plugin panels."""
    from rwq.bench.queue import run_queue_bench
    from rwq.tui.launch import launch

    settings = with_plugin_dirs(context_of(ctx).settings, plugins_dir, "--plugins-dir")
    if read_only:
        settings = settings.replace(read_only=True)
    with keeping_embedded(settings):
        launch(settings, plugins=plugins, policy=policy, watch=watch, queue_bench=run_queue_bench)


# -- demo --------------------------------------------------------------------------------


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
    policy: PolicyFile = None,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="The web dashboard (rwq web on 127.0.0.1) instead of the terminal one, with "
            "a token for the browser made for the run.",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="The web dashboard's port.")
    ] = 8080,
    as_json: JsonFlag = False,
) -> None:
    """A multi-tenant workload on the embedded Valkey with two workers and the dashboard."""
    if not math.isfinite(rate):
        raise UsageError(f"--rate: expected a number of jobs per second, got {rate}")
    from rwq.demo.run import Dashboard, run_demo
    from rwq.host.build import HostOptions, build_host
    from rwq.host.local import LocalPluginHost
    from rwq.samples import SAMPLES_DIR

    settings = with_plugin_dirs(context_of(ctx).settings, [plugins or SAMPLES_DIR], "--plugins")

    def host_plugins(target: Settings, client: Any) -> LocalPluginHost:
        return build_host(target, client, HostOptions(policy_path=policy, watch=False))

    dashboard: Dashboard | None = None
    if web:
        from rwq.web.demo import serve_demo

        def say(line: str) -> None:
            err.print(line, soft_wrap=True, highlight=False)

        def dashboard(target: Settings, client: Any, seconds: float | None) -> None:
            serve_demo(target, client, seconds, port=port, host_plugins=host_plugins, say=say)

    elif tui and sys.stdout.isatty() and not as_json:
        from rwq.bench.queue import run_queue_bench
        from rwq.tui.launch import launch

        def dashboard(target: Settings, client: Any, seconds: float | None) -> None:
            launch(
                target, client=client, policy=policy, quit_after=seconds,
                queue_bench=run_queue_bench,
            )  # fmt: skip

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
        print_json_out(asdict(summary))
    else:
        out.print(str(summary))


def main() -> None:
    """Entry point: run the app; errors become one line on stderr and exit status 1.

    An exception rwq did not raise on purpose is a bug: one line says so (exit status 70) and
    ``RWQ_DEBUG=1`` shows its traceback."""
    try:
        returned = app(standalone_mode=False)
    except typer.TyperException as exc:  # a usage error: one line, not a framed box
        if type(exc).__name__ != "NoArgsIsHelpError":  # its help is already printed
            err.print(marked("error:", "red", _usage_error(exc)), soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        sys.exit(1)
    except RwqError as exc:
        err.print(marked("error:", "red", exc), soft_wrap=True)
        sys.exit(1)
    except OUTAGE_ERRORS as exc:  # the server went away after the command connected
        if os.environ.get("RWQ_DEBUG"):
            traceback.print_exc()
        context = Context.current
        line = context.unavailable(exc) if context else f"Redis is unavailable: {describe(exc)}"
        err.print(marked("error:", "red", line), soft_wrap=True)
        sys.exit(1)
    except redis.RedisError as exc:
        if os.environ.get("RWQ_DEBUG"):
            traceback.print_exc()
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
    sys.exit(returned if isinstance(returned, int) else 0)


def _usage_error(exc: typer.TyperException) -> str:
    """A usage error in one line, with the help command that explains it."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return " ".join(str(text).split()) + where
