"""Per-queue rate limits: at most N starts per period across workers (counted from the
events), a limited queue does not hold up the worker's other queues, the worker sleeps until
the window reopens, and the stored limit wins over the setting. Standalone and cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rwq.config import Settings
from rwq.errors import ConfigError
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.rate_limits import RateLimitError

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]

# An event's time is its stream entry's id: the same server clock the window uses, but taken
# apart from the script's own reading of it, so a window is checked a little shorter.
CLOCK_SLACK_MS = 5


def _most_in_any_window(starts: list[float], period_ms: float) -> int:
    """The most starts in any window of ``period_ms`` ending at a start."""
    return max(sum(1 for s in starts if t - period_ms + CLOCK_SLACK_MS < s <= t) for t in starts)


def _noop(job: Job) -> None:
    pass


def test_a_limit_holds_across_two_workers(
    producer: Producer, admin: Admin, start_worker: StartWorker, read_events: ReadEvents,
    wait_until: WaitUntil,
) -> None:  # fmt: skip
    producer.enqueue("mail", 0)
    admin.set_rate_limit("mail", "4/400ms")
    producer.enqueue_many("mail", list(range(1, 16)))
    for _ in range(2):
        start_worker(["mail"], {"*": _noop}, concurrency=3, prefetch=5)
    wait_until(lambda: admin.stats(["mail"]).queues[0].completed_total == 16, timeout=20,
               what="every job")  # fmt: skip
    events = read_events("mail")
    starts = [e.ts for e in events if e.type == "job.started"]
    assert len(starts) == 16
    assert _most_in_any_window(starts, 400) <= 4
    # The window fills up: it is a limit, not a trickle.
    assert _most_in_any_window(starts, 400) == 4


def test_a_limited_queue_does_not_hold_up_the_others(
    producer: Producer, admin: Admin, start_worker: StartWorker, wait_until: WaitUntil,
) -> None:  # fmt: skip
    producer.enqueue_many("slow", [1, 2, 3])
    admin.set_rate_limit("slow", "1/1h")
    producer.enqueue_many("fast", list(range(20)))
    # The limited queue first: the worker must still serve the other one.
    start_worker(["slow", "fast"], {"*": _noop})
    wait_until(lambda: admin.stats(["fast"]).queues[0].completed_total == 20, what="fast")
    slow = admin.stats(["slow"]).queues[0]
    assert (slow.completed_total, slow.pending) == (1, 2)
    assert (slow.rate_limit, slow.rate_limit_source, slow.rate_used) == ("1/1h", "stored", 1)


def test_the_worker_sleeps_until_the_window_reopens(
    broker: Broker, producer: Producer, admin: Admin, start_worker: StartWorker,
    wait_until: WaitUntil, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    producer.enqueue_many("q", list(range(6)))
    admin.set_rate_limit("q", "2/300ms")
    calls = []
    fetch = broker.fetch

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return fetch(*args, **kwargs)

    monkeypatch.setattr(broker, "fetch", counted)
    # A long idle wait: only the window's reopening can wake the worker in time.
    start_worker(["q"], {"*": _noop}, idle_wait=60.0)
    wait_until(lambda: admin.stats(["q"]).queues[0].completed_total == 6, what="every job")
    # Three windows of two jobs: a few fetches each, not a spin.
    assert len(calls) < 30


def test_the_setting_applies_unless_a_limit_is_stored(
    make_broker: Callable[..., Broker], start_worker: StartWorker, wait_until: WaitUntil,
) -> None:  # fmt: skip
    broker = make_broker(rate_limits="q=1/1h")
    producer, admin = Producer(broker), Admin(broker)
    producer.enqueue_many("q", [1, 2, 3])
    limit = admin.rate_limit("q")
    assert limit is not None and (str(limit), limit.source) == ("1/1h", "setting")
    start_worker(["q"], {"*": _noop}, on=broker)
    wait_until(lambda: admin.stats(["q"]).queues[0].completed_total == 1, what="one job")
    assert admin.stats(["q"]).queues[0].pending == 2
    assert admin.set_rate_limit("q", None) is None  # off: wins over the setting
    wait_until(lambda: admin.stats(["q"]).queues[0].completed_total == 3, what="the rest")
    assert admin.stats(["q"]).queues[0].rate_limit is None
    limit = admin.reset_rate_limit("q")
    assert limit is not None and limit.source == "setting"


def test_bad_limits_are_refused_by_name(producer: Producer, admin: Admin) -> None:
    producer.enqueue("q", 1)
    with pytest.raises(RateLimitError, match="rate: expected jobs per period"):
        admin.set_rate_limit("q", "fast")
    with pytest.raises(RateLimitError, match="count must be 1"):
        admin.set_rate_limit("q", "0/1m")
    with pytest.raises(ConfigError, match=r"rate_limits.*queue q: the period"):
        Settings(rate_limits="q=5/3d")
    mapping: Any = {"a": "10/s", "b": "5/90s"}  # as rwq.yaml gives it
    assert Settings(rate_limits=mapping).rate_limits == "a=10/1s,b=5/90s"
