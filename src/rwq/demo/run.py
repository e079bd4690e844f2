"""``rwq demo``: a synthetic multi-tenant workload, worker subprocesses and a live stats view.

A producer thread enqueues the tenants of :mod:`rwq.demo.workload` at a steady total rate;
``rwq worker --app rwq.demo.workload:handlers`` subprocesses (their output in
``<state_dir>/demo/``) run the jobs;
the terminal shows queue stats and recent events until the duration ends or Ctrl-C. Every
worker process is stopped before :func:`run_demo` returns or raises.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rwq.config import ENV_PREFIX, Settings
from rwq.connection import connect
from rwq.demo.workload import QUEUES, SyntheticProducer
from rwq.outage import REDIS_FAILURES, describe
from rwq.printable import PlainConsole, plain_text
from rwq.queue.admin import Admin, QueueStats
from rwq.queue.broker import Broker
from rwq.queue.events import Event, EventType
from rwq.queue.producer import Producer
from rwq.queue.reaper import ReaperThread
from rwq.queue.stream import StreamReader
from rwq.units import format_age
from rwq.valkey.embedded import EmbeddedServer

Dashboard = Callable[[Settings, Any, float | None], None]


class HostedPlugins(Protocol):
    """Plugins hosted beside a headless demo (a :class:`rwq.host.local.LocalPluginHost`)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def states(self) -> dict[str, str]: ...


PluginHosting = Callable[[Settings, Any], HostedPlugins]
"""A view run while the demo workload runs: ``(settings, client, duration)``."""
REFRESH_PER_SECOND = 4
SUMMARY_EVERY = 2.0
"""Seconds between summary lines when the view is not live."""
WORKER_CONCURRENCY = 8
STOP_TIMEOUT = 10.0
"""Seconds a worker gets to finish its jobs after SIGTERM before it is killed."""
PROBLEM_TYPES = frozenset({EventType.JOB_FAILED, EventType.JOB_DEAD_LETTERED})
TAIL_TYPES = frozenset(
    {
        EventType.JOB_COMPLETED,
        EventType.JOB_FAILED,
        EventType.JOB_DEAD_LETTERED,
        EventType.JOB_REQUEUED,
        EventType.QUEUE_PAUSED,
        EventType.QUEUE_RESUMED,
        EventType.QUEUE_PURGED,
    }
)
"""Events worth a line in the tail (enqueued/started/retried would drown the rest)."""


@dataclass(frozen=True)
class DemoSummary:
    """What one demo run did (counts are this run's, not the queues' lifetime totals)."""

    enqueued: int
    completed: int
    failed: int
    """Failed runs, retried or not."""
    dead: int
    duration: float
    """Seconds the workload ran."""
    plugins: dict[str, str] = field(default_factory=dict)
    """Each hosted plugin's state at the end (a headless run hosts them)."""

    def __str__(self) -> str:
        line = (
            f"demo ran {self.duration:.1f}s: {self.enqueued} enqueued, {self.completed} "
            f"completed, {self.failed} failed runs, {self.dead} dead-lettered"
        )
        if self.plugins:
            line += "; plugins: " + ", ".join(f"{n} {s}" for n, s in self.plugins.items())
        return line


@dataclass(frozen=True)
class Totals:
    """Lifetime counters summed over the demo queues."""

    completed: int = 0
    failed: int = 0
    dead: int = 0

    @classmethod
    def of(cls, queues: Sequence[QueueStats]) -> Totals:
        return cls(
            sum(q.completed_total for q in queues),
            sum(q.failed_total for q in queues),
            sum(q.dead_total for q in queues),
        )

    def __sub__(self, other: Totals) -> Totals:
        return Totals(
            self.completed - other.completed, self.failed - other.failed, self.dead - other.dead
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame of the view shows."""

    elapsed: float
    remaining: float | None
    rate: float
    enqueued: int
    run: Totals
    queues: list[QueueStats]
    registered_workers: int
    running_workers: int
    worker_processes: int
    events: list[Event]
    problems: list[Event]
    """The latest failures and dead letters (the events tail is mostly completions)."""
    log_dir: Path
    error: str = ""
    plugins: dict[str, str] = field(default_factory=dict)
    """Hosted plugins' states (headless runs)."""
    lost_workers: list[str] = field(default_factory=list)
    """Registered workers whose heartbeat expired (dead, or cut off from Redis)."""


# -- the event tail --------------------------------------------------------------------------


class EventTail:
    """Reads the queues' event streams from where they stood when it was made."""

    def __init__(self, broker: Broker, queues: Sequence[str], size: int = 6) -> None:
        self.reader = StreamReader(broker.client, count=1000)
        self.reader.follow({broker.queue_keys(q).events: q for q in queues})
        self.recent: deque[Event] = deque(maxlen=size)
        self.problems: deque[Event] = deque(maxlen=size)
        self.counts: Counter[str] = Counter()

    def poll(self) -> None:
        """Take in every event added since the last poll (up to 1,000 per queue)."""
        new = []
        for event in self.reader.read():
            self.counts[event.type] += 1
            if event.type in TAIL_TYPES:
                new.append(event)
        self.recent.extend(new)
        self.problems.extend(e for e in new if e.type in PROBLEM_TYPES)


# -- the view --------------------------------------------------------------------------------


def _fail_share(q: QueueStats) -> float:
    runs = q.throughput_1m + q.failed_1m
    return q.failed_1m / runs if runs else 0.0


def _event_detail(event: Event) -> str:
    data = event.data
    if "error" in data:
        return str(data["error"])
    if event.type == EventType.JOB_COMPLETED:
        return f"{float(data.get('duration_ms', 0)):.0f} ms, attempt {data.get('attempt', '?')}"
    if event.type == EventType.JOB_REQUEUED:
        return str(data.get("reason", ""))
    if event.type == EventType.QUEUE_PURGED:
        return f"{data.get('count', 0)} {data.get('target', '')}"
    return ""


_EVENT_STYLES: dict[str, str] = {
    EventType.JOB_COMPLETED: "green",
    EventType.JOB_FAILED: "yellow",
    EventType.JOB_DEAD_LETTERED: "bold red",
}


def render(snap: Snapshot) -> RenderableType:
    """One frame of the live view."""
    left = f" · {snap.remaining:.0f}s left" if snap.remaining is not None else ""
    header = Text.assemble(
        ("rwq demo", "bold"),
        f"  {snap.elapsed:.0f}s{left} · producing ~{snap.rate:g} jobs/s · "
        f"{snap.enqueued} enqueued, {snap.run.completed} completed, {snap.run.failed} failed, "
        f"{snap.run.dead} dead · workers: {snap.running_workers}/{snap.worker_processes} "
        f"processes, {snap.registered_workers} registered",
        (f", {len(snap.lost_workers)} lost" if snap.lost_workers else "", "bold red"),
    )
    table = Table()
    table.add_column("queue", no_wrap=True, min_width=15)
    for col in ("pend", "run", "sched", "dead", "done", "failed", "/min", "fail %", "oldest",
                "paused"):  # fmt: skip
        table.add_column(col, justify="right")
    for q in snap.queues:
        share = _fail_share(q)
        style = "red" if share >= 0.10 else "yellow" if share >= 0.03 else ""
        table.add_row(
            q.queue, str(q.pending), str(q.processing), str(q.scheduled), str(q.dead),
            str(q.completed_total), str(q.failed_total), str(q.throughput_1m),
            Text(f"{share:.0%}", style=style), format_age(q.oldest_pending_age_s),
            Text("paused", style="yellow") if q.paused else "",
        )  # fmt: skip
    parts: list[RenderableType] = [
        header,
        table,
        _events_table("recent events", snap.events),
        _events_table("recent failures", snap.problems),
    ]
    if snap.error:
        parts.append(plain_text(snap.error, "red", multiline=True))
    parts.append(Text(f"Ctrl-C to stop · worker logs in {snap.log_dir}", style="dim"))
    return Group(*parts)


def _events_table(title: str, events: Sequence[Event]) -> Table:
    table = Table(title=title, title_justify="left", box=None, expand=True)
    for col in ("time", "queue", "event", "job", "detail"):
        table.add_column(
            col,
            no_wrap=True,
            overflow="ellipsis",
            ratio=1 if col == "detail" else None,
            min_width=len(EventType.JOB_DEAD_LETTERED) if col == "event" else None,
        )
    for e in reversed(events):
        table.add_row(
            datetime.fromtimestamp(e.ts / 1000).strftime("%H:%M:%S.%f")[:-3],
            e.queue,
            plain_text(e.type, _EVENT_STYLES.get(e.type, "")),
            str(e.data.get("job_id", ""))[-8:],
            _event_detail(e),
        )
    return table


def summary_line(snap: Snapshot) -> str:
    """The one-line progress report printed when the view is not live."""
    pending = sum(q.pending for q in snap.queues)
    processing = sum(q.processing for q in snap.queues)
    scheduled = sum(q.scheduled for q in snap.queues)
    line = (
        f"[{snap.elapsed:6.1f}s] enqueued {snap.enqueued} · pending {pending} · processing "
        f"{processing} · scheduled {scheduled} · completed {snap.run.completed} · failed "
        f"{snap.run.failed} · dead {snap.run.dead} · workers "
        f"{snap.running_workers}/{snap.worker_processes}"
    )
    if snap.lost_workers:
        line += f" · {len(snap.lost_workers)} lost (heartbeat expired)"
    if snap.plugins:
        active = sum(1 for state in snap.plugins.values() if state == "active")
        line += f" · plugins {active}/{len(snap.plugins)} active"
    return f"{line} · {snap.error}" if snap.error else line


# -- worker processes ------------------------------------------------------------------------


def worker_command(queues: Sequence[str]) -> list[str]:
    """The command line of one demo worker process."""
    command = [sys.executable, "-m", "rwq", "worker", "--app", "rwq.demo.workload:handlers"]
    command += ["--concurrency", str(WORKER_CONCURRENCY)]
    for q in queues:
        command += ["-q", q]
    return command


def worker_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """This process's environment plus ``RWQ_*`` variables that recreate ``settings`` (with
    ``redis_url``) in a child, since the child reads its settings from there."""
    env = dict(os.environ)
    for f in fields(Settings):
        value = redis_url if f.name == "redis_url" else getattr(settings, f.name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):  # a list setting: comma-separated, as it is read
            text = ",".join(map(str, value))
        else:
            text = str(value)
        env[ENV_PREFIX + f.name.upper()] = text
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_workers(
    count: int, settings: Settings, redis_url: str, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` worker processes, each writing to ``log_dir/worker-<n>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(settings, redis_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(1, count + 1):
            with (log_dir / f"worker-{n}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        worker_command(QUEUES),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every worker, give them ``timeout`` seconds to finish, then kill the rest."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting, kill below
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the demo runs, so cleanup still happens."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the run ---------------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    *,
    duration: float | None,
    live: bool,
    workers: int = 2,
    rate: float = 50.0,
    console: Console | None = None,
    dashboard: Dashboard | None = None,
    plugins: PluginHosting | None = None,
) -> DemoSummary:
    """Run the demo workload for ``duration`` seconds (None: until Ctrl-C).

    Args:
        settings: where to connect (the embedded Valkey when ``redis_url`` is None).
        duration: how long to produce and process; Ctrl-C ends the run early either way.
        live: a live-updating table; otherwise a summary line every few seconds.
        workers: worker processes to start (each runs 8 jobs at once).
        rate: jobs per second enqueued over all tenants.
        console: where to draw (stdout by default).
        dashboard: run this view (the TUI) instead of the built-in one, while the workload
            runs; it gets the settings of the server in use, a client and ``duration``.
        plugins: without a dashboard, host plugins headless with what this builds (their
            states are in the progress lines and the summary).
    """
    redis_url = settings.redis_url
    if redis_url is None:
        redis_url = EmbeddedServer(
            settings.state_dir, settings.persistence, settings.fsync
        ).ensure()
    client = connect(settings.replace(redis_url=redis_url))
    try:
        broker = Broker(client, settings)
        broker.register_queues(QUEUES)
        admin = Admin(broker)
        baseline = Totals.of(admin.stats(QUEUES).queues)
        hosted: dict[str, str] = {}
        demo = _Run(admin, SyntheticProducer(Producer(broker), rate), console or PlainConsole())
        # Reaps while the demo runs, even once every worker is gone.
        reaper = ReaperThread(broker, f"demo:{os.getpid()}")
        with _terminate_as_interrupt():
            try:
                reaper.start()
                demo.procs = start_workers(workers, settings, redis_url, demo.log_dir)
                demo.producer.start()
                if dashboard is None and plugins is not None:
                    demo.host = plugins(settings.replace(redis_url=redis_url), client)
                    demo.host.start()
                with contextlib.suppress(KeyboardInterrupt):  # how an open-ended demo ends
                    if dashboard is not None:
                        dashboard(settings.replace(redis_url=redis_url), client, duration)
                    else:
                        demo.watch(duration, live, baseline)
                elapsed = time.monotonic() - demo.started
            finally:
                reaper.stop()
                demo.producer.stop()
                if demo.host is not None:
                    hosted = demo.host.states()
                    demo.host.stop()
                if demo.producer.is_alive():
                    demo.producer.join()
                stop_workers(demo.procs)
        run = Totals.of(admin.stats(QUEUES).queues) - baseline
    finally:
        client.close()
    return DemoSummary(
        demo.producer.enqueued, run.completed, run.failed, run.dead, round(elapsed, 2), hosted
    )


class _Run:
    """One demo run as the view sees it: the producer, the worker processes, the tail."""

    def __init__(self, admin: Admin, producer: SyntheticProducer, console: Console) -> None:
        self.admin = admin
        self.producer = producer
        self.console = console
        self.tail = EventTail(admin.broker, QUEUES)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.host: HostedPlugins | None = None
        self.exited: set[int] = set()
        self.lost: set[str] = set()
        """Workers reported lost (their heartbeat expired)."""
        self.log_dir = admin.broker.settings.state_dir / "demo"
        self.started = time.monotonic()

    def watch(self, duration: float | None, live: bool, baseline: Totals) -> None:
        """Show the run until ``duration`` has passed (or forever), live or line by line."""
        self.started = time.monotonic()
        deadline = self.started + duration if duration is not None else None
        if live:
            with Live(
                render(self.snapshot(deadline, baseline)),
                console=self.console,
                refresh_per_second=REFRESH_PER_SECOND,
            ) as view:
                while self.due(deadline):
                    time.sleep(_until(deadline, 1 / REFRESH_PER_SECOND))
                    view.update(render(self.snapshot(deadline, baseline)))
            return
        while self.due(deadline):
            time.sleep(_until(deadline, SUMMARY_EVERY))
            line = summary_line(self.snapshot(deadline, baseline))
            self.console.print(line, highlight=False, soft_wrap=True)

    def due(self, deadline: float | None) -> bool:
        """Whether to go on: time is left and some worker still runs."""
        if self.procs and len(self.exited) == len(self.procs):
            self.console.print(Text("every worker exited; stopping the demo", style="red"))
            return False
        return deadline is None or time.monotonic() < deadline

    def snapshot(self, deadline: float | None, baseline: Totals) -> Snapshot:
        now = time.monotonic()
        self._report_exits()
        error = self.producer.error
        lost: list[str] = []
        try:
            stats = self.admin.stats(QUEUES)
            self.tail.poll()
            queues, registered = stats.queues, stats.workers
            lost = self.admin.lost_workers()
        except REDIS_FAILURES as exc:
            queues, registered, error = [], 0, f"redis unavailable: {describe(exc)}"
        self._report_lost(lost)
        return Snapshot(
            elapsed=now - self.started,
            remaining=max(0.0, deadline - now) if deadline is not None else None,
            rate=self.producer.rate,
            enqueued=self.producer.enqueued,
            run=Totals.of(queues) - baseline if queues else Totals(),
            queues=queues,
            registered_workers=registered,
            running_workers=sum(1 for p in self.procs if p.poll() is None),
            worker_processes=len(self.procs),
            events=list(self.tail.recent),
            problems=list(self.tail.problems),
            log_dir=self.log_dir,
            error=error,
            plugins=self.host.states() if self.host is not None else {},
            lost_workers=lost,
        )

    def _report_lost(self, lost: list[str]) -> None:
        for worker_id in lost:
            if worker_id not in self.lost:
                self.console.print(
                    plain_text(
                        f"worker {worker_id} lost: its heartbeat expired (it died, or cannot "
                        "reach Redis); its jobs go back to their queues",
                        "red",
                    ),
                    soft_wrap=True,
                )
        self.lost = set(lost)

    def _report_exits(self) -> None:
        for n, p in enumerate(self.procs, 1):
            if p.poll() is not None and p.pid not in self.exited:
                self.exited.add(p.pid)
                self.console.print(
                    plain_text(
                        f"worker {n} (pid {p.pid}) exited with status {p.returncode}; "
                        f"see {self.log_dir / f'worker-{n}.log'}",
                        "yellow",
                    ),
                    soft_wrap=True,
                )


def _until(deadline: float | None, step: float) -> float:
    """Sleep ``step`` seconds, or less if the deadline comes sooner."""
    if deadline is None:
        return step
    return max(0.0, min(step, deadline - time.monotonic()))
