"""Per-queue rate limits: at most N jobs of a queue start per period, across all workers.

The dequeue script enforces them (a sliding window of the starts under the queue's hash
tag, :attr:`~rwq.queue.keys.QueueKeys.rate_window`). A limit stored on the queue
(``rwq admin rate-limit``, :attr:`~rwq.queue.keys.QueueKeys.rate_limit`) wins over the setting
``rate_limits``; ``off`` stored there lifts the setting's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rwq.errors import RwqError
from rwq.queue.broker import Broker, Fetched
from rwq.units import UnitError, format_rate, parse_rate

LIMITED_RECHECK_S = 1.0
"""Longest a worker goes without asking a rate-limited queue again (its limit may have been
lifted meanwhile)."""
OFF = "off"
"""Stored instead of a limit: the queue has none, whatever the setting says."""


class RateLimitError(RwqError):
    """A rate limit is malformed; the message names where it was given."""


@dataclass(frozen=True)
class RateLimit:
    """A queue's rate limit and where it comes from."""

    count: int
    """Jobs that may start per period."""
    period: float
    """Seconds."""
    source: str
    """``stored`` (``rwq admin rate-limit``) or ``setting`` (``rate_limits``)."""

    def __str__(self) -> str:
        return format_rate(self.count, self.period)

    @property
    def period_ms(self) -> int:
        return max(1, round(self.period * 1000))


def parse_rate_limit(text: str, what: str = "rate") -> tuple[int, float]:
    """``(count, period seconds)`` of ``100/1m``; raises :class:`RateLimitError` naming
    ``what``."""
    try:
        return parse_rate(text, what)
    except UnitError as exc:
        raise RateLimitError(str(exc)) from None


def stored_text(count: int, period: float) -> str:
    """A limit as the dequeue script reads it: ``<count>/<period ms>``."""
    return f"{count}/{max(1, round(period * 1000))}"


def rate_limit_of(broker: Broker, queue: str, stored: str | None = None) -> RateLimit | None:
    """The limit in force on ``queue`` (None: none); ``stored`` is the queue's stored value
    when the caller read it already."""
    if stored is None:
        stored = broker.client.get(broker.queue_keys(queue).rate_limit)
    if stored == OFF:
        return None
    if stored:
        count, _, period_ms = stored.partition("/")
        if count.isdigit() and period_ms.isdigit():
            return RateLimit(int(count), int(period_ms) / 1000, "stored")
    configured = broker.settings.rate_limit_map.get(queue)
    if configured is None:
        return None
    return RateLimit(configured[0], configured[1], "setting")


def store_rate_limit(broker: Broker, queue: str, rate: tuple[int, float] | None) -> None:
    """Store ``rate`` on ``queue`` (None: ``off``, no limit even if the setting has one) and
    wake its workers, so they look again at once."""
    qk = broker.queue_keys(queue)
    value = OFF if rate is None else stored_text(*rate)
    broker.client.set(qk.rate_limit, value)
    broker.client.publish(broker.keys.notify_channel, queue)


def clear_rate_limit(broker: Broker, queue: str) -> bool:
    """Forget the limit stored on ``queue`` (the setting applies again); False if none was."""
    qk = broker.queue_keys(queue)
    removed = bool(broker.client.delete(qk.rate_limit))
    broker.client.publish(broker.keys.notify_channel, queue)
    return removed


def starts_in_window(broker: Broker, limit: RateLimit, queue: str, now_ms: float) -> int:
    """Jobs of ``queue`` started in the window of ``limit`` ending at ``now_ms`` (server
    clock)."""
    window = broker.queue_keys(queue).rate_window
    return int(broker.client.zcount(window, f"({now_ms - limit.period_ms}", "+inf"))


class Reopenings:
    """A worker's rate-limited queues, each with the epoch ms (server clock) it is asked
    again: when its window reopens, or within :data:`LIMITED_RECHECK_S`."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def fetch(self, broker: Broker, queue: str, worker_id: str, count: int) -> Fetched:
        """:meth:`Broker.fetch`, unless ``queue`` was found limited and is not due to be
        asked again: then no job, and when to look again."""
        if self._until:  # the common case, no queue limited, costs this test only
            until = self._until.get(queue)
            if until is not None and until > time.time() * 1000:
                return Fetched(jobs=[], paused=False, next_due_ms=until, limited_until_ms=until)
            self._until.pop(queue, None)
        fetched = broker.fetch(queue, worker_id, count)
        if fetched.limited_until_ms is not None:
            self._until[queue] = min(
                fetched.limited_until_ms, time.time() * 1000 + LIMITED_RECHECK_S * 1000
            )
        return fetched
