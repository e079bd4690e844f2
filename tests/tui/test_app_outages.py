"""The dashboard outlives Redis going away and coming back, and its actions say so in a line."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.tui.app import RwqApp
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
