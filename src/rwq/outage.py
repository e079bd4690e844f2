"""Redis outages: the errors that mean the server is away (not a bug of ours), and the capped
backoff, logged once per outage, with which every long-running process waits for it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import redis
from redis.exceptions import (
    AskError,
    ClusterError,
    ReadOnlyError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)

__all__ = ["FIRST_DELAY", "OUTAGE_ERRORS", "REDIS_FAILURES", "Outage", "describe"]

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # refused, reset, LOADING (BusyLoadingError), too many clients
    redis.TimeoutError,
    ClusterError,  # CLUSTERDOWN, MASTERDOWN
    AskError,  # MOVED and ASK the client could not follow within its retries
    TryAgainError,  # a slot being migrated
    ReadOnlyError,  # a failover demoted the node we wrote to
    SlotNotCoveredError,
    RedisClusterUnreachableError,
    OSError,  # a socket error redis-py did not wrap
)
"""Errors of an unreachable, restarting, failing-over or resharding server: retried by every
long-running process, reported in one line by a short-lived one."""

REDIS_FAILURES: tuple[type[BaseException], ...] = (redis.RedisError, *OUTAGE_ERRORS)
"""Any error a Redis call may end with: an outage, or a refusal of the server."""

FIRST_DELAY = 0.1
"""Seconds before the first retry of an outage; each further one waits twice as long."""


def describe(exc: BaseException) -> str:
    """``exc`` in one line of at most 200 characters, for a message or a log."""
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class Outage:
    """What one retrying part of a process (a worker's queue, its heartbeat, a reaper) knows
    of the current outage: when to try again, and whether it was logged.

    The first failure logs a warning, the first success after it logs how long it lasted;
    the tries between are silent. Not thread-safe: one per thread.

    Args:
        what: what is retrying, for the log lines (``"queue mail"``, ``"heartbeat"``).
        log: the logger of the process.
        cap: the longest wait between tries, in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.log = log
        self.cap = cap
        self.clock = clock
        self.since: float | None = None
        """When the outage began (``clock`` seconds); None while the server answers."""
        self.tries = 0
        """Tries failed in a row."""
        self.retry_at = 0.0
        """When the next try is due (``clock`` seconds)."""

    @property
    def down(self) -> bool:
        """Whether the last try failed."""
        return self.since is not None

    def due(self) -> bool:
        """Whether a try may be made now (always while the server answers)."""
        return self.since is None or self.clock() >= self.retry_at

    def delay(self) -> float:
        """Seconds until the next try is due (0 while the server answers)."""
        return 0.0 if self.since is None else max(0.0, self.retry_at - self.clock())

    def failed(self, exc: BaseException) -> float:
        """Count a failed try; the seconds to wait before the next one."""
        now = self.clock()
        if self.since is None:
            self.since = now
            self.log.warning(
                "%s: Redis unavailable (%s); retrying every %gs at most until it is back",
                self.what, describe(exc), self.cap,
            )  # fmt: skip
        self.tries += 1
        step = min(self.cap, FIRST_DELAY * 2.0 ** min(self.tries - 1, 30))
        wait = step / 2 + random.random() * step / 2
        self.retry_at = now + wait
        return wait

    def succeeded(self) -> None:
        """Count a successful try: the outage, if any, is over."""
        if self.since is None:
            return
        self.log.warning(
            "%s: Redis is back after %.1fs (%d tries)",
            self.what, self.clock() - self.since, self.tries,
        )  # fmt: skip
        self.since = None
        self.tries = 0
        self.retry_at = 0.0
