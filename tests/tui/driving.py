"""Helpers of the TUI tests: run an app under the pilot, wait for a state, make dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot
from textual.widgets import Button, DataTable

from rwq.queue.broker import Broker, Failure
from rwq.queue.job import Job
from rwq.tui.app import RwqApp

SIZE = (140, 45)


def drive(app: RwqApp, steps: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await steps(pilot)

    asyncio.run(main())


async def until(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``check()`` holds (the views fill from worker threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("the screen did not reach the expected state")
        await pilot.pause(0.05)


def kill(broker: Broker, queue: str, jobs: list[Job], error: str) -> None:
    taken = broker.fetch(queue, "w-test", len(jobs)).jobs
    broker.fail(queue, "w-test", [Failure(j.id, 1.0, error, permanent=True) for j in taken])


def rows(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row(key)] for key in table.rows]


async def until_screen(pilot: Pilot[None], kind: type[object], timeout: float = 15.0) -> None:
    """Wait until a screen of ``kind`` is on top and composed (every dialog has a button)."""
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, kind) and bool(app.screen.query(Button)),
        timeout,
    )
