"""The process-mode :class:`~rwq.queue.handler_pool.HandlerPool` (``--isolation process``):
handlers run in long-lived child processes, one job after another in each, each child watched
by a thread of the worker. A child past its timeout is stopped (SIGTERM, SIGKILL after a grace) and
replaced; a child that dies fails its job and is replaced; the worker lives on."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue as queue_mod
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection

from rwq.errors import RwqError
from rwq.queue.handler import Handler, Outcome
from rwq.queue.handler_pool import Deliver, Run, timed_out
from rwq.queue.job import DEFAULT_RESULT_MAX_BYTES

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure

BATCH = 16
"""Most runs handed to a child in one message."""
KILL_GRACE_S = 1.0
"""Seconds a child stopped at a timeout gets (SIGTERM: its ``finally`` blocks run) before
SIGKILL."""
START_TIMEOUT_S = 60.0
"""Seconds a new child may take to import the handlers' modules."""


class ChildStartError(RwqError):
    """A handler process could not start or load the handlers."""


def pickled_handlers(handlers: Mapping[str, Handler]) -> bytes:
    """The handlers as a child receives them: pickled by name, so each must be a
    module-level function or another object pickle can name.

    Raises:
        ChildStartError: a handler cannot be sent, naming its queue.
    """
    for queue, handler in handlers.items():
        try:
            pickle.dumps(handler)
        except Exception as exc:
            raise ChildStartError(
                f"the handler of queue {queue!r} ({handler!r}) cannot be sent to a child "
                f"process: under --isolation process a handler must be a module-level "
                f"function (or another object pickle can name) ({type(exc).__name__}: {exc})"
            ) from None
    return pickle.dumps(dict(handlers))


class _Child:
    """One handler process and the channel to it."""

    def __init__(self, blob: bytes, result_limit: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rwq.queue.handler_child", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: a timeout stops what it started too
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.dead = False
        self.ran = 0
        """Jobs it finished (recycled after ``max_jobs``)."""
        with contextlib.suppress(OSError):  # it died at once: ready() says how
            self.conn.send(("init", list(sys.path), blob, result_limit))

    def ready(self) -> _Child:
        """Wait until the child has loaded the handlers.

        Raises:
            ChildStartError: it exited, did not answer in time or could not load them.
        """
        try:
            if not self.conn.poll(START_TIMEOUT_S):
                raise ChildStartError(f"no answer within {START_TIMEOUT_S:g}s")
            reply = self.conn.recv()
        except (EOFError, OSError) as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5.0)
            how = self._how(exc)
            self.kill()
            raise ChildStartError(f"it exited at start ({how})") from None
        except ChildStartError:
            self.kill()
            raise
        if reply[0] != "ready":
            self.kill()
            raise ChildStartError(f"it could not load the handlers: {reply[1]}")
        return self

    def run(self, runs: list[Run], deliver: Deliver) -> list[Run]:
        """Run ``runs`` in the child, in order, delivering each outcome as it comes; returns
        the runs it never started because it timed out or died first (then :attr:`dead`).

        They are sent in one message, so the child goes from one to the next without waiting
        for the worker; a run's timeout counts from the previous one's result. The child
        acknowledges the message before it starts: a child that died while idle fails none
        of them.
        """
        try:
            self.conn.send([(run.queue, run.job) for run in runs])
        except OSError as exc:
            return self._died_idle(runs, exc)
        acked = False
        for n, run in enumerate(runs):
            run.started = time.monotonic()
            try:
                while True:
                    left = None if run.timeout is None else run.started + run.timeout
                    wait = None if left is None else max(0.0, left - time.monotonic())
                    if not self.conn.poll(wait):
                        deliver(self._timed_out(run))
                        return runs[n + 1 :]
                    reply = self.conn.recv()
                    if reply is not None:
                        break
                    acked = True  # the child has the runs: from here on they are its
            except (EOFError, OSError) as exc:
                if not acked:
                    return self._died_idle(runs, exc)
                deliver(self._crashed(run, exc))
                return runs[n + 1 :]
            ok, duration_ms, error, traceback, permanent, result, result_error = reply
            self.ran += 1
            deliver(Outcome(run.queue, run.job, ok, duration_ms, error, traceback, permanent,
                            result=result, result_error=result_error))  # fmt: skip
        return []

    def _died_idle(self, runs: list[Run], exc: BaseException) -> list[Run]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        log.error("a handler process died while idle (%s); starting another", self._how(exc))
        self.kill()
        return runs

    def _timed_out(self, run: Run) -> Outcome:
        now = time.monotonic()
        self.kill()
        log.warning(
            "job %s on %s ran past its %gs timeout: its process %d was stopped",
            run.job.id, run.queue, run.timeout, self.proc.pid,
        )  # fmt: skip
        return timed_out(run, "killed", now)

    def _crashed(self, run: Run, exc: BaseException) -> Outcome:
        duration_ms = (time.monotonic() - (run.started or time.monotonic())) * 1000
        self.dead = True
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        how = self._how(exc)
        self.kill()
        log.error("job %s on %s: its handler process died (%s)", run.job.id, run.queue, how)
        return Outcome(
            run.queue, run.job, False, duration_ms,
            f"HandlerCrashed: the handler's process died ({how}) while running the job",
        )  # fmt: skip

    def _how(self, exc: BaseException) -> str:
        code = self.proc.poll()
        if code is None:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}"
        return f"exit status {code}"

    def stop(self) -> None:
        """Ask an idle child to exit; kill it if it does not."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        try:
            self.proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        """SIGTERM the child's group, SIGKILL it after :data:`KILL_GRACE_S`."""
        self.dead = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_GRACE_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # what the handler started dies too
        self.proc.wait()
        self.conn.close()


class ProcessHandlers:
    """``size`` handler processes, each watched by a thread that hands it one run at a time
    and enforces the run's timeout itself (so :meth:`expire` has nothing to do).

    A child is replaced after ``max_jobs`` jobs (None: never), so what its handlers leak is
    given back.

    Raises:
        ChildStartError: the first child could not start or load the handlers.
    """

    abandoned = 0  # a child past its timeout is killed, never abandoned

    def __init__(
        self, size: int, handlers: Mapping[str, Handler], skip: Callable[[Run], Outcome | None],
        deliver: Deliver, max_jobs: int | None = None,
        result_limit: int = DEFAULT_RESULT_MAX_BYTES,
    ) -> None:  # fmt: skip
        self._blob = pickled_handlers(handlers)
        self._result_limit = result_limit
        self._max_jobs = max_jobs
        self._skip = skip
        self._deliver = deliver
        self._work: queue_mod.SimpleQueue[Run | None] = queue_mod.SimpleQueue()
        self._size = size
        self._closing = threading.Event()
        self.started = 0
        """Children started, replacements included."""
        # they start side by side
        launched = [_Child(self._blob, self._result_limit) for _ in range(size)]
        try:
            children = [child.ready() for child in launched]
        except ChildStartError:
            for child in launched:
                child.kill()
            raise
        self.started = size
        self._threads = [
            threading.Thread(target=self._serve, args=(child,), name=f"rwq-child-{n}", daemon=True)
            for n, child in enumerate(children, 1)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, run: Run) -> None:
        self._work.put(run)

    def next_deadline(self) -> float | None:
        return None

    def expire(self, now: float) -> list[Outcome]:
        return []

    def shutdown(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()

    def _spawn(self) -> _Child:
        child = _Child(self._blob, self._result_limit).ready()
        self.started += 1
        return child

    def _replace(self) -> _Child | None:
        """A new child, trying again with backoff while it fails; None when closing."""
        delay = 0.5
        while not self._closing.is_set():
            try:
                return self._spawn()
            except ChildStartError as exc:
                log.error("could not start a handler process (%s); trying again", exc)
                if self._closing.wait(delay):
                    break
                delay = min(delay * 2, 30.0)
        return None

    def _take(self, carried: list[Run], room: int) -> tuple[list[Run], bool]:
        """The next runs for one child: those ``carried`` over from a child that timed out or
        died, else the next one waiting and, when more wait, a share of them (at most
        :data:`BATCH` or ``room``, so other children get theirs); and whether the pool is
        closing."""
        if carried:
            return carried, False
        first = self._work.get()
        if first is None:
            return [], True
        runs = [first]
        share = min(BATCH, room, self._work.qsize() // self._size + 1) - 1
        for _ in range(share):
            try:
                run = self._work.get_nowait()
            except queue_mod.Empty:
                break
            if run is None:
                self._work.put(None)  # this thread's stop: it stops after this batch
                break
            runs.append(run)
        return runs, False

    def _serve(self, child: _Child | None) -> None:
        carried: list[Run] = []
        while True:
            room = BATCH
            if self._max_jobs is not None and child is not None:
                room = max(1, self._max_jobs - child.ran)
            runs, closing = self._take(carried, room)
            if closing:
                break
            todo: list[Run] = []
            for run in runs:
                skipped = self._skip(run)
                if skipped is None:
                    todo.append(run)
                else:
                    self._deliver(skipped)
            carried = []
            if not todo:
                continue
            if child is None:
                child = self._replace()
                if child is None:
                    break
            carried = child.run(todo, self._deliver)
            if child.dead:
                child = self._replace()
            elif self._max_jobs is not None and child.ran >= self._max_jobs:
                child.stop()  # recycled: what its handlers leaked goes with it
                child = self._replace()
        self._closing.set()
        if child is not None:
            child.stop()
