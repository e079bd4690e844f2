"""Reload attempts: how one try at hot-reloading a plugin ended, and the latest attempts of
each plugin kept for a UI to show why a version did not take over."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Literal

log = logging.getLogger(__name__)

Outcome = Literal["reloaded", "invalid", "failed", "awaiting approval", "rolled back", "removed"]


@dataclass(frozen=True)
class ReloadAttempt:
    """One try at hot-reloading a plugin and how it ended."""

    plugin: str
    at: float
    """Wall-clock time (``time.time()``) the attempt ended."""
    version: str
    """The version the attempt was for (empty when the bundle could not be read)."""
    outcome: Outcome
    reason: str = ""


class ReloadHistory:
    """The latest reload attempts of each plugin, each logged as it is recorded.

    Args:
        size: attempts kept per plugin.
    """

    def __init__(self, size: int = 50) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._attempts: dict[str, deque[ReloadAttempt]] = {}

    def of(self, name: str) -> list[ReloadAttempt]:
        """The attempts of ``name``, oldest first."""
        with self._lock:
            return list(self._attempts.get(name, ()))

    def record(self, name: str, version: str, outcome: Outcome, reason: str = "") -> ReloadAttempt:
        """Keep and log an attempt that ended now; the same failed attempt twice in a row (a
        broken save seen twice) is kept and logged once. Every reload that swapped code in is
        kept: two saves of one version are two reloads."""
        attempt = ReloadAttempt(name, time.time(), version, outcome, reason)
        with self._lock:
            kept = self._attempts.setdefault(name, deque(maxlen=self._size))
            last = kept[-1] if kept else None
            if (
                outcome != "reloaded"
                and last is not None
                and (last.version, last.outcome, last.reason) == (version, outcome, reason)
            ):
                return attempt
            kept.append(attempt)
        if outcome == "reloaded":
            log.info("plugin %s: version %s reloaded %s", name, version, reason)
        else:
            log.warning("plugin %s: hot reload of %s %s: %s", name, version or "?", outcome, reason)
        return attempt


def unrecorded(name: str, version: str, reason: str) -> ReloadAttempt:
    """An answer to a request that is not a reload attempt of its own (kept in no history)."""
    return ReloadAttempt(name, time.time(), version, "failed", reason)


def settle(
    waiters: list[Future[ReloadAttempt]], attempt: ReloadAttempt, outcome: Outcome | None = None
) -> None:
    """Answer the ``waiters`` not answered yet with ``attempt``, its outcome set to ``outcome``
    when given."""
    if outcome is not None:
        attempt = replace(attempt, outcome=outcome)
    for future in waiters:
        if not future.done():
            future.set_result(attempt)
