"""Handlers for the result tests: module-level, so a worker under process isolation can send
them to its child processes by name. Each returns what the job's payload asks for."""

from __future__ import annotations

import os
from typing import Any

from rwq.queue.job import Job
from rwq.queue.worker import PermanentFailure


def answer(job: Job) -> Any:
    """Return what ``job.payload["do"]`` says: ``echo`` (the payload and the pid that ran it),
    ``big`` (a string of ``size`` characters), ``object`` (no JSON), ``nothing`` or ``fail``
    (a permanent failure)."""
    action = job.payload["do"]
    if action == "big":
        return "x" * job.payload["size"]
    if action == "object":
        return {"when": object()}
    if action == "nothing":
        return None
    if action == "fail":
        raise PermanentFailure("no answer today")
    return {"echo": job.payload, "pid": os.getpid()}


async def answer_async(job: Job) -> Any:
    """An async handler: returns what :func:`answer` does."""
    return answer(job)
