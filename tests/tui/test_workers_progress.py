"""The workers view shows how far each running job got (``job.progress()``)."""

from __future__ import annotations

import asyncio
import json

import redis
from textual.widgets import DataTable, Label

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.tui.app import RwqApp

from .driving import rows, until


def test_running_jobs_show_their_progress(settings: Settings, redis_client: redis.Redis) -> None:
    keys = Broker(redis_client, settings).keys
    worker_id = "host:42:abcdef"
    jobs = ["01a24d0a4a28760fba146616f0", "01a24d0a4a28760fba146616f1"]
    qk = keys.queue("mail")
    redis_client.sadd(keys.queues, "mail")
    info = {"host": "host", "pid": 42, "queues": ["mail"], "concurrency": 2}
    redis_client.hset(keys.workers, worker_id, json.dumps(info))
    now_ms = int(redis_client.time()[0]) * 1000
    beat = {"state": "running", "ts": now_ms, "processed": 0, "failed": 0}
    redis_client.set(keys.heartbeat(worker_id), json.dumps(beat), ex=30)
    redis_client.zadd(qk.processing(worker_id), dict.fromkeys(jobs, 1))
    # The first reported progress; the second reported some in an earlier attempt only.
    redis_client.hset(qk.job(jobs[0]), mapping={
        "attempts": 1, "progress": 0.4, "progress_message": "loading [b]x[/b]",
        "progress_attempt": 1,
    })  # fmt: skip
    redis_client.hset(qk.job(jobs[1]), mapping={
        "attempts": 2, "progress": 0.9, "progress_message": "old", "progress_attempt": 1,
    })  # fmt: skip
    app = RwqApp(settings, redis_client, address="t", poll_interval=0.2)

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("3")
            table = app.query_one("#workers-table", DataTable)
            await until(pilot, lambda: table.row_count == 1)
            [row] = rows(table)
            assert row[5] == f"2/2 {jobs[0][-8:]} 40% +1"
            table.focus()
            detail = app.query_one("#workers-detail", Label)
            await until(pilot, lambda: worker_id in str(detail.render()))
            shown = str(detail.render())
            assert f"{jobs[0]}  40% loading [b]x[/b]" in shown  # the handler's text, as data
            assert "old" not in shown and "90%" not in shown

    asyncio.run(main())
