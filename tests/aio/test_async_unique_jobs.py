"""Unique jobs from the async producer: the sync producer's keys, refusals and the job holding
a key (standalone and cluster)."""

from __future__ import annotations

import asyncio

import pytest
from aio_target import Target

from rwq.aio import AsyncProducer
from rwq.queue.job import Job
from rwq.queue.producer import DuplicateJob, Producer


def test_a_held_key_refuses_or_returns_the_job_holding_it(target: Target) -> None:
    async def use(producer: AsyncProducer) -> tuple[Job, Job]:
        first = await producer.enqueue("q", 1, unique_key="k", unique_ttl="1h")
        with pytest.raises(DuplicateJob) as caught:
            await producer.enqueue("q", 2, unique_key="k")
        assert caught.value.job_id == first.id
        return first, await producer.enqueue("q", 3, unique_key="k", on_duplicate="existing")

    async def main() -> tuple[Job, Job]:
        async with await AsyncProducer.connect(target.settings) as producer:
            return await use(producer)

    first, existing = asyncio.run(main())
    assert first.unique_key == "k" and (existing.id, existing.payload) == (first.id, 1)
    with pytest.raises(DuplicateJob):  # the sync producer sees the same key
        Producer(target.broker).enqueue("q", 4, unique_key="k")
    assert [j.payload for j in target.admin.peek("q", 10)] == [1]
