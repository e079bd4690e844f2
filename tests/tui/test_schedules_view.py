"""The workers view lists the periodic jobs, once there are any, driven through the pilot."""

from __future__ import annotations

import redis
from textual.pilot import Pilot
from textual.widgets import DataTable, Label

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.scheduler import Scheduler
from rwq.queue.schedules import ScheduleStore, server_ms
from rwq.schedule_spec import make_spec
from rwq.tui.app import RwqApp

from .driving import drive, rows, until


def test_the_workers_view_shows_schedules_with_their_next_and_last_ticks(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    store = ScheduleStore(broker)
    app = RwqApp(settings, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("3")
        table = app.query_one("#schedules-table", DataTable)
        await until(pilot, lambda: app.sample is not None)
        assert not table.display  # no schedule: no section
        store.add(make_spec("nightly", {"queue": "reports", "cron": "0 3 * * *",
                                        "timezone": "Europe/Berlin"}))  # fmt: skip
        store.add(make_spec("beat", {"queue": "q", "every": "1s"}))
        await until(pilot, lambda: table.display and table.row_count == 2)
        beat, nightly = rows(table)
        assert nightly[:3] == ["nightly", "reports", "0 3 * * * (Europe/Berlin)"]
        assert nightly[3].startswith("in ") and nightly[4:6] == ["", ""]
        assert beat[:3] == ["beat", "q", "every 1s"]
        assert str(app.query_one("#schedules-status", Label).render()) == "2 schedules"
        due = server_ms(redis_client) // 1000 * 1000 - 3000  # as if no scheduler ran since
        redis_client.hset(broker.queue_keys("q").schedule("beat"), "next_ms", str(due))
        Scheduler(broker, {}).run_once()
        await until(pilot, lambda: rows(table)[0][5].startswith("beat:"))
        assert rows(table)[0][4].endswith("ago") and rows(table)[0][6] == "1"
        store.remove("beat")
        store.remove("nightly")
        await until(pilot, lambda: not table.display)

    drive(app, steps)
