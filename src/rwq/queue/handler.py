"""A job handler and the outcome of one run of it, wherever it runs (the worker's thread, a
thread of its pool, its event loop or a child process)."""

from __future__ import annotations

import inspect
import time
import traceback as traceback_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rwq.errors import RwqError
from rwq.queue.job import DEFAULT_RESULT_MAX_BYTES, Job, encode_result

Handler = Callable[[Job], Any]
"""A job handler: returns normally on success (what it returns is the job's result), raises
on failure. A coroutine function (``async def``) is an async handler: awaited on the worker's
event loop."""


def is_async_handler(handler: Handler) -> bool:
    """Whether ``handler`` is a coroutine function (``async def``, a ``functools.partial`` of
    one, or an object whose ``__call__`` is one): its runs are awaited, not called."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004  (an object's async __call__)
    return call is not None and inspect.iscoroutinefunction(call)


class PermanentFailure(RwqError):
    """Raise from a handler to dead-letter the job at once, without retries."""


@dataclass
class Outcome:
    """How one run of a job ended, to be recorded."""

    queue: str
    job: Job
    ok: bool
    duration_ms: float
    error: str = ""
    traceback: str = ""
    permanent: bool = False
    skipped: bool = False
    """Never started (the worker was stopping): still held, handed back at shutdown."""
    timeout: float | None = None
    """Seconds: the handler was stopped at this timeout."""
    stopped: str = ""
    """What became of a handler past its timeout: ``killed``, ``abandoned`` or ``cancelled``."""
    result: str = ""
    """The JSON of what the handler returned ("" for None, or when it cannot be kept)."""
    result_error: str = ""
    """Why the handler's return value is not kept (not JSON, too large); "" if it is."""


def call_handler(
    handler: Handler, queue: str, job: Job, result_limit: int = DEFAULT_RESULT_MAX_BYTES
) -> Outcome:
    """Run ``handler`` on ``job``: its failure is data, not a crash of the caller. Its return
    value is encoded here, where it ran (a child process sends back text), at most
    ``result_limit`` bytes (setting ``result_max_bytes``)."""
    started = time.perf_counter()
    try:
        value = handler(job)
    except Exception as exc:  # a handler's failure is data, not a worker crash
        return failed(queue, job, (time.perf_counter() - started) * 1000, exc)
    return succeeded(queue, job, (time.perf_counter() - started) * 1000, value, result_limit)


def succeeded(queue: str, job: Job, duration_ms: float, value: Any, result_limit: int) -> Outcome:
    """The outcome of a run that returned ``value`` (its result, encoded here)."""
    if value is None:
        return Outcome(queue, job, True, duration_ms)
    result, note = encode_result(value, result_limit)
    return Outcome(queue, job, True, duration_ms, result=result, result_error=note)


def failed(queue: str, job: Job, duration_ms: float, exc: BaseException) -> Outcome:
    """The outcome of a run that raised ``exc`` (called while it is being handled)."""
    return Outcome(
        queue,
        job,
        False,
        duration_ms,
        f"{type(exc).__name__}: {describe(exc)}",
        storable(traceback_mod.format_exc()),
        isinstance(exc, PermanentFailure),
    )


def describe(exc: BaseException) -> str:
    """The exception's message as text Redis can store: one whose ``str()`` raises is named
    by its type, and lone surrogates (from a payload's ``"\\ud800"``) are escaped."""
    try:
        text = str(exc)
    except Exception:  # a handler's exception is hostile input too
        text = f"<{type(exc).__name__} whose message cannot be read>"
    return storable(text)


def storable(text: str) -> str:
    """``text`` with lone surrogates escaped, so Redis can store it."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
