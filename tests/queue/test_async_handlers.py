"""Async handlers (``async def``) on a worker's event loop: success, failure and retry, a
coroutine cancelled at its timeout, one that blocks the loop, a worker serving sync and async
handlers together, ``concurrency`` coroutines really at once, the graceful stop and the
shutdown timeout, and async handlers under process isolation. Every test runs on a standalone
server and on the cluster."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from async_handlers import behave, plain

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.handler import is_async_handler
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker, WorkerOptions

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]


def _done(admin: Admin, queue: str, job_id: str) -> bool:
    """Whether the job completed (it is kept, with its result, for result_ttl)."""
    job = admin.job(queue, job_id)
    return job is not None and job.state == "completed"


def _types(events: list[Event], job_id: str) -> list[str]:
    return [e.type for e in events if e.data.get("job_id") == job_id]


def _dead(admin: Admin, queue: str, wait_until: WaitUntil) -> Job:
    def found() -> Job | None:
        dead = admin.peek(queue, 1, target="dead")
        return dead[0] if dead else None

    return wait_until(found, what="a dead letter")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown: ends the blocked loop of a test that blocks it."""
    event = threading.Event()
    yield event
    event.set()


def test_an_async_handler_is_told_from_a_sync_one() -> None:
    class Callable_:
        async def __call__(self, job: Job) -> None:
            pass

    assert is_async_handler(behave)
    assert is_async_handler(functools.partial(behave))
    assert is_async_handler(Callable_())
    assert not is_async_handler(plain)
    assert not is_async_handler(print)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_async_handlers_run_on_the_workers_event_loop(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, tmp_path: Path, concurrency: int,
) -> None:  # fmt: skip
    where = tmp_path / "where"
    jobs = [producer.enqueue("q", {"do": "sleep", "seconds": 0}) for _ in range(20)]
    job = producer.enqueue("q", {"do": "sleep", "seconds": 0.01, "where_file": str(where)})
    handle = start_worker(["q"], {"q": behave}, concurrency=concurrency, max_jobs=21)
    handle.join()
    assert handle.worker.processed == 21 and handle.worker.failed == 0
    assert where.read_text() == f"{os.getpid()} rwq-event-loop"
    assert all(_done(admin, "q", j.id) for j in [*jobs, job])
    assert _types(read_events("q"), job.id) == ["job.enqueued", "job.started", "job.completed"]


def test_an_async_handler_that_raises_is_retried_then_dead_lettered(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil,
) -> None:  # fmt: skip
    job = producer.enqueue("q", {"do": "raise"}, max_retries=1)
    permanent = producer.enqueue("p", {"do": "permanent"}, max_retries=5)
    start_worker(["q", "p"], {"*": behave}, concurrency=2)
    dead = _dead(admin, "q", wait_until)
    assert dead.id == job.id and dead.attempts == 2
    assert dead.last_error == "ValueError: bad input"
    assert dead.traceback is not None and "async_handlers.py" in dead.traceback
    assert _types(read_events("q"), job.id) == [
        "job.enqueued",
        "job.started", "job.failed", "job.retried",
        "job.started", "job.failed", "job.dead_lettered",
    ]  # fmt: skip
    gone = _dead(admin, "p", wait_until)
    assert gone.id == permanent.id and gone.attempts == 1
    assert gone.last_error == "PermanentFailure: never works"


def test_a_coroutine_past_its_timeout_is_cancelled(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil,
) -> None:  # fmt: skip
    unwound = threading.Event()

    async def stuck(job: Job) -> None:
        if job.payload != "x":
            return
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()  # CancelledError was raised where it awaited

    job = producer.enqueue("q", "x", max_retries=0, timeout="100ms")
    handle = start_worker(["q"], {"*": stuck}, concurrency=1)
    dead = _dead(admin, "q", wait_until)
    assert dead.id == job.id
    assert dead.last_error == (
        "JobTimeout: the handler ran past its timeout of 100ms (its task was cancelled)"
    )
    assert unwound.wait(10)
    events = read_events("q")
    assert _types(events, job.id) == [
        "job.enqueued", "job.started", "job.timed_out", "job.failed", "job.dead_lettered",
    ]  # fmt: skip
    timed_out = next(e for e in events if e.type == "job.timed_out")
    assert timed_out.data["handler"] == "cancelled" and timed_out.data["timeout_ms"] == 100
    wait_until(lambda: handle.worker._runner.abandoned == 0, what="the cancelled task ending")
    # The slot is free again: the next job runs.
    later = producer.enqueue("q", "y", max_retries=0)
    wait_until(lambda: _done(admin, "q", later.id), what="the next job")


def test_a_coroutine_that_blocks_the_loop_fails_at_its_timeout_naming_where(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
    release: threading.Event,
) -> None:  # fmt: skip
    async def blocking(job: Job) -> None:
        release.wait(30)  # sync code on the loop: it cannot be cancelled

    job = producer.enqueue("q", "x", max_retries=0, timeout="100ms")
    start_worker(["q"], {"*": blocking})
    dead = _dead(admin, "q", wait_until)
    assert dead.id == job.id
    assert dead.last_error is not None
    assert dead.last_error.startswith(
        "JobTimeout: the handler ran past its timeout of 100ms (its task was cancelled); the "
        "event loop is blocked by sync code (at "
    )
    assert "test_async_handlers.py:" in dead.last_error  # the handler's line
    assert dead.last_error.endswith(" in blocking): the task is cancelled once the loop is free")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_worker_serves_sync_and_async_handlers_together(
    producer: Producer, start_worker: StartWorker, admin: Admin, tmp_path: Path,
    concurrency: int,
) -> None:  # fmt: skip
    threads: dict[str, str] = {}

    def sync(job: Job) -> None:
        threads[job.id] = threading.current_thread().name

    async def coroutine(job: Job) -> None:
        await asyncio.sleep(0)
        threads[job.id] = threading.current_thread().name

    sync_jobs = [producer.enqueue("s", i) for i in range(10)]
    async_jobs = [producer.enqueue("a", i) for i in range(10)]
    handle = start_worker(
        ["s", "a"], {"s": sync, "a": coroutine}, concurrency=concurrency, max_jobs=20
    )
    handle.join()
    assert handle.worker.processed == 20
    assert {threads[j.id] for j in async_jobs} == {"rwq-event-loop"}
    assert "rwq-event-loop" not in {threads[j.id] for j in sync_jobs}
    assert all(_done(admin, j.queue, j.id) for j in [*sync_jobs, *async_jobs])


def test_a_sync_handler_never_holds_up_an_async_timeout(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
    release: threading.Event,
) -> None:  # fmt: skip
    """Beside async handlers a sync one runs in a thread even with concurrency 1, so the job
    loop fails and cancels a coroutine at its timeout while the sync handler still runs."""

    def sync(job: Job) -> None:
        release.wait(30)

    held = producer.enqueue("s", "x")
    late = producer.enqueue("a", {"do": "sleep", "seconds": 60}, max_retries=0, timeout="100ms")
    start_worker(["s", "a"], {"s": sync, "a": behave}, concurrency=1, prefetch=1)
    dead = _dead(admin, "a", wait_until)
    assert dead.id == late.id and "its task was cancelled" in (dead.last_error or "")
    running = admin.job("s", held.id)
    assert running is not None and running.state == "processing"
    release.set()
    wait_until(lambda: _done(admin, "s", held.id), what="the sync job completing")


def test_concurrency_slots_run_coroutines_at_once(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
) -> None:  # fmt: skip
    """Five jobs that each wait for all five: they finish only if five run at once."""
    barrier = asyncio.Barrier(5)

    async def meet(job: Job) -> None:
        async with asyncio.timeout(20):
            await barrier.wait()

    jobs = [producer.enqueue("q", i, max_retries=0) for i in range(5)]
    handle = start_worker(["q"], {"*": meet}, concurrency=5, max_jobs=5)
    handle.join(30)
    assert (handle.worker.processed, handle.worker.failed) == (5, 0)
    assert all(_done(admin, "q", j.id) for j in jobs)


def test_a_graceful_stop_waits_for_running_coroutines(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
) -> None:  # fmt: skip
    started = threading.Event()

    async def slow(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)

    job = producer.enqueue("q", "x")
    waiting = producer.enqueue("q", "y")
    handle = start_worker(["q"], {"*": slow}, concurrency=1, prefetch=1)
    assert started.wait(10)
    handle.stop()
    assert handle.worker.processed == 1 and not handle.worker.abandoned
    assert _done(admin, "q", job.id)  # completed
    back = admin.job("q", waiting.id)  # taken but not started: handed back
    assert back is not None and back.state == "pending"


def test_the_shutdown_timeout_cancels_running_coroutines_and_hands_their_jobs_back(
    make_broker: Callable[..., Broker], admin: Admin, read_events: ReadEvents,
) -> None:  # fmt: skip
    broker = make_broker(shutdown_timeout=0.3)
    started, unwound = threading.Event(), threading.Event()

    async def hangs(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    job = Producer(broker).enqueue("q", "x")
    worker = Worker(broker, ["q"], {"*": hangs}, WorkerOptions(concurrency=2))
    exits: list[bool] = []
    worker.on_abandoned = lambda: exits.append(True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert started.wait(10)
    worker.stop()
    thread.join(20)
    assert not thread.is_alive()
    assert worker.abandoned and unwound.is_set()
    assert exits == []  # every handler ended: no need to exit the process
    back = admin.job("q", job.id)
    assert back is not None and back.state == "pending"
    assert _types(read_events("q"), job.id)[-1] == "job.requeued"
    assert not any(t.name == "rwq-event-loop" and t.is_alive() for t in threading.enumerate())


def test_a_mixed_worker_still_exits_at_the_shutdown_timeout(
    make_broker: Callable[..., Broker], admin: Admin,
) -> None:  # fmt: skip
    """A sync handler may still run when the coroutines are cancelled: the process exits."""
    broker = make_broker(shutdown_timeout=0.3)
    started = threading.Event()

    async def hangs(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    job = Producer(broker).enqueue("a", "x")
    worker = Worker(broker, ["a", "s"], {"a": hangs, "s": plain}, WorkerOptions(concurrency=2))
    exits: list[bool] = []
    worker.on_abandoned = lambda: exits.append(True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert started.wait(10)
    worker.stop()
    thread.join(20)
    assert exits == [True]
    back = admin.job("a", job.id)
    assert back is not None and back.state == "pending"


def test_async_handlers_run_in_the_children_under_process_isolation(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
    tmp_path: Path,
) -> None:  # fmt: skip
    where = tmp_path / "where"
    ok = producer.enqueue("q", {"do": "sleep", "seconds": 0, "where_file": str(where)})
    stuck = producer.enqueue("q", {"do": "sleep", "seconds": 60}, max_retries=0, timeout="200ms")
    failing = producer.enqueue("q", {"do": "raise"}, max_retries=0)
    handle = start_worker(["q"], {"*": behave}, isolation="process", max_jobs=3)
    handle.join(30)
    assert (handle.worker.processed, handle.worker.failed) == (1, 2)
    assert _done(admin, "q", ok.id)
    pid, thread = where.read_text().split()
    assert int(pid) != os.getpid() and thread == "MainThread"
    dead = {j.id: j.last_error for j in admin.peek("q", 10, target="dead")}
    assert dead[stuck.id] == (
        "JobTimeout: the handler ran past its timeout of 200ms (its process was killed)"
    )
    assert dead[failing.id] == "ValueError: bad input"
