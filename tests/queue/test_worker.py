"""The worker: handlers, queue priority, retries, dead letters, pause, concurrency, stop,
idempotent acks and the circuit breaker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from rwq.queue.admin import Admin
from rwq.queue.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import Event
from rwq.queue.job import Job
from rwq.queue.producer import JobSpec, Producer
from rwq.queue.reaper import reap
from rwq.queue.runner import backoff_ms
from rwq.queue.worker import PermanentFailure, Worker, WorkerError, WorkerOptions

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]  # conftest.start_worker -> RunningWorker
WaitUntil = Callable[..., Any]


def _types(events: list[Event], job_id: str) -> list[str]:
    return [e.type for e in events if e.data.get("job_id") == job_id]


def _stats(admin: Admin, queue: str) -> Any:
    return admin.stats([queue]).queues[0]


# -- configuration --------------------------------------------------------------------------


def test_a_worker_needs_queues_and_a_handler_for_each(broker: Broker) -> None:
    with pytest.raises(WorkerError, match="at least one queue"):
        Worker(broker, [], {"*": print})
    with pytest.raises(WorkerError, match=r"no handler for queue\(s\) b, c \(and no '\*'\)"):
        Worker(broker, ["a", "b", "c"], {"a": print})
    with pytest.raises(WorkerError, match="concurrency must be at least 1"):
        Worker(broker, ["a"], {"*": print}, WorkerOptions(concurrency=0))


def test_backoff_doubles_per_attempt_with_jitter_up_to_the_cap() -> None:
    for attempt, (low, high) in {1: (500, 1000), 2: (1000, 2000), 4: (4000, 8000)}.items():
        assert all(low <= backoff_ms(attempt, 1.0, 100.0) <= high for _ in range(50))
    assert all(5000 <= backoff_ms(30, 1.0, 10.0) <= 10_000 for _ in range(50))


# -- running handlers -----------------------------------------------------------------------


def test_handlers_are_chosen_by_queue_with_star_as_fallback(
    producer: Producer, start_worker: StartWorker
) -> None:
    seen: list[tuple[str, str, Any]] = []
    producer.enqueue("mail", "m")
    producer.enqueue("sms", "s")
    start_worker(
        ["mail", "sms"],
        {
            "mail": lambda job: seen.append(("mail", job.queue, job.payload)),
            "*": lambda job: seen.append(("*", job.queue, job.payload)),
        },
        max_jobs=2,
    ).join()
    assert sorted(seen) == [("*", "sms", "s"), ("mail", "mail", "m")]


def test_a_handler_gets_the_whole_job(producer: Producer, start_worker: StartWorker) -> None:
    got: list[Job] = []
    sent = producer.enqueue("q", {"n": 1}, priority=8, tenant="acme", trace_id="t", max_retries=1)
    start_worker(["q"], {"q": got.append}, max_jobs=1).join()
    (job,) = got
    assert (job.id, job.payload, job.priority, job.tenant, job.trace_id) == (
        sent.id,
        {"n": 1},
        8,
        "acme",
        "t",
    )
    assert (job.attempts, job.max_retries, job.state, job.queue) == (1, 1, "processing", "q")
    assert job.worker is not None and job.started_at is not None


def test_success_moves_the_job_to_the_completed_history(
    producer: Producer, admin: Admin, start_worker: StartWorker, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", "p")
    handle = start_worker(["q"], {"q": lambda job: None}, max_jobs=1)
    handle.join()
    (done,) = admin.peek("q", 5, "completed")
    assert (done.id, done.state, done.payload, done.attempts) == (job.id, "completed", "p", 1)
    assert done.duration_ms is not None and done.finished_at is not None
    kept = admin.job("q", job.id)  # kept for result_ttl, findable by its id
    assert kept is not None and (kept.state, kept.result) == ("completed", None)
    stats = _stats(admin, "q")
    assert (stats.pending, stats.processing, stats.completed_total) == (0, 0, 1)
    assert _types(read_events("q"), job.id) == ["job.enqueued", "job.started", "job.completed"]
    assert handle.worker.processed == 1


def test_higher_priority_queues_are_served_first(
    producer: Producer, start_worker: StartWorker
) -> None:
    producer.enqueue_many("low", ["l1", "l2", "l3"])
    producer.enqueue_many("high", ["h1", "h2", "h3"])
    order: list[str] = []
    start_worker(["high", "low"], {"*": lambda job: order.append(job.payload)}, max_jobs=6).join()
    assert order == ["h1", "h2", "h3", "l1", "l2", "l3"]


def test_an_empty_high_queue_does_not_stall_a_lower_one(
    producer: Producer, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    done: list[str] = []
    # A long idle wait: only the wake-up published by enqueue can make the worker look again.
    handle = start_worker(["high", "low"], {"*": lambda job: done.append(job.payload)},
                          idle_wait=60.0)  # fmt: skip
    wait_until(lambda: handle.worker._lease.state == "running", what="the worker to start")
    producer.enqueue("low", "only-low")
    wait_until(lambda: done == ["only-low"], what="the low job to run")
    producer.enqueue("high", "then-high")
    wait_until(lambda: done == ["only-low", "then-high"], what="the high job to run")


def test_a_failure_is_retried_through_the_scheduled_set_with_backoff(
    make_broker: Callable[..., Broker], start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    broker = make_broker(backoff_base=60.0, backoff_max=600.0)
    producer, admin = Producer(broker), Admin(broker)
    job = producer.enqueue("q", "p", max_retries=2)

    def fail(job: Job) -> None:
        raise ValueError("boom")

    before = time.time() * 1000
    start_worker(["q"], {"q": fail}, on=broker, max_jobs=1).join()
    stored = admin.job("q", job.id)
    assert stored is not None
    assert (stored.state, stored.attempts, stored.last_error) == (
        "scheduled",
        1,
        "ValueError: boom",
    )
    assert stored.run_at is not None
    assert before + 30_000 <= stored.run_at <= time.time() * 1000 + 60_000  # 60 s, jittered
    score = broker.client.zscore(broker.queue_keys("q").scheduled, job.id)
    assert score == stored.run_at
    stats = _stats(admin, "q")
    assert (stats.pending, stats.scheduled, stats.failed_total, stats.retried_total) == (0, 1, 1, 1)


def test_retries_then_dead_letters_with_error_traceback_and_attempts(
    producer: Producer, admin: Admin, start_worker: StartWorker, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", "p", max_retries=2)
    runs: list[int] = []

    def fail(job: Job) -> None:
        runs.append(job.attempts)
        raise ValueError(f"boom {job.attempts}")

    start_worker(["q"], {"q": fail}, max_jobs=3).join()
    assert runs == [1, 2, 3]  # the first run and two retries
    page = admin.dlq_list(queue="q")
    (dead,) = page.jobs
    assert (dead.id, dead.state, dead.attempts) == (job.id, "dead", 3)
    assert dead.last_error == "ValueError: boom 3"
    assert dead.traceback is not None
    assert dead.traceback.startswith("Traceback (most recent call last)")
    assert "ValueError: boom 3" in dead.traceback
    assert dead.dead_at is not None
    assert _types(read_events("q"), job.id) == [
        "job.enqueued",
        *(["job.started", "job.failed", "job.retried"] * 2),
        "job.started",
        "job.failed",
        "job.dead_lettered",
    ]
    stats = _stats(admin, "q")
    assert (stats.dead, stats.scheduled, stats.pending) == (1, 0, 0)
    assert (stats.failed_total, stats.retried_total, stats.dead_total) == (3, 2, 1)


def test_permanent_failure_dead_letters_at_once(
    producer: Producer, admin: Admin, start_worker: StartWorker, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", "p", max_retries=5)

    def refuse(job: Job) -> None:
        raise PermanentFailure("bad input")

    start_worker(["q"], {"q": refuse}, max_jobs=1).join()
    (dead,) = admin.peek("q", 5, "dead")
    assert (dead.id, dead.attempts, dead.last_error) == (job.id, 1, "PermanentFailure: bad input")
    assert _types(read_events("q"), job.id)[-2:] == ["job.failed", "job.dead_lettered"]
    assert _stats(admin, "q").retried_total == 0


def test_max_retries_zero_dead_letters_on_the_first_failure(
    producer: Producer, admin: Admin, start_worker: StartWorker
) -> None:
    producer.enqueue("q", "p", max_retries=0)
    start_worker(["q"], {"q": lambda job: 1 / 0}, max_jobs=1).join()
    (dead,) = admin.peek("q", 5, "dead")
    assert dead.last_error == "ZeroDivisionError: division by zero"


# -- pause and resume -----------------------------------------------------------------------


def test_a_paused_queue_is_skipped_and_resume_wakes_the_worker(
    producer: Producer, admin: Admin, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    producer.enqueue("other", "warm-up")  # registers both queues
    producer.enqueue("q", "before")
    assert admin.pause("q") is True
    assert admin.pause("q") is False  # already paused
    producer.enqueue("q", "while-paused")  # enqueue still works
    done: list[str] = []
    handle = start_worker(["q", "other"], {"*": lambda job: done.append(job.payload)},
                          idle_wait=60.0)  # fmt: skip
    wait_until(lambda: done == ["warm-up"], what="the other queue's job")
    producer.enqueue("other", "second")  # proves the worker went round the loop again
    wait_until(lambda: done == ["warm-up", "second"], what="the second job")
    stats = _stats(admin, "q")
    assert (stats.paused, stats.pending) == (True, 2)
    assert admin.resume("q") is True
    wait_until(lambda: len(done) == 4, what="the resumed queue's jobs")
    assert done[2:] == ["before", "while-paused"]
    assert _stats(admin, "q").paused is False
    assert handle.worker.processed == 4


# -- concurrency and stopping ---------------------------------------------------------------


def test_concurrency_runs_handlers_in_parallel(
    producer: Producer, admin: Admin, start_worker: StartWorker
) -> None:
    together = threading.Barrier(4, timeout=10)
    threads: set[str] = set()

    def meet(job: Job) -> None:
        threads.add(threading.current_thread().name)
        together.wait()  # breaks (and the job fails) unless 4 handlers run at once

    producer.enqueue_many("q", range(8))
    handle = start_worker(["q"], {"q": meet}, concurrency=4, max_jobs=8, idle_wait=0.05)
    handle.join(20)
    assert (handle.worker.processed, handle.worker.failed) == (8, 0)
    assert len(threads) == 4
    stats = _stats(admin, "q")
    assert (stats.pending, stats.processing, stats.completed_total) == (0, 0, 8)


def test_stop_returns_unstarted_jobs_without_counting_the_attempt(
    producer: Producer,
    admin: Admin,
    broker: Broker,
    start_worker: StartWorker,
    read_events: ReadEvents,
) -> None:
    jobs = producer.enqueue_many("q", ["first", "b", "c", "d", "e"])
    holder: list[Any] = []
    ran: list[str] = []

    def stop_at_once(job: Job) -> None:
        ran.append(job.payload)
        holder[0].worker.stop()

    # prefetch=3: the worker holds 4 jobs, runs the first, then is asked to stop.
    holder.append(start_worker(["q"], {"q": stop_at_once}, prefetch=3))
    holder[0].join()
    assert ran == ["first"]
    assert [j.id for j in admin.peek("q", 10, "completed")] == [jobs[0].id]
    pending = admin.peek("q", 10)
    assert [j.id for j in pending] == [j.id for j in jobs[1:]]
    assert [j.attempts for j in pending] == [0, 0, 0, 0]
    events = read_events("q")
    requeued = [e for e in events if e.type == "job.requeued"]
    assert sorted(e.data["job_id"] for e in requeued) == sorted(j.id for j in jobs[1:4])
    assert {e.data["reason"] for e in requeued} == {"shutdown"}
    # It signed off: no registration or heartbeat left behind.
    assert broker.client.hlen(broker.keys.workers) == 0
    assert broker.client.exists(broker.keys.heartbeat(holder[0].worker.id)) == 0


def test_stop_with_a_pool_finishes_running_jobs_and_returns_the_rest(
    producer: Producer, admin: Admin, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    jobs = producer.enqueue_many("q", range(6))
    release = threading.Event()
    ran: list[int] = []

    def block(job: Job) -> None:
        ran.append(job.payload)
        assert release.wait(10)

    # Two slots plus two prefetched: two run, two wait in the pool, two stay pending.
    handle = start_worker(["q"], {"q": block}, concurrency=2, prefetch=2)
    wait_until(lambda: len(ran) == 2, what="two running handlers")
    handle.worker.stop()
    release.set()
    handle.join()
    assert sorted(ran) == [0, 1]
    stats = _stats(admin, "q")
    assert (stats.completed_total, stats.pending, stats.processing) == (2, 4, 0)
    pending = admin.peek("q", 10)
    assert [j.id for j in pending] == [j.id for j in jobs[2:]]
    assert {j.attempts for j in pending} == {0}


# -- idempotent results ---------------------------------------------------------------------


def test_completing_a_job_twice_is_a_no_op(
    producer: Producer, broker: Broker, admin: Admin, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", "p")
    assert [j.id for j in broker.fetch("q", "w1", 1).jobs] == [job.id]
    assert broker.complete("q", "w1", [(job.id, 1.0)]) == [1]
    assert broker.complete("q", "w1", [(job.id, 1.0)]) == [0]
    assert broker.fail("q", "w1", [Failure(job.id, 1.0, "late")]) == [""]
    assert _stats(admin, "q").completed_total == 1
    assert len(admin.peek("q", 10, "completed")) == 1
    assert _types(read_events("q"), job.id).count("job.completed") == 1


def test_a_result_for_a_job_held_by_another_worker_is_a_no_op(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    job = producer.enqueue("q", "p")
    broker.fetch("q", "w1", 1)
    assert broker.complete("q", "w2", [(job.id, 1.0)]) == [0]
    assert [j.id for j in admin.peek("q", 5, "processing")] == []  # w1 is not registered
    assert broker.client.zrange(broker.queue_keys("q").processing("w1"), 0, -1) == [job.id]


def test_results_after_the_job_was_reaped_are_no_ops(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    job = producer.enqueue("q", "p")
    lost = Worker(broker, ["q"], {"q": print}, WorkerOptions(name="lost"))
    broker.client.hset(broker.keys.workers, lost.id, '{"queues": ["q"]}')  # no heartbeat
    broker.fetch("q", lost.id, 1)
    reaped = reap(broker)
    assert reaped is not None and reaped.workers == ["lost"]
    assert broker.complete("q", lost.id, [(job.id, 1.0)]) == [0]
    assert broker.fail("q", lost.id, [Failure(job.id, 1.0, "late")]) == [""]
    (pending,) = admin.peek("q", 5)
    assert (pending.id, pending.state, pending.attempts) == (job.id, "pending", 1)
    assert _stats(admin, "q").completed_total == 0


def test_a_lost_reply_to_a_result_does_not_complete_twice(
    producer: Producer,
    broker: Broker,
    admin: Admin,
    start_worker: StartWorker,
    read_events: ReadEvents,
    wait_until: WaitUntil,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = producer.enqueue("q", "p")
    real_complete = broker.complete
    calls: list[int] = []

    def complete_then_drop_the_reply(*args: Any, **kwargs: Any) -> Any:
        result = real_complete(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("reply lost")
        return result

    # The worker pipelines its results; run them one at a time so the fault hits one call.
    monkeypatch.setattr(broker, "complete", complete_then_drop_the_reply)
    monkeypatch.setattr(broker.client, "pipeline", lambda **kw: _Immediate(broker.client))
    handle = start_worker(["q"], {"q": lambda job: None})
    wait_until(lambda: len(calls) == 2, what="the result to be recorded again")
    handle.stop()
    assert _types(read_events("q"), job.id).count("job.completed") == 1
    assert _stats(admin, "q").completed_total == 1


def test_a_lost_reply_to_a_fetch_does_not_strand_the_job(
    producer: Producer,
    broker: Broker,
    admin: Admin,
    start_worker: StartWorker,
    wait_until: WaitUntil,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_fetch = broker.fetch
    faults: list[int] = []

    def fetch_then_drop_the_reply(*args: Any, **kwargs: Any) -> Any:
        fetched = real_fetch(*args, **kwargs)
        if fetched.jobs and not faults:
            faults.append(1)
            raise redis.ConnectionError("reply lost")
        return fetched

    monkeypatch.setattr(broker, "fetch", fetch_then_drop_the_reply)
    done: list[str] = []
    producer.enqueue("q", "p")
    start_worker(["q"], {"q": lambda job: done.append(job.payload)}, idle_wait=0.05)
    wait_until(lambda: done == ["p"], what="the job whose fetch reply was lost")
    assert faults == [1]
    wait_until(lambda: _stats(admin, "q").completed_total == 1, what="its completion")


class _Immediate:
    """A stand-in pipeline that runs each command as it is queued."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._results: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        command = getattr(self._client, name)

        def queue(*args: Any, **kwargs: Any) -> None:
            self._results.append(command(*args, **kwargs))

        return queue

    def execute(self) -> list[Any]:
        results, self._results = self._results, []
        return results


# -- registration ---------------------------------------------------------------------------


def test_a_running_worker_is_registered_with_a_heartbeat(
    make_broker: Callable[..., Broker],
    start_worker: StartWorker,
    wait_until: WaitUntil,
) -> None:
    broker = make_broker(heartbeat_interval=0.05)
    admin = Admin(broker)
    handle = start_worker(["a", "b"], {"*": print}, on=broker, concurrency=2, name="w-1")
    (info,) = wait_until(lambda: [w for w in admin.workers() if w.state == "running"])
    assert (info.id, info.queues, info.concurrency, info.alive) == ("w-1", ["a", "b"], 2, True)
    assert broker.queues() == ["a", "b"]
    handle.stop()
    assert admin.workers() == []


def test_a_live_worker_that_was_reaped_registers_again(
    make_broker: Callable[..., Broker], start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    # E.g. Redis was unreachable for longer than the heartbeat TTL: another worker's reaper
    # forgot this one. If it stayed forgotten, jobs it takes later could never be reaped.
    broker = make_broker(heartbeat_interval=0.05)
    handle = start_worker(["q"], {"q": print}, on=broker, name="w-1")
    keys = broker.keys
    # Its loop reaps once at start (taking the lock for reaper_interval); wait for that.
    wait_until(lambda: broker.client.exists(keys.reaper_lock), what="the worker's first reap")
    broker.client.delete(keys.heartbeat("w-1"), keys.reaper_lock)  # as if expired
    assert reap(broker) is not None
    assert broker.client.hexists(keys.workers, "w-1") == 0
    wait_until(lambda: broker.client.hexists(keys.workers, "w-1"), what="re-registration")
    handle.stop()


# -- the circuit breaker --------------------------------------------------------------------


def test_the_breaker_stops_taking_from_a_failing_queue_until_a_probe_succeeds(
    producer: Producer,
    broker: Broker,
    admin: Admin,
    start_worker: StartWorker,
    wait_until: WaitUntil,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    policy = BreakerPolicy(failure_ratio=0.5, window=60, min_calls=4, cooldown=10)
    fetches: list[tuple[str, int]] = []
    real_fetch = broker.fetch

    def spy(queue: str, worker_id: str, count: int, client: Any = None) -> Any:
        fetches.append((queue, count))
        return real_fetch(queue, worker_id, count, client)

    monkeypatch.setattr(broker, "fetch", spy)
    healthy = threading.Event()

    def flaky(job: Job) -> None:
        if not healthy.is_set():
            raise RuntimeError("downstream is down")

    producer.enqueue("other", "tick")  # registers the queue before the worker starts
    handle = start_worker(
        ["flaky", "other"], {"*": flaky}, breaker=policy, idle_wait=0.02, name="w-b"
    )
    breaker = CircuitBreaker(policy, clock=lambda: now[0])
    handle.worker.breakers["flaky"] = breaker  # before any flaky job exists
    producer.enqueue_many("flaky", [JobSpec(i, max_retries=0) for i in range(4)])
    wait_until(lambda: breaker.state is BreakerState.OPEN, what="the breaker to open")
    wait_until(lambda: _stats(admin, "flaky").dead == 4, what="four dead letters")

    producer.enqueue_many("flaky", ["a", "b"])
    seen = len(fetches)
    # The loop keeps polling the other queue but leaves the flaky one alone.
    wait_until(lambda: [q for q, _ in fetches[seen:]].count("other") >= 3, what="3 loops")
    assert "flaky" not in [q for q, _ in fetches[seen:]]
    assert _stats(admin, "flaky").pending == 2

    healthy.set()
    seen = len(fetches)
    now[0] = 11.0  # the cooldown passed: half-open, one probe
    wait_until(lambda: breaker.state is BreakerState.CLOSED, what="the probe to close it")
    assert next(c for q, c in fetches[seen:] if q == "flaky") == 1
    wait_until(lambda: _stats(admin, "flaky").completed_total == 2, what="the rest to run")


def test_heartbeat_continues_during_a_long_graceful_drain(
    make_broker: Callable[..., Broker], producer: Producer, wait_until: WaitUntil
) -> None:
    """A stop request must not end the lease while running jobs finish."""
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.3)
    release = threading.Event()
    started = threading.Event()

    def slow(job: Job) -> None:
        started.set()
        release.wait(5)

    producer.enqueue("drain", 1)
    worker = Worker(broker, ["drain"], {"drain": slow}, WorkerOptions(concurrency=2))
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    assert started.wait(5)
    worker.stop()
    time.sleep(0.6)  # twice the TTL: without heartbeats the lease would be gone
    assert broker.client.exists(broker.keys.heartbeat(worker.id))
    release.set()
    runner.join(10)
    assert not runner.is_alive()
    assert broker.client.hget(broker.keys.queue("drain").counters, "processed") == "1"


def test_a_handlers_unprintable_error_does_not_stop_the_worker(
    make_broker: Callable[..., Broker],
) -> None:
    """An error text with a lone surrogate (a payload's "\\ud800") or an exception whose str()
    raises killed the worker with UnicodeEncodeError / the exception itself."""
    broker = make_broker()
    producer = Producer(broker)

    class Unreadable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def handler(job: Job) -> None:
        if job.payload["n"] == 0:
            raise ValueError("bad " + job.payload["text"])
        raise Unreadable

    producer.enqueue_many("q", [JobSpec({"n": n, "text": "\ud800"}, max_retries=0) for n in (0, 1)])
    worker = Worker(broker, ["q"], {"q": handler})
    worker.run(max_jobs=2, duration=20)
    assert worker.failed == 2
    dead = Admin(broker).dlq_list().jobs
    errors = sorted(j.last_error or "" for j in dead)
    assert errors == [
        "Unreadable: <Unreadable whose message cannot be read>",
        "ValueError: bad \\ud800",
    ]


def test_a_result_whose_reply_was_lost_is_not_called_reaped(
    make_broker: Callable[..., Broker], caplog: pytest.LogCaptureFixture
) -> None:
    """The worker warned "stale (job reaped)" when its ack went through but the reply was
    lost and the retry found the job done: it says what happened."""
    broker = make_broker()
    Producer(broker).enqueue_many("q", [1, 2])
    real = broker.execute
    lost = [True]

    def lossy(build: Callable[[Any], object]) -> list[Any]:
        result = real(build)  # it ran on the server...
        if lost:
            lost.clear()
            raise redis.ConnectionError("the reply was lost")  # ...but no answer came back
        return result

    broker.execute = lossy  # type: ignore[method-assign]
    worker = Worker(broker, ["q"], {"q": lambda job: None})
    with caplog.at_level("INFO", logger="rwq.queue.worker"):
        worker.run(duration=2)  # the lost reply is never counted: no max_jobs
    messages = [r.getMessage() for r in caplog.records]
    assert any("recorded already: the reply to the previous attempt was lost" in m
               for m in messages), messages  # fmt: skip
    assert not any("reaped" in m for m in messages)
    assert Admin(broker).stats(["q"]).queues[0].completed_total == 2
