"""The one stream reader: from a stream's end or its start, several streams in time order,
nothing read twice, on one server and on a cluster."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.queue.stream import StreamReader


def test_a_reader_sees_only_what_follows_and_each_entry_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    producer.enqueue("a", {"n": 0})  # before the reader: not seen
    reader = StreamReader(redis_client)
    reader.follow({broker.queue_keys("a").events: "a", broker.queue_keys("b").events: "b"})
    assert reader.read() == []
    first = producer.enqueue("a", {"n": 1}).id
    second = producer.enqueue("b", {"n": 2}).id
    third = producer.enqueue("a", {"n": 3}).id
    events = reader.read(block_ms=100)
    assert {e.type for e in events} == {"job.enqueued"}
    assert [e.data["job_id"] for e in events if e.queue == "a"] == [first, third]
    assert [e.data["job_id"] for e in events if e.queue == "b"] == [second]
    assert [e.ts for e in events] == sorted(e.ts for e in events)  # milliseconds: ties stay
    assert reader.read() == []  # nothing read twice


def test_a_stream_followed_from_its_start_gives_its_whole_history(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    ids = [job.id for job in Producer(broker).enqueue_many("late", [{"n": n} for n in range(3)])]
    reader = StreamReader(redis_client, count=2)
    key = broker.queue_keys("late").events
    reader.follow({key: "late"}, from_start=True)
    reader.follow({key: "ignored"})  # already followed: its position stays
    assert [e.data["job_id"] for e in reader.read()] == ids[:2]  # count per read
    assert [e.data["job_id"] for e in reader.read()] == ids[2:]
    assert reader.queues == {key: "late"}


def test_a_cluster_reader_sees_streams_on_every_node(
    cluster_client: RedisCluster, settings: Settings
) -> None:
    broker = Broker(cluster_client, settings)
    producer = Producer(broker)
    queues = [f"q{n}" for n in range(8)]  # spread over the three masters' slots
    reader = StreamReader(cluster_client)
    reader.follow({broker.queue_keys(q).events: q for q in queues})
    assert reader.cluster
    sent = {q: producer.enqueue(q, {"q": q}).id for q in queues}
    seen = {e.queue: e.data["job_id"] for e in reader.read()}
    assert seen == sent
