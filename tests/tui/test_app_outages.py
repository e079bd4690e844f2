"""The dashboard outlives Redis going away and coming back, and its actions say so in a line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from redis.cluster import key_slot
from textual.pilot import Pilot

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.tui.app import RwqApp
from rwq.valkey.cluster import SLOTS, start_cluster
from rwq.valkey.standalone import StandaloneServer

from .driving import drive, until


def test_the_dashboard_outlives_a_redis_restart(
    make_server: Callable[..., StandaloneServer], settings: Settings
) -> None:
    server = make_server()
    here = settings.replace(
        redis_url=server.url, socket_timeout=0.5, socket_connect_timeout=0.3, redis_retries=0
    )
    client = connect(here)
    Producer(Broker(client, here)).enqueue("mail", {})
    app = RwqApp(here, client, address="t", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "· ok" in app.sub_title)
        server.kill()
        await until(pilot, lambda: "· down:" in app.sub_title)
        app.peek("mail")  # an action during the outage: a notice, not a crash
        await until(pilot, lambda: any("Error" in n.message for n in app._notifications))
        server.start()
        await until(pilot, lambda: "· ok" in app.sub_title)
        assert app.is_running

    drive(app, steps)


@pytest.mark.cluster
def test_a_dead_shard_hides_only_its_queues(tmp_path: Path, settings: Settings) -> None:
    cluster = start_cluster(
        tmp_path / "cluster", masters=3, node_timeout_ms=1000,
        extra_config=[["cluster-require-full-coverage", "no"]],
    )  # fmt: skip
    try:
        here = settings.replace(
            redis_url=cluster.url, socket_timeout=0.5, socket_connect_timeout=0.3,
            redis_retries=0,
        )  # fmt: skip
        registry = key_slot(b"rwq:registry") * 3 // SLOTS
        victim = (registry + 1) % 3  # not the registry's shard: the queue list stays readable
        names = [f"q{i}" for i in range(30)]
        lost = {n for n in names if key_slot(f"rwq:q:{n}".encode()) * 3 // SLOTS == victim}
        client = connect(here)
        producer = Producer(Broker(client, here))
        for name in names:
            producer.enqueue(name, {})
        app = RwqApp(here, client, address="t", poll_interval=0.2)

        async def steps(pilot: Pilot[None]) -> None:
            await until(pilot, lambda: "· ok" in app.sub_title)
            cluster.nodes[victim].kill()
            try:
                await until(pilot, lambda: "degraded:" in app.sub_title)
            except AssertionError:
                raise AssertionError(app.sub_title) from None
            assert app.sample is not None
            shown = {q.queue for q in app.sample.queues}
            assert shown == set(names) - lost
            assert f"{len(lost)} of {len(names)} queue(s) unreachable" in app.sub_title

        drive(app, steps)
    finally:
        cluster.stop()
