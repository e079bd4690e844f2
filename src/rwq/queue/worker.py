"""The worker: takes jobs from queues in priority order, runs their handlers, records results.

One loop thread fetches and records in batches (one round trip per queue per batch); handlers
run inline (``concurrency=1``) or in a thread pool. A heartbeat thread keeps the worker's
lease alive, a listener thread wakes the loop when an empty queue gets work, so the loop never
blocks on one empty queue while another has jobs, and never polls in a tight loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue as queue_mod
import random
import signal
import socket
import threading
import time
import traceback as traceback_mod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import redis

from rwq.errors import RwqError
from rwq.queue.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from rwq.queue.broker import Broker, Failure
from rwq.queue.job import Job
from rwq.queue.keys import check_queue_name
from rwq.queue.metrics import WorkerMetrics
from rwq.queue.reaper import reap

log = logging.getLogger(__name__)

Handler = Callable[[Job], Any]
"""A job handler: returns normally on success, raises on failure."""

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
EXIT_ABANDONED = 3
"""The exit status of a process whose stuck handlers were abandoned at shutdown."""


class PermanentFailure(RwqError):
    """Raise from a handler to dead-letter the job at once, without retries."""


class WorkerError(RwqError):
    """The worker is misconfigured (no queues, no handler, bad option)."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs."""

    concurrency: int = 1
    """Handlers running at once; 1 runs them inline in the loop thread."""
    prefetch: int = 0
    """Extra jobs taken per fetch beyond free slots (inline mode runs them in turn)."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    metrics_port: int | None = None
    idle_wait: float = 1.0
    """Longest sleep when every queue is empty (a wake-up message usually ends it sooner)."""
    name: str | None = None
    shutdown_timeout: float | None = None
    """Seconds a stopping worker waits for its running handlers; None: the setting's."""


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


class Worker:
    """Runs handlers for jobs of ``queues`` (listed highest priority first).

    ``handlers`` maps a queue name, or ``"*"`` for any queue, to a callable taking the
    :class:`Job`. A handler that raises fails the run: the job is retried with backoff until
    its ``max_retries`` are used, then dead-lettered; :class:`PermanentFailure` dead-letters at
    once.
    """

    def __init__(
        self,
        broker: Broker,
        queues: Sequence[str],
        handlers: Mapping[str, Handler],
        options: WorkerOptions | None = None,
    ) -> None:
        if not queues:
            raise WorkerError("a worker needs at least one queue")
        self.queues = [check_queue_name(q) for q in queues]
        missing = [q for q in self.queues if q not in handlers and "*" not in handlers]
        if missing:
            raise WorkerError(f"no handler for queue(s) {', '.join(missing)} (and no '*')")
        self.broker = broker
        self.handlers = dict(handlers)
        self.options = options or WorkerOptions()
        if self.options.concurrency < 1:
            raise WorkerError("concurrency must be at least 1")
        self.id = self.options.name or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.metrics = WorkerMetrics()
        self.breakers = {q: CircuitBreaker(self.options.breaker) for q in self.queues}
        self.processed = 0
        self.failed = 0
        self._stop = threading.Event()
        self._finished = threading.Event()
        """Set once shutdown is complete: the heartbeat runs until then, so a long graceful
        drain keeps its lease."""
        self._subscribed = threading.Event()
        self._inbox: queue_mod.Queue[_Outcome | None] = queue_mod.Queue()
        self._pending: list[_Outcome] = []
        self._inflight = 0
        self._running: set[tuple[str, str]] = set()
        """(queue, job id) of pooled jobs whose outcome is not recorded yet."""
        self._unsure = False
        """A fetch failed: its jobs may be held under our id without our knowing."""
        self._info: dict[str, Any] = {}
        self._registry_lock = threading.Lock()
        self._state = "starting"
        self._last_reap = 0.0
        self._pool: ThreadPoolExecutor | None = None
        self._flush_unsure = False
        """A flush failed: its results may have been recorded with only the reply lost."""
        self._abandon_lock = threading.Lock()
        self._running_loop = threading.Event()
        self.abandoned = False
        """Handlers were still running at the shutdown timeout: their jobs were handed back."""
        self.on_abandoned: Callable[[], None] = _exit_abandoned
        """Called once the stuck jobs are handed back (the stuck threads cannot be stopped):
        by default the process exits with :data:`EXIT_ABANDONED`."""

    # -- public ------------------------------------------------------------------------------

    def run(self, *, max_jobs: int | None = None, duration: float | None = None) -> None:
        """Work until :meth:`stop`, a signal, ``max_jobs`` results, or ``duration`` seconds."""
        self._install_signals()
        self._running_loop.set()
        deadline = time.monotonic() + duration if duration else None
        self._register()
        threads = [
            threading.Thread(target=self._heartbeat_loop, name="rwq-heartbeat", daemon=True),
            threading.Thread(target=self._listen_loop, name="rwq-listener", daemon=True),
        ]
        for t in threads:
            t.start()
        self._subscribed.wait(timeout=5.0)
        if self.options.metrics_port:
            self.metrics.serve(self.options.metrics_port)
        if self.options.concurrency > 1:
            self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="rwq-job")
        self._state = "running"
        log.info("worker %s serving %s", self.id, ", ".join(self.queues))
        try:
            while not self._stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                if max_jobs is not None and self.processed + self.failed >= max_jobs:
                    break
                try:
                    self._step(deadline)
                except REDIS_ERRORS as exc:
                    self._wait_for_redis(exc)
        finally:
            self._shutdown()
            self._stop.set()
            self._finished.set()
            for t in threads:
                t.join(timeout=2.0)

    @property
    def shutdown_timeout(self) -> float:
        timeout = self.options.shutdown_timeout
        return self.broker.settings.shutdown_timeout if timeout is None else timeout

    def stop(self) -> None:
        """Ask the worker to finish its running jobs and stop (thread-safe). Handlers still
        running after :attr:`shutdown_timeout` are abandoned: their jobs go back to their
        queues, not lost and never recorded as done, and :attr:`on_abandoned` is called."""
        first = not self._stop.is_set()
        self._stop.set()
        self._inbox.put(None)
        if first:
            threading.Thread(target=self._watch_shutdown, name="rwq-shutdown", daemon=True).start()

    def _watch_shutdown(self) -> None:
        if self._running_loop.is_set() and not self._finished.wait(self.shutdown_timeout):
            self.abandon()

    def abandon(self) -> None:
        """Hand back every job this worker holds and leave the registry now, without waiting
        for running handlers (a second signal, or the shutdown timeout)."""
        with self._abandon_lock:
            if self._finished.is_set() or self.abandoned:
                return
            self.abandoned = True
        running = self._inflight or 1
        log.warning(
            "worker %s: %d handler(s) still running after %gs; their jobs go back to their "
            "queues", self.id, running, self.shutdown_timeout,
        )  # fmt: skip
        try:
            with self._registry_lock:  # no heartbeat may register us again after this
                self._state = "stopped"
                for qname in self.queues:
                    self.broker.release(qname, self.id, "shutdown", "")
                self._publish_status()
                keys = self.broker.keys
                self.broker.client.delete(keys.heartbeat(self.id))
                self.broker.client.hdel(keys.workers, self.id)
        except REDIS_ERRORS as exc:  # the reaper hands them back once our lease expires
            log.error("could not hand back the running jobs: %s", exc)
        finally:
            self._finished.set()
            self.on_abandoned()

    # -- the loop ----------------------------------------------------------------------------

    def _step(self, deadline: float | None) -> None:
        self._drain_inbox(block=False)
        self._flush()
        self._maybe_reap()
        free = self.options.concurrency - self._inflight
        taken, next_due = self._take(free) if free > 0 else ([], None)
        if taken:
            if self._pool is None:
                self._run_inline(taken)
            else:
                for qname, job in taken:
                    self._inflight += 1
                    self._running.add((qname, job.id))
                    self.metrics.inflight.inc()
                    self._pool.submit(self._run_pooled, qname, job)
            return
        timeout = self.options.idle_wait
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due / 1000 - time.time()))
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        self._drain_inbox(block=True, timeout=max(timeout, 0.001))

    def _take(self, free: int) -> tuple[list[tuple[str, Job]], float | None]:
        """Fetch up to ``free`` (+prefetch) jobs, highest-priority queue first."""
        want = free + self.options.prefetch
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
                break  # the rest go back to their queues in _shutdown
            self._record(self._execute(qname, job))
        self._flush()

    def _run_pooled(self, qname: str, job: Job) -> None:
        if self._stop.is_set():  # not started before stop(): _shutdown hands it back
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
                self._inflight -= 1
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

    def _flush(self) -> None:
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

    # -- lifecycle ---------------------------------------------------------------------------

    def _register(self) -> None:
        keys = self.broker.keys
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "concurrency": self.options.concurrency,
            "started_at": time.time() * 1000,
        }
        ttl = int(self.broker.settings.heartbeat_ttl * 1000)
        self._info = info
        pipe = self.broker.client.pipeline(transaction=False)
        pipe.set(keys.heartbeat(self.id), self._status_json(), px=ttl)
        pipe.hset(keys.workers, self.id, self._info_json())
        pipe.sadd(keys.queues, *self.queues)
        pipe.execute()
        self._publish_status()

    def _info_json(self) -> str:
        """The registry entry; carries the counts so a reaper can report them."""
        return json.dumps({**self._info, "processed": self.processed, "failed": self.failed})

    def _status_json(self) -> str:
        return json.dumps(
            {
                "state": self._state,
                "current": self._inflight,
                "processed": self.processed,
                "failed": self.failed,
                "ts": time.time() * 1000,
            }
        )

    def _publish_status(self) -> None:
        self.broker.client.xadd(
            self.broker.keys.system_events,
            {
                "type": "worker.status",
                "worker": self.id,
                "state": self._state,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(self.queues),
                "current": self._inflight,
                "processed": self.processed,
            },
            maxlen=self.broker.settings.events_maxlen,
            approximate=True,
        )

    def _heartbeat_loop(self) -> None:
        settings = self.broker.settings
        keys = self.broker.keys
        while not self._finished.wait(settings.heartbeat_interval):
            try:
                with self._registry_lock:
                    if self._state == "stopped":
                        return
                    pipe = self.broker.client.pipeline(transaction=False)
                    pipe.set(
                        keys.heartbeat(self.id),
                        self._status_json(),
                        px=int(settings.heartbeat_ttl * 1000),
                    )
                    # Again each time: a reaper that found our lease expired (say Redis was
                    # away for longer than the TTL) forgot us, and forgotten workers' jobs
                    # could never be reaped.
                    pipe.hset(keys.workers, self.id, self._info_json())
                    pipe.execute()
                self._publish_status()
            except REDIS_ERRORS as exc:
                log.warning("heartbeat failed: %s", exc)

    def _listen_loop(self) -> None:
        """Wake the loop when one of our queues goes from empty to non-empty."""
        wanted = set(self.queues)
        channel = self.broker.keys.notify_channel
        while not self._stop.is_set():
            pubsub = self.broker.client.pubsub()
            try:
                pubsub.subscribe(channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self._subscribed.set()
                    elif msg["type"] == "message" and msg["data"] in wanted:
                        self._inbox.put(None)
            except REDIS_ERRORS:
                time.sleep(0.2)
            finally:
                # Closing a broken connection may raise anything; it is being dropped anyway.
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _wait_for_redis(self, exc: Exception) -> None:
        log.warning("redis unavailable (%s); retrying", exc)
        delay = 0.1
        while not self._stop.is_set():
            if self._stop.wait(delay):
                return
            try:
                self.broker.client.ping()
                log.info("redis reachable again")
                return
            except REDIS_ERRORS:
                delay = min(delay * 2, 2.0)

    def _shutdown(self) -> None:
        self._state = "stopping"
        if self._pool is not None:
            while self._inflight > 0 and not self.abandoned:
                self._drain_inbox(block=True, timeout=0.5)
                with contextlib.suppress(*REDIS_ERRORS):
                    self._flush()  # results of finished handlers survive an abandon
            if self.abandoned:
                return
            self._pool.shutdown(wait=True)
        for attempt in range(50):
            try:
                self._flush()
                keys = self.broker.keys
                with self._registry_lock:  # no heartbeat may register us again after this
                    if self.abandoned:
                        return
                    for qname in self.queues:
                        self.broker.release(qname, self.id, "shutdown", "")
                    self._state = "stopped"
                    self._publish_status()
                    self.broker.client.delete(keys.heartbeat(self.id))
                    self.broker.client.hdel(keys.workers, self.id)
                return
            except REDIS_ERRORS as exc:
                if attempt == 49:
                    log.error("could not record results at shutdown: %s", exc)
                    return
                time.sleep(0.2)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                log.warning("signal %d again: handing back the running jobs now", signum)
                threading.Thread(target=self.abandon, name="rwq-abandon", daemon=True).start()
                return
            log.info(
                "signal %d: finishing running jobs (at most %gs; again to stop now)",
                signum, self.shutdown_timeout,
            )  # fmt: skip
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


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


def _exit_abandoned() -> None:
    # Python threads cannot be stopped, and the interpreter would wait for them at exit.
    logging.shutdown()
    os._exit(EXIT_ABANDONED)
