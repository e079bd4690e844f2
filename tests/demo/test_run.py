"""``rwq demo``: a short real run, the producer thread, the event tail and the live view."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from rich.console import Console

from rwq.config import Settings
from rwq.demo.run import (
    EventTail,
    Snapshot,
    Totals,
    render,
    run_demo,
    summary_line,
    worker_command,
    worker_env,
)
from rwq.demo.workload import QUEUES
from rwq.queue.admin import Admin, QueueStats
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import Event
from rwq.queue.producer import Producer


class PopenSpy(subprocess.Popen[bytes]):
    """Records every process started, to check none outlives the demo."""

    started: list[subprocess.Popen[bytes]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        PopenSpy.started.append(self)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_short_run_enqueues_completes_fails_and_leaves_no_worker(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    PopenSpy.started = []
    monkeypatch.setattr(subprocess, "Popen", PopenSpy)
    console = Console(record=True, width=200)

    summary = run_demo(settings, duration=4, live=False, workers=1, rate=100, console=console)

    assert summary.enqueued > 100
    assert summary.completed > 0
    assert summary.failed > 0
    assert summary.duration == pytest.approx(4, abs=1)
    assert len(PopenSpy.started) == 1
    worker = PopenSpy.started[0]
    assert worker.returncode == 0  # stopped by SIGTERM after finishing its jobs
    assert gone(worker.pid)
    assert Admin(Broker(redis_client, settings)).workers() == []  # it deregistered
    assert "enqueued" in console.export_text()  # the periodic summary lines
    log = (settings.state_dir / "demo" / "worker-1.log").read_text()
    assert "stopped" in log


def test_worker_processes_get_the_settings_through_the_environment(settings: Settings) -> None:
    env = worker_env(settings, "redis://127.0.0.1:1/0")
    assert Settings.load(env=env) == settings.replace(redis_url="redis://127.0.0.1:1/0")
    command = worker_command(QUEUES)
    assert command[1:6] == ["-m", "rwq", "worker", "--app", "rwq.demo.workload:handlers"]
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "-q"] == list(QUEUES)


def test_the_event_tail_reads_only_new_events_and_keeps_failures_apart(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    producer.enqueue("tenant.acme", {"n": 0})  # before the tail: not shown
    tail = EventTail(broker, ["tenant.acme"])
    producer.enqueue("tenant.acme", {"n": 1})
    fetched = broker.fetch("tenant.acme", "w1", 2)
    broker.complete("tenant.acme", "w1", [(fetched.jobs[0].id, 5.0)])
    broker.fail(
        "tenant.acme", "w1", [Failure(fetched.jobs[1].id, 7.0, "ValueError: bad", "", 0, True)]
    )
    tail.poll()
    assert tail.counts["job.enqueued"] == 1
    assert [e.type for e in tail.recent] == ["job.completed", "job.failed", "job.dead_lettered"]
    assert [e.type for e in tail.problems] == ["job.failed", "job.dead_lettered"]
    tail.poll()
    assert len(tail.recent) == 3  # nothing read twice


def snapshot(**changes: Any) -> Snapshot:
    stats = QueueStats(
        queue="tenant.initech", pending=12, processing=8, scheduled=3, dead=4,
        completed_total=90, failed_total=32, retried_total=28, dead_total=4,
        enqueued_total=130, paused=True, oldest_pending_age_s=2.5, throughput_1m=75,
        failed_1m=25,
    )  # fmt: skip
    dead = Event(
        "job.dead_lettered", 1.7e12, "queue", "tenant.initech",
        {"job_id": "01a2b3c4d5e6f7a8b9c0d1e2f3", "attempt": 3,
         "error": "MemoryError: report worker ran out of memory"},
    )  # fmt: skip
    done = Event(
        "job.completed", 1.7e12, "queue", "tenant.acme", {"job_id": "x1", "duration_ms": 42.0}
    )
    values: dict[str, Any] = {
        "elapsed": 12.0, "remaining": 18.0, "rate": 50.0, "enqueued": 600,
        "run": Totals(500, 60, 7), "queues": [stats], "registered_workers": 2,
        "running_workers": 2, "worker_processes": 2, "events": [done, dead],
        "problems": [dead], "log_dir": Path("/state/demo"),
    }  # fmt: skip
    return Snapshot(**{**values, **changes})


def test_the_live_view_shows_queues_workers_and_recent_events() -> None:
    console = Console(record=True, width=160)
    console.print(render(snapshot()))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "tenant.initech" in line and "%" in line)
    cells = [c.strip() for c in row.split("│")][1:-1]
    assert cells == ["tenant.initech", "12", "8", "3", "4", "90", "32", "75", "25%", "2.5s",
                     "paused"]  # fmt: skip
    assert "18s left" in text
    assert "workers: 2/2 processes, 2 registered" in text
    assert "recent events" in text and "recent failures" in text
    assert "job.dead_lettered" in text
    assert "MemoryError: report worker ran out of memory" in text
    assert "d1e2f3" in text
    assert "/state/demo" in text


def test_the_summary_line_totals_every_queue() -> None:
    line = summary_line(snapshot(error="redis: connection refused"))
    assert "enqueued 600" in line and "pending 12" in line and "dead 7" in line
    assert line.endswith("redis: connection refused")


def test_the_demo_says_when_a_worker_is_lost() -> None:
    lost = snapshot(lost_workers=["box:42:abcdef"], registered_workers=2)
    assert "1 lost (heartbeat expired)" in summary_line(lost)
    console = Console(record=True, width=160)
    console.print(render(lost))
    assert "workers: 2/2 processes, 2 registered, 1 lost" in console.export_text()
