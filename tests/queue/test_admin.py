"""Admin operations: stats, peek, dead letters, requeue, purge, pause, workers, refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from rwq.queue.admin import Admin, AdminError, ReadOnlyMode, UnknownQueue
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import Event
from rwq.queue.job import Job
from rwq.queue.producer import JobSpec, Producer
from rwq.queue.worker import Worker, WorkerOptions

ReadEvents = Callable[[str], list[Event]]


def kill(broker: Broker, queue: str, jobs: list[Job], error: str = "boom") -> None:
    """Dead-letter ``jobs`` (already enqueued on ``queue``) as a worker's permanent failure."""
    taken = broker.fetch(queue, "w-test", len(jobs)).jobs
    assert {j.id for j in taken} == {j.id for j in jobs}
    broker.fail(queue, "w-test", [Failure(j.id, 1.0, error, permanent=True) for j in jobs])


# -- stats ----------------------------------------------------------------------------------


def test_stats_of_an_idle_queue(producer: Producer, admin: Admin) -> None:
    producer.enqueue("q", 1, delay=60)
    stats = admin.stats()
    assert stats.workers == 0
    (q,) = stats.queues
    assert q.queue == "q"
    assert (q.pending, q.scheduled, q.processing, q.dead) == (0, 1, 0, 0)
    assert (q.enqueued_total, q.completed_total, q.failed_total) == (1, 0, 0)
    assert (q.oldest_pending_age_s, q.throughput_1m, q.failed_1m, q.paused) == (None, 0, 0, False)
    assert stats.to_dict()["queues"][0]["scheduled"] == 1


def test_stats_count_every_state(producer: Producer, broker: Broker, admin: Admin) -> None:
    producer.enqueue_many("q", [JobSpec(i, max_retries=1) for i in range(6)])
    worker = Worker(broker, ["q"], {"*": print}, WorkerOptions(name="w1"))
    worker._lease.register()  # a registered worker's processing set is counted
    a, b, c, _running = broker.fetch("q", "w1", 4).jobs
    broker.complete("q", "w1", [(a.id, 2.0)])
    broker.fail("q", "w1", [Failure(b.id, 1.0, "retry me", delay_ms=60_000)])
    broker.fail("q", "w1", [Failure(c.id, 1.0, "fatal", permanent=True)])
    time.sleep(0.005)  # the oldest pending job is a few ms old
    (q,) = admin.stats(["q"]).queues
    assert (q.pending, q.processing, q.scheduled, q.dead) == (2, 1, 1, 1)
    assert (q.enqueued_total, q.completed_total, q.failed_total) == (6, 1, 2)
    assert (q.retried_total, q.dead_total) == (1, 1)
    assert (q.throughput_1m, q.failed_1m) == (1, 2)
    assert q.oldest_pending_age_s is not None and 0 < q.oldest_pending_age_s < 60
    assert admin.stats().workers == 1


def test_oldest_pending_age_looks_at_every_priority(producer: Producer, admin: Admin) -> None:
    producer.enqueue("q", "old and unimportant", priority=0)
    time.sleep(0.05)
    producer.enqueue("q", "new and urgent", priority=9)
    (q,) = admin.stats(["q"]).queues
    assert q.oldest_pending_age_s is not None and q.oldest_pending_age_s >= 0.05


def test_throughput_per_second(producer: Producer, broker: Broker, admin: Admin) -> None:
    jobs = producer.enqueue_many("q", range(3))
    broker.fetch("q", "w", 3)
    broker.complete("q", "w", [(jobs[0].id, 1.0), (jobs[1].id, 1.0)])
    broker.fail("q", "w", [Failure(jobs[2].id, 1.0, "x", permanent=True)])
    done, failed = admin.throughput("q", 5)
    assert (len(done), len(failed)) == (5, 5)
    assert (sum(done), sum(failed)) == (2, 1)
    with pytest.raises(AdminError, match="seconds must be 1-3600"):
        admin.throughput("q", 0)


# -- peek -----------------------------------------------------------------------------------


def test_peek_every_target(producer: Producer, broker: Broker, admin: Admin) -> None:
    pending = producer.enqueue_many("q", ["p1", "p2", "p3"])
    later = producer.enqueue("q", "s1", delay=60)
    Worker(broker, ["q"], {"*": print}, WorkerOptions(name="w1"))._lease.register()
    first, second = broker.fetch("q", "w1", 2).jobs
    broker.complete("q", "w1", [(first.id, 1.0)])
    producer.enqueue("q", "d1")
    gone = broker.fetch("q", "w1", 2).jobs
    broker.fail("q", "w1", [Failure(j.id, 1.0, "x", permanent=True) for j in gone])

    assert [j.payload for j in admin.peek("q", 10)] == []
    assert [j.payload for j in admin.peek("q", 10, "scheduled")] == ["s1"]
    assert [j.id for j in admin.peek("q", 10, "scheduled")] == [later.id]
    assert [j.payload for j in admin.peek("q", 10, "processing")] == ["p2"]
    assert [j.payload for j in admin.peek("q", 10, "completed")] == ["p1"]
    assert {j.payload for j in admin.peek("q", 10, "dead")} == {"p3", "d1"}
    assert [j.id for j in admin.peek("q", 1, "dead")] != []
    (completed,) = admin.peek("q", 10, "completed")
    assert (completed.id, completed.state, completed.queue) == (pending[0].id, "completed", "q")
    assert second.id == pending[1].id


def test_peek_pending_is_in_run_order_and_limited(producer: Producer, admin: Admin) -> None:
    producer.enqueue_many("q", [JobSpec(1, priority=1), JobSpec(2), JobSpec(3, priority=9)])
    assert [j.payload for j in admin.peek("q", 2)] == [3, 2]


def test_peek_rejects_bad_arguments(producer: Producer, admin: Admin) -> None:
    producer.enqueue("q", 1)
    with pytest.raises(AdminError, match="target must be one of pending, scheduled"):
        admin.peek("q", 1, "nowhere")
    with pytest.raises(AdminError, match="n must be at least 1"):
        admin.peek("q", 0)


# -- dead letters ---------------------------------------------------------------------------


def test_dlq_list_filters_by_queue_tenant_and_error_and_pages(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    a = producer.enqueue_many("a", [JobSpec(i, tenant="acme") for i in range(3)])
    kill(broker, "a", a, "TimeoutError: upstream slow")
    b = producer.enqueue_many("b", [JobSpec(9, tenant="other"), JobSpec(10)])
    kill(broker, "b", b, "KeyError: 'user'")

    everything = admin.dlq_list()
    assert everything.total == 5
    assert {j.queue for j in everything.jobs} == {"a", "b"}
    dead_at = [j.dead_at or 0 for j in everything.jobs]
    assert dead_at == sorted(dead_at, reverse=True)  # newest first

    assert admin.dlq_list(queue="a").total == 3
    assert {j.id for j in admin.dlq_list(tenant="acme").jobs} == {j.id for j in a}
    assert [j.id for j in admin.dlq_list(tenant="other").jobs] == [b[0].id]
    assert admin.dlq_list(error="timeout").total == 3  # substring, any case
    assert admin.dlq_list(error="KEYERROR", queue="b").total == 2
    assert admin.dlq_list(error="nothing like it").total == 0

    page1 = admin.dlq_list(limit=2)
    page2 = admin.dlq_list(offset=2, limit=2)
    page3 = admin.dlq_list(offset=4, limit=2)
    assert (page1.total, len(page1.jobs), len(page2.jobs), len(page3.jobs)) == (5, 2, 2, 1)
    assert [j.id for j in page1.jobs + page2.jobs + page3.jobs] == [j.id for j in everything.jobs]
    with pytest.raises(AdminError, match="offset must be >= 0 and limit >= 1"):
        admin.dlq_list(limit=0)


# -- requeue --------------------------------------------------------------------------------


def test_requeue_by_ids(
    producer: Producer, broker: Broker, admin: Admin, read_events: ReadEvents
) -> None:
    jobs = producer.enqueue_many("q", [1, 2, 3])
    kill(broker, "q", jobs)
    assert admin.requeue([jobs[0].id, jobs[2].id, "no-such-id"]) == 2
    pending = admin.peek("q", 10)
    assert {j.id for j in pending} == {jobs[0].id, jobs[2].id}
    assert {(j.state, j.attempts) for j in pending} == {("pending", 0)}
    assert [j.id for j in admin.peek("q", 10, "dead")] == [jobs[1].id]
    requeued = [e for e in read_events("q") if e.type == "job.requeued"]
    assert {e.data["reason"] for e in requeued} == {"dead_letter"}
    assert admin.requeue([jobs[0].id]) == 0  # no longer dead


def test_requeue_all_of_one_queue_or_every_queue(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    kill(broker, "a", producer.enqueue_many("a", [1, 2]))
    kill(broker, "b", producer.enqueue_many("b", [3]))
    assert admin.requeue(all_jobs=True, queue="a") == 2
    assert [(s.queue, s.pending, s.dead) for s in admin.stats().queues] == [
        ("a", 2, 0),
        ("b", 0, 1),
    ]
    assert admin.requeue(all_jobs=True) == 1
    assert admin.dlq_list().total == 0
    with pytest.raises(AdminError, match="give job ids or all_jobs=True"):
        admin.requeue()


def test_requeue_to_another_queue_moves_the_job(
    producer: Producer, broker: Broker, admin: Admin, read_events: ReadEvents
) -> None:
    job = producer.enqueue("a", {"n": 1}, priority=8, tenant="acme")
    kill(broker, "a", [job], "fatal")
    assert admin.requeue([job.id], to="b") == 1
    assert admin.peek("a", 10, "dead") == []
    assert admin.job("a", job.id) is None
    (moved,) = admin.peek("b", 10)
    assert (moved.id, moved.queue, moved.payload, moved.priority, moved.tenant) == (
        job.id,
        "b",
        {"n": 1},
        8,
        "acme",
    )
    assert (moved.state, moved.attempts, moved.dead_at) == ("pending", 0, None)
    (event,) = [e for e in read_events("b") if e.type == "job.requeued"]
    assert (event.data["reason"], event.data["from_queue"]) == ("dead_letter", "a")
    assert "b" in broker.queues()


def test_requeue_to_another_queue_after_a_crash_keeps_exactly_one_copy(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    job = producer.enqueue("a", "payload")
    kill(broker, "a", [job])
    # A requeue crashed after adding the job to "b" and before dropping it from "a".
    fields = broker.client.hgetall(broker.queue_keys("a").job(job.id))
    broker.register_queues(["b"])
    assert broker.adopt("b", "a", job.id, fields) is True
    assert admin.requeue([job.id], to="b") == 1  # the re-run finishes the move
    assert [j.id for j in admin.peek("b", 10)] == [job.id]
    assert admin.peek("a", 10, "dead") == []
    assert admin.job("a", job.id) is None
    assert broker.adopt("b", "a", job.id, fields) is False  # already there
    stats = {s.queue: s for s in admin.stats().queues}
    assert (stats["a"].dead, stats["a"].pending, stats["b"].pending, stats["b"].dead) == (
        0,
        0,
        1,
        0,
    )


def test_requeue_all_to_another_queue(producer: Producer, broker: Broker, admin: Admin) -> None:
    jobs = producer.enqueue_many("a", range(5))
    kill(broker, "a", jobs)
    assert admin.requeue(all_jobs=True, queue="a", to="b") == 5
    assert {j.id for j in admin.peek("b", 10)} == {j.id for j in jobs}
    assert admin.dlq_list().total == 0


# -- purge ----------------------------------------------------------------------------------


def test_purge_a_queue_removes_pending_and_scheduled(
    producer: Producer, broker: Broker, admin: Admin, read_events: ReadEvents
) -> None:
    producer.enqueue_many("q", range(3))
    producer.enqueue("q", "later", delay=60)
    producer.enqueue("other", 1)
    assert admin.purge("q") == 4
    (q,) = admin.stats(["q"]).queues
    assert (q.pending, q.scheduled) == (0, 0)
    assert admin.stats(["other"]).queues[0].pending == 1
    purged = [e for e in read_events("q") if e.type == "queue.purged"]
    assert [(e.data["target"], e.data["count"]) for e in purged] == [
        ("pending", 3),
        ("scheduled", 1),
    ]
    assert broker.client.keys(broker.queue_keys("q").job_prefix + "*") == []


def test_purge_large_sets_in_chunks(producer: Producer, broker: Broker) -> None:
    producer.enqueue_many("q", range(25))
    assert broker.purge("q", "pending", chunk=10) == 25
    assert broker.client.zcard(broker.queue_keys("q").pending) == 0


def test_purge_dead_and_all(producer: Producer, broker: Broker, admin: Admin) -> None:
    kill(broker, "a", producer.enqueue_many("a", [1, 2]))
    kill(broker, "b", producer.enqueue_many("b", [3]))
    assert admin.purge("dead", queue="a") == 2
    assert admin.dlq_list().total == 1
    assert admin.purge("dead") == 1

    done = producer.enqueue("a", "done")
    broker.fetch("a", "w", 1)
    broker.complete("a", "w", [(done.id, 1.0)])
    producer.enqueue_many("a", [4, 5])
    producer.enqueue("b", 6, delay=60)
    kill(broker, "b", [producer.enqueue("b", 7)])
    # pending 2 + completed 1 on a; scheduled 1 + dead 1 on b
    assert admin.purge("all") == 5
    for q in admin.stats().queues:
        assert (q.pending, q.scheduled, q.dead) == (0, 0, 0)
    assert admin.peek("a", 10, "completed") == []


def test_purge_never_touches_running_jobs(producer: Producer, broker: Broker) -> None:
    job = producer.enqueue("q", 1)
    broker.fetch("q", "w", 1)
    assert Admin(broker).purge("all") == 0
    assert broker.complete("q", "w", [(job.id, 1.0)]) == [1]


# -- pause, workers, refusals ---------------------------------------------------------------


def test_pause_and_resume(producer: Producer, broker: Broker, admin: Admin) -> None:
    producer.enqueue("q", 1)
    assert admin.pause("q") is True
    fetched = broker.fetch("q", "w", 1)
    assert (fetched.paused, fetched.jobs) == (True, [])
    assert admin.stats(["q"]).queues[0].paused is True
    assert admin.resume("q") is True
    assert admin.resume("q") is False
    assert len(broker.fetch("q", "w", 1).jobs) == 1


def test_workers_lists_registered_workers_and_their_jobs(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    job = producer.enqueue("q", 1)
    worker = Worker(broker, ["q", "r"], {"*": print}, WorkerOptions(name="w1", concurrency=3))
    worker._lease.register()
    broker.fetch("q", "w1", 1)
    (info,) = admin.workers()
    assert (info.id, info.queues, info.concurrency, info.alive, info.state) == (
        "w1",
        ["q", "r"],
        3,
        True,
        "starting",
    )
    assert info.current_jobs == [job.id]
    assert info.pid > 0 and info.host
    broker.client.delete(broker.keys.heartbeat("w1"))
    (lost,) = admin.workers()
    assert (lost.alive, lost.state, lost.last_heartbeat) == (False, "lost", None)


def test_an_unknown_queue_is_named_with_the_known_ones(producer: Producer, admin: Admin) -> None:
    with pytest.raises(UnknownQueue, match=r"unknown queue 'nope' \(known queues: none yet\)"):
        admin.stats(["nope"])
    producer.enqueue("b", 1)
    producer.enqueue("a", 1)
    operations: list[Callable[[], Any]] = [
        lambda: admin.stats(["nope"]),
        lambda: admin.peek("nope"),
        lambda: admin.dlq_list(queue="nope"),
        lambda: admin.requeue(all_jobs=True, queue="nope"),
        lambda: admin.purge("nope"),
        lambda: admin.pause("nope"),
        lambda: admin.throughput("nope"),
    ]
    for operation in operations:
        with pytest.raises(UnknownQueue) as caught:
            operation()
        assert str(caught.value) == "unknown queue 'nope' (known queues: a, b)"
        assert caught.value.queue == "nope"


def test_read_only_mode_refuses_changes_but_not_reads(
    make_broker: Callable[..., Broker], producer: Producer
) -> None:
    producer.enqueue("q", 1)
    admin = Admin(make_broker(read_only=True))
    for name, operation in [
        ("purge", lambda: admin.purge("q")),
        ("requeue", lambda: admin.requeue(all_jobs=True)),
        ("pause", lambda: admin.pause("q")),
        ("resume", lambda: admin.resume("q")),
    ]:
        with pytest.raises(ReadOnlyMode, match=f"^{name} refused: rwq is in read-only mode$"):
            operation()
    assert admin.stats().queues[0].pending == 1
    assert len(admin.peek("q")) == 1
