"""The reaper: jobs of workers whose heartbeat expired go back to pending or to the dead
letters, one reaper at a time."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.producer import JobSpec, Producer
from rwq.queue.reaper import Reaped, reap
from rwq.queue.worker import Worker, WorkerOptions

WaitUntil = Callable[..., Any]
ReadEvents = Callable[[str], list[Event]]


def register(broker: Broker, name: str, queues: list[str]) -> Worker:
    """A worker that registers (as ``run()`` does) and then never heartbeats again."""
    worker = Worker(broker, queues, {"*": print}, WorkerOptions(name=name))
    worker._lease.register()
    return worker


def test_jobs_of_a_worker_whose_heartbeat_expired_go_back_to_pending(
    make_broker: Callable[..., Broker], wait_until: WaitUntil, read_events: ReadEvents
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    producer, admin = Producer(broker), Admin(broker)
    jobs = producer.enqueue_many("q", ["a", "b", "c"])
    lost = register(broker, "lost", ["q"])
    assert len(broker.fetch("q", lost.id, 2).jobs) == 2
    assert admin.stats(["q"]).queues[0].processing == 2

    assert reap(broker, lock_ms=1) == Reaped()  # still alive: nothing to do
    heartbeat = broker.keys.heartbeat("lost")
    wait_until(lambda: not broker.client.exists(heartbeat), what="the heartbeat to expire")
    broker.client.delete(broker.keys.reaper_lock)
    assert reap(broker) == Reaped(["lost"], 2, 0)

    stats = admin.stats(["q"]).queues[0]
    assert (stats.pending, stats.processing, stats.dead) == (3, 0, 0)
    pending = admin.peek("q", 10)
    # Back in their old places, each with the lost attempt counted.
    assert [(j.id, j.attempts) for j in pending] == [
        (jobs[0].id, 1),
        (jobs[1].id, 1),
        (jobs[2].id, 0),
    ]
    assert pending[0].last_error == "worker lost stopped heartbeating"
    requeued = [e for e in read_events("q") if e.type == "job.requeued"]
    assert {(e.data["job_id"], e.data["reason"]) for e in requeued} == {
        (jobs[0].id, "worker_lost"),
        (jobs[1].id, "worker_lost"),
    }
    assert broker.client.hlen(broker.keys.workers) == 0
    assert admin.workers() == []


def test_jobs_past_their_retries_are_dead_lettered(
    make_broker: Callable[..., Broker], wait_until: WaitUntil, read_events: ReadEvents
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    producer, admin = Producer(broker), Admin(broker)
    last_chance = producer.enqueue("q", "x", max_retries=0)
    more = producer.enqueue("q", "y", max_retries=1)
    lost = register(broker, "lost", ["q"])
    broker.fetch("q", lost.id, 2)
    wait_until(lambda: not broker.client.exists(broker.keys.heartbeat("lost")))
    assert reap(broker) == Reaped(["lost"], 1, 1)
    (dead,) = admin.peek("q", 10, "dead")
    assert (dead.id, dead.attempts, dead.state) == (last_chance.id, 1, "dead")
    assert dead.last_error == "worker lost stopped heartbeating"
    assert [j.id for j in admin.peek("q", 10)] == [more.id]
    events = [e for e in read_events("q") if e.type == "job.dead_lettered"]
    assert [(e.data["job_id"], e.data["attempt"]) for e in events] == [(last_chance.id, 1)]
    assert admin.stats(["q"]).queues[0].dead_total == 1


def test_every_queue_of_the_worker_is_released(
    make_broker: Callable[..., Broker], wait_until: WaitUntil
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    producer, admin = Producer(broker), Admin(broker)
    producer.enqueue_many("a", [1, 2])
    producer.enqueue_many("b", [JobSpec(3, priority=9)])
    lost = register(broker, "lost", ["a", "b"])
    broker.fetch("a", lost.id, 5)
    broker.fetch("b", lost.id, 5)
    wait_until(lambda: not broker.client.exists(broker.keys.heartbeat("lost")))
    assert reap(broker) == Reaped(["lost"], 3, 0)
    assert [(s.queue, s.pending, s.processing) for s in admin.stats().queues] == [
        ("a", 2, 0),
        ("b", 1, 0),
    ]


def test_a_live_worker_is_left_alone(make_broker: Callable[..., Broker]) -> None:
    broker = make_broker(heartbeat_ttl=60)
    Producer(broker).enqueue("q", 1)
    alive = register(broker, "alive", ["q"])
    broker.fetch("q", alive.id, 1)
    assert reap(broker) == Reaped()
    assert broker.client.zcard(broker.queue_keys("q").processing("alive")) == 1


def test_only_one_reaper_runs_at_a_time(
    make_broker: Callable[..., Broker], wait_until: WaitUntil
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    lost = register(broker, "lost", ["q"])
    Producer(broker).enqueue("q", 1)
    broker.fetch("q", lost.id, 1)
    wait_until(lambda: not broker.client.exists(broker.keys.heartbeat("lost")))

    assert broker.client.set(broker.keys.reaper_lock, "other", px=60_000)
    assert reap(broker, owner="me") is None  # another process holds the lock
    assert broker.client.zcard(broker.queue_keys("q").processing("lost")) == 1

    broker.client.delete(broker.keys.reaper_lock)
    assert reap(broker, owner="me", lock_ms=60_000) == Reaped(["lost"], 1, 0)
    assert broker.client.get(broker.keys.reaper_lock) == "me"
    assert reap(broker, owner="again") is None  # the lock lasts its interval


def test_a_reaped_worker_gets_a_dead_status_event(
    make_broker: Callable[..., Broker], wait_until: WaitUntil
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    register(broker, "lost", ["q"])
    wait_until(lambda: not broker.client.exists(broker.keys.heartbeat("lost")))
    assert reap(broker) == Reaped(["lost"], 0, 0)
    entries = broker.client.xrange(broker.keys.system_events)
    last = Event.from_entry(*entries[-1])
    assert (last.type, last.data["worker"], last.data["state"]) == ("worker.status", "lost", "dead")
    assert (last.data["queues"], last.data["pid"], last.data["current"]) == ("q", os.getpid(), 0)
    assert last.data["host"] == socket.gethostname()
    assert last.data["processed"] == 0
