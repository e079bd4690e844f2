"""The broker's pipelines survive a server that lost its scripts."""

from __future__ import annotations

import redis

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker


def test_pipelines_reload_scripts_after_a_flush(broker: Broker, producer: Producer) -> None:
    producer.enqueue_many("q", range(10))
    broker.client.script_flush()
    producer.enqueue_many("q", range(10, 20))  # a pipelined enqueue
    broker.client.script_flush()
    [stats] = Admin(broker).stats(["q"]).queues  # a pipelined stats call
    assert stats.pending == 20
    worker = Worker(broker, ["q"], {"q": lambda job: None})
    broker.client.script_flush()
    worker.run(max_jobs=20, duration=20)  # pipelined result writes
    assert worker.processed == 20


def test_pipelined_scripts_do_not_ask_script_exists(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """One round trip per pipeline: redis-py's SCRIPT EXISTS check before it is skipped."""
    broker = Broker(redis_client, settings)
    Producer(broker).enqueue_many("q", range(5))
    admin = Admin(broker)
    admin.stats(["q"])  # scripts loaded by now
    redis_client.config_resetstat()
    for _ in range(3):
        admin.stats(["q"])
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3
    assert not any("exists" in name and "script" in name for name in stats)
