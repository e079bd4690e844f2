"""What a running job's handler reaches through its :class:`~rwq.queue.job.Job`: its
progress (stored on the job and announced as ``job.progress``) and whether it was cancelled.

The worker attaches a :class:`WorkerControl` to the jobs it runs; a handler process of
``--isolation process`` attaches a :class:`ChildControl`, which hands each report to its worker
as a :class:`ProgressReport` (the worker writes it to Redis: the child has no connection).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from rwq.queue.job import Job

if TYPE_CHECKING:
    from rwq.queue.broker import Broker
    from rwq.queue.handler_pool import HandlerPool, Run

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

PROGRESS_EVENT_INTERVAL_MS = 1000
"""Least time between two ``job.progress`` events of one job (the hash takes every report)."""


@dataclass(frozen=True)
class ProgressReport:
    """A progress report a handler process sends its worker while a job runs."""

    job_id: str
    fraction: float
    message: str


class WorkerControl:
    """The control of the jobs one worker runs: reports progress as the worker holding the
    job, and keeps the ids of its jobs cancelled while they run (thread-safe)."""

    def __init__(
        self, broker: Broker, worker_id: str,
        pools: Callable[[], Sequence[HandlerPool | None]] = tuple,
    ) -> None:  # fmt: skip
        self.broker = broker
        self.worker_id = worker_id
        self._pools = pools
        """The worker's handler pools, where a cancel looks for the handler to stop."""
        self._maxlen = str(broker.settings.events_maxlen)
        self._cancelled: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def report_progress(self, job: Job, fraction: float, message: str) -> bool:
        if (job.queue, job.id) in self._cancelled:
            return False
        qk = self.broker.queue_keys(job.queue)
        args = [self.worker_id, self._maxlen, job.id, job.attempts, repr(fraction), message,
                PROGRESS_EVENT_INTERVAL_MS]  # fmt: skip
        try:
            return bool(self.broker.scripts.progress(keys=[qk.tag], args=args))
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            # Progress is news, not an outcome: a Redis outage must not fail the job.
            log.warning("job %s on %s: progress not stored (%s)", job.id, job.queue, exc)
            return True

    def is_cancelled(self, job: Job) -> bool:
        return (job.queue, job.id) in self._cancelled

    def reported(self, run: Run, report: ProgressReport) -> None:
        """Store the progress a handler process reported for ``run`` (in its watcher)."""
        job = run.job
        job.progress_fraction, job.progress_message = report.fraction, report.message
        self.report_progress(job, report.fraction, report.message)

    def stop(self, queue: str, job_id: str) -> None:
        """The job was cancelled while this worker ran it (the listener thread): mark it, so
        ``job.cancelled`` is true and whatever its handler returns is not recorded, and stop
        the handler where a pool can (its process killed, its thread abandoned, its task
        cancelled)."""
        with self._lock:
            self._cancelled.add((queue, job_id))
        pools = self._pools()
        if not any(pool.cancel_job(queue, job_id) for pool in pools if pool is not None):
            log.info(
                "job %s on %s was cancelled; its handler runs on in the worker's loop until it "
                "returns (or sees job.cancelled), its result discarded", job_id, queue,
            )  # fmt: skip

    def forget(self, queue: str, job_id: str) -> bool:
        """Drop the mark once the job's run is over; whether it was cancelled. (A handler
        abandoned at its cancel keeps its mark: it may still look.)"""
        if not self._cancelled or (queue, job_id) not in self._cancelled:  # without the lock
            return False
        with self._lock:
            if (queue, job_id) in self._cancelled:
                self._cancelled.discard((queue, job_id))
                return True
            return False


class ChildControl:
    """The control of a job run in a handler process: its progress goes to the worker."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def report_progress(self, job: Job, fraction: float, message: str) -> bool:
        self._conn.send(ProgressReport(job.id, fraction, message))
        return True

    def is_cancelled(self, job: Job) -> bool:
        return False  # a cancelled job's process is stopped
