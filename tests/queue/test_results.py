"""Job results and lookup: a handler's return value kept with the completed job for
``result_ttl``, capped at ``result_max_bytes``; finding a job by its id; waiting for a job to
end on the server (``JobHandle.result``). Every test runs on a standalone server and on the
cluster."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from result_handlers import answer, answer_async

from rwq.errors import RwqError
from rwq.queue.admin import Admin, UnknownQueue
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import Event
from rwq.queue.handle import (
    JobCancelled,
    JobFailed,
    JobHandle,
    JobNotFound,
    ResultNotKept,
    WaitTimeout,
    wait_for_job,
)
from rwq.queue.job import Job, JobError, encode_result
from rwq.queue.producer import JobSpec, Producer

StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]
ReadEvents = Callable[[str], list[Event]]


def _complete(broker: Broker, queue: str, result: Any = None) -> Job:
    """Take the next job of ``queue`` and complete it with ``result``, as a worker does."""
    (job,) = broker.fetch(queue, "w1", 1).jobs
    text, note = encode_result(result, broker.settings.result_max_bytes)
    ttl_ms = -1 if job.result_ttl is None else round(job.result_ttl * 1000)
    assert broker.complete(queue, "w1", [(job.id, 2.0, job.attempts, text, note, ttl_ms)]) == [1]
    return job


def _waiters(broker: Broker, queue: str, job_id: str) -> int:
    return int(broker.client.hget(broker.queue_keys(queue).job(job_id), "waiters") or 0)


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="waiter") as executor:
        yield executor


def _waiting(
    pool: ThreadPoolExecutor, broker: Broker, handle: JobHandle, wait_until: WaitUntil, n: int = 1
) -> list[Future[Any]]:
    """``n`` threads blocked in ``handle.result()``, each counted by the server."""
    futures = [pool.submit(handle.result, 30) for _ in range(n)]
    wait_until(lambda: _waiters(broker, handle.queue, handle.id) == n, what="the waiters")
    return futures


# -- results kept ---------------------------------------------------------------------------


def test_a_handlers_return_value_is_kept_with_the_completed_job(
    producer: Producer, admin: Admin, broker: Broker, start_worker: StartWorker
) -> None:
    handle = producer.enqueue("q", {"do": "echo", "n": 1})
    start_worker(["q"], {"*": answer}, max_jobs=1).join()
    job = admin.find_job(handle.id)
    assert job is not None and job.state == "completed" and job.queue == "q"
    assert job.result["echo"] == {"do": "echo", "n": 1}
    assert job.finished_at is not None and job.duration_ms is not None
    assert handle.result(timeout=10) == job.result
    assert handle.status() == "completed"
    assert job.to_dict()["result"] == job.result
    ttl_ms = broker.client.pttl(broker.queue_keys("q").job(handle.id))
    assert 0 < ttl_ms <= 3600 * 1000  # the default result_ttl: one hour
    # The history record stays small: no result, no waiter count.
    (record,) = broker.client.lrange(broker.queue_keys("q").completed, 0, -1)
    assert "result" not in json.loads(record) and "waiters" not in json.loads(record)


def test_a_job_that_returns_nothing_completes_with_no_result(
    producer: Producer, start_worker: StartWorker
) -> None:
    handle = producer.enqueue("q", {"do": "nothing"})
    start_worker(["q"], {"*": answer}, max_jobs=1).join()
    assert handle.result(timeout=10) is None
    assert handle.fetch().result_error is None


def test_results_expire_after_result_ttl_the_job_s_own_first(
    make_broker: Callable[..., Broker], wait_until: WaitUntil
) -> None:
    broker = make_broker(result_ttl=600.0)
    producer, admin = Producer(broker), Admin(broker)
    own = producer.enqueue("q", 1, result_ttl="50ms")
    default = producer.enqueue("q", 2)
    assert own.result_ttl == 0.05 and default.result_ttl is None
    _complete(broker, "q", "first")
    _complete(broker, "q", "second")
    assert 0 < broker.client.pttl(broker.queue_keys("q").job(default.id)) <= 600_000
    wait_until(lambda: admin.find_job(own.id) is None, what="the short result to expire")
    with pytest.raises(JobNotFound, match="result_ttl"):
        own.result(timeout=1)
    assert default.result(timeout=1) == "second"


def test_a_worker_keeps_each_result_for_its_job_s_result_ttl(
    producer: Producer, admin: Admin, broker: Broker, start_worker: StartWorker
) -> None:
    kept = producer.enqueue("q", {"do": "echo"}, result_ttl="2h")
    dropped = producer.enqueue("q", {"do": "echo"}, result_ttl=0)
    start_worker(["q"], {"*": answer}, max_jobs=2).join()
    assert 3600 * 1000 < broker.client.pttl(broker.queue_keys("q").job(kept.id)) <= 7200 * 1000
    assert admin.find_job(dropped.id) is None


@pytest.mark.parametrize("where", ["setting", "job"])
def test_a_result_ttl_of_0_deletes_the_job_when_it_completes(
    make_broker: Callable[..., Broker], where: str
) -> None:
    broker = make_broker(result_ttl=0.0) if where == "setting" else make_broker()
    producer, admin = Producer(broker), Admin(broker)
    handle = producer.enqueue("q", 1, result_ttl=0 if where == "job" else None)
    _complete(broker, "q", "gone")
    assert admin.find_job(handle.id) is None
    assert [j.id for j in admin.peek("q", 5, "completed")] == [handle.id]  # the history still
    with pytest.raises(JobNotFound):
        handle.status()


def test_an_oversized_result_completes_the_job_with_a_note(
    make_broker: Callable[..., Broker], start_worker: StartWorker
) -> None:
    broker = make_broker(result_max_bytes=100)
    producer = Producer(broker)
    handle = producer.enqueue("q", {"do": "big", "size": 200})
    fits = producer.enqueue("q", {"do": "big", "size": 98})  # 98 characters + 2 quotes
    start_worker(["q"], {"*": answer}, on=broker, max_jobs=2).join()
    job = handle.fetch()
    assert (job.state, job.result) == ("completed", None)
    assert job.result_error == (
        "result not kept: 202 bytes, over the 100-byte limit (setting result_max_bytes)"
    )
    with pytest.raises(ResultNotKept, match="202 bytes, over the 100-byte limit"):
        handle.result(timeout=10)
    assert fits.result(timeout=10) == "x" * 98


def test_an_unencodable_result_completes_the_job_with_a_note(
    producer: Producer, start_worker: StartWorker
) -> None:
    handle = producer.enqueue("q", {"do": "object"})
    start_worker(["q"], {"*": answer}, max_jobs=1).join()
    job = handle.fetch()
    assert job.state == "completed"
    assert job.result_error is not None
    assert job.result_error.startswith("result not kept: not JSON-serialisable (TypeError:")
    with pytest.raises(ResultNotKept, match="not JSON-serialisable"):
        handle.result(timeout=10)


def test_process_isolation_carries_results_back_from_the_child(
    make_broker: Callable[..., Broker], start_worker: StartWorker
) -> None:
    broker = make_broker(result_max_bytes=1000)
    producer = Producer(broker)
    echo = producer.enqueue("q", {"do": "echo"})
    big = producer.enqueue("q", {"do": "big", "size": 2000})
    bad = producer.enqueue("q", {"do": "object"})
    start_worker(["q"], {"*": answer}, on=broker, isolation="process", max_jobs=3).join()
    result = echo.result(timeout=10)
    assert result["echo"] == {"do": "echo"}
    assert result["pid"] != __import__("os").getpid()  # it ran in a child
    with pytest.raises(ResultNotKept, match="over the 1000-byte limit"):
        big.result(timeout=10)
    with pytest.raises(ResultNotKept, match="not JSON-serialisable"):
        bad.result(timeout=10)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_async_handler_s_return_value_is_its_result(
    make_broker: Callable[..., Broker], start_worker: StartWorker, isolation: str
) -> None:
    broker = make_broker(result_max_bytes=1000)
    producer = Producer(broker)
    echo = producer.enqueue("q", {"do": "echo"})
    big = producer.enqueue("q", {"do": "big", "size": 2000})
    start_worker(["q"], {"*": answer_async}, on=broker, isolation=isolation, max_jobs=2).join()
    assert echo.result(timeout=10)["echo"] == {"do": "echo"}
    with pytest.raises(ResultNotKept, match="over the 1000-byte limit"):
        big.result(timeout=10)


def test_a_completed_job_s_id_can_be_enqueued_again(producer: Producer, broker: Broker) -> None:
    first = producer.enqueue("q", 1, job_id="nightly")
    assert producer.enqueue("q", 1, job_id="nightly").state == "duplicate"  # still pending
    _complete(broker, "q", "done")
    assert first.status() == "completed"
    again = producer.enqueue("q", 2, job_id="nightly")
    assert again.state == "pending"
    job = again.fetch()
    assert (job.state, job.payload, job.result, job.finished_at) == ("pending", 2, None, None)


def test_a_bad_result_ttl_is_refused_by_name(producer: Producer) -> None:
    with pytest.raises(JobError, match="result_ttl"):
        producer.enqueue("q", 1, result_ttl="soon")
    with pytest.raises(JobError, match="result_ttl: at most 30 days"):
        producer.enqueue("q", 1, result_ttl="31d")
    with pytest.raises(JobError, match="result_ttl"):
        producer.enqueue("q", 1, result_ttl=-1)
    (job,) = producer.enqueue_many("q", [JobSpec(1, result_ttl="2m")])
    assert job.result_ttl == 120.0


# -- lookup ---------------------------------------------------------------------------------


def test_find_job_finds_a_job_in_every_state_from_its_id_alone(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    broker.register_queues(["a", "b", "c"])
    pending = producer.enqueue("b", "p", tenant="acme", priority=7)
    found = admin.find_job(pending.id)
    assert found is not None
    assert (found.queue, found.state, found.tenant, found.priority) == ("b", "pending", "acme", 7)
    assert found.enqueued_at is not None
    scheduled = producer.enqueue("c", "s", delay=60)
    assert admin.find_job(scheduled.id).state == "scheduled"  # type: ignore[union-attr]

    (taken,) = broker.fetch("b", "w1", 1).jobs
    running = admin.find_job(pending.id)
    assert running is not None
    assert (running.state, running.worker, running.attempts) == ("processing", "w1", 1)
    assert running.started_at is not None
    broker.complete("b", "w1", [(taken.id, 3.0, 1, '{"ok":true}', "", -1)])
    done = admin.find_job(pending.id)
    assert done is not None and (done.state, done.result) == ("completed", {"ok": True})

    doomed = producer.enqueue("a", "d", max_retries=0)
    broker.fetch("a", "w1", 1)
    broker.fail("a", "w1", [Failure(doomed.id, 1.0, "ValueError: bad", "Traceback ...")])
    dead = admin.find_job(doomed.id)
    assert dead is not None
    assert (dead.state, dead.last_error, dead.traceback) == ("dead", "ValueError: bad",
                                                             "Traceback ...")  # fmt: skip
    assert dead.dead_at is not None

    assert admin.find_job("no-such-job") is None
    assert admin.find_job(pending.id, queue="a") is None  # narrowed to another queue
    assert admin.find_job(pending.id, queue="b") is not None
    with pytest.raises(UnknownQueue):
        admin.find_job(pending.id, queue="nope")


def test_a_handle_for_a_job_enqueued_elsewhere(producer: Producer, broker: Broker) -> None:
    made = producer.enqueue("q", 1)
    handle = producer.handle(made.id)
    assert (handle.queue, handle.status()) == ("q", "pending")
    with pytest.raises(JobNotFound, match="no job 'nope' on any queue"):
        producer.handle("nope")
    with pytest.raises(JobNotFound, match="on queue 'q'"):
        producer.handle("nope", queue="q")


def test_the_handle_still_shows_the_job_as_enqueued(producer: Producer) -> None:
    handle = producer.enqueue("q", {"a": 1}, tenant="acme", timeout="5s")
    assert isinstance(handle.job, Job)
    assert (handle.payload, handle.tenant, handle.timeout, handle.max_retries) == (
        {"a": 1}, "acme", 5.0, 3)  # fmt: skip
    assert handle.to_dict()["id"] == handle.id and handle.state == "pending"
    assert "JobHandle(id=" in repr(handle)
    with pytest.raises(AttributeError):
        _ = handle.no_such_field


# -- waiting --------------------------------------------------------------------------------


def test_result_blocks_until_another_thread_completes_the_job(
    producer: Producer, broker: Broker, pool: ThreadPoolExecutor, wait_until: WaitUntil
) -> None:
    handle = producer.enqueue("q", 1)
    futures = _waiting(pool, broker, handle, wait_until, n=2)
    assert not any(f.done() for f in futures)
    _complete(broker, "q", {"answer": 42})
    assert [f.result(timeout=10) for f in futures] == [{"answer": 42}] * 2
    assert _waiters(broker, "q", handle.id) == 0
    # Each waiter took its token: nothing is left for a later waiter to find.
    assert broker.client.llen(broker.queue_keys("q").done(handle.id)) == 0


def test_result_raises_with_the_error_when_the_job_is_dead_lettered(
    producer: Producer, start_worker: StartWorker, pool: ThreadPoolExecutor
) -> None:
    handle = producer.enqueue("q", {"do": "fail"})
    waiting = pool.submit(handle.result, 30)
    start_worker(["q"], {"*": answer}, max_jobs=1)
    with pytest.raises(JobFailed, match="no answer today") as caught:
        waiting.result(timeout=30)
    assert caught.value.job.state == "dead"
    assert caught.value.error == "PermanentFailure: no answer today"
    with pytest.raises(JobFailed):  # already dead: at once
        handle.result(timeout=0)


def test_a_lost_worker_s_dead_lettered_job_wakes_its_waiter(
    producer: Producer, broker: Broker, pool: ThreadPoolExecutor, wait_until: WaitUntil
) -> None:
    handle = producer.enqueue("q", 1, max_retries=0)
    broker.fetch("q", "w1", 1)
    (waiting,) = _waiting(pool, broker, handle, wait_until)
    assert broker.release("q", "w1", "lost", "worker lost") == (0, 1)
    with pytest.raises(JobFailed, match="worker lost"):
        waiting.result(timeout=10)


def test_a_retried_job_keeps_its_waiter_until_it_ends(
    producer: Producer, broker: Broker, pool: ThreadPoolExecutor, wait_until: WaitUntil
) -> None:
    handle = producer.enqueue("q", 1, max_retries=1)
    broker.fetch("q", "w1", 1)
    (waiting,) = _waiting(pool, broker, handle, wait_until)
    assert broker.fail("q", "w1", [Failure(handle.id, 1.0, "flaky")]) == ["retried"]
    assert not waiting.done() and _waiters(broker, "q", handle.id) == 1
    broker.client.zadd(broker.queue_keys("q").scheduled, {handle.id: 0})  # due now
    _complete(broker, "q", "second time")
    assert waiting.result(timeout=10) == "second time"


def test_result_times_out_with_a_timeout_error_and_stops_waiting(
    producer: Producer, broker: Broker
) -> None:
    handle = producer.enqueue("q", 1)
    with pytest.raises(WaitTimeout, match=r"did not end within 0\.05s \(it is pending\)") as c:
        handle.result(timeout=0.05)
    assert isinstance(c.value, TimeoutError) and isinstance(c.value, RwqError)
    assert _waiters(broker, "q", handle.id) == 0  # counted out again


def test_a_purged_job_wakes_its_waiter(
    producer: Producer, broker: Broker, admin: Admin, pool: ThreadPoolExecutor,
    wait_until: WaitUntil,
) -> None:  # fmt: skip
    handle = producer.enqueue("q", 1)
    (waiting,) = _waiting(pool, broker, handle, wait_until)
    assert admin.purge("q") == 1
    with pytest.raises(JobNotFound, match="deleted before it ended"):
        waiting.result(timeout=10)


def test_a_cancelled_job_wakes_its_waiters_queued_or_running(
    producer: Producer, broker: Broker, admin: Admin, pool: ThreadPoolExecutor,
    wait_until: WaitUntil,
) -> None:  # fmt: skip
    queued = producer.enqueue("q", 1)
    (waiting,) = _waiting(pool, broker, queued, wait_until)
    admin.cancel(queued.id)
    with pytest.raises(JobCancelled, match="was cancelled"):
        waiting.result(timeout=10)
    assert wait_for_job(broker, "q", queued.id, 0).state == "cancelled"  # ended: at once
    running = producer.enqueue("q", 2)
    broker.fetch("q", "w1", 1)
    (waiting,) = _waiting(pool, broker, running, wait_until)
    admin.cancel(running.id)
    assert waiting.exception(timeout=10).__class__ is JobCancelled
    assert _waiters(broker, "q", running.id) == 0


def test_a_waiter_of_a_job_that_is_not_kept_learns_it_completed(
    producer: Producer, broker: Broker, pool: ThreadPoolExecutor, wait_until: WaitUntil
) -> None:
    handle = producer.enqueue("q", 1, result_ttl=0)
    waiting = pool.submit(handle.wait, 30)
    wait_until(lambda: _waiters(broker, "q", handle.id) == 1, what="the waiter")
    _complete(broker, "q", "unseen")
    ended = waiting.result(timeout=10)
    assert (ended.state, ended.job) == ("completed", None)


def test_a_token_left_by_an_earlier_waiter_does_not_end_the_wait(
    producer: Producer, broker: Broker, pool: ThreadPoolExecutor, wait_until: WaitUntil
) -> None:
    handle = producer.enqueue("q", 1)
    # An earlier run's waiter gave up as its job ended: its token is still there.
    broker.client.rpush(broker.queue_keys("q").done(handle.id), "dead")
    (waiting,) = _waiting(pool, broker, handle, wait_until)
    wait_until(lambda: broker.client.llen(broker.queue_keys("q").done(handle.id)) == 0,
               what="the stale token taken")  # fmt: skip
    assert not waiting.done()
    _complete(broker, "q", "real")
    assert waiting.result(timeout=10) == "real"


def test_waiting_for_an_unknown_job_is_job_not_found(broker: Broker) -> None:
    with pytest.raises(JobNotFound):
        wait_for_job(broker, "q", "nope", timeout=1)
    assert not broker.client.exists(broker.queue_keys("q").job("nope"))  # nothing made
