"""Cancel: a queued job is removed at once, a running one is taken from its worker, whose
handler is stopped (process isolation: killed; thread mode: abandoned, or it sees
``job.cancelled``); the job ends ``cancelled``, never failed or retried. Jobs that are over
get a clear refusal. Standalone and cluster."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flow_handlers import report_then_wait

from rwq.queue.admin import Admin, ReadOnlyMode
from rwq.queue.broker import Broker
from rwq.queue.cancel import CANCELLED_KEEP_S, JobNotFound, NotCancellable
from rwq.queue.events import Event
from rwq.queue.job import Job
from rwq.queue.producer import Producer

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]


def _types(events: list[Event], job_id: str) -> list[str]:
    return [e.type for e in events if e.data.get("job_id") == job_id]


def _gated(tmp_path: Path, name: str) -> dict[str, str]:
    """A payload for :func:`report_then_wait` with its files under ``tmp_path``."""
    return {
        "pid_file": str(tmp_path / f"{name}.pid"),
        "release": str(tmp_path / f"{name}.release"),
        "seen": str(tmp_path / f"{name}.seen"),
    }


@pytest.mark.parametrize("delay", [None, 60.0], ids=["pending", "scheduled"])
def test_a_queued_job_is_removed_at_once(
    broker: Broker, producer: Producer, admin: Admin, read_events: ReadEvents,
    start_worker: StartWorker, wait_until: WaitUntil, delay: float | None,
) -> None:  # fmt: skip
    job = producer.enqueue("q", 1, delay=delay, unique_key="once")
    kept = producer.enqueue("q", 2)
    was = "scheduled" if delay else "pending"
    done = admin.cancel(job.id)
    assert (done.job_id, done.queue, done.was, done.worker) == (job.id, "q", was, None)
    stored = admin.job("q", job.id)
    assert stored is not None and stored.state == "cancelled" and stored.finished_at
    ttl = broker.client.ttl(broker.queue_keys("q").job(job.id))
    assert 0 < ttl <= CANCELLED_KEEP_S
    [event] = [e for e in read_events("q") if e.type == "job.cancelled"]
    assert event.data == {"job_id": job.id, "tenant": "", "attempt": 0, "state": was}
    # Its unique key is released: the same work may be enqueued again.
    again = producer.enqueue("q", 3, unique_key="once")
    ran: list[Any] = []
    start_worker(["q"], {"*": lambda j: ran.append(j.payload)})
    wait_until(lambda: len(ran) == 2, what="the other jobs")
    assert sorted(ran) == [2, 3] and kept.id and again.id
    with pytest.raises(NotCancellable, match="cancelled already"):
        admin.cancel(job.id, queue="q")


@pytest.mark.parametrize(
    ("options", "stopped"),
    [
        ({"isolation": "thread"}, "sees it"),
        ({"isolation": "thread", "concurrency": 2}, "abandoned"),
        ({"isolation": "thread", "timeout": "60s"}, "abandoned"),
        ({"isolation": "process"}, "killed"),
        ({"isolation": "process", "concurrency": 2}, "killed"),
    ],
    ids=["inline", "threads", "inline-bounded", "process", "processes"],
)
def test_a_running_job_is_stopped_and_ends_cancelled(
    producer: Producer, admin: Admin, read_events: ReadEvents, start_worker: StartWorker,
    wait_until: WaitUntil, tmp_path: Path, options: dict[str, Any], stopped: str,
) -> None:  # fmt: skip
    payload = _gated(tmp_path, "stuck")
    job = producer.enqueue("q", payload, max_retries=3)
    handle = start_worker(["q"], {"*": report_then_wait}, **options)
    running = wait_until(lambda: admin.job("q", job.id) if _progressed(admin, job.id) else None,
                         what="the handler to start")  # fmt: skip
    assert running.state == "processing"
    pid = int(Path(payload["pid_file"]).read_text())

    done = admin.cancel(job.id)
    assert (done.was, done.worker) == ("processing", handle.worker.id)
    stored = admin.job("q", job.id)
    assert stored is not None and stored.state == "cancelled"
    if stopped == "killed":
        wait_until(lambda: not _alive(pid), what="the handler's process to be stopped")
        assert not Path(payload["seen"]).exists()
    else:  # thread mode: the handler sees job.cancelled (the worker was told)
        wait_until(lambda: Path(payload["seen"]).exists(), what="the handler to see it")

    # The worker serves on: its slot is free again.
    after = _gated(tmp_path, "after")
    Path(after["release"]).touch()
    next_job = producer.enqueue("q", after)
    wait_until(lambda: _ended(admin, next_job.id), what="the next job")
    events = read_events("q")
    assert _types(events, job.id) == ["job.enqueued", "job.started", "job.progress",
                                      "job.cancelled"]  # fmt: skip
    stats = admin.stats(["q"]).queues[0]
    assert (stats.completed_total, stats.failed_total, stats.retried_total) == (1, 0, 0)
    assert handle.worker.processed == 1 and handle.worker.failed == 0
    assert admin.job("q", job.id).state == "cancelled"  # type: ignore[union-attr]


def _progressed(admin: Admin, job_id: str) -> bool:
    job: Job | None = admin.job("q", job_id)
    return job is not None and job.progress_fraction == 0.4


def _ended(admin: Admin, job_id: str) -> bool:
    """Whether the job completed (its record gone, or kept with its result)."""
    job = admin.job("q", job_id)
    return job is None or job.state == "completed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_jobs_that_are_over_are_refused_by_name(
    producer: Producer, admin: Admin, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    def handler(job: Job) -> None:
        if job.payload == "fail":
            raise ValueError("no")

    done = producer.enqueue("q", "ok")
    dead = producer.enqueue("q", "fail", max_retries=0)
    start_worker(["q"], {"*": handler})
    wait_until(lambda: admin.stats(["q"]).queues[0].dead == 1, what="the dead letter")
    wait_until(lambda: admin.stats(["q"]).queues[0].completed_total == 1, what="completion")
    with pytest.raises(NotCancellable, match=f"job {done.id} on q .*it has completed"):
        admin.cancel(done.id)
    with pytest.raises(NotCancellable, match="it is dead-lettered"):
        admin.cancel(dead.id, queue="q")
    with pytest.raises(JobNotFound, match=r"no job .nope. on any queue"):
        admin.cancel("nope")
    with pytest.raises(JobNotFound, match="no job 'nope' on 'q'"):
        admin.cancel("nope", queue="q")


def test_read_only_refuses_cancel(make_broker: Callable[..., Broker], producer: Producer) -> None:
    job = producer.enqueue("q", 1)
    with pytest.raises(ReadOnlyMode):
        Admin(make_broker(read_only=True)).cancel(job.id)


async def _await_then_note_cancel(job: Job) -> None:
    if job.payload.get("quick"):
        return
    job.progress(0.4, "half")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        Path(job.payload["seen"]).write_text("cancelled", encoding="utf-8")
        raise


def test_a_running_async_handler_has_its_task_cancelled(
    producer: Producer, admin: Admin, read_events: ReadEvents, start_worker: StartWorker,
    wait_until: WaitUntil, tmp_path: Path,
) -> None:  # fmt: skip
    seen = tmp_path / "seen"
    job = producer.enqueue("q", {"seen": str(seen)})
    handle = start_worker(["q"], {"*": _await_then_note_cancel}, concurrency=2)
    wait_until(lambda: _progressed(admin, job.id), what="the coroutine to start")
    assert admin.cancel(job.id).worker == handle.worker.id
    wait_until(seen.exists, what="the task to be cancelled")
    quick = producer.enqueue("q", {"quick": True})
    wait_until(lambda: _ended(admin, quick.id), what="the next job")
    assert _types(read_events("q"), job.id) == ["job.enqueued", "job.started", "job.progress",
                                                 "job.cancelled"]  # fmt: skip
    assert handle.worker.processed == 1 and handle.worker.failed == 0
