"""Unique jobs: a held unique key refuses a second job or returns the first, the key lives
for its TTL only (the job's end does not release it), and bad options are refused by name.
Standalone and cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.job import Job, JobError
from rwq.queue.producer import DuplicateJob, Producer

StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]


def test_a_held_key_refuses_a_second_job(producer: Producer, admin: Admin) -> None:
    first = producer.enqueue("mail", {"to": "ada"}, unique_key="welcome:ada")
    assert first.unique_key == "welcome:ada"
    with pytest.raises(DuplicateJob) as caught:
        producer.enqueue("mail", {"to": "ada"}, unique_key="welcome:ada")
    assert caught.value.job_id == first.id
    assert "welcome:ada" in str(caught.value) and first.id in str(caught.value)
    assert admin.stats(["mail"]).queues[0].pending == 1
    # Another key, or the same key on another queue, is another job.
    producer.enqueue("mail", {"to": "bob"}, unique_key="welcome:bob")
    producer.enqueue("sms", {"to": "ada"}, unique_key="welcome:ada")
    assert admin.stats(["mail"]).queues[0].enqueued_total == 2
    stored = admin.job("mail", first.id)
    assert stored is not None and stored.unique_key == "welcome:ada"


def test_on_duplicate_existing_returns_the_job_holding_the_key(
    producer: Producer, start_worker: StartWorker, admin: Admin, wait_until: WaitUntil
) -> None:
    first = producer.enqueue("q", 1, unique_key="k", delay=60)
    again = producer.enqueue("q", 2, unique_key="k", on_duplicate="existing")
    assert (again.id, again.state, again.payload) == (first.id, "scheduled", 1)
    # A scheduled job is not a pending one: the key holds across states.
    done = producer.enqueue("done", 1, unique_key="k")
    forgotten = producer.enqueue("done", 1, unique_key="k2", result_ttl=0)
    start_worker(["done"], {"*": print})
    wait_until(lambda: admin.stats(["done"]).queues[0].completed_total == 2, what="the jobs")
    # The job's end does not release the key: its TTL does.
    kept = producer.enqueue("done", 2, unique_key="k", on_duplicate="existing")
    assert (kept.id, kept.state) == (done.id, "completed")
    gone = producer.enqueue("done", 2, unique_key="k2", on_duplicate="existing")
    assert (gone.id, gone.state) == (forgotten.id, "gone")


def test_the_key_is_released_at_its_ttl(
    producer: Producer, admin: Admin, wait_until: WaitUntil
) -> None:
    first = producer.enqueue("q", 1, unique_key="k", unique_ttl="100ms")

    def enqueued_again() -> Job | None:
        try:
            return producer.enqueue("q", 2, unique_key="k", unique_ttl="1h")
        except DuplicateJob:
            return None

    second = wait_until(enqueued_again, what="the key's TTL to end")
    assert second.id != first.id
    assert admin.stats(["q"]).queues[0].pending == 2
    with pytest.raises(DuplicateJob):
        producer.enqueue("q", 3, unique_key="k")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"unique_key": ""}, "unique_key must be 1-200"),
        ({"unique_key": "a\nb"}, "unique_key must be 1-200"),
        ({"unique_key": "x" * 201}, "unique_key must be 1-200"),
        ({"unique_key": "\ud800"}, "unique_key must be 1-200"),
        ({"unique_key": "k", "unique_ttl": "0s"}, "unique_ttl: must be more than 0"),
        ({"unique_key": "k", "unique_ttl": "soon"}, "unique_ttl: expected a duration"),
        ({"unique_ttl": "1m"}, "unique_ttl needs a unique_key"),
        ({"unique_key": "k", "on_duplicate": "replace"}, "on_duplicate must be refuse or"),
    ],
)
def test_bad_unique_options_are_refused_by_name(
    broker: Broker, options: dict[str, Any], needle: str
) -> None:
    with pytest.raises(JobError, match=needle):
        Producer(broker).enqueue("q", 1, **options)
    assert not broker.client.exists(broker.queue_keys("q").pending)
