"""A job's handle and waiting for a job to end: what ``Producer.enqueue`` returns, what
``rwq job wait`` does.

A waiter blocks on the server, never polls: it counts itself in the job's waiters (script
``watch``), then blocks (``BLPOP``) on the job's ``done`` list, where the script that ends the
job (completes it, dead-letters it, purges it) pushes one token per waiter in the same atomic
step. A job that has already ended is read at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from rwq.errors import RwqError
from rwq.queue.broker import Broker
from rwq.queue.job import Job

ENDED = ("completed", "dead", "cancelled")
"""The states a job ends in while it is kept (a deleted job is gone)."""


class JobNotFound(RwqError):
    """No job with this id: never enqueued, deleted, or completed longer ago than its result
    is kept (``result_ttl``)."""

    def __init__(self, job_id: str, queue: str | None = None, reason: str = "") -> None:
        self.job_id = job_id
        self.queue = queue
        where = f" on queue {queue!r}" if queue else " on any queue"
        why = reason or (
            "never enqueued, deleted, or completed longer ago than its result is kept "
            "(setting result_ttl)"
        )
        super().__init__(f"no job {job_id!r}{where}: {why}")


class JobFailed(RwqError):
    """The job was dead-lettered (its retries used up, or a permanent failure)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error = job.last_error or "no error recorded"
        super().__init__(
            f"job {job.id!r} on {job.queue!r} failed after {job.attempts} attempt(s) and was "
            f"dead-lettered: {self.error}"
        )


class JobCancelled(RwqError):
    """The job was cancelled (``rwq admin cancel``) before it completed."""

    def __init__(self, job_id: str, queue: str) -> None:
        self.job_id = job_id
        self.queue = queue
        super().__init__(f"job {job_id!r} on {queue!r} was cancelled")


class ResultNotKept(RwqError):
    """The job completed but its result is not there: it was not JSON, too large, or not kept
    (``result_ttl`` 0)."""

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id!r} completed, but {reason}")


class WaitTimeout(RwqError, TimeoutError):
    """The job did not end within the time given."""

    def __init__(self, job_id: str, timeout: float, state: str) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.state = state
        super().__init__(f"job {job_id!r} did not end within {timeout:g}s (it is {state})")


@dataclass(frozen=True)
class Ended:
    """How a job ended."""

    job_id: str
    queue: str
    state: str
    """``completed``, ``dead``, ``cancelled`` or ``deleted`` (purged before it ended)."""
    job: Job | None
    """The job as stored once it ended; None when it is not kept (deleted, ``result_ttl``
    0)."""


def load_job(broker: Broker, queue: str, job_id: str) -> Job | None:
    """The job as stored now, or None."""
    fields = broker.client.hgetall(broker.queue_keys(queue).job(job_id))
    return Job.from_fields(fields, job_id, queue) if fields else None


def wait_for_job(broker: Broker, queue: str, job_id: str, timeout: float | None = None) -> Ended:
    """Block until the job ends (at most ``timeout`` seconds; None: no limit).

    Raises:
        JobNotFound: there is no such job on ``queue``.
        WaitTimeout: it did not end in time.
    """
    if timeout is not None and not (timeout >= 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    state = broker.watch(queue, job_id, True)
    if not state:
        raise JobNotFound(job_id, queue)
    if state in ENDED:
        return _read(broker, queue, job_id, state)
    deadline = None if timeout is None else time.monotonic() + timeout
    done = broker.queue_keys(queue).done(job_id)
    woken = False
    try:
        while True:
            block = 0.0  # BLPOP's 0: no limit
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _timed_out(broker, queue, job_id, timeout)
                block = max(left, 0.001)  # its shortest limit
            popped = broker.client.blpop([done], timeout=block)
            if popped is None:
                raise _timed_out(broker, queue, job_id, timeout)
            woken = True
            ended = _read(broker, queue, job_id, popped[1])
            if ended.job is None or ended.job.state in ENDED:
                return ended
            # A token an earlier waiter left (it gave up as the job ended, and the job was
            # requeued since): the job runs still, and this waiter is still counted.
            woken = False
    finally:
        if not woken:  # timed out or interrupted: no longer waiting (its count goes)
            with contextlib.suppress(redis.RedisError):  # the wait's own error matters more
                broker.watch(queue, job_id, False)


def _read(broker: Broker, queue: str, job_id: str, state: str) -> Ended:
    job = load_job(broker, queue, job_id)
    if job is not None and job.state in ENDED:
        state = job.state
    return Ended(job_id, queue, state, job)


def _timed_out(broker: Broker, queue: str, job_id: str, timeout: float | None) -> WaitTimeout:
    job = load_job(broker, queue, job_id)
    return WaitTimeout(job_id, timeout or 0.0, job.state if job else "gone")


class JobHandle:
    """A job enqueued: its fields as enqueued (``handle.id``, ``handle.state``,
    ``handle.payload``: every field of :class:`Job`), and its live state and result.

    ``Producer.enqueue`` returns one; ``Producer.handle(job_id)`` makes one for any job.
    """

    __slots__ = ("_broker", "job")

    def __init__(self, broker: Broker, job: Job) -> None:
        self._broker = broker
        self.job = job
        """The job as enqueued (or as found)."""

    @classmethod
    def find(cls, broker: Broker, job_id: str, queue: str | None = None) -> JobHandle:
        """The handle of the job ``job_id`` of ``queue`` (None: of any registered queue).

        Raises:
            JobNotFound: there is none.
        """
        names = [queue] if queue else broker.queues()
        job = find_job(broker, job_id, names)
        if job is None:
            raise JobNotFound(job_id, queue)
        return cls(broker, job)

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def state(self) -> str:
        """Its state when enqueued (``pending``, ``scheduled`` or ``duplicate``: an id that
        exists already) or found; :meth:`status` asks the server."""
        return self.job.state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "job":
            raise AttributeError(name)
        return getattr(self.job, name)  # the other fields of the job, as enqueued

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id!r}, queue={self.queue!r}, state={self.state!r})"

    def to_dict(self) -> dict[str, Any]:
        """The job as enqueued, as :meth:`Job.to_dict`."""
        return self.job.to_dict()

    def fetch(self) -> Job:
        """The job as stored now.

        Raises:
            JobNotFound: it is gone (deleted, or its result expired).
        """
        job = load_job(self._broker, self.queue, self.id)
        if job is None:
            raise JobNotFound(self.id, self.queue)
        return job

    def status(self) -> str:
        """Its state now: ``pending``, ``scheduled``, ``processing``, ``completed`` or
        ``dead``.

        Raises:
            JobNotFound: it is gone (deleted, or its result expired).
        """
        state = self._broker.client.hget(self._broker.queue_keys(self.queue).job(self.id), "state")
        if state is None:
            raise JobNotFound(self.id, self.queue)
        return str(state)

    def wait(self, timeout: float | None = None) -> Ended:
        """Block until it ends (at most ``timeout`` seconds; None: no limit) and say how.

        Raises:
            JobNotFound: it is gone.
            WaitTimeout: it did not end in time.
        """
        return wait_for_job(self._broker, self.queue, self.id, timeout)

    def result(self, timeout: float | None = None) -> Any:
        """What its handler returned (None if it returned nothing), once it completes; blocks
        at most ``timeout`` seconds (None: no limit).

        Raises:
            JobFailed: it was dead-lettered (the error is its last error).
            JobCancelled: it was cancelled.
            ResultNotKept: it completed, but its result is not there (not JSON, too large,
                or not kept).
            JobNotFound: it is gone (deleted, or its result expired).
            WaitTimeout: it did not end in time (a ``TimeoutError``).
        """
        ended = self.wait(timeout)
        return result_of(ended)


def result_of(ended: Ended) -> Any:
    """The result of a job that ended (see :meth:`JobHandle.result` for what it raises)."""
    job = ended.job
    if ended.state == "deleted":
        raise JobNotFound(ended.job_id, ended.queue, "it was deleted before it ended")
    if ended.state == "cancelled":
        raise JobCancelled(ended.job_id, ended.queue)
    if ended.state == "dead":
        if job is None:
            raise JobNotFound(ended.job_id, ended.queue, "it was dead-lettered, then deleted")
        raise JobFailed(job)
    if job is None:
        raise ResultNotKept(ended.job_id, "its result was not kept (result_ttl 0)")
    if job.result_error:
        raise ResultNotKept(ended.job_id, job.result_error)
    return job.result


def find_job(broker: Broker, job_id: str, queues: Sequence[str]) -> Job | None:
    """The job ``job_id`` of the first of ``queues`` that has it (one round trip)."""
    if not queues:
        return None
    pipe = broker.client.pipeline(transaction=False)
    for name in queues:
        pipe.hgetall(broker.queue_keys(name).job(job_id))
    for name, fields in zip(queues, pipe.execute(), strict=True):
        if fields:
            return Job.from_fields(fields, job_id, name)
    return None
