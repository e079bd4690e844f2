"""The reaper of a long-running process outlives an outage, and after one gives live workers a
heartbeat TTL to renew their leases before it takes anyone for dead."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.queue.reaper import Reaper
from rwq.valkey.standalone import StandaloneServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_reaper_waits_a_heartbeat_ttl_after_an_outage(
    make_server: Callable[..., StandaloneServer],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server(persistence=True)
    here = settings.replace(
        redis_url=server.url, heartbeat_interval=1.0, heartbeat_ttl=10.0, reaper_interval=1.0,
        socket_timeout=0.5, socket_connect_timeout=0.3, redis_retries=0,
    )  # fmt: skip
    broker = Broker(connect(here), here)
    job = Producer(broker).enqueue("mail", {})
    broker.fetch("mail", "ghost", 1)
    info = {"id": "ghost", "queues": ["mail"]}
    broker.client.hset(broker.keys.workers, "ghost", json.dumps(info))  # no heartbeat
    clock = Clock()
    reaper = Reaper(broker, "test", clock=clock)

    server.stop()  # saved: it comes back with the dead worker's job
    with caplog.at_level(logging.WARNING):
        for _ in range(5):  # the passes fail, logged once
            assert reaper.maybe_reap() is None
            clock.now += 10
    assert reaper.outage.down
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1

    server.start()
    assert reaper.maybe_reap() is None  # back: the first pass only looks
    assert not reaper.outage.down
    clock.now += 5
    assert reaper.maybe_reap() is None  # held off for the heartbeat TTL
    assert broker.client.hexists(broker.keys.workers, "ghost")
    clock.now += 6
    reaped = reaper.maybe_reap()
    assert reaped is not None and reaped.workers == ["ghost"]
    stats = Admin(broker).stats(["mail"]).queues[0]
    assert (stats.pending, stats.processing) == (1, 0)
    assert Admin(broker).peek("mail")[0].id == job.id
