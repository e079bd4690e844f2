"""The worker: takes jobs from queues in priority order, runs their handlers, records results.

One loop thread fetches and records in batches (:mod:`rwq.queue.runner`); handlers run inline
(``concurrency=1``), in a thread pool, or in child processes (``isolation="process"``), async
handlers on the worker's event loop, each run bounded by its timeout
(:mod:`rwq.queue.timeouts`). A heartbeat thread keeps the worker's
lease alive (:mod:`rwq.queue.lease`), a listener thread wakes the loop when an empty queue gets
work, so the loop never blocks on one empty queue while another has jobs, and never polls in a
tight loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from rwq.errors import RwqError
from rwq.outage import Outage
from rwq.queue.breaker import BreakerPolicy, CircuitBreaker
from rwq.queue.broker import Broker
from rwq.queue.handler_processes import ChildStartError, pickled_handlers
from rwq.queue.keys import check_queue_name
from rwq.queue.lease import Lease
from rwq.queue.metrics import WorkerMetrics
from rwq.queue.runner import REDIS_ERRORS, Handler, JobRunner, PermanentFailure
from rwq.queue.timeouts import Isolation, TimeoutValueError, parse_timeout

__all__ = [
    "EXIT_ABANDONED",
    "Handler",
    "Isolation",
    "PermanentFailure",
    "Worker",
    "WorkerError",
    "WorkerOptions",
]

log = logging.getLogger(__name__)

EXIT_ABANDONED = 3
"""The exit status of a process whose stuck handlers were abandoned at shutdown."""


class WorkerError(RwqError):
    """The worker is misconfigured (no queues, no handler, bad option)."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs."""

    concurrency: int = 1
    """Handlers running at once, sync and async together (async ones: coroutines on the
    worker's event loop); 1 runs sync handlers inline in the loop thread, unless async ones
    are beside them."""
    prefetch: int = 0
    """Extra jobs taken per fetch beyond free slots (inline mode runs them in turn)."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    metrics_port: int | None = None
    idle_wait: float = 1.0
    """Longest sleep when every queue is empty (a wake-up message usually ends it sooner)."""
    name: str | None = None
    shutdown_timeout: float | None = None
    """Seconds a stopping worker waits for its running handlers; None: the setting's."""
    timeout: float | str | None = None
    """How long a handler may run when neither its job nor the setting ``queue_timeouts``
    says (seconds, or a duration such as ``"30s"``); None: no limit."""
    isolation: Isolation | str = Isolation.THREAD
    """``thread``: handlers run in this process (a timed-out one is abandoned); ``process``:
    in long-lived child processes (a timed-out one is killed, a crash fails only its job)."""
    child_max_jobs: int | None = None
    """Under process isolation: a child is replaced after this many jobs, giving back what its
    handlers leaked; None: never."""


class Worker:
    """Runs handlers for jobs of ``queues`` (listed highest priority first).

    ``handlers`` maps a queue name, or ``"*"`` for any queue, to a callable taking the
    :class:`Job`, or a coroutine function (``async def``: awaited on the worker's event loop,
    ``concurrency`` at once). A handler that raises fails the run: the job is retried with
    backoff until its ``max_retries`` are used, then dead-lettered; :class:`PermanentFailure`
    dead-letters at once.
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
        try:
            self.isolation = Isolation(self.options.isolation)
        except ValueError:
            raise WorkerError(
                f"isolation: expected thread or process, got {self.options.isolation!r}"
            ) from None
        try:
            self.timeout = (
                None if self.options.timeout is None else parse_timeout(self.options.timeout)
            )
        except TimeoutValueError as exc:
            raise WorkerError(str(exc)) from None
        max_jobs = self.options.child_max_jobs
        if max_jobs is not None and (
            self.isolation is not Isolation.PROCESS or isinstance(max_jobs, bool)
            or not isinstance(max_jobs, int) or max_jobs < 1
        ):  # fmt: skip
            raise WorkerError(
                f"child_max_jobs: a whole number of at least 1, under isolation process; got "
                f"{max_jobs!r} with isolation {self.isolation}"
            )
        if self.isolation is Isolation.PROCESS:
            try:
                pickled_handlers(self.handlers)
            except ChildStartError as exc:
                raise WorkerError(str(exc)) from None
        self.id = self.options.name or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.metrics = WorkerMetrics()
        self.breakers = {q: CircuitBreaker(self.options.breaker) for q in self.queues}
        self._stop = threading.Event()
        self._finished = threading.Event()
        """Set once shutdown is complete: the heartbeat runs until then, so a long graceful
        drain keeps its lease."""
        self._subscribed = threading.Event()
        self._runner = JobRunner(
            broker, self.id, self.queues, self.handlers, self.breakers, self.metrics, self._stop,
            concurrency=self.options.concurrency, prefetch=self.options.prefetch,
            idle_wait=self.options.idle_wait, isolation=self.isolation, timeout=self.timeout,
            child_max_jobs=max_jobs,
        )  # fmt: skip
        self._lease = Lease(broker, self.id, self.queues, self.options.concurrency, self._runner)
        self._outage = Outage(
            f"worker {self.id}", log, cap=broker.settings.outage_backoff_max
        )  # the loop's, when a step fails as a whole (each queue has its own as well)
        self._abandon_lock = threading.Lock()
        self._abandon_done = threading.Event()
        self._running_loop = threading.Event()
        self.abandoned = False
        """Handlers were still running at the shutdown timeout: their jobs were handed back."""
        self.on_abandoned: Callable[[], None] = _exit_abandoned
        """Called once the stuck jobs are handed back (the stuck threads cannot be stopped):
        by default the process exits with :data:`EXIT_ABANDONED`."""

    # -- public ------------------------------------------------------------------------------

    @property
    def processed(self) -> int:
        """Jobs this worker completed."""
        return self._runner.recorder.processed

    @property
    def failed(self) -> int:
        """Runs of this worker's jobs that failed (retried or dead-lettered)."""
        return self._runner.recorder.failed

    def run(self, *, max_jobs: int | None = None, duration: float | None = None) -> None:
        """Work until :meth:`stop`, a signal, ``max_jobs`` results, or ``duration`` seconds."""
        self._install_signals()
        runner = self._runner
        try:
            runner.start_pool()  # before registering: a pool that cannot start fails the run
        except ChildStartError as exc:
            self._finished.set()
            raise WorkerError(f"cannot start the handler processes: {exc}") from None
        self._running_loop.set()
        deadline = time.monotonic() + duration if duration else None
        if not self._register():
            runner.finish_pooled(lambda: False)
            self._finished.set()  # stopped before the server could be reached
            return
        threads = [
            threading.Thread(
                target=self._lease.renew, args=(self._finished,), name="rwq-heartbeat", daemon=True
            ),
            threading.Thread(target=self._listen_loop, name="rwq-listener", daemon=True),
        ]
        for t in threads:
            t.start()
        self._subscribed.wait(timeout=5.0)
        if self.options.metrics_port:
            self.metrics.serve(self.options.metrics_port)
        self._lease.state = "running"
        log.info("worker %s serving %s", self.id, ", ".join(self.queues))
        try:
            while not self._stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                if (
                    max_jobs is not None
                    and runner.recorder.processed + runner.recorder.failed >= max_jobs
                ):
                    break
                try:
                    runner.step(deadline)
                except REDIS_ERRORS as exc:
                    self._wait_for_redis(exc)
                else:
                    if self._outage.down:
                        self._outage.succeeded()
        finally:
            self._shutdown()
            if self.abandoned:
                # Handler threads do not hold up the process's exit: wait for the jobs to be
                # handed back and on_abandoned (by default: exit with EXIT_ABANDONED).
                self._abandon_done.wait()
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
        queues, not lost and never recorded as done; async ones are cancelled first, and
        :attr:`on_abandoned` is called unless every handler was async and has ended."""
        first = not self._stop.is_set()
        self._stop.set()
        self._runner.wake()
        if first:
            threading.Thread(target=self._watch_shutdown, name="rwq-shutdown", daemon=True).start()

    def _watch_shutdown(self) -> None:
        if self._running_loop.is_set() and not self._finished.wait(self.shutdown_timeout):
            self.abandon()

    def abandon(self, why: str | None = None) -> None:
        """Hand back every job this worker holds and leave the registry now, without waiting
        for running handlers (a second signal, or the shutdown timeout; ``why`` says which,
        None: the timeout). Running async handlers are cancelled first and get a second to
        unwind."""
        with self._abandon_lock:
            if self._finished.is_set() or self.abandoned:
                return
            self.abandoned = True
        running = self._runner.inflight or 1
        log.warning(
            "worker %s: %d handler(s) still running %s; their jobs go back to their queues",
            self.id, running, why or f"after {self.shutdown_timeout:g}s",
        )  # fmt: skip
        stopped = self._runner.cancel_running()  # True: no handler runs any more
        try:
            with self._lease.lock:  # no heartbeat may register us again after this
                self._lease.state = "stopped"  # even if handing back fails: no renewal
                self._lease.leave()
        except REDIS_ERRORS as exc:  # the reaper hands them back once our lease expires
            log.error("could not hand back the running jobs: %s", exc)
        finally:
            self._finished.set()
            if not stopped:
                self.on_abandoned()
            self._abandon_done.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        """Wake the loop when one of our queues goes from empty to non-empty; stop the
        handler of a job of ours that was cancelled."""
        wanted = set(self.queues)
        channel = self.broker.keys.notify_channel
        cancels = self.broker.keys.cancel_channel
        outage = Outage(
            f"worker {self.id}: wake-up listener", log, cap=self.broker.settings.outage_backoff_max
        )
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.broker.client.pubsub()
                pubsub.subscribe(channel, cancels)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        if msg["channel"] == channel:
                            self._subscribed.set()
                            outage.succeeded()
                    elif msg["type"] != "message":
                        continue
                    elif msg["channel"] == cancels:
                        self._on_cancelled(msg["data"])
                    elif msg["data"] in wanted:
                        self._runner.wake()
            except REDIS_ERRORS as exc:
                # Meanwhile the loop polls every idle_wait: wake-ups are an optimisation.
                self._stop.wait(outage.failed(exc))
            except Exception:  # a bug must not end the thread
                log.exception("wake-up listener failed; starting it again")
                self._stop.wait(1.0)
            finally:
                # Closing a broken connection may raise anything; it is being dropped anyway.
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        pubsub.close()

    def _on_cancelled(self, data: str) -> None:
        """A cancel message (``{"queue", "job_id", "worker"}``): ours stops its handler."""
        try:
            message = json.loads(data)
            mine = message["worker"] == self.id and message["queue"] in self.queues
        except (ValueError, TypeError, KeyError):
            return
        if mine:
            self._runner.control.stop(str(message["queue"]), str(message["job_id"]))

    def _register(self) -> bool:
        """Join the worker registry, waiting for Redis if it is unreachable now (a server
        restarting as the worker starts); False when stopped meanwhile."""
        while not self._stop.is_set():
            try:
                self._lease.register()
                self._outage.succeeded()
                return True
            except REDIS_ERRORS as exc:
                self._wait_for_redis(exc)
        return False

    def _wait_for_redis(self, exc: BaseException) -> None:
        """Wait out the backoff of an outage (logged once, when it starts); the next try
        tells whether it is over."""
        self._stop.wait(self._outage.failed(exc))

    def _shutdown(self) -> None:
        self._lease.state = "stopping"
        if not self._runner.finish_pooled(lambda: self.abandoned):
            return
        for attempt in range(50):
            try:
                self._runner.flush()
                if self._runner.unrecorded and attempt < 49:
                    time.sleep(0.2)  # a queue's server is away: its results wait for it
                    continue
                with self._lease.lock:  # no heartbeat may register us again after this
                    if self.abandoned:
                        return
                    self._lease.leave()
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
                threading.Thread(
                    target=self.abandon,
                    args=(f"at signal {signum} again",),
                    name="rwq-abandon",
                    daemon=True,
                ).start()
                return
            log.info(
                "signal %d: finishing running jobs (at most %gs; again to stop now)",
                signum, self.shutdown_timeout,
            )  # fmt: skip
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def _exit_abandoned() -> None:
    # Python threads cannot be stopped, and the interpreter would wait for them at exit.
    logging.shutdown()
    os._exit(EXIT_ABANDONED)
