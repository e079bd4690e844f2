"""The async :class:`~rwq.queue.handler_pool.HandlerPool`: coroutine handlers (``async def``)
awaited on one event loop per worker, in a thread of its own, at most ``size`` at once. A
coroutine past its timeout is cancelled; one that blocks the loop with sync code cannot be, and
is reported with the place where it blocks."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from rwq.queue.handler import Handler, Outcome, failed, succeeded
from rwq.queue.handler_pool import Deliver, Run, cancelled, next_due, overdue, timed_out
from rwq.queue.job import DEFAULT_RESULT_MAX_BYTES
from rwq.queue.timeouts import format_seconds

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

CANCEL_GRACE_S = 1.0
"""Seconds coroutines cancelled at the shutdown timeout get to unwind (their ``finally``
blocks and ``async with`` exits run) before the worker hands their jobs back."""
BEAT_S = 0.1
"""Seconds between the loop's heartbeats; one late by more than :data:`BLOCKED_S` is logged."""
BLOCKED_S = 0.5
"""Seconds without a heartbeat after which the loop is reported as having been blocked."""
PROBE_S = 0.1
"""Seconds the job loop waits for the event loop to take a timeout's cancel; past them the
loop counts as blocked."""


_STDLIB = sysconfig.get_paths()["stdlib"]


class CoroutineHandlers:
    """An event loop in a thread of its own running async handlers, ``size`` at once (the
    runs beyond wait for a slot, in order).

    The job loop fails a run past its timeout through :meth:`expire`, as for threads, and the
    run's task is cancelled: ``CancelledError`` is raised where the coroutine awaits, and when
    it ends its result is dropped. A coroutine that runs sync code without awaiting holds the
    whole loop: it cannot be cancelled until it awaits, and no other coroutine of the worker
    runs meanwhile. Its job still fails at its timeout, with the error naming the line it is
    stuck on, and a loop blocked for longer than :data:`BLOCKED_S` is logged when it is free.
    """

    def __init__(
        self, size: int, handlers: Mapping[str, Handler], skip: Callable[[Run], Outcome | None],
        deliver: Deliver, result_limit: int = DEFAULT_RESULT_MAX_BYTES,
    ) -> None:  # fmt: skip
        self._handlers = handlers
        self._result_limit = result_limit
        self._skip = skip
        self._deliver = deliver
        self._lock = threading.Lock()
        self._tasks: dict[Run, asyncio.Task[None]] = {}
        """Runs started whose coroutine has not ended (cancelled ones included)."""
        self._timed: set[Run] = set()
        """Started runs with a timeout that are neither finished nor failed at it."""
        self.abandoned = 0
        """Coroutines failed at their timeout or the shutdown that have not ended yet."""
        self._beat = time.monotonic()
        self._incoming: list[Run] = []
        """Runs submitted that the loop has not taken yet."""
        self._wake_pending = False
        """The loop has been asked to take the incoming runs: one wake-up per batch."""
        # Touched only in the loop's thread:
        self._waiting: collections.deque[Run] = collections.deque()
        self._free = size
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="rwq-event-loop", daemon=True)
        self._thread.start()

    # -- HandlerPool ---------------------------------------------------------------------------

    def submit(self, run: Run) -> None:
        if self._loop.is_closed():  # stopped at the shutdown timeout: the job is handed back
            self._deliver(Outcome(run.queue, run.job, False, 0.0, skipped=True))
            return
        with self._lock:
            self._incoming.append(run)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._loop.call_soon_threadsafe(self._admit)

    def next_deadline(self) -> float | None:
        with self._lock:
            return next_due(self._timed)

    def expire(self, now: float) -> list[Outcome]:
        with self._lock:
            late = overdue(self._timed, now)
            tasks = [self._drop(run) for run in late]
        if not late:
            return []
        taken = threading.Event()
        with contextlib.suppress(RuntimeError):  # the loop is closed
            for task in tasks:
                if task is not None:
                    self._loop.call_soon_threadsafe(task.cancel)
            self._loop.call_soon_threadsafe(taken.set)
        blocked = "" if taken.wait(PROBE_S) else self._blocked_at()
        outcomes = []
        for run in late:
            outcome = timed_out(run, "cancelled", now)
            if blocked:
                outcome.error += (
                    f"; the event loop is blocked by sync code ({blocked}): the task is "
                    "cancelled once the loop is free"
                )
                log.error(
                    "job %s on %s ran past its %s timeout while the event loop was blocked by "
                    "sync code (%s): failed; no async handler can run or be cancelled until "
                    "that code returns (await it with asyncio.to_thread)",
                    run.job.id, run.queue, format_seconds(run.timeout or 0), blocked,
                )  # fmt: skip
            else:
                log.warning(
                    "job %s on %s ran past its %s timeout: failed; its task is cancelled",
                    run.job.id, run.queue, format_seconds(run.timeout or 0),
                )  # fmt: skip
            outcomes.append(outcome)
        return outcomes

    def cancel_job(self, queue: str, job_id: str) -> bool:
        with self._lock:
            run = next((r for r in self._tasks if r.queue == queue and r.job.id == job_id
                        and not r.abandoned), None)  # fmt: skip
            if run is None:
                return False
            run.cancelled = True
            task = self._drop(run)
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(task.cancel)
        log.warning("job %s on %s was cancelled while it ran: its task is cancelled",
                    job_id, queue)  # fmt: skip
        self._deliver(cancelled(run))
        return True

    def shutdown(self) -> None:
        """Stop the loop (cancelling coroutines still unwinding from a cancel) and wait for its
        thread, at most :data:`CANCEL_GRACE_S` when it is blocked."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # stopped already
            self._loop.call_soon_threadsafe(self._stop)
        self._thread.join(CANCEL_GRACE_S)
        if not self._thread.is_alive():
            self._loop.close()

    # -- stopping at the shutdown timeout ------------------------------------------------------

    def cancel(self, grace: float = CANCEL_GRACE_S) -> bool:
        """Cancel every running coroutine and drop its result (the worker hands the jobs back),
        then stop the loop; True when they all ended within ``grace`` seconds."""
        with self._lock:
            for run in list(self._tasks):
                self._drop(run)
            tasks = list(self._tasks.values())
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # the loop is stopped already
                self._loop.call_soon_threadsafe(task.cancel)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._tasks:
                    break
            time.sleep(0.01)
        with self._lock:
            ended = not self._tasks
        if ended:
            self.shutdown()
        return ended

    # -- in the loop's thread ------------------------------------------------------------------

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._heartbeat)
        try:
            loop.run_forever()
        finally:  # what still runs (a coroutine ignoring its cancel) is cancelled once more
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_GRACE_S))
                loop.run_until_complete(loop.shutdown_asyncgens())

    def _stop(self) -> None:
        self._loop.stop()

    def _heartbeat(self) -> None:
        now = time.monotonic()
        late = now - self._beat - BEAT_S
        if late > BLOCKED_S:
            log.warning(
                "the event loop of the async handlers was blocked for %.1fs by sync code in a "
                "handler (no coroutine ran meanwhile): await blocking calls with "
                "asyncio.to_thread", late,
            )  # fmt: skip
        self._beat = now
        self._loop.call_later(BEAT_S, self._heartbeat)

    def _admit(self) -> None:
        with self._lock:
            self._waiting.extend(self._incoming)
            self._incoming.clear()
            self._wake_pending = False
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._free > 0 and self._waiting:
            run = self._waiting.popleft()
            skipped = self._skip(run)
            if skipped is not None:
                self._deliver(skipped)
                continue
            self._free -= 1
            task = self._loop.create_task(self._run(run), name=f"rwq-job-{run.job.id}")
            with self._lock:
                run.started = time.monotonic()
                self._tasks[run] = task
                if run.timeout is not None:
                    self._timed.add(run)
            if run.timeout is not None:
                self._deliver(None)  # the job loop learns the deadline

    async def _run(self, run: Run) -> None:
        handler = self._handlers.get(run.queue) or self._handlers["*"]
        started = time.perf_counter()
        outcome: Outcome | None = None
        try:
            value = await handler(run.job)
            outcome = succeeded(run.queue, run.job, (time.perf_counter() - started) * 1000,
                                value, self._result_limit)  # fmt: skip
        except asyncio.CancelledError:
            pass  # by a timeout or the shutdown timeout: either already settled the job
        except BaseException as exc:  # a handler's failure is data, not a dead event loop
            outcome = failed(run.queue, run.job, (time.perf_counter() - started) * 1000, exc)
        finally:
            self._free += 1
            with self._lock:
                self._tasks.pop(run, None)
                dropped = run.abandoned
                if dropped:
                    self.abandoned -= 1
                else:
                    self._timed.discard(run)
            self._start_waiting()
        if dropped:
            log.info(
                "the coroutine of job %s on %s, %s, ended after %.0f ms", run.job.id, run.queue,
                "cancelled" if run.cancelled else "failed at its timeout or the shutdown",
                (time.perf_counter() - started) * 1000,
            )  # fmt: skip
        elif outcome is not None:
            self._deliver(outcome)
        else:  # cancelled by something else than rwq: a failure like any other
            self._deliver(Outcome(run.queue, run.job, False,
                                  (time.perf_counter() - started) * 1000,
                                  "CancelledError: the handler's task was cancelled"))  # fmt: skip

    # -- helpers -------------------------------------------------------------------------------

    def _drop(self, run: Run) -> asyncio.Task[None] | None:
        """Stop waiting for ``run`` (call with the lock held): its result will be dropped."""
        self._timed.discard(run)
        if not run.abandoned:
            run.abandoned = True
            self.abandoned += 1
        return self._tasks.get(run)

    def _blocked_at(self) -> str:
        """Where the blocked loop's thread is (``at file:line in function``): its innermost
        frame outside the standard library (the handler's line, more often than not)."""
        frame = sys._current_frames().get(self._thread.ident or 0)
        if frame is None:
            return "its thread has ended"
        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if not f.filename.startswith(_STDLIB)]
        where = (ours or stack)[-1]
        return f"at {where.filename}:{where.lineno} in {where.name}"
