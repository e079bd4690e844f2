"""Job timeouts: how long a handler may run, where that is set (job, queue setting, worker
default) and the failure a handler past it ends in."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from rwq.config import MAX_TIMEOUT_S
from rwq.errors import RwqError
from rwq.units import UnitError, parse_positive_duration

MAX_TIMEOUT = MAX_TIMEOUT_S
"""Seconds: the longest timeout (30 days; a longer one is a typo)."""


class TimeoutValueError(RwqError, ValueError):
    """A timeout is not a positive duration; the message names where it was given."""


class Isolation(StrEnum):
    """Where a worker runs its handlers, and so what a timeout can do to a stuck one.

    ``thread``: in the worker's process (inline or a thread pool). A handler past its
    timeout cannot be stopped: its job fails at once, its thread is abandoned (it runs on,
    its slot is replaced, its late result is discarded).
    ``process``: in a pool of long-lived child processes. A handler past its timeout is
    stopped (SIGTERM, then SIGKILL after a grace) and its process replaced; a crash fails the
    job, not the worker.

    Async handlers (``async def``) under ``thread`` run on the worker's event loop (a thread
    of its own, :mod:`rwq.queue.handler_coroutines`): one past its timeout is cancelled. Under
    ``process`` they run in the children like any handler (each child awaits its job on a loop
    of its own) and are killed at their timeout.
    """

    THREAD = "thread"
    PROCESS = "process"


class JobTimeout(RwqError):
    """The error a job fails with when its handler ran past its timeout (stored as the job's
    error, ``JobTimeout: ...``; retried or dead-lettered like any failure)."""

    def __init__(self, timeout: float, stopped: str) -> None:
        self.timeout = timeout
        self.stopped = stopped
        fate = _FATES.get(stopped, "its thread was abandoned")
        super().__init__(f"the handler ran past its timeout of {format_seconds(timeout)} ({fate})")


_FATES = {"killed": "its process was killed", "cancelled": "its task was cancelled"}
"""What a timeout did to the handler, by the ``stopped`` of its outcome (else abandoned)."""


class HandlerCrashed(RwqError):
    """The error a job fails with when the child process running its handler died."""


def parse_timeout(value: Any, what: str = "timeout") -> float:
    """Seconds of a timeout: a positive number of seconds or a duration (``30s``, ``5m``,
    ``1.5``), at most 30 days. Raises :class:`TimeoutValueError` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TimeoutValueError(
            f"{what}: expected a duration like 500ms, 30s or 5m, got {_shown(value)}"
        )
    try:
        return parse_positive_duration(value, what, MAX_TIMEOUT)
    except UnitError as exc:
        raise TimeoutValueError(str(exc)) from None


def resolve_timeout(
    job_timeout: float | None, queue: str, queue_timeouts: Mapping[str, float],
    default: float | None,
) -> float | None:  # fmt: skip
    """The timeout a run gets: the job's own, else its queue's (setting ``queue_timeouts``),
    else the worker's default; None: no timeout."""
    if job_timeout is not None:
        return job_timeout
    return queue_timeouts.get(queue, default)


def format_seconds(seconds: float) -> str:
    """``30s``, ``1.5s``, ``250ms``: a timeout for people."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
