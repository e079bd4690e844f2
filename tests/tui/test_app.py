"""The dashboard's built-in views, driven through Textual's pilot against the real server."""

from __future__ import annotations

import io

import redis
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static, TabbedContent

from rwq.bench.queue import run_queue_bench
from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.tui.app import RwqApp
from rwq.tui.bench_form import BenchScreen, parse_jobs
from rwq.tui.dead_letters import DeadLettersView
from rwq.tui.dialogs import ConfirmScreen, TextScreen

from .driving import drive, kill, rows, until, until_screen


def test_queues_view_lists_filters_and_charts(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    producer.enqueue_many("tenant.acme", range(7))
    producer.enqueue_many("tenant.globex", range(3))
    producer.enqueue_many("billing", range(2))
    app = RwqApp(settings, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        table = app.query_one("#queue-table", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        by_queue = {r[0]: r for r in rows(table)}
        assert by_queue["tenant.acme"][1] == "7"
        assert by_queue["tenant.globex"][1] == "3"
        assert "ok" in app.sub_title
        app.query_one("#queue-filter", Input).value = "tenant.*"
        await until(pilot, lambda: table.row_count == 2)
        assert {r[0] for r in rows(table)} == {"tenant.acme", "tenant.globex"}
        app.query_one("#queue-filter", Input).value = "bill"
        await until(pilot, lambda: table.row_count == 1)
        await until(pilot, lambda: len(app.history.times) >= 2)
        assert list(app.history.depth["billing"])[-1] == 2.0

    drive(app, steps)


def test_pause_resume_and_peek_from_the_queues_view(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    job = Producer(broker).enqueue("orders", {"sku": "X-1"})
    app = RwqApp(settings, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        table = app.query_one("#queue-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("p")
        await until_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: Admin(broker).stats().queues[0].paused)
        await until(pilot, lambda: "paused" in rows(table)[0][-1])
        await pilot.press("p", "y")
        await until(pilot, lambda: not Admin(broker).stats().queues[0].paused)
        await pilot.press("enter")
        await until_screen(pilot, TextScreen)
        assert job.id in str(app.screen.query_one("#body").render())
        assert "X-1" in str(app.screen.query_one("#body").render())

    drive(app, steps)


def test_read_only_refuses_pause(settings: Settings, redis_client: redis.Redis) -> None:
    broker = Broker(redis_client, settings)
    Producer(broker).enqueue("orders", 1)
    ro = settings.replace(read_only=True)
    app = RwqApp(ro, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        table = app.query_one("#queue-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("p")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert not Admin(broker).stats().queues[0].paused

    drive(app, steps)


def test_dead_letters_filter_inspect_requeue_and_purge(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    kill(broker, "tenant.a", producer.enqueue_many("tenant.a", range(3)), "timeout talking to S3")
    kill(broker, "tenant.b", producer.enqueue_many("tenant.b", range(2)), "KeyError: 'sku'")
    admin = Admin(broker)
    app = RwqApp(settings, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        table = app.query_one("#dead-table", DataTable)
        await until(pilot, lambda: table.row_count == 5)
        app.query_one("#dead-error", Input).value = "timeout"
        await until(pilot, lambda: table.row_count == 3)
        assert "3 dead letters match" in str(app.query_one("#dead-status", Label).render())
        table.focus()
        await pilot.press("enter")
        await until_screen(pilot, TextScreen)
        assert "timeout talking to S3" in str(app.screen.query_one("#body").render())
        await pilot.press("escape")
        # select two, requeue them
        await pilot.press("space", "down", "space", "r")
        await until_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: admin.dlq_list(queue="tenant.a").total == 1)
        assert admin.stats(["tenant.a"]).queues[0].pending == 2
        await until(pilot, lambda: table.row_count == 1)
        # purge every match of a cleared filter: the rest go
        app.query_one("#dead-error", Input).value = ""
        await until(pilot, lambda: table.row_count == 3)
        table.focus()
        await pilot.press("D")
        await until_screen(pilot, ConfirmScreen)
        await pilot.press("n")  # cancelled: nothing changes
        await pilot.pause(0.1)
        assert admin.dlq_list().total == 3
        await pilot.press("D", "y")
        await until(pilot, lambda: admin.dlq_list().total == 0)
        await until(pilot, lambda: table.row_count == 0)

    drive(app, steps)


def test_dead_letter_actions_are_refused_read_only(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    kill(broker, "q", producer.enqueue_many("q", range(2)), "boom")
    app = RwqApp(settings.replace(read_only=True), redis_client, address="t", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        table = app.query_one("#dead-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        table.focus()
        await pilot.press("d", "D", "r", "R")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert Admin(broker).dlq_list().total == 2

    drive(app, steps)


def test_workers_view_marks_lost_workers(settings: Settings, redis_client: redis.Redis) -> None:
    import json

    keys = Broker(redis_client, settings).keys
    redis_client.hset(
        keys.workers,
        mapping={
            "w-live": json.dumps({"host": "box1", "pid": 11, "queues": ["q"], "concurrency": 4}),
            "w-gone": json.dumps({"host": "box2", "pid": 22, "queues": ["q"], "concurrency": 4}),
        },
    )
    now_ms = int(redis_client.time()[0]) * 1000
    beat = {"state": "running", "ts": now_ms, "processed": 5, "failed": 1}
    redis_client.set(keys.heartbeat("w-live"), json.dumps(beat), ex=30)
    app = RwqApp(settings, redis_client, address="t", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("3")
        table = app.query_one("#workers-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        by_id = {r[0]: r for r in rows(table)}
        assert by_id["w-live"][4] == "running"
        assert by_id["w-gone"][4] == "lost"
        assert "1 lost (heartbeat expired)" in str(app.query_one("#workers-status", Label).render())
        notices = [n.message for n in app._notifications]
        assert any(m.startswith("worker w-gone lost: its heartbeat expired") for m in notices)
        assert not any("w-live" in m for m in notices)

    drive(app, steps)


def test_tabs_help_and_theme_keys(settings: Settings, redis_client: redis.Redis) -> None:
    app = RwqApp(settings, redis_client, address="t", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        tabs = app.query_one(TabbedContent)
        tab_ids = ("queues", "dead", "workers", "panels", "plugins")
        for key, tab in zip("12345", tab_ids, strict=True):
            await pilot.press(key)
            assert tabs.active == tab
        await pilot.press("question_mark")
        assert isinstance(app.screen, TextScreen)
        await pilot.press("escape")
        before = app.theme
        await pilot.press("t")
        assert app.theme != before

    drive(app, steps)


def test_bench_form_runs_and_reports(settings: Settings, redis_client: redis.Redis) -> None:
    assert parse_jobs("1_000") == 1000
    for bad in ("ten", "5", "99999999"):
        try:
            parse_jobs(bad)
        except ValueError as exc:
            assert "jobs" in str(exc)
        else:
            raise AssertionError(bad)
    app = RwqApp(
        settings, redis_client, address="t", poll_interval=0.5, queue_bench=run_queue_bench
    )

    async def steps(pilot: Pilot[None]) -> None:
        app.query_one("#queue-table", DataTable).focus()
        await pilot.press("b")
        await until_screen(pilot, BenchScreen)
        app.screen.query_one("#bench-jobs", Input).value = "500"
        await pilot.click("#run")
        result = app.screen.query_one("#bench-result", Static)

        def shown() -> str:
            console = Console(width=100, record=True, file=io.StringIO())
            console.print(result.content)
            return console.export_text()

        await until(pilot, lambda: "process jobs per s" in shown(), timeout=60)
        assert "{" not in shown()  # a table of figures, not raw JSON

    drive(app, steps)


def test_the_dead_letters_view_follows_new_dead_letters(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    kill(broker, "q", producer.enqueue_many("q", range(2)), "boom")
    app = RwqApp(settings, redis_client, address="t", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        table = app.query_one("#dead-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        table.focus()
        await pilot.press("down", "space")  # the cursor and the selection survive a refresh
        kill(broker, "q", producer.enqueue_many("q", range(3)), "later")
        await until(pilot, lambda: table.row_count == 5)
        view = app.query_one(DeadLettersView)
        current = view.current()
        assert current is not None and current.id in view.chosen
        assert len(view.chosen) == 1

    drive(app, steps)


def test_charts_never_show_negative_counts_or_times(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """At start-up the charts read "-1.00 jobs/s" and "-1.00 seconds ago"."""
    import re

    from rwq.tui.queues import Chart

    Producer(Broker(redis_client, settings)).enqueue("q", 1)
    app = RwqApp(settings, redis_client, address="test", poll_interval=0.2)

    async def steps(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: len(app.history.times) >= 1)
        for _ in range(2):  # with one reading, then with a few
            await pilot.pause(0.1)
            for chart in app.query(Chart):
                chart.plt.plotsize(80, 14)
                text = chart.plt.build()
                assert not re.search(r"-\d", text), text
                assert "now" in text and "time ago" in text
            await until(pilot, lambda: len(app.history.times) >= 3)

    drive(app, steps)


def test_workers_fit_120_columns_with_short_job_ids_and_the_full_ones_below(
    settings: Settings, redis_client: redis.Redis
) -> None:
    import asyncio
    import json

    keys = Broker(redis_client, settings).keys
    worker_id = "build-runner-eu-west-1.internal.example.com:123456:a1b2c3"
    jobs = [f"01a24d0a4a28760fba146616f{n}" for n in range(3)]
    queues = ["tenant.acme", "tenant.globex", "tenant.initech"]
    info = {"host": worker_id.split(":")[0], "pid": 123456, "queues": queues, "concurrency": 8}
    redis_client.hset(keys.workers, worker_id, json.dumps(info))
    now_ms = int(redis_client.time()[0]) * 1000
    beat = {"state": "running", "ts": now_ms, "processed": 5, "failed": 1}
    redis_client.set(keys.heartbeat(worker_id), json.dumps(beat), ex=30)
    redis_client.zadd(keys.queue("tenant.acme").processing(worker_id), dict.fromkeys(jobs, 1))
    app = RwqApp(settings, redis_client, address="t", poll_interval=0.2)

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("3")
            table = app.query_one("#workers-table", DataTable)
            await until(pilot, lambda: table.row_count == 1)
            [row] = rows(table)
            assert row[0] == "a1b2c3" and row[5].startswith("3/8 ")
            assert row[5] == f"3/8 {jobs[0][-8:]} +2"
            widths = {str(c.label): c.get_render_width(table) for c in table.ordered_columns}
            assert sum(widths.values()) <= 118, widths  # every column on screen
            table.focus()
            detail = app.query_one("#workers-detail", Label)
            await until(pilot, lambda: worker_id in str(detail.render()))
            assert all(j in str(detail.render()) for j in jobs)

    asyncio.run(main())
