"""Producers: enqueue now or later, one or many, duplicates and bad input."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.job import JobError, PayloadTooLarge
from rwq.queue.producer import BatchError, JobSpec, Producer


def test_enqueue_puts_the_job_in_pending_and_registers_the_queue(
    producer: Producer, broker: Broker, admin: Admin
) -> None:
    job = producer.enqueue("emails", {"to": "a@b.c"}, priority=7, tenant="acme", trace_id="t1")
    assert job.state == "pending"
    assert broker.queues() == ["emails"]
    qk = broker.queue_keys("emails")
    assert broker.client.zrange(qk.pending, 0, -1) == [job.id]
    stored = admin.job("emails", job.id)
    assert stored is not None
    assert (stored.payload, stored.priority, stored.tenant, stored.trace_id) == (
        {"to": "a@b.c"},
        7,
        "acme",
        "t1",
    )
    assert (stored.attempts, stored.max_retries, stored.state) == (0, 3, "pending")
    assert stored.enqueued_at is not None and stored.created_at is not None


def test_pending_runs_higher_priority_first_then_fifo(producer: Producer, admin: Admin) -> None:
    low = producer.enqueue("q", "low", priority=1)
    first = producer.enqueue("q", "first")
    second = producer.enqueue("q", "second")
    urgent = producer.enqueue("q", "urgent", priority=9)
    assert [j.id for j in admin.peek("q", 10)] == [urgent.id, first.id, second.id, low.id]


def test_enqueue_many_takes_specs_and_plain_payloads(producer: Producer, admin: Admin) -> None:
    jobs = producer.enqueue_many("q", [1, JobSpec({"n": 2}, priority=9), "three"])
    assert [j.payload for j in jobs] == [1, {"n": 2}, "three"]
    assert len({j.id for j in jobs}) == 3
    assert [j.payload for j in admin.peek("q", 10)] == [{"n": 2}, 1, "three"]
    assert admin.stats(["q"]).queues[0].enqueued_total == 3


def test_enqueue_many_in_several_chunks_keeps_every_job(producer: Producer, admin: Admin) -> None:
    jobs = producer.enqueue_many("q", range(23), chunk=2)
    assert [j.state for j in jobs] == ["pending"] * 23
    stats = admin.stats(["q"]).queues[0]
    assert (stats.pending, stats.enqueued_total) == (23, 23)


def test_enqueue_many_of_nothing_enqueues_nothing(producer: Producer, broker: Broker) -> None:
    assert producer.enqueue_many("q", []) == []
    assert broker.client.exists(broker.queue_keys("q").pending) == 0


@pytest.mark.parametrize(
    "when",
    [
        lambda: {"delay": 30},
        lambda: {"at": time.time() + 30},
        lambda: {"at": datetime.now(UTC) + timedelta(seconds=30)},
    ],
    ids=["delay", "at-epoch", "at-datetime"],
)
def test_delay_and_at_go_to_the_scheduled_set(
    producer: Producer, broker: Broker, when: Callable[[], dict[str, Any]]
) -> None:
    job = producer.enqueue("q", "later", **when())
    assert job.state == "scheduled"
    qk = broker.queue_keys("q")
    assert broker.client.zcard(qk.pending) == 0
    score = broker.client.zscore(qk.scheduled, job.id)
    assert score == pytest.approx(time.time() * 1000 + 30_000, abs=5_000)


@pytest.mark.parametrize(
    "when", [lambda: {"delay": 0}, lambda: {"at": time.time() - 60}], ids=["delay-0", "at-past"]
)
def test_no_delay_or_a_past_time_runs_now(
    producer: Producer, broker: Broker, when: Callable[[], dict[str, Any]]
) -> None:
    job = producer.enqueue("q", "now", **when())
    assert job.state == "pending"
    assert broker.client.zcard(broker.queue_keys("q").pending) == 1


def test_due_scheduled_jobs_are_promoted_on_fetch(producer: Producer, broker: Broker) -> None:
    job = producer.enqueue("q", "soon", delay=0.05)
    assert broker.fetch("q", "w1", 1).jobs == []  # not due yet
    deadline = time.monotonic() + 5
    while not (fetched := broker.fetch("q", "w1", 1).jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [j.id for j in fetched] == [job.id]


def test_a_duplicate_id_is_not_enqueued_again(producer: Producer, admin: Admin) -> None:
    first = producer.enqueue("q", "original", job_id="order-42")
    again = producer.enqueue("q", "replacement", job_id="order-42")
    assert (first.state, again.state) == ("pending", "duplicate")
    batch = producer.enqueue_many(
        "q", [JobSpec("a", job_id="order-42"), JobSpec("b", job_id="x"), JobSpec("c", job_id="x")]
    )
    assert [j.state for j in batch] == ["duplicate", "pending", "duplicate"]
    stored = admin.job("q", "order-42")
    assert stored is not None and stored.payload == "original"
    stats = admin.stats(["q"]).queues[0]
    assert (stats.pending, stats.enqueued_total) == (2, 2)


@pytest.mark.parametrize(
    "payload", [{1, 2}, math.nan, {"x": math.inf}, object()], ids=["set", "nan", "inf", "object"]
)
def test_a_payload_that_is_not_json_raises_job_error(
    producer: Producer, broker: Broker, payload: object
) -> None:
    with pytest.raises(JobError, match="not JSON-serialisable"):
        producer.enqueue("q", payload)
    assert broker.client.exists(broker.queue_keys("q").pending) == 0


def test_a_payload_over_the_limit_raises_payload_too_large(
    make_broker: Any,
) -> None:
    producer = Producer(make_broker(payload_limit=100))
    producer.enqueue("q", "x" * 90)
    with pytest.raises(PayloadTooLarge, match=r"payload is 152 bytes, over the 100-byte limit"):
        producer.enqueue("q", "x" * 150)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10}, "priority must be a whole number from 0 to 9"),
        ({"priority": -1}, "priority must be a whole number from 0 to 9"),
        ({"max_retries": -1}, "max_retries must be a whole number from 0 to"),
        ({"max_retries": 1.5}, "max_retries must be a whole number from 0 to"),
        ({"max_retries": True}, "max_retries must be a whole number from 0 to"),
        ({"tenant": ""}, "tenant must be 1-128"),
        ({"tenant": "t" * 129}, "tenant must be 1-128"),
        ({"delay": -1}, "delay must be 0 to"),
        ({"delay": 1, "at": 4_000_000_000.0}, "either delay or at"),
    ],
)
def test_bad_options_raise_job_error_and_enqueue_nothing(
    producer: Producer, broker: Broker, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobError, match=message):
        producer.enqueue("q", "p", **options)
    qk = broker.queue_keys("q")
    assert broker.client.exists(qk.pending, qk.scheduled) == 0


def test_max_retries_defaults_to_the_setting(make_broker: Any) -> None:
    producer = Producer(make_broker(max_retries=7))
    assert producer.enqueue("q", 1).max_retries == 7
    assert producer.enqueue("q", 1, max_retries=0).max_retries == 0


def test_enqueue_publishes_a_wake_up_when_the_queue_was_empty(
    producer: Producer, broker: Broker
) -> None:
    pubsub = broker.client.pubsub()
    try:
        pubsub.subscribe(broker.keys.notify_channel)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        producer.enqueue("q", 1)
        message = pubsub.get_message(timeout=5)
        assert message is not None
        assert (message["type"], message["data"]) == ("message", "q")
    finally:
        pubsub.close()


@pytest.mark.parametrize("size", [3, 30])
def test_a_bad_job_in_a_batch_stops_it_there(producer: Producer, admin: Admin, size: int) -> None:
    specs: list[Any] = list(range(size))
    specs[size - 1] = {1, 2}
    with pytest.raises(BatchError) as caught:
        producer.enqueue_many("q", specs, chunk=4)
    assert caught.value.index == size - 1
    assert isinstance(caught.value.cause, JobError)
    assert str(caught.value).startswith(f"job #{size - 1} of the batch: payload is not JSON")
    # As the error says: the jobs before the bad one were enqueued, in order.
    assert [j.payload for j in admin.peek("q", 100)] == list(range(size - 1))
