"""Cancelling a job: a queued one is removed at once; a running one is taken from its worker,
which is told to stop its handler. Either way the job ends ``cancelled`` and never runs
again (the cancel script, ``lua/cancel.lua``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rwq.errors import RwqError
from rwq.queue.broker import Broker

CANCELLED_KEEP_S = 86400
"""Seconds a cancelled job's hash is kept (for ``rwq admin job``), then it expires."""


class CancelError(RwqError):
    """A job could not be cancelled."""


class JobNotFound(CancelError):
    """No job with that id is on the queue (or on any queue)."""

    def __init__(self, job_id: str, queue: str | None) -> None:
        self.job_id = job_id
        self.queue = queue
        super().__init__(f"no job {job_id!r} on {repr(queue) if queue else 'any queue'}")


class NotCancellable(CancelError):
    """The job is over (completed, dead-lettered, cancelled): there is nothing to stop."""

    def __init__(self, job_id: str, queue: str, state: str) -> None:
        self.job_id = job_id
        self.queue = queue
        self.state = state
        why = {
            "completed": "it has completed",
            "dead": "it is dead-lettered, not queued or running (requeue or purge it instead)",
            "cancelled": "it was cancelled already",
        }.get(state, f"it is {state}")
        super().__init__(f"job {job_id} on {queue} cannot be cancelled: {why}")


@dataclass(frozen=True)
class Cancellation:
    """A job that was cancelled."""

    job_id: str
    queue: str
    was: str
    """``pending``, ``scheduled`` or ``processing``."""
    worker: str | None = None
    """The worker that held it (``processing``): told to stop its handler."""


def cancel_job(broker: Broker, job_id: str, queue: str | None = None) -> Cancellation:
    """Cancel ``job_id`` of ``queue`` (None: whichever queue has it).

    Raises:
        JobNotFound: no such job (on ``queue``, or on any queue).
        NotCancellable: the job has completed, is dead-lettered or was cancelled.
    """
    name = queue if queue is not None else _queue_of(broker, job_id)
    if name is None:
        raise JobNotFound(job_id, None)
    qk = broker.queue_keys(name)
    args = [broker.settings.events_maxlen, name, broker.keys.cancel_channel, job_id,
            CANCELLED_KEEP_S * 1000]  # fmt: skip
    reply = broker.scripts.cancel(keys=[qk.tag], args=args)
    if reply[0] == "ok":
        return Cancellation(job_id, name, reply[1], reply[2] or None)
    if reply[0] == "unknown":
        if _completed(broker, name, job_id):
            raise NotCancellable(job_id, name, "completed")
        raise JobNotFound(job_id, queue)
    raise NotCancellable(job_id, name, reply[0])


def _queue_of(broker: Broker, job_id: str) -> str | None:
    """The queue holding a job ``job_id`` (its hash), else one whose history has it."""
    names = broker.queues()
    pipe = broker.client.pipeline(transaction=False)
    for name in names:
        pipe.exists(broker.queue_keys(name).job(job_id))
    for name, found in zip(names, pipe.execute(), strict=True):
        if found:
            return name
    return next((name for name in names if _completed(broker, name, job_id)), None)


def _completed(broker: Broker, queue: str, job_id: str) -> bool:
    """Whether ``job_id`` is in ``queue``'s completed history."""
    needle = f'"id":{json.dumps(job_id)}'
    rows = broker.client.lrange(broker.queue_keys(queue).completed, 0, -1)
    return any(needle in row for row in rows)
