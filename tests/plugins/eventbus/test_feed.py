"""What feeds the bus, against the session's real Valkey (and the local cluster)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from rwq.config import Settings
from rwq.plugins.contract.events import QUEUE_STATS, SYSTEM_HEALTH, EventTypeError
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.eventbus.feed import HealthSampler, StatsSampler, StreamFeed, publish_local
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker, WorkerOptions

WAIT = 10.0


class Collector:
    """A bus with one plugin subscribed to everything; ``events()`` drains into a list."""

    def __init__(self, bus: EventBus | None = None, pattern: str = "*", **options: Any) -> None:
        self.bus = bus or EventBus(maxlen=100_000)
        self.sub = self.bus.subscribe("collector", pattern, **options)
        self.seen: list[Event] = []

    def events(self) -> list[Event]:
        self.seen.extend(self.bus.drain("collector", 100_000))
        return self.seen

    def wait(self, predicate: Callable[[list[Event]], bool], what: str) -> list[Event]:
        deadline = time.monotonic() + WAIT
        while not predicate(self.events()):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; got {self.summary()}")
            time.sleep(0.01)
        return self.seen

    def summary(self) -> list[tuple[str, str]]:
        return [(e.type, e.queue) for e in self.seen]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def has(type_: str, queue: str, n: int = 1) -> Callable[[list[Event]], bool]:
    return lambda events: sum(e.type == type_ and e.queue == queue for e in events) >= n


@pytest.fixture
def broker(redis_client: redis.Redis, settings: Settings) -> Broker:
    return Broker(redis_client, settings)


@pytest.fixture
def start_feed(broker: Broker) -> Iterator[Callable[..., StreamFeed]]:
    feeds: list[StreamFeed] = []

    def start(bus: EventBus, client: Any = None, **options: Any) -> StreamFeed:
        feed = StreamFeed(client or broker.client, broker.keys, bus, **options)
        feeds.append(feed)
        feed.start()
        return feed

    yield start
    for feed in feeds:
        feed.stop()


def test_job_events_arrive_as_bus_events(
    broker: Broker, start_feed: Callable[..., StreamFeed]
) -> None:
    producer = Producer(broker)
    producer.enqueue("emails", {"n": 0})  # before the feed: not "new"
    sink = Collector()
    start_feed(sink.bus)
    job = producer.enqueue("emails", {"n": 1}, tenant="acme")
    fetched = broker.fetch("emails", "w1", 2)
    broker.complete("emails", "w1", [(j.id, 1.5) for j in fetched.jobs])
    sink.wait(has("job.completed", "emails", 2), "two completions")
    events = sink.events()
    enqueued = [e for e in events if e.type == "job.enqueued"]
    assert [e.data["job_id"] for e in enqueued] == [job.id]
    assert enqueued[0].source == "queue" and enqueued[0].data["tenant"] == "acme"
    completed = [e for e in events if e.type == "job.completed"]
    assert {e.data["duration_ms"] for e in completed} == {1.5}
    assert all(e.id and e.ts > 0 for e in events)


def test_job_labels_reach_plugins_as_an_object(
    broker: Broker, start_feed: Callable[..., StreamFeed]
) -> None:
    sink = Collector()
    start_feed(sink.bus)
    producer = Producer(broker)
    labelled = producer.enqueue("emails", {"kind": "email.send", "type": "t\x1f", "n": 1})
    plain = producer.enqueue("emails", {"n": 2})
    broker.complete("emails", "w1", [(j.id, 1.0) for j in broker.fetch("emails", "w1", 2).jobs])
    events = sink.wait(has("job.completed", "emails", 2), "two completions")
    by_job: dict[str, list[Event]] = {}
    for event in events:
        by_job.setdefault(event.data["job_id"], []).append(event)
    assert [e.type for e in by_job[labelled.id]] == ["job.enqueued", "job.started", "job.completed"]
    for event in by_job[labelled.id]:
        handed = json.loads(json.dumps(event.to_dict()))  # what a runtime hands the plugin
        assert handed["data"]["labels"] == {"kind": "email.send", "type": "t\x1f"}
    for event in by_job[plain.id]:
        assert "labels" not in event.to_dict()["data"]


def test_worker_status_comes_from_the_system_stream(
    broker: Broker, start_feed: Callable[..., StreamFeed]
) -> None:
    sink = Collector()
    start_feed(sink.bus)
    Producer(broker).enqueue("emails", {"n": 1})
    worker = Worker(broker, ["emails"], {"emails": lambda job: None}, WorkerOptions(idle_wait=0.1))
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1}, daemon=True)
    thread.start()
    thread.join(WAIT)
    events = sink.wait(lambda es: any(e.type == "worker.status" for e in es), "worker.status")
    status = next(e for e in events if e.type == "worker.status")
    assert (status.source, status.queue, status.data["worker"]) == ("worker", "", worker.id)
    sink.wait(has("job.completed", "emails"), "the completion")


def test_a_queue_created_later_is_discovered(
    broker: Broker, start_feed: Callable[..., StreamFeed]
) -> None:
    sink = Collector()
    feed = start_feed(sink.bus, discover_interval=0.05)
    producer = Producer(broker)
    for i in range(3):
        producer.enqueue("later", {"i": i})
    sink.wait(has("job.enqueued", "later", 3), "events of the new queue")
    assert "later" in feed.queues


def test_every_feed_sees_every_event(broker: Broker, start_feed: Callable[..., StreamFeed]) -> None:
    producer = Producer(broker)
    producer.enqueue("a", 0)
    sinks = [Collector(), Collector()]
    for sink in sinks:
        start_feed(sink.bus, discover_interval=0.05)
    for i in range(20):
        producer.enqueue("a" if i % 2 else "b", i)
    for sink in sinks:
        sink.wait(lambda es: len(es) == 20, "all 20 events")
        assert sorted(e.data["job_id"] for e in sink.events()) == sorted(
            e.data["job_id"] for e in sinks[0].events()
        )


def test_the_feed_survives_a_redis_restart(
    make_server: Callable[..., Any], settings: Settings
) -> None:
    server = make_server()
    client = server.client(decode_responses=True)
    broker = Broker(client, settings)
    sink = Collector()
    feed = StreamFeed(client, broker.keys, sink.bus, discover_interval=0.05)
    feed.start()
    try:
        Producer(broker).enqueue("q", 1)
        sink.wait(has("job.enqueued", "q"), "the first event")
        server.restart()  # no persistence: the streams are gone, their ids start over
        Producer(broker).enqueue("q", 2)
        sink.wait(has("job.enqueued", "q", 2), "an event after the restart")
    finally:
        feed.stop()
        client.close()


@pytest.mark.cluster
def test_cluster_feed_sees_queues_on_every_node(
    cluster_client: Any, cluster_url: str, settings: Settings, start_feed: Any
) -> None:
    broker = Broker(cluster_client, settings.replace(redis_url=cluster_url))
    names = [f"queue-{i}" for i in range(12)]
    nodes = {cluster_client.get_node_from_key(broker.keys.queue(n).events).name for n in names}
    assert len(nodes) >= 2
    producer = Producer(broker)
    producer.enqueue(names[0], 0)
    sink = Collector()
    feed = StreamFeed(cluster_client, broker.keys, sink.bus, discover_interval=0.05)
    feed.start()
    try:
        for name in names:
            producer.enqueue(name, 1)
        for name in names:
            sink.wait(has("job.enqueued", name), f"the event of {name}")
        assert len(sink.events()) == len(names)  # the one before start is not new
    finally:
        feed.stop()


def test_stats_are_sampled_only_while_subscribed(broker: Broker) -> None:
    Producer(broker).enqueue("emails", 1)
    bus = EventBus()
    sampler = StatsSampler(Admin(broker), bus)
    sampler.start()
    try:
        wait_for(lambda: sampler.parked == 1)  # asleep with no sample planned
        assert sampler.samples == 0
        sink = Collector(bus, QUEUE_STATS, interval=0.2)
        events = sink.wait(has(QUEUE_STATS, "emails", 2), "two samples")
        sample = events[0]
        assert sample.source == "sampler" and sample.data["pending"] == 1
        assert "queue" not in sample.data
        bus.unsubscribe(sink.sub)
        wait_for(lambda: sampler.parked == 2)  # a sample under way finished, none planned
        assert bus.sample_interval(QUEUE_STATS) is None
    finally:
        sampler.stop()


def test_health_sampler(redis_client: redis.Redis) -> None:
    bus = EventBus()
    sink = Collector(bus, SYSTEM_HEALTH, interval=0.2)
    with HealthSampler(redis_client, bus):
        event = sink.wait(lambda es: len(es) >= 1, "a health sample")[0]
    assert event.source == "sampler" and event.queue == ""
    assert event.data["rss_bytes"] > 0
    assert event.data["redis_latency_ms"] >= 0
    assert event.data["redis_used_memory"] > 0
    assert event.data["cpu_percent"] >= 0


def test_publish_local() -> None:
    sink = Collector(pattern="plugin.*")
    event = publish_local(sink.bus, "plugin.loaded", {"plugin": "sla", "version": "1.0.0"})
    assert sink.events() == [event] and event.source == "host"
    with pytest.raises(EventTypeError):
        publish_local(sink.bus, "plugin.nonsense", {})
