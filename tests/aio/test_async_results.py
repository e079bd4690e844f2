"""Awaiting a job's result from asyncio code: a blocking wait on the server (standalone and
cluster), woken by the worker that completes the job, or at once when it has ended."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aio_target import Target

from rwq.aio import AsyncProducer
from rwq.errors import RwqError
from rwq.queue.handle import JobFailed, JobNotFound, WaitTimeout
from rwq.queue.job import Job
from rwq.queue.worker import Worker


def test_result_is_awaited_until_a_worker_completes_the_job(target: Target) -> None:
    def handler(job: Job) -> Any:
        if job.payload == "fail":
            raise RwqError("no answer today")
        return {"double": job.payload * 2}

    async def main() -> tuple[Any, ...]:
        async with await AsyncProducer.connect(target.settings) as producer:
            job = await producer.enqueue("q", 21)
            failing = await producer.enqueue("q", "fail", max_retries=0)
            waiting = asyncio.ensure_future(producer.result(job, timeout=30))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # blocked on the server: nobody has run the job
            worker = threading.Thread(
                target=Worker(target.broker, ["q"], {"q": handler}).run, kwargs={"max_jobs": 2}
            )
            worker.start()
            result = await waiting
            with pytest.raises(JobFailed, match="no answer today"):
                await producer.result(failing.id, timeout=30)  # by id, its queue found
            again = await producer.result(job.id, timeout=0)  # ended: at once
            await asyncio.to_thread(worker.join)
            return result, again

    assert asyncio.run(main()) == ({"double": 42}, {"double": 42})


def test_waiting_times_out_and_unknown_jobs_are_not_found(target: Target) -> None:
    async def main() -> None:
        async with await AsyncProducer.connect(target.settings) as producer:
            job = await producer.enqueue("q", 1)
            with pytest.raises(WaitTimeout, match="it is pending"):
                await producer.wait(job, timeout=0.05)
            key = target.broker.queue_keys("q").job(job.id)
            assert target.broker.client.hget(key, "waiters") is None  # counted out again
            with pytest.raises(JobNotFound):
                await producer.wait("nope", timeout=1)

    asyncio.run(main())
