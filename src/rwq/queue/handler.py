"""A job handler and the outcome of one run of it, wherever it runs (the worker's thread, a
thread of its pool or a child process)."""

from __future__ import annotations

import time
import traceback as traceback_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rwq.errors import RwqError
from rwq.queue.job import DEFAULT_RESULT_MAX_BYTES, Job, encode_result

Handler = Callable[[Job], Any]
"""A job handler: returns normally on success (what it returns is the job's result), raises
on failure."""


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
    """What became of a handler past its timeout: ``killed`` or ``abandoned``."""
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
    duration_ms = (time.perf_counter() - started) * 1000
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
