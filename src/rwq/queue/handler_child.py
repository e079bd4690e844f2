"""The child process of ``--isolation process``: runs the jobs its worker sends, one at a time
(an async handler's on an event loop of the child's own), until told to stop or its worker
goes away (``python -m rwq.queue.handler_child FD``)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from rwq.queue.handler import Handler, call_handler, is_async_handler
from rwq.queue.job import Job
from rwq.queue.job_control import ChildControl

_PR_SET_PDEATHSIG = 1


def _stop(signum: int, frame: FrameType | None) -> None:
    # Raised in the handler, so its `finally` blocks and context managers run in the grace
    # the worker gives before SIGKILL. Once: a second signal would interrupt the exit itself
    # (the interpreter's atexit work) and print a traceback; SIGKILL ends a child that hangs.
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its worker dies (even by SIGKILL), so a stuck
    handler never outlives it; elsewhere the closed channel ends an idle child."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def serve(conn: Connection) -> int:
    """Load the handlers the worker sends, then run the jobs of each message it sends (a
    list of ``(queue, job)``) until ``None`` or the end of the channel; returns the exit
    status."""
    _kind, path, blob, result_limit = conn.recv()
    sys.path[:] = path
    try:
        handlers: dict[str, Handler] = pickle.loads(blob)
    except Exception as exc:  # the worker reports it: the module could not be imported
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return 1
    loop: asyncio.AbstractEventLoop | None = None
    for queue, handler in list(handlers.items()):
        if is_async_handler(handler):  # awaited on this child's loop, one job at a time
            loop = loop or asyncio.new_event_loop()
            handlers[queue] = _awaiting(handler, loop)
    conn.send(("ready", os.getpid()))
    control = ChildControl(conn)  # job.progress() goes to the worker, which stores it
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return 0  # the worker is gone
        if message is None:
            return 0
        conn.send(None)  # taken: from now on a death is a crash of these jobs
        for queue, job in message:  # one result each, as each ends: the worker times them
            handler = handlers.get(queue) or handlers["*"]
            job.attach(control)
            outcome = call_handler(handler, queue, job, result_limit)
            conn.send((outcome.ok, outcome.duration_ms, outcome.error, outcome.traceback,
                       outcome.permanent, outcome.result, outcome.result_error))  # fmt: skip


def _awaiting(handler: Handler, loop: asyncio.AbstractEventLoop) -> Handler:
    """A sync handler that runs the async ``handler``'s coroutine on ``loop`` to its end."""

    def run(job: Job) -> Any:
        return loop.run_until_complete(handler(job))

    return run


def main() -> int:
    # Ctrl-C reaches the whole foreground group: the worker decides what stops, not the
    # terminal. SIGTERM comes from the worker at a timeout.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    _die_with_parent()
    conn = Connection(int(sys.argv[1]))
    try:
        return serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
