"""Job timeouts: where they are set and which wins, a handler past its timeout in thread mode
(failed, abandoned, its late result refused) and under process isolation (killed, the child
replaced), and a crashing child. Every test runs on a standalone server and on the cluster."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from timeout_handlers import behave

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import Event
from rwq.queue.job import Job, JobError
from rwq.queue.producer import Producer
from rwq.queue.runner import JobRunner
from rwq.queue.worker import Worker, WorkerError, WorkerOptions

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]


def _types(events: list[Event], job_id: str) -> list[str]:
    return [e.type for e in events if e.data.get("job_id") == job_id]


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds stuck handlers in thread mode; opened at teardown so their threads end."""
    event = threading.Event()
    yield event
    event.set()


def _done(admin: Admin, queue: str, job_id: str) -> bool:
    """Whether the job completed (it is kept, with its result, for result_ttl)."""
    job = admin.job(queue, job_id)
    return job is not None and job.state == "completed"


def _dead(admin: Admin, queue: str, wait_until: WaitUntil) -> Job:
    return wait_until(lambda: admin.job(queue, _dead_id(admin, queue)), what="a dead letter")


def _dead_id(admin: Admin, queue: str) -> str:
    dead = admin.peek(queue, 1, target="dead")
    return dead[0].id if dead else ""


# -- where a timeout comes from ---------------------------------------------------------------


def test_a_job_carries_its_timeout_as_a_duration(producer: Producer, admin: Admin) -> None:
    job = producer.enqueue("q", 1, timeout="1.5m")
    assert job.timeout == 90.0
    stored = admin.job("q", job.id)
    assert stored is not None and stored.timeout == 90.0
    assert stored.to_dict()["timeout"] == 90.0
    assert producer.enqueue("q", 2, timeout=0.25).timeout == 0.25
    assert producer.enqueue("q", 3).timeout is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (0, "more than 0"),
        (-1, "must not be negative"),
        ("abc", "expected a duration"),
        ("0s", "more than 0"),
        (True, "expected a duration"),
        ("31d", "at most"),
        (float("nan"), "out of range"),
    ],
)
def test_a_bad_timeout_is_refused_by_name(producer: Producer, value: Any, needle: str) -> None:
    with pytest.raises(JobError, match=needle) as caught:
        producer.enqueue("q", 1, timeout=value)
    assert "timeout" in str(caught.value)


def test_the_job_wins_over_the_queue_setting_which_wins_over_the_worker(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker(queue_timeouts="slow=60s")
    worker = Worker(broker, ["slow", "q"], {"*": print}, WorkerOptions(timeout="5s"))
    runner: JobRunner = worker._runner
    own = Job("a", "slow", None, timeout=2.0)
    plain = Job("b", "slow", None)
    assert runner.timeout_of("slow", own) == 2.0
    assert runner.timeout_of("slow", plain) == 60.0
    assert runner.timeout_of("q", plain) == 5.0
    nothing = Worker(make_broker(), ["q"], {"*": print})._runner
    assert nothing.timeout_of("q", plain) is None
    assert nothing.timeout_of("q", own) == 2.0


def test_a_worker_refuses_a_bad_default_timeout_or_isolation(broker: Broker) -> None:
    with pytest.raises(WorkerError, match="timeout: must be more than 0"):
        Worker(broker, ["q"], {"*": print}, WorkerOptions(timeout=0))
    with pytest.raises(WorkerError, match="isolation: expected thread or process"):
        Worker(broker, ["q"], {"*": print}, WorkerOptions(isolation="fork"))
    with pytest.raises(WorkerError, match=r"handler of queue '\*'.*module-level function"):
        Worker(broker, ["q"], {"*": lambda job: None}, WorkerOptions(isolation="process"))


@pytest.mark.parametrize("concurrency", [1, 2])
def test_precedence_end_to_end(
    make_broker: Callable[..., Broker], start_worker: StartWorker, admin: Admin,
    wait_until: WaitUntil, gate: threading.Event, concurrency: int,
) -> None:  # fmt: skip
    broker = make_broker(queue_timeouts="roomy=60s")
    producer = Producer(broker)

    def handler(job: Job) -> None:
        if job.payload == "stuck":
            gate.wait(30)

    roomy = producer.enqueue("roomy", "stuck", max_retries=0)  # the queue's 60s: not yet
    tight = producer.enqueue("q", "stuck", max_retries=0)  # the worker's 50ms
    own = producer.enqueue("q", "quick", max_retries=0, timeout="60s")
    handle = start_worker(
        ["roomy", "q"], {"*": handler}, on=broker, timeout="50ms", concurrency=concurrency + 1
    )
    dead = wait_until(lambda: admin.job("q", tight.id) if _dead_id(admin, "q") else None)
    assert dead.state == "dead" and dead.last_error.startswith("JobTimeout:")
    assert "timeout of 50ms" in dead.last_error
    wait_until(lambda: _done(admin, "q", own.id), what="the job with its own timeout")
    held = admin.job("roomy", roomy.id)
    assert held is not None and held.state == "processing"
    gate.set()
    wait_until(lambda: _done(admin, "roomy", roomy.id), what="the roomy job completing")
    handle.stop()


# -- thread mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_handler_past_its_timeout_fails_then_is_retried_then_dead_lettered(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, gate: threading.Event, concurrency: int,
) -> None:  # fmt: skip
    job = producer.enqueue("q", "x", max_retries=1, timeout="50ms")
    handle = start_worker(["q"], {"*": lambda job: gate.wait(30)}, concurrency=concurrency)
    dead = _dead(admin, "q", wait_until)
    assert dead.id == job.id and dead.attempts == 2
    assert dead.last_error == (
        "JobTimeout: the handler ran past its timeout of 50ms (its thread was abandoned)"
    )
    events = read_events("q")
    assert _types(events, job.id) == [
        "job.enqueued",
        "job.started", "job.timed_out", "job.failed", "job.retried",
        "job.started", "job.timed_out", "job.failed", "job.dead_lettered",
    ]  # fmt: skip
    timed_out = [e for e in events if e.type == "job.timed_out"]
    assert [e.data["attempt"] for e in timed_out] == [1, 2]
    assert timed_out[0].data["timeout_ms"] == 50
    assert timed_out[0].data["handler"] == "abandoned"
    assert timed_out[0].data["worker"] == handle.worker.id
    assert timed_out[0].queue == "q"
    # The stuck threads no longer count as serving: the worker takes the next job.
    assert handle.worker._runner.abandoned == 2
    assert handle.worker._runner.inflight == 0
    later = producer.enqueue("q", "y", max_retries=0, timeout="60s")
    gate.set()  # the abandoned handlers return: their results are dropped
    wait_until(lambda: _done(admin, "q", later.id), what="the next job")
    wait_until(lambda: handle.worker._runner.abandoned == 0, what="abandoned threads ending")
    stats = admin.stats(["q"]).queues[0]
    assert (stats.completed_total, stats.dead) == (1, 1)
    assert broker_counter(admin, "q", "timed_out") == 2
    handle.stop()


def broker_counter(admin: Admin, queue: str, name: str) -> int:
    return int(admin.broker.client.hget(admin.broker.queue_keys(queue).counters, name) or 0)


def test_a_stopping_worker_fails_a_stuck_handler_at_its_timeout_instead_of_waiting(
    make_broker: Callable[..., Broker], admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, gate: threading.Event,
) -> None:  # fmt: skip
    """Stopped while a handler hangs, the worker drains: the handler's timeout fails the job
    long before the shutdown timeout (60 s here), and the worker stops without abandoning."""
    broker = make_broker(shutdown_timeout=60.0)
    started = threading.Event()

    def handler(job: Job) -> None:
        started.set()
        gate.wait(30)

    job = Producer(broker).enqueue("q", "x", max_retries=0, timeout="200ms")
    worker = Worker(broker, ["q"], {"*": handler}, WorkerOptions(concurrency=2))
    worker.on_abandoned = lambda: None
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert started.wait(10)
    worker.stop()
    thread.join(20)
    assert not thread.is_alive() and not worker.abandoned
    assert _types(read_events("q"), job.id)[-3:] == [
        "job.timed_out", "job.failed", "job.dead_lettered"
    ]  # fmt: skip


def test_the_abandoned_handlers_late_result_is_discarded(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, gate: threading.Event,
) -> None:  # fmt: skip
    returned = threading.Event()

    def handler(job: Job) -> None:
        if job.attempts == 1:  # the first run hangs past its timeout, then returns
            gate.wait(30)
            returned.set()

    job = producer.enqueue("q", "x", max_retries=1, timeout="100ms")
    handle = start_worker(["q"], {"*": handler}, concurrency=2)
    wait_until(lambda: _done(admin, "q", job.id), what="the second run completing")
    gate.set()
    wait_until(returned.is_set)
    wait_until(lambda: handle.worker._runner.abandoned == 0, what="the late handler returning")
    handle.stop()
    events = [e for e in read_events("q") if e.data.get("job_id") == job.id]
    completed = [e for e in events if e.type == "job.completed"]
    assert [e.data["attempt"] for e in completed] == [2]
    assert [e.data["attempt"] for e in events if e.type == "job.timed_out"] == [1]
    assert handle.worker.processed == 1 and handle.worker.failed == 1


def test_a_late_result_of_an_earlier_attempt_is_refused_by_the_script(
    producer: Producer, broker: Broker,
) -> None:  # fmt: skip
    job = producer.enqueue("q", 1, max_retries=2)
    assert broker.fetch("q", "w1", 1).jobs[0].attempts == 1
    timeout = Failure(job.id, 100.0, "JobTimeout: x", attempt=1, timeout=0.1, stopped="abandoned")
    assert broker.fail("q", "w1", [timeout]) == ["retried"]
    broker.client.zadd(broker.queue_keys("q").scheduled, {job.id: 0})  # due now
    assert broker.fetch("q", "w1", 1).jobs[0].attempts == 2  # the same worker runs it again
    # The abandoned first run returns: neither its success nor its failure is recorded.
    assert broker.complete("q", "w1", [(job.id, 1.0, 1)]) == [0]
    assert broker.fail("q", "w1", [Failure(job.id, 1.0, "late", attempt=1)]) == [""]
    assert broker.complete("q", "w1", [(job.id, 1.0, 2)]) == [1]


# -- process isolation ------------------------------------------------------------------------


def test_process_isolation_kills_a_stuck_handler_and_keeps_serving(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, tmp_path: Path,
) -> None:  # fmt: skip
    pid_file = tmp_path / "pid"
    stuck = producer.enqueue(
        "q", {"do": "spin", "pid_file": str(pid_file)}, max_retries=0, timeout="300ms"
    )
    handle = start_worker(["q"], {"*": behave}, isolation="process")
    dead = _dead(admin, "q", wait_until)
    assert dead.id == stuck.id
    assert dead.last_error == (
        "JobTimeout: the handler ran past its timeout of 300ms (its process was killed)"
    )
    killed = int(pid_file.read_text())
    assert not _alive(killed)
    [event] = [e for e in read_events("q") if e.type == "job.timed_out"]
    assert (event.data["handler"], event.data["timeout_ms"]) == ("killed", 300)
    # A new child serves the next jobs.
    after = tmp_path / "pid2"
    fine = producer.enqueue("q", {"do": "sleep", "seconds": 0, "pid_file": str(after)})
    wait_until(lambda: _done(admin, "q", fine.id), what="the next job")
    assert int(after.read_text()) not in (killed, os.getpid())
    handle.stop()


@pytest.mark.parametrize(
    ("action", "how"), [("exit", "exit status 3"), ("segfault", "killed by SIGSEGV")]
)
def test_a_crashing_child_fails_its_job_and_the_worker_survives(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
    action: str, how: str,
) -> None:  # fmt: skip
    crash = producer.enqueue("q", {"do": action}, max_retries=0)
    handle = start_worker(["q"], {"*": behave}, isolation="process", concurrency=2)
    dead = _dead(admin, "q", wait_until)
    assert dead.id == crash.id
    assert dead.last_error == (
        f"HandlerCrashed: the handler's process died ({how}) while running the job"
    )
    fine = producer.enqueue("q", {"do": "sleep", "seconds": 0})
    wait_until(lambda: _done(admin, "q", fine.id), what="the next job")
    assert handle.thread.is_alive()
    handle.stop()


@pytest.mark.parametrize("action", ["spin", "exit"])
def test_jobs_handed_to_a_child_after_one_that_is_killed_or_crashes_run_in_the_next(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, action: str,
) -> None:  # fmt: skip
    """A child gets the jobs waiting for it in one message: those after the one it was
    stopped or died in were never started, and run in its replacement."""
    bad = producer.enqueue("q", {"do": action}, max_retries=0, timeout="300ms")
    good = [producer.enqueue("q", {"do": "sleep", "seconds": 0}) for _ in range(5)]
    start_worker(["q"], {"*": behave}, isolation="process", prefetch=10)
    wait_until(lambda: all(_done(admin, "q", j.id) for j in good), what="the others")
    dead = admin.job("q", bad.id)
    assert dead is not None and dead.state == "dead"
    events = read_events("q")
    assert {e.data["job_id"] for e in events if e.type == "job.failed"} == {bad.id}
    assert all(e.data["attempt"] == 1 for e in events if e.type == "job.completed")


def test_a_child_that_died_while_idle_is_replaced_without_failing_the_next_job(
    producer: Producer, start_worker: StartWorker, admin: Admin, read_events: ReadEvents,
    wait_until: WaitUntil, tmp_path: Path,
) -> None:  # fmt: skip
    pid_file = tmp_path / "pid"
    first = producer.enqueue("q", {"do": "sleep", "seconds": 0, "pid_file": str(pid_file)})
    start_worker(["q"], {"*": behave}, isolation="process")
    wait_until(lambda: _done(admin, "q", first.id), what="the first job")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the OOM killer, say
    second = producer.enqueue("q", {"do": "sleep", "seconds": 0})
    wait_until(lambda: _done(admin, "q", second.id), what="the second job")
    assert not [e for e in read_events("q") if e.type == "job.failed"]


def test_a_child_is_replaced_after_child_max_jobs(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
    tmp_path: Path,
) -> None:  # fmt: skip
    files = [tmp_path / f"pid{n}" for n in range(5)]
    jobs = [producer.enqueue("q", {"do": "sleep", "seconds": 0, "pid_file": str(f)}) for f in files]
    handle = start_worker(["q"], {"*": behave}, isolation="process", child_max_jobs=2)
    wait_until(lambda: all(_done(admin, "q", j.id) for j in jobs), what="five jobs")
    pids = [int(f.read_text()) for f in files]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert handle.worker._runner._pool.started >= 3
    assert not _alive(pids[0])
    with pytest.raises(WorkerError, match=r"child_max_jobs: .*under isolation process"):
        Worker(admin.broker, ["q"], {"*": behave}, WorkerOptions(child_max_jobs=2))


def test_a_child_reports_errors_and_permanent_failures_as_the_worker_does(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil,
) -> None:  # fmt: skip
    retried = producer.enqueue("q", {"do": "raise"}, max_retries=1)
    permanent = producer.enqueue("q", {"do": "permanent"}, max_retries=5)
    start_worker(["q"], {"*": behave}, isolation="process")
    wait_until(lambda: len(admin.peek("q", 5, target="dead")) == 2, what="two dead letters")
    first, second = admin.job("q", retried.id), admin.job("q", permanent.id)
    assert first is not None and second is not None
    assert (first.attempts, first.last_error) == (2, "ValueError: bad input")
    assert first.traceback is not None and "ValueError: bad input" in first.traceback
    assert (second.attempts, second.last_error) == (1, "PermanentFailure: never works")


def test_a_handler_module_a_child_cannot_import_stops_the_worker_at_start(
    broker: Broker, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("queue")])
    worker = Worker(broker, ["q"], {"*": behave}, WorkerOptions(isolation="process"))
    with pytest.raises(WorkerError, match=r"cannot start the handler processes.*timeout_handlers"):
        worker.run(max_jobs=1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
