"""The worker's job loop: fetches jobs in priority order, runs their handlers inline or in a
thread pool, and records their outcomes in batches (one round trip per queue per batch)."""

from __future__ import annotations

import contextlib
import logging
import queue as queue_mod
import random
import threading
import time
import traceback as traceback_mod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis

from rwq.errors import RwqError
from rwq.queue.breaker import BreakerState, CircuitBreaker
from rwq.queue.broker import Broker, Failure
from rwq.queue.job import Job
from rwq.queue.metrics import WorkerMetrics
from rwq.queue.reaper import reap

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

Handler = Callable[[Job], Any]
"""A job handler: returns normally on success, raises on failure."""

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class PermanentFailure(RwqError):
    """Raise from a handler to dead-letter the job at once, without retries."""


@dataclass
class _Outcome:
    queue: str
    job: Job
    ok: bool
    duration_ms: float
    error: str = ""
    traceback: str = ""
    permanent: bool = False
    skipped: bool = False
    """Never started (the worker was stopping): still held, handed back at shutdown."""


def backoff_ms(attempt: int, base: float, cap: float) -> int:
    """Exponential backoff with jitter: half the step fixed, half random."""
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    return int((step / 2 + random.random() * step / 2) * 1000)


class JobRunner:
    """Takes, runs and records the jobs of one worker; every method but :meth:`wake` runs in
    the worker's loop thread.

    Args:
        broker: the queue's scripts and keys.
        worker_id: the id jobs are held under.
        queues: the queues served, highest priority first.
        handlers: queue name (or ``"*"``) to handler.
        breakers: each queue's circuit breaker.
        metrics: the worker's metrics.
        stop: set when the worker stops: jobs not started by then are handed back.
        concurrency: handlers running at once; 1 runs them inline.
        prefetch: extra jobs taken per fetch beyond free slots.
        idle_wait: longest sleep when every queue is empty.
    """

    def __init__(
        self,
        broker: Broker,
        worker_id: str,
        queues: Sequence[str],
        handlers: Mapping[str, Handler],
        breakers: Mapping[str, CircuitBreaker],
        metrics: WorkerMetrics,
        stop: threading.Event,
        *,
        concurrency: int,
        prefetch: int,
        idle_wait: float,
    ) -> None:
        self.broker = broker
        self.id = worker_id
        self.queues = queues
        self.handlers = handlers
        self.breakers = breakers
        self.metrics = metrics
        self._stop = stop
        self._concurrency = concurrency
        self._prefetch = prefetch
        self._idle_wait = idle_wait
        self.processed = 0
        self.failed = 0
        self.inflight = 0
        """Pooled jobs whose outcome is not recorded yet."""
        self._inbox: queue_mod.Queue[_Outcome | None] = queue_mod.Queue()
        self._pending: list[_Outcome] = []
        self._running: set[tuple[str, str]] = set()
        """(queue, job id) of pooled jobs whose outcome is not recorded yet."""
        self._unsure = False
        """A fetch failed: its jobs may be held under our id without our knowing."""
        self._flush_unsure = False
        """A flush failed: its results may have been recorded with only the reply lost."""
        self._last_reap = 0.0
        self._pool: ThreadPoolExecutor | None = None

    def start_pool(self) -> None:
        """Start the handlers' thread pool, unless handlers run inline."""
        if self._concurrency > 1:
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="rwq-job")

    def wake(self) -> None:
        """End the loop's idle wait now (thread-safe)."""
        self._inbox.put(None)

    def step(self, deadline: float | None) -> None:
        """Record finished jobs, take and start new ones, or wait idle for a wake-up."""
        self._drain_inbox(block=False)
        self.flush()
        self._maybe_reap()
        free = self._concurrency - self.inflight
        taken, next_due = self._take(free) if free > 0 else ([], None)
        if taken:
            if self._pool is None:
                self._run_inline(taken)
            else:
                for qname, job in taken:
                    self.inflight += 1
                    self._running.add((qname, job.id))
                    self.metrics.inflight.inc()
                    self._pool.submit(self._run_pooled, qname, job)
            return
        timeout = self._idle_wait
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due / 1000 - time.time()))
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        self._drain_inbox(block=True, timeout=max(timeout, 0.001))

    def finish_pooled(self, abandoned: Callable[[], bool]) -> bool:
        """Wait for the pooled handlers, recording their outcomes as they finish; False if
        the worker ``abandoned`` them meanwhile."""
        if self._pool is None:
            return True
        while self.inflight > 0 and not abandoned():
            self._drain_inbox(block=True, timeout=0.5)
            with contextlib.suppress(*REDIS_ERRORS):
                self.flush()  # results of finished handlers survive an abandon
        if abandoned():
            return False
        self._pool.shutdown(wait=True)
        return True

    def _take(self, free: int) -> tuple[list[tuple[str, Job]], float | None]:
        """Fetch up to ``free`` (+prefetch) jobs, highest-priority queue first."""
        want = free + self._prefetch
        taken: list[tuple[str, Job]] = self._reclaim() if self._unsure else []
        want -= len(taken)
        next_due: float | None = None
        for qname in self.queues:
            breaker = self.breakers[qname]
            allowance = breaker.allowance()
            self.metrics.breaker_open.labels(qname).set(
                0 if breaker.state is BreakerState.CLOSED else 1
            )
            if allowance == 0:
                continue
            count = want if allowance < 0 else min(want, allowance)
            try:
                fetched = self.broker.fetch(qname, self.id, count)
            except REDIS_ERRORS:
                # The script may have run and only its reply been lost, and jobs already in
                # `taken` are dropped with this error: we may hold jobs we do not know of.
                self._unsure = True
                raise
            if fetched.next_due_ms is not None:
                next_due = min(next_due or fetched.next_due_ms, fetched.next_due_ms)
            if fetched.jobs and allowance > 0:
                breaker.probe_taken()
            taken.extend((qname, job) for job in fetched.jobs)
            want -= len(fetched.jobs)
            if want <= 0:
                break
        return taken, next_due

    def _reclaim(self) -> list[tuple[str, Job]]:
        """Jobs held under our id that the loop does not know of, to run them now."""
        known = self._running | {(o.queue, o.job.id) for o in self._pending}
        client = self.broker.client
        found: list[tuple[str, Job]] = []
        for qname in self.queues:
            qk = self.broker.queue_keys(qname)
            for job_id in client.zrange(qk.processing(self.id), 0, -1):
                if (qname, job_id) not in known and (fields := client.hgetall(qk.job(job_id))):
                    found.append((qname, Job.from_fields(fields, job_id, qname)))
        self._unsure = False
        if found:
            log.warning("reclaimed %d job(s) whose fetch reply was lost", len(found))
        return found

    def _run_inline(self, taken: list[tuple[str, Job]]) -> None:
        for qname, job in taken:
            if self._stop.is_set():
                break  # the rest go back to their queues at shutdown
            self._record(self._execute(qname, job))
        self.flush()

    def _run_pooled(self, qname: str, job: Job) -> None:
        if self._stop.is_set():  # not started before stop(): handed back at shutdown
            self._inbox.put(_Outcome(qname, job, False, 0.0, skipped=True))
            return
        self._inbox.put(self._execute(qname, job))

    def _execute(self, qname: str, job: Job) -> _Outcome:
        handler = self.handlers.get(qname) or self.handlers["*"]
        started = time.perf_counter()
        try:
            handler(job)
        except Exception as exc:  # a handler's failure is data, not a worker crash
            return _Outcome(
                qname,
                job,
                False,
                (time.perf_counter() - started) * 1000,
                f"{type(exc).__name__}: {_describe(exc)}",
                _storable(traceback_mod.format_exc()),
                isinstance(exc, PermanentFailure),
            )
        return _Outcome(qname, job, True, (time.perf_counter() - started) * 1000)

    def _drain_inbox(self, *, block: bool, timeout: float = 0.0) -> None:
        try:
            item = (
                self._inbox.get(block=block, timeout=timeout) if block else self._inbox.get_nowait()
            )
        except queue_mod.Empty:
            return
        while True:
            if item is not None:
                self.inflight -= 1
                self._running.discard((item.queue, item.job.id))
                self.metrics.inflight.dec()
                if not item.skipped:
                    self._record(item)
            try:
                item = self._inbox.get_nowait()
            except queue_mod.Empty:
                return

    def _record(self, outcome: _Outcome) -> None:
        self._pending.append(outcome)
        self.breakers[outcome.queue].record(outcome.ok)
        self.metrics.duration.labels(outcome.queue).observe(outcome.duration_ms / 1000)

    def flush(self) -> None:
        """Write every recorded outcome in one round trip; kept for a retry if Redis fails."""
        if not self._pending:
            return
        settings = self.broker.settings
        by_queue: dict[str, tuple[list[tuple[str, float]], list[Failure]]] = {}
        for o in self._pending:
            done, failures = by_queue.setdefault(o.queue, ([], []))
            if o.ok:
                done.append((o.job.id, o.duration_ms))
            else:
                delay = backoff_ms(o.job.attempts, settings.backoff_base, settings.backoff_max)
                failures.append(
                    Failure(o.job.id, o.duration_ms, o.error, o.traceback, delay, o.permanent)
                )
        order: list[tuple[str, str]] = []

        def build(pipe: Any) -> None:
            order.clear()
            for qname, (done, failures) in by_queue.items():
                if done:
                    self.broker.complete(qname, self.id, done, client=pipe)
                    order.append((qname, "completed"))
                if failures:
                    self.broker.fail(qname, self.id, failures, client=pipe)
                    order.append((qname, "failed"))

        retried, self._flush_unsure = self._flush_unsure, True
        results = self.broker.execute(build)
        self._flush_unsure = False
        self._pending.clear()
        for (qname, kind), flags in zip(order, results, strict=True):
            applied = sum(1 for f in flags if f)
            stale = len(flags) - applied
            if kind == "completed":
                self.processed += applied
            else:
                self.failed += applied
            self.metrics.jobs.labels(qname, kind).inc(applied)
            if stale:
                self.metrics.stale_acks.inc(stale)
                if retried:
                    log.info(
                        "%d %s result(s) on %s were recorded already: the reply to the "
                        "previous attempt was lost", stale, kind, qname,
                    )  # fmt: skip
                else:
                    log.warning(
                        "%d %s result(s) on %s were refused: the job was no longer held by "
                        "this worker (its lease expired and it was reaped; it may run again)",
                        stale, kind, qname,
                    )  # fmt: skip

    def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.broker.settings.reaper_interval:
            return
        self._last_reap = now
        reap(self.broker, owner=self.id)


def _describe(exc: BaseException) -> str:
    """The exception's message as text Redis can store: one whose ``str()`` raises is named
    by its type, and lone surrogates (from a payload's ``"\\ud800"``) are escaped."""
    try:
        text = str(exc)
    except Exception:  # a handler's exception is hostile input too
        text = f"<{type(exc).__name__} whose message cannot be read>"
    return _storable(text)


def _storable(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
