"""Async handlers at module level, so a worker can load them by name (``--app``) or send them
to its child processes. Each takes its instructions from the job's payload."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from rwq.queue.job import Job
from rwq.queue.worker import PermanentFailure


async def behave(job: Job) -> None:
    """Do what ``job.payload["do"]`` says; write where it ran (``pid thread``) to
    ``payload["where_file"]`` first when given."""
    payload = job.payload
    if payload.get("where_file"):
        where = f"{os.getpid()} {threading.current_thread().name}"
        Path(payload["where_file"]).write_text(where, encoding="utf-8")
    action = payload["do"]
    if action == "sleep":
        await asyncio.sleep(payload["seconds"])
    elif action == "block":
        time.sleep(payload["seconds"])  # sync code on the loop: nothing else runs meanwhile
    elif action == "raise":
        raise ValueError("bad input")
    elif action == "permanent":
        raise PermanentFailure("never works")


def plain(job: Job) -> None:
    """A sync handler beside the async one."""


handlers = {"async": behave, "sync": plain}
"""Queue ``async`` has an async handler, ``sync`` a plain function."""
