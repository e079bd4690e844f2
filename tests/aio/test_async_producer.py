"""The async producer: the sync producer's jobs, records, options and errors, sent on a
``redis.asyncio`` client (standalone and cluster); batches in several round trips, a bad job
stopping a batch, duplicates, a server that lost its scripts, and jobs a worker then runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aio_target import Target

from rwq.aio import AsyncProducer
from rwq.queue.job import Job, JobError
from rwq.queue.producer import BatchError, JobSpec, Producer
from rwq.queue.worker import Worker, WorkerOptions

T = TypeVar("T")


def run(target: Target, use: Callable[[AsyncProducer], Awaitable[T]]) -> T:
    """``use`` a producer connected to ``target`` on a fresh event loop; closed after."""

    async def main() -> T:
        async with await AsyncProducer.connect(target.settings) as producer:
            return await use(producer)

    return asyncio.run(main())


def _stored(job: Job) -> dict[str, Any]:
    fields = job.to_dict()
    for varying in ("id", "created_at", "enqueued_at", "run_at"):
        fields.pop(varying, None)
    return fields


def test_enqueue_stores_what_the_sync_producer_stores(target: Target) -> None:
    options: dict[str, Any] = {
        "priority": 2, "tenant": "acme", "max_retries": 4, "trace_id": "t-1", "timeout": "30s",
    }  # fmt: skip
    job = run(target, lambda p: p.enqueue("q", {"n": 1}, **options))
    twin = Producer(target.broker).enqueue("q", {"n": 1}, **options)
    assert (job.queue, job.state, job.priority, job.tenant) == ("q", "pending", 2, "acme")
    admin = target.admin
    stored, sync_stored = admin.job("q", job.id), admin.job("q", twin.id)
    assert stored is not None and sync_stored is not None
    assert _stored(stored) == _stored(sync_stored)
    assert target.broker.queues() == ["q"]
    assert [j.id for j in admin.peek("q", 10)] == [job.id, twin.id]


def test_delays_and_duplicates_as_the_sync_producer(target: Target) -> None:
    async def use(producer: AsyncProducer) -> tuple[Job, Job, Job]:
        later = await producer.enqueue("q", 1, delay=60)
        first = await producer.enqueue("q", 2, job_id="order-7")
        again = await producer.enqueue("q", 3, job_id="order-7")
        return later, first, again

    later, first, again = run(target, use)
    assert later.state == "scheduled" and later.run_at is not None
    assert (first.state, again.state) == ("pending", "duplicate")
    assert [j.payload for j in target.admin.peek("q", 10)] == [2]
    assert [j.payload for j in target.admin.peek("q", 10, target="scheduled")] == [1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10}, "priority must be a whole number from 0 to 9"),
        ({"max_retries": True}, "max_retries must be a whole number from 0 to"),
        ({"tenant": ""}, "tenant must be 1-128"),
        ({"job_id": "a b"}, "job id must be 1-64"),
        ({"timeout": "abc"}, "timeout: expected a duration"),
        ({"delay": 1, "at": 4_000_000_000.0}, "either delay or at"),
        ({"payload": {1, 2}}, "payload is not JSON-serialisable"),
        ({"payload": "x" * 2_000_000}, "payload is 2000002 bytes"),
    ],
)
def test_bad_jobs_raise_the_sync_producers_errors_and_enqueue_nothing(
    target: Target, options: dict[str, Any], message: str
) -> None:
    options = dict(options)  # shared by the standalone and cluster runs
    payload = options.pop("payload", "p")
    with pytest.raises(JobError, match=message):
        run(target, lambda p: p.enqueue("q", payload, **options))
    with pytest.raises(JobError, match=message):
        Producer(target.broker).enqueue("q", payload, **options)
    assert target.broker.queues() == []  # not even registered


def test_enqueue_many_sends_specs_and_payloads_in_several_round_trips(target: Target) -> None:
    items: list[Any] = [JobSpec(i, priority=3, job_id=f"id-{i}") if i % 100 == 0 else i
                        for i in range(1000)]  # fmt: skip
    items.append(JobSpec("again", job_id="id-0"))  # a duplicate id
    jobs = run(target, lambda p: p.enqueue_many("q", items, chunk=20))  # 320 jobs a round trip
    assert len(jobs) == 1001
    assert [j.state for j in jobs].count("duplicate") == 1 and jobs[-1].state == "duplicate"
    stats = target.admin.stats(["q"]).queues[0]
    assert stats.pending == 1000
    first = target.admin.job("q", "id-100")
    assert first is not None and first.priority == 3


@pytest.mark.parametrize("size", [3, 700])
def test_a_bad_job_in_a_batch_stops_it_there(target: Target, size: int) -> None:
    specs: list[Any] = list(range(size))
    specs[size - 1] = {1, 2}
    with pytest.raises(BatchError) as caught:
        run(target, lambda p: p.enqueue_many("q", specs, chunk=10))
    assert caught.value.index == size - 1
    assert str(caught.value).startswith(f"job #{size - 1} of the batch: payload is not JSON")
    assert [j.payload for j in target.admin.peek("q", 1000)] == list(range(size - 1))


def test_a_server_that_lost_its_scripts_gets_them_again(target: Target) -> None:
    async def use(producer: AsyncProducer) -> list[Job]:
        await producer.enqueue("q", 0)
        await producer.client.script_flush()
        jobs = await producer.enqueue_many("q", [1, 2, 3])
        await producer.client.script_flush()
        return [*jobs, await producer.enqueue("q", 4)]

    run(target, use)
    assert [j.payload for j in target.admin.peek("q", 10)] == [0, 1, 2, 3, 4]


def test_a_worker_runs_what_the_async_producer_enqueued(target: Target) -> None:
    done: list[Any] = []

    async def handler(job: Job) -> None:
        done.append(job.payload)

    run(target, lambda p: p.enqueue_many("q", [{"n": i} for i in range(5)]))
    worker = Worker(target.broker, ["q"], {"q": handler}, WorkerOptions(concurrency=2))
    worker.run(max_jobs=5, duration=30)
    assert sorted(d["n"] for d in done) == [0, 1, 2, 3, 4]
    assert worker.processed == 5
