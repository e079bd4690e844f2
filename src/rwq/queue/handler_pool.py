"""Where a worker's handlers run: the :class:`HandlerPool` its job loop hands runs to, and the
thread-mode pool (handlers in threads of the worker's process, abandoned at their timeout).

The process-mode pool is :mod:`rwq.queue.handler_processes`; async handlers (cancelled at
their timeout) run in the third, :mod:`rwq.queue.handler_coroutines`.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from rwq.queue.handler import Outcome
from rwq.queue.job import Job
from rwq.queue.timeouts import JobTimeout

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

Deliver = Callable[[Outcome | None], None]
"""Hands the job loop an outcome (``None``: only wakes it, say to look at a new deadline)."""


@dataclass(eq=False)
class Run:
    """One run of a job handed to a pool."""

    queue: str
    job: Job
    timeout: float | None
    """Seconds the handler may run; None: no limit."""
    started: float | None = None
    """When the handler started (``time.monotonic()``); None while it waits for a slot."""
    abandoned: bool = field(default=False, repr=False)
    cancelled: bool = field(default=False, repr=False)
    """The job was cancelled while it ran (``rwq admin cancel``)."""
    thread: threading.Thread | None = field(default=None, repr=False)
    """The thread running it (thread mode)."""


class HandlerPool(Protocol):
    """Runs handlers beside the job loop and delivers their outcomes to it."""

    abandoned: int
    """Handlers stopped being waited for at their timeout that still run (thread mode; async
    handlers until their cancelled task ends)."""

    def submit(self, run: Run) -> None:
        """Run ``run`` when a slot is free; its outcome is delivered."""

    def next_deadline(self) -> float | None:
        """The earliest ``time.monotonic()`` at which a running handler passes its timeout."""

    def expire(self, now: float) -> list[Outcome]:
        """The outcomes of runs past their timeout at ``now`` that the loop must record (the
        pool delivers none for them later)."""

    def shutdown(self) -> None:
        """Stop the slots once they are idle; handlers still running are not waited for."""

    def cancel_job(self, queue: str, job_id: str) -> bool:
        """Stop the handler running this job, if one is (thread-safe): its outcome, marked
        ``cancelled``, is delivered; False when it is not running here."""


def cancelled(run: Run) -> Outcome:
    """The outcome of ``run`` stopped because its job was cancelled (never recorded)."""
    started = run.started if run.started is not None else time.monotonic()
    return Outcome(run.queue, run.job, False, (time.monotonic() - started) * 1000,
                   "JobCancelled: the job was cancelled while it ran", cancelled=True)  # fmt: skip


def next_due(runs: Iterable[Run]) -> float | None:
    """When the first of ``runs`` with a timeout passes it (None: none has one)."""
    due = [r.started + r.timeout for r in runs if r.started is not None and r.timeout is not None]
    return min(due) if due else None


def overdue(runs: Iterable[Run], now: float) -> list[Run]:
    """The ``runs`` past their timeout at ``now``."""
    return [r for r in runs if r.started is not None and r.timeout is not None
            and r.started + r.timeout <= now]  # fmt: skip


def timed_out(run: Run, stopped: str, now: float) -> Outcome:
    """The outcome of ``run`` stopped (``killed``, ``abandoned`` or ``cancelled``) at its
    timeout."""
    assert run.timeout is not None
    started = run.started if run.started is not None else now
    error = JobTimeout(run.timeout, stopped)
    return Outcome(
        run.queue,
        run.job,
        False,
        (now - started) * 1000,
        f"JobTimeout: {error}",
        timeout=run.timeout,
        stopped=stopped,
    )


class ThreadHandlers:
    """``size`` threads running handlers in this process.

    A handler past its timeout cannot be stopped (Python cannot kill a thread): the loop
    takes its timeout outcome from :meth:`expire`, the thread is abandoned (a new one takes
    its slot) and when the handler returns at last, its outcome is dropped and the thread
    ends.
    """

    def __init__(self, size: int, execute: Callable[[Run], Outcome], deliver: Deliver) -> None:
        self._execute = execute
        self._deliver = deliver
        self._work: queue_mod.SimpleQueue[Run | None] = queue_mod.SimpleQueue()
        self._lock = threading.Lock()
        self._timed: set[Run] = set()
        """Runs with a timeout that were submitted and are not finished or abandoned."""
        self._active: dict[tuple[str, str], Run] = {}
        """Runs a thread is running, by (queue, job id)."""
        self._threads: list[threading.Thread] = []
        self._serial = 0
        self.abandoned = 0
        for _ in range(size):
            self._start_thread()

    def submit(self, run: Run) -> None:
        if run.timeout is not None:
            with self._lock:
                self._timed.add(run)
        self._work.put(run)

    def next_deadline(self) -> float | None:
        with self._lock:
            return next_due(self._timed)

    def expire(self, now: float) -> list[Outcome]:
        with self._lock:
            late = overdue(self._timed, now)
            for run in late:
                self._timed.discard(run)
                if self._active.get((run.queue, run.job.id)) is run:
                    del self._active[(run.queue, run.job.id)]
                run.abandoned = True
                self.abandoned += 1
                if run.thread in self._threads:
                    self._threads.remove(run.thread)
                self._start_thread()  # the stuck thread's slot is served again
        for run in late:
            log.warning(
                "job %s on %s ran past its %gs timeout: failed; its thread is abandoned "
                "(%d abandoned handler(s) still running)",
                run.job.id, run.queue, run.timeout, self.abandoned,
            )  # fmt: skip
        return [timed_out(run, "abandoned", now) for run in late]

    def cancel_job(self, queue: str, job_id: str) -> bool:
        with self._lock:
            run = self._active.pop((queue, job_id), None)
            if run is None or run.abandoned:
                return False
            run.abandoned = run.cancelled = True
            self._timed.discard(run)
            self.abandoned += 1
            if run.thread in self._threads:
                self._threads.remove(run.thread)
            self._start_thread()  # the slot is served again
        log.warning(
            "job %s on %s was cancelled while it ran: its thread is abandoned (%d abandoned "
            "handler(s) still running)", job_id, queue, self.abandoned,
        )  # fmt: skip
        self._deliver(cancelled(run))
        return True

    def shutdown(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        for thread in threads:
            thread.join()

    def _start_thread(self) -> None:
        """Call with the lock held (or before any thread runs)."""
        self._serial += 1
        thread = threading.Thread(
            target=self._serve, name=f"rwq-job-{self._serial}", daemon=True
        )  # daemon: an abandoned handler never holds up the process's exit
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            run = self._work.get()
            if run is None:
                break
            key = (run.queue, run.job.id)
            with self._lock:
                run.started = time.monotonic()
                run.thread = me
                self._active[key] = run  # a cancel can find it
            if run.timeout is not None:
                self._deliver(None)  # the loop learns the deadline
            outcome = self._execute(run)
            with self._lock:
                gone = run.abandoned
                if gone:
                    self.abandoned -= 1
                else:
                    self._active.pop(key, None)
                    self._timed.discard(run)
            if gone:
                log.warning(
                    "the handler of job %s on %s that was abandoned (%s) returned after "
                    "%.0f ms; its result is discarded", run.job.id, run.queue,
                    "cancelled" if run.cancelled else "at its timeout", outcome.duration_ms,
                )  # fmt: skip
                break  # replaced when it was abandoned
            self._deliver(outcome)
        with self._lock:
            if me in self._threads:
                self._threads.remove(me)
