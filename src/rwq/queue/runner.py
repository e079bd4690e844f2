"""The worker's job loop: fetches jobs in priority order, runs their handlers inline or in a
handler pool (threads, child processes, or the event loop of async handlers), fails the runs
past their timeout, and records outcomes in batches (one round trip per queue per batch).

A queue whose server is away (a dead cluster shard, a restarting Redis) is skipped with a
backoff of its own while the others keep their throughput: fetches and results are per queue.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from rwq.outage import OUTAGE_ERRORS, Outage
from rwq.queue.breaker import BreakerState, CircuitBreaker
from rwq.queue.broker import Broker
from rwq.queue.handler import Handler, Outcome, PermanentFailure, call_handler, is_async_handler
from rwq.queue.handler_coroutines import CANCEL_GRACE_S, CoroutineHandlers
from rwq.queue.handler_pool import HandlerPool, Run, ThreadHandlers
from rwq.queue.handler_processes import ProcessHandlers
from rwq.queue.job import Job
from rwq.queue.job_control import WorkerControl
from rwq.queue.metrics import WorkerMetrics
from rwq.queue.rate_limits import Reopenings
from rwq.queue.reaper import Reaper
from rwq.queue.recorder import OutcomeRecorder, backoff_ms
from rwq.queue.timeouts import Isolation

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

__all__ = ["REDIS_ERRORS", "Handler", "JobRunner", "PermanentFailure", "backoff_ms"]

REDIS_ERRORS = OUTAGE_ERRORS
"""The errors of a Redis outage (:data:`rwq.outage.OUTAGE_ERRORS`): retried, never fatal."""


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
        concurrency: handlers running at once, sync and async together; with 1, sync
            handlers run inline (thread isolation).
        prefetch: extra jobs taken per fetch beyond free slots.
        idle_wait: longest sleep when every queue is empty.
        isolation: where handlers run (:class:`~rwq.queue.timeouts.Isolation`).
        timeout: seconds a handler may run when neither its job nor the setting
            ``queue_timeouts`` says; None: no limit.
        child_max_jobs: under process isolation, jobs a child runs before it is replaced.
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
        isolation: Isolation = Isolation.THREAD,
        timeout: float | None = None,
        child_max_jobs: int | None = None,
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
        self._isolation = isolation
        self._child_max_jobs = child_max_jobs
        self._default_timeout = timeout
        self._result_limit = broker.settings.result_max_bytes
        self._queue_timeouts = broker.settings.queue_timeout_map
        self._timeouts = bool(self._queue_timeouts) or timeout is not None
        """Whether a run may have a timeout besides a job's own."""
        self.recorder = OutcomeRecorder(broker, worker_id, metrics)
        self.inflight = 0
        """Pooled jobs whose outcome is not recorded yet."""
        self._inbox: queue_mod.Queue[Outcome | None] = queue_mod.Queue()
        self._pending: list[Outcome] = []
        self._running: set[tuple[str, str]] = set()
        """(queue, job id) of pooled jobs whose outcome is not recorded yet."""
        self._unsure: set[str] = set()
        """Queues whose fetch failed: jobs may be held there under our id without our knowing."""
        cap = broker.settings.outage_backoff_max
        self.outages = {q: Outage(f"worker {worker_id}: queue {q}", log, cap=cap) for q in queues}
        """Each queue's outage: a queue whose server is away waits out its own backoff."""
        self._degraded = False
        """Some queue is in an outage: results are recorded queue by queue."""
        self._reaper = Reaper(broker, worker_id, log)
        self._reopen = Reopenings()  # rate-limited queues
        self._pool: HandlerPool | None = None
        self._bounded: ThreadHandlers | None = None
        """Inline mode: the thread a job with a timeout runs in, so the loop can give up."""
        self._bounded_inbox: queue_mod.Queue[Outcome | None] = queue_mod.Queue()
        self._coroutines: CoroutineHandlers | None = None
        """Thread isolation: the event loop the async handlers' runs go to."""
        self._async_queues: frozenset[str] = frozenset()
        """Thread isolation: the queues whose handler is async (``async def``)."""
        if isolation is Isolation.THREAD:
            self._async_queues = frozenset(
                q
                for q in queues
                if (h := handlers.get(q) or handlers.get("*")) is not None and is_async_handler(h)
            )
        pools = lambda: (self._pool, self._bounded, self._coroutines)  # noqa: E731
        self.control = WorkerControl(broker, worker_id, pools)  # progress; stops cancelled jobs

    @property
    def abandoned(self) -> int:
        """Handlers abandoned at their timeout that still run (thread mode)."""
        pools = (self._pool, self._bounded, self._coroutines)
        return sum(p.abandoned for p in pools if p is not None)

    def _pools(self) -> list[HandlerPool]:
        return [p for p in (self._pool, self._coroutines) if p is not None]

    def start_pool(self) -> None:
        """Start the handler pools, unless handlers run inline: child processes (isolation
        ``process``, whatever the concurrency, async handlers included), or an event loop for
        async handlers and threads for sync ones (``concurrency > 1``, or beside async ones).

        Raises:
            ChildStartError: a handler process could not start or load the handlers.
        """
        if self._isolation is Isolation.PROCESS:
            self._pool = ProcessHandlers(
                self._concurrency, self.handlers, self._skip, self._inbox.put,
                self._child_max_jobs, self._result_limit, self.control.reported,
            )  # fmt: skip
            return
        if self._async_queues:
            self._coroutines = CoroutineHandlers(
                self._concurrency, self.handlers, self._skip, self._inbox.put, self._result_limit
            )
        # Beside async handlers sync ones never run inline: the job loop must stay free to
        # fail and cancel coroutines at their timeouts.
        pooled = self._concurrency > 1 or self._async_queues
        if pooled and set(self.queues) - self._async_queues:
            self._pool = ThreadHandlers(self._concurrency, self._execute_run, self._inbox.put)

    def timeout_of(self, queue: str, job: Job) -> float | None:
        """The timeout of a run: the job's own, its queue's (setting ``queue_timeouts``), or
        the worker's default; None: no limit."""
        if job.timeout is not None:
            return job.timeout
        if not self._timeouts:
            return None
        return self._queue_timeouts.get(queue, self._default_timeout)

    def wake(self) -> None:
        """End the loop's idle wait now (thread-safe)."""
        self._inbox.put(None)

    def step(self, deadline: float | None) -> None:
        """Record finished jobs, take and start new ones, or wait idle for a wake-up."""
        self._drain_inbox(block=False)
        handler_due = self._expire()
        self.flush()
        self._maybe_reap()
        free = self._concurrency - self.inflight
        taken, next_due = self._take(free) if free > 0 else ([], None)
        if taken:
            inline: list[tuple[str, Job]] = []
            for qname, job in taken:
                pool = self._coroutines if qname in self._async_queues else self._pool
                if pool is None:
                    inline.append((qname, job))
                    continue
                self.inflight += 1
                self._running.add((qname, job.id))
                self.metrics.inflight.inc()
                pool.submit(Run(qname, job, self.timeout_of(qname, job)))
            if inline:
                self._run_inline(inline)
            return
        timeout = self._idle_wait
        if handler_due is not None:
            timeout = min(timeout, max(0.0, handler_due - time.monotonic()))
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due / 1000 - time.time()))
        if self._degraded:
            timeout = min(timeout, *(o.delay() for o in self.outages.values() if o.down))
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        self._drain_inbox(block=True, timeout=max(timeout, 0.001))

    def finish_pooled(self, abandoned: Callable[[], bool]) -> bool:
        """Wait for the pooled handlers, recording their outcomes as they finish; False if
        the worker ``abandoned`` them meanwhile."""
        if self._bounded is not None:
            self._bounded.shutdown()
        if not self._pools():
            return True
        while self.inflight > 0 and not abandoned():
            due = self._expire()  # a stuck handler does not hold up the stop past its timeout
            wait = 0.5 if due is None else min(0.5, max(0.001, due - time.monotonic()))
            self._drain_inbox(block=True, timeout=wait)
            self.flush()  # results of finished handlers survive an abandon
        if abandoned():
            return False
        for pool in self._pools():
            pool.shutdown()
        return True

    def cancel_running(self) -> bool:
        """At the shutdown timeout: cancel the running async handlers (their results are
        dropped: the worker hands their jobs back) and wait a little for them to unwind. True
        when no handler runs any more: every handler is async and every coroutine ended."""
        if self._coroutines is None:
            return False
        ended = self._coroutines.cancel(CANCEL_GRACE_S)
        return ended and set(self.queues) <= self._async_queues

    def _expire(self) -> float | None:
        """Fail the pooled runs past their timeout (thread mode, async handlers); when the next
        one is due."""
        next_due: float | None = None
        for pool in self._pools():
            due = pool.next_deadline()
            if due is not None and due <= time.monotonic():
                for outcome in pool.expire(time.monotonic()):
                    self.inflight -= 1
                    self._running.discard((outcome.queue, outcome.job.id))
                    self.metrics.inflight.dec()
                    self._record(outcome)
                due = pool.next_deadline()
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
        return next_due

    def _take(self, free: int) -> tuple[list[tuple[str, Job]], float | None]:
        """Fetch up to ``free`` (+prefetch) jobs, highest-priority queue first."""
        want = free + self._prefetch
        taken: list[tuple[str, Job]] = []
        next_due: float | None = None
        for qname in self.queues:
            if self._degraded and not self.outages[qname].due():
                continue  # its server is away: the other queues keep going meanwhile
            if self._unsure and qname in self._unsure:
                try:
                    reclaimed = self._reclaim(qname)
                except REDIS_ERRORS as exc:
                    self._queue_failed(qname, exc)
                    continue
                taken.extend(reclaimed)
                want -= len(reclaimed)
            breaker = self.breakers[qname]
            allowance = breaker.allowance()
            self.metrics.breaker_open.labels(qname).set(
                0 if breaker.state is BreakerState.CLOSED else 1
            )
            if allowance == 0:
                continue
            count = want if allowance < 0 else min(want, allowance)
            try:
                fetched = self._reopen.fetch(self.broker, qname, self.id, count)
            except REDIS_ERRORS as exc:
                # The script may have run and only its reply been lost: we may hold jobs of
                # this queue that we do not know of.
                self._unsure.add(qname)
                self._queue_failed(qname, exc)
                continue
            if self._degraded:
                self._queue_answered(qname)
            if fetched.next_due_ms is not None:
                next_due = min(next_due or fetched.next_due_ms, fetched.next_due_ms)
            if fetched.jobs and allowance > 0:
                breaker.probe_taken()
            taken.extend((qname, job.attach(self.control)) for job in fetched.jobs)
            want -= len(fetched.jobs)
            if want <= 0:
                break
        return taken, next_due

    def _queue_failed(self, qname: str, exc: BaseException) -> None:
        """``qname``'s server did not answer: skip the queue until its backoff passes."""
        self.outages[qname].failed(exc)
        self._degraded = True

    def _queue_answered(self, qname: str) -> None:
        self.outages[qname].succeeded()
        self._degraded = any(o.down for o in self.outages.values())

    def _reclaim(self, qname: str) -> list[tuple[str, Job]]:
        """Jobs of ``qname`` held under our id that the loop does not know of, to run them
        now."""
        known = self._running | {(o.queue, o.job.id) for o in self._pending}
        client = self.broker.client
        found: list[tuple[str, Job]] = []
        qk = self.broker.queue_keys(qname)
        for job_id in client.zrange(qk.processing(self.id), 0, -1):
            if (qname, job_id) not in known and (fields := client.hgetall(qk.job(job_id))):
                found.append((qname, Job.from_fields(fields, job_id, qname)))
        self._unsure.discard(qname)
        if found:
            log.warning("reclaimed %d job(s) of %s whose fetch reply was lost", len(found), qname)
        return [(q, job.attach(self.control)) for q, job in found]

    def _run_inline(self, taken: list[tuple[str, Job]]) -> None:
        handlers = self.handlers
        for qname, job in taken:
            if self._stop.is_set():
                break  # the rest go back to their queues at shutdown
            timeout = self.timeout_of(qname, job)
            if timeout is None:
                handler = handlers.get(qname) or handlers["*"]
                outcome = call_handler(handler, qname, job, self._result_limit)
            else:
                outcome = self._run_bounded(Run(qname, job, timeout))
                if outcome.skipped:  # stopped before its thread took it: handed back
                    break
            self._record(outcome)
        self.flush()

    def _run_bounded(self, run: Run) -> Outcome:
        """Inline mode: run a job with a timeout in a thread of its own and wait for it, at
        most until its timeout (then it is abandoned)."""
        pool = self._bounded
        if pool is None:
            pool = self._bounded = ThreadHandlers(1, self._execute_run, self._bounded_inbox.put)
        pool.submit(run)
        while True:
            due = pool.next_deadline()
            wait = 1.0 if due is None else max(0.0, due - time.monotonic())
            try:
                outcome = self._bounded_inbox.get(timeout=wait)
            except queue_mod.Empty:
                expired = pool.expire(time.monotonic())
                if expired:
                    return expired[0]
                continue
            if outcome is not None:  # None: it started, its deadline is known now
                return outcome

    def _skip(self, run: Run) -> Outcome | None:
        """The outcome of a pooled run not started before stop() (handed back at shutdown),
        or None to run it."""
        gone = self.control.forget(run.queue, run.job.id)  # cancelled: not recorded either
        if self._stop.is_set() or gone:
            return Outcome(run.queue, run.job, False, 0.0, skipped=not gone, cancelled=gone)
        return None

    def _execute_run(self, run: Run) -> Outcome:
        skipped = self._skip(run)
        if skipped is not None:
            return skipped
        handler = self.handlers.get(run.queue) or self.handlers["*"]
        return call_handler(handler, run.queue, run.job, self._result_limit)

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

    def _record(self, outcome: Outcome) -> None:
        if outcome.cancelled or self.control.forget(outcome.queue, outcome.job.id):
            return  # cancelled while it ran: the job is over, its result is not
        if outcome.timeout is not None:
            self.metrics.timeouts.labels(outcome.queue).inc()
            self.metrics.abandoned.set(self.abandoned)
        self._pending.append(outcome)
        self.breakers[outcome.queue].record(outcome.ok)
        self.metrics.duration.labels(outcome.queue).observe(outcome.duration_ms / 1000)

    @property
    def unrecorded(self) -> int:
        """Outcomes not recorded yet (their queue's server is away)."""
        return len(self._pending)

    def flush(self) -> None:
        """Write every recorded outcome in one round trip; the outcomes of a queue whose server
        is away are kept for a retry (queue by queue, each after its backoff)."""
        if not self._pending:
            return
        if not self._degraded:
            try:
                self.recorder.write(self._pending)
                self._pending.clear()
                return
            except REDIS_ERRORS:
                pass  # find which queues failed: record them one by one
        by_queue: dict[str, list[Outcome]] = {}
        for o in self._pending:
            by_queue.setdefault(o.queue, []).append(o)
        kept: list[Outcome] = []
        for qname, outcomes in by_queue.items():
            if self._degraded and not self.outages[qname].due():
                kept.extend(outcomes)
                continue
            try:
                self.recorder.write(outcomes)
            except REDIS_ERRORS as exc:
                self._queue_failed(qname, exc)
                kept.extend(outcomes)
                continue
            if self._degraded:
                self._queue_answered(qname)
        self._pending = kept

    def _maybe_reap(self) -> None:
        self._reaper.maybe_reap()
