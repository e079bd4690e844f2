"""The event bus: routing through the index, inboxes, rate limits, and the dispatcher."""

from __future__ import annotations

import dataclasses
import fnmatch
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.plugins.contract.events import (
    QUEUE_STATS,
    SYSTEM_HEALTH,
    EventTypeError,
    local_event,
)
from rwq.plugins.eventbus.bus import BusError, EventBus, InboxStats, _Inbox
from rwq.plugins.eventbus.dispatcher import Dispatcher
from rwq.queue.events import Event

WAIT = 10.0
"""Generous upper bound for a thread to make progress; tests never sleep it out on success."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ev(type_: str, queue: str = "", **data: Any) -> Event:
    return local_event(type_, data, source="queue", queue=queue)


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus(clock: FakeClock) -> EventBus:
    return EventBus(clock=clock)


@pytest.fixture
def start_dispatcher(bus: EventBus) -> Iterator[Callable[..., Dispatcher]]:
    started: list[Dispatcher] = []

    def start(deliver: Callable[[str, list[Event]], None], **options: Any) -> Dispatcher:
        dispatcher = Dispatcher(bus, deliver, **options)
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        dispatcher.stop()


# -- matching ---------------------------------------------------------------------------------


def test_type_patterns_and_queue_globs(bus: EventBus) -> None:
    bus.subscribe("jobs", "job.*")
    bus.subscribe("everything", "*")
    bus.subscribe("alerts", "plugin.alert-manager.*")
    bus.subscribe("tenants", "job.completed", queues=["tenant.*"])
    bus.subscribe("emails", "job.failed", queues=["emails", "sms"])

    bus.publish(ev("job.completed", "tenant.acme"))
    bus.publish(ev("job.completed", "billing"))
    bus.publish(ev("job.failed", "emails"))
    bus.publish(ev("queue.paused", "emails"))
    bus.publish(local_event("plugin.alert-manager.fired", {"n": 1}, source="plugin:alert-manager"))
    bus.publish(local_event("plugin.other.fired", source="plugin:other"))

    def got(plugin: str) -> list[tuple[str, str]]:
        return [(e.type, e.queue) for e in bus.drain(plugin)]

    assert got("jobs") == [
        ("job.completed", "tenant.acme"),
        ("job.completed", "billing"),
        ("job.failed", "emails"),
    ]
    assert len(got("everything")) == 6
    assert got("alerts") == [("plugin.alert-manager.fired", "")]
    assert got("tenants") == [("job.completed", "tenant.acme")]
    assert got("emails") == [("job.failed", "emails")]


def test_events_without_a_queue_pass_queue_filters(bus: EventBus) -> None:
    bus.subscribe("p", "worker.status", queues=["tenant.*"])
    bus.publish(ev("worker.status", "", worker="w1"))
    assert types(bus.drain("p")) == ["worker.status"]


def test_an_event_reaches_a_plugin_once_however_many_subscriptions_match(bus: EventBus) -> None:
    bus.subscribe("p", "job.*")
    bus.subscribe("p", "job.completed", queues=["a", "*"])
    bus.subscribe("p", "*")
    assert bus.publish(ev("job.completed", "a")) == 1
    assert len(bus.drain("p")) == 1


def test_bad_subscriptions_are_refused(bus: EventBus) -> None:
    with pytest.raises(EventTypeError):
        bus.subscribe("p", "jobs.*")  # a typo that would never match
    with pytest.raises(BusError):
        bus.subscribe("p", "job.*", queues=[])
    with pytest.raises(BusError):
        bus.subscribe("p", "job.*", rate_limit=0)
    with pytest.raises(BusError):
        bus.subscribe("p", "queue.stats", interval=-1)
    assert bus.subscriptions() == []


def test_unsubscribe(bus: EventBus) -> None:
    first = bus.subscribe("p", "job.completed")
    bus.subscribe("p", "job.failed")
    bus.subscribe("q", "job.*")
    assert bus.unsubscribe(first)
    assert not bus.unsubscribe(first)
    bus.publish(ev("job.completed", "a"))
    assert bus.pending("p") == 0 and bus.pending("q") == 1
    assert bus.unsubscribe_all("p") == 1
    bus.publish(ev("job.failed", "a"))
    assert bus.pending("p") == 0 and bus.pending("q") == 2
    assert [s.plugin for s in bus.subscriptions()] == ["q"]


# -- inboxes ----------------------------------------------------------------------------------


def test_sampled_events_coalesce_to_the_latest_per_queue(bus: EventBus, clock: FakeClock) -> None:
    bus.subscribe("p", "queue.stats", interval=1)
    bus.subscribe("p", "job.*")
    for i in range(3):
        bus.publish(ev(QUEUE_STATS, "a", pending=i))
        bus.publish(ev(QUEUE_STATS, "b", pending=10 + i))
        bus.publish(ev("job.completed", "a", n=i))
        clock.now += 1  # one sample per interval reaches the subscription
    batch = bus.drain("p")
    assert [(e.type, e.queue, dict(e.data)) for e in batch] == [
        ("job.completed", "a", {"n": 0}),
        ("job.completed", "a", {"n": 1}),
        (QUEUE_STATS, "a", {"pending": 2}),
        (QUEUE_STATS, "b", {"pending": 12}),
        ("job.completed", "a", {"n": 2}),
    ]
    stats = bus.stats("p")
    assert (stats.coalesced, stats.delivered, stats.queued, stats.dropped) == (4, 5, 0, 0)


def test_a_subscription_takes_one_sample_per_its_interval(bus: EventBus, clock: FakeClock) -> None:
    bus.subscribe("fast", QUEUE_STATS, interval=0.2)
    bus.subscribe("slow", QUEUE_STATS, interval=1.0)
    assert bus.sample_interval(QUEUE_STATS) == 0.2
    for _ in range(10):  # the sampler ticks at the smallest interval: 2 s of samples
        bus.publish(ev(QUEUE_STATS, "a"))
        bus.drain("fast")
        bus.drain("slow")
        clock.now += 0.2
    assert bus.stats("fast").delivered == 10
    assert bus.stats("slow").delivered == 2


def test_sample_interval_defaults_and_floor(bus: EventBus) -> None:
    assert bus.sample_interval(QUEUE_STATS) is None
    bus.subscribe("p", "*")
    assert bus.sample_interval(QUEUE_STATS) == 5.0
    bus.subscribe("q", "system.*", interval=0.01)
    assert bus.sample_interval(SYSTEM_HEALTH) == 0.2
    assert bus.sample_interval(QUEUE_STATS) == 5.0


def test_a_full_inbox_drops_the_oldest_ordinary_event(clock: FakeClock) -> None:
    bus = EventBus(maxlen=3, clock=clock)
    bus.subscribe("p", "*")
    bus.publish(ev(QUEUE_STATS, "a"))
    for i in range(6):
        bus.publish(ev("job.completed", "a", n=i))
    assert bus.pending("p") == 3
    batch = bus.drain("p")
    assert [(e.type, e.data.get("n")) for e in batch] == [
        (QUEUE_STATS, None),
        ("job.completed", 4),
        ("job.completed", 5),
    ]
    assert bus.stats("p").dropped == 4


_STEPS = st.lists(
    st.one_of(
        st.lists(
            st.tuples(
                st.sampled_from(["job.completed", "job.started", QUEUE_STATS, SYSTEM_HEALTH]),
                st.sampled_from(["q1", "q2"]),
            ),
            min_size=1,
            max_size=12,
        ),
        st.tuples(st.sampled_from(["all", "jobs", "q1"]), st.integers(1, 4)),  # a drain
    ),
    max_size=30,
)


def counters(stats: InboxStats) -> tuple[Any, ...]:
    """An inbox's counters, and whether it ever dropped (not when: that is the wall clock)."""
    timeless = dataclasses.replace(stats, first_drop=0.0, last_drop=0.0)
    return (*dataclasses.astuple(timeless), bool(stats.first_drop))


@given(steps=_STEPS, maxlen=st.integers(1, 6))
def test_publishing_a_batch_is_publishing_its_events_in_turn(steps: list[Any], maxlen: int) -> None:
    """Runs of ordinary events go into each inbox at once; the outcome (what each plugin
    drains, in which order, and the counters) is that of one publish per event."""

    def run(batched: bool) -> list[Any]:
        bus = EventBus(maxlen=maxlen, clock=lambda: 0.0)
        bus.subscribe("all", "*", interval=0.2)
        bus.subscribe("jobs", "job.*")
        bus.subscribe("q1", "job.completed", queues=["q1"])
        seen: list[Any] = []
        n = 0
        for step in steps:
            if isinstance(step, tuple):
                plugin, limit = step
                seen.append([(e.type, e.data["n"]) for e in bus.drain(plugin, limit)])
                continue
            batch = []
            for type_, queue in step:
                batch.append(ev(type_, queue, n=n))
                n += 1
            if batched:
                seen.append(bus.publish_many(batch))
            else:
                seen.append(sum(bus.publish(e) for e in batch))
        for plugin in ("all", "jobs", "q1"):
            seen.append([(e.type, e.data["n"]) for e in bus.drain(plugin)])
            seen.append(counters(bus.stats(plugin)))
        return seen

    assert run(batched=True) == run(batched=False)


@given(steps=_STEPS, maxlen=st.integers(1, 6))
def test_an_inbox_takes_a_run_as_it_takes_each_event_in_turn(steps: list[Any], maxlen: int) -> None:
    one_by_one, by_runs = _Inbox(maxlen), _Inbox(maxlen)
    n = 0
    for step in steps:
        if isinstance(step, tuple):
            limit = step[1]
            assert one_by_one.take(limit) == by_runs.take(limit)
            continue
        run: list[Event] = []
        for type_, queue in step:
            event = ev(type_, queue, n=n)
            n += 1
            one_by_one.put(event)
            if event.type in (QUEUE_STATS, SYSTEM_HEALTH):
                if run:
                    by_runs.put_many(run)
                    run = []
                by_runs.put(event)
            else:
                run.append(event)
        if run:
            by_runs.put_many(run)
    assert one_by_one.take(100) == by_runs.take(100)
    counters = ("delivered", "dropped", "coalesced")
    assert [getattr(one_by_one, c) for c in counters] == [getattr(by_runs, c) for c in counters]


def test_publishing_never_blocks_on_a_plugin_that_never_drains(bus: EventBus) -> None:
    bus.subscribe("stuck", "job.*")
    for i in range(5000):
        bus.publish(ev("job.completed", "a", n=i))
    stats = bus.stats("stuck")
    assert (stats.queued, stats.dropped) == (1000, 4000)
    assert bus.drain("stuck", max_batch=10)[0].data["n"] == 4000


def test_rate_limit_is_a_token_bucket(bus: EventBus, clock: FakeClock) -> None:
    bus.subscribe("p", "job.*", rate_limit=2)
    for _ in range(5):
        bus.publish(ev("job.completed", "a"))
    assert bus.pending("p") == 2  # a burst of one second's worth
    clock.now += 1.0
    for _ in range(5):
        bus.publish(ev("job.completed", "a"))
    assert bus.pending("p") == 4
    assert bus.stats("p").throttled == 6


def test_work_listener_wakes_once_per_empty_inbox(bus: EventBus) -> None:
    woken: list[str] = []
    bus.add_work_listener(woken.append)
    bus.subscribe("p", "job.*")
    bus.publish_many([ev("job.completed", "a"), ev("job.failed", "a")])
    bus.publish(ev("job.started", "a"))
    assert woken == ["p"]
    bus.drain("p")
    bus.publish(ev("job.started", "a"))
    assert woken == ["p", "p"]


def test_discard_drops_the_inbox(bus: EventBus) -> None:
    bus.subscribe("p", "job.*")
    bus.publish(ev("job.completed", "a"))
    bus.unsubscribe_all("p")
    assert bus.pending("p") == 1  # still drainable until discarded
    assert bus.discard("p") == 1
    assert bus.plugins() == []


# -- scale ------------------------------------------------------------------------------------

TYPES = [
    "job.enqueued",
    "job.started",
    "job.completed",
    "job.failed",
    "job.retried",
    "queue.paused",
    "worker.status",
    QUEUE_STATS,
]


def make_subscriptions(bus: EventBus, n: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """``n`` subscriptions over 500 plugins: mostly exact types and queues, a few globs."""
    made = []
    for i in range(n):
        plugin = f"p{i % 500}"
        if i % 1000 == 0:
            pattern, queues = "job.*", (f"tenant-{i % 7}.*",)
        elif i % 997 == 0:
            pattern, queues = "*", ("q1*",)
        else:
            pattern, queues = TYPES[i % len(TYPES)], (f"q{i % 2000}",)
        bus.subscribe(plugin, pattern, queues=queues)
        made.append((plugin, pattern, queues))
    return made


def expected_plugins(
    subs: list[tuple[str, str, tuple[str, ...]]], type_: str, queue: str
) -> set[str]:
    return {
        plugin
        for plugin, pattern, queues in subs
        if fnmatch.fnmatchcase(type_, pattern)
        and (queue == "" or any(fnmatch.fnmatchcase(queue, q) for q in queues))
    }


def test_ten_thousand_subscriptions_route_through_the_index(bus: EventBus) -> None:
    subs = make_subscriptions(bus, 10_000)
    assert len(bus.subscriptions()) == 10_000
    probes = [
        ("job.completed", "q42"),
        ("job.completed", "q1234"),
        ("job.enqueued", "tenant-3.eu"),
        ("worker.status", ""),
        ("queue.paused", "nobody"),
        ("plugin.x.y", "q1"),
    ]
    for type_, queue in probes:
        got = {plugin for plugin, _ in bus.route(type_, queue)}
        assert got == expected_plugins(subs, type_, queue), (type_, queue)

    # Cold: a new (type, queue) costs a test per distinct wildcard pattern and queue glob,
    # not one per subscription.
    before = bus.match_checks
    taken = bus.publish(ev("job.failed", "q1003"))
    assert taken == len(expected_plugins(subs, "job.failed", "q1003")) > 0
    assert bus.match_checks - before < 50

    # Warm: routing is a cache hit, no pattern or glob is tested again.
    before = bus.match_checks
    for _ in range(1000):
        bus.publish(ev("job.failed", "q1003"))
    assert bus.match_checks == before


# -- dispatcher -------------------------------------------------------------------------------


def test_a_slow_plugin_does_not_delay_the_others(
    bus: EventBus, start_dispatcher: Callable[..., Dispatcher]
) -> None:
    bus.subscribe("slow", "job.*")
    bus.subscribe("fast", "job.*")
    slow_inside = threading.Event()
    release = threading.Event()
    fast_got = threading.Event()
    concurrent = Counter[str]()
    most_concurrent = Counter[str]()
    batches: dict[str, list[list[Event]]] = {"slow": [], "fast": []}
    lock = threading.Lock()

    def deliver(plugin: str, batch: list[Event]) -> None:
        with lock:
            concurrent[plugin] += 1
            most_concurrent[plugin] = max(most_concurrent[plugin], concurrent[plugin])
            batches[plugin].append(batch)
        try:
            if plugin == "slow":
                slow_inside.set()
                release.wait(WAIT)  # a slow plugin: stays inside until the test lets it go
            elif sum(len(b) for b in batches["fast"]) >= 3:
                fast_got.set()
        finally:
            with lock:
                concurrent[plugin] -= 1

    start_dispatcher(deliver, threads=2)
    bus.publish(ev("job.enqueued", "a", n=1))
    assert slow_inside.wait(WAIT)
    bus.publish(ev("job.started", "a", n=2))
    bus.publish(ev("job.completed", "a", n=3))
    assert fast_got.wait(WAIT)
    assert not release.is_set() and concurrent["slow"] == 1  # slow is still inside deliver
    release.set()

    def slow_has_all() -> bool:
        return sum(len(b) for b in batches["slow"]) == 3

    wait_for(slow_has_all)
    assert [len(b) for b in batches["slow"]] == [1, 2]  # what came meanwhile: one batch
    assert most_concurrent["slow"] == 1 and most_concurrent["fast"] == 1


def test_deliver_errors_are_reported_and_the_dispatcher_goes_on(
    bus: EventBus, start_dispatcher: Callable[..., Dispatcher]
) -> None:
    bus.subscribe("bad", "job.*")
    bus.subscribe("good", "job.*")
    errors: list[tuple[str, str]] = []
    good: list[Event] = []
    done = threading.Event()

    def deliver(plugin: str, batch: list[Event]) -> None:
        if plugin == "bad":
            raise RuntimeError("trap")
        good.extend(batch)
        if len(good) == 2:
            done.set()

    dispatcher = start_dispatcher(
        deliver, threads=1, on_error=lambda p, e: errors.append((p, str(e)))
    )
    bus.publish(ev("job.enqueued", "a"))
    wait_for(lambda: len(errors) == 1 and len(good) == 1)
    bus.publish(ev("job.completed", "a"))
    assert done.wait(WAIT)
    wait_for(lambda: dispatcher.errors == 2)
    assert errors == [("bad", "trap"), ("bad", "trap")]


def test_higher_priority_plugins_are_served_first(
    bus: EventBus, start_dispatcher: Callable[..., Dispatcher]
) -> None:
    bus.subscribe("blocker", "queue.paused")
    bus.subscribe("low", "job.*", priority=0)
    bus.subscribe("high", "job.*", priority=10)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def deliver(plugin: str, batch: list[Event]) -> None:
        if plugin == "blocker":
            inside.set()
            release.wait(WAIT)
        order.append(plugin)

    start_dispatcher(deliver, threads=1)
    bus.publish(ev("queue.paused", "a"))  # occupies the only thread
    assert inside.wait(WAIT)
    bus.publish(ev("job.completed", "a"))  # low and high both have work now
    release.set()
    wait_for(lambda: len(order) == 3)
    assert order == ["blocker", "high", "low"]


def test_events_published_before_the_dispatcher_starts_are_delivered(
    bus: EventBus, start_dispatcher: Callable[..., Dispatcher]
) -> None:
    bus.subscribe("p", "job.*")
    bus.publish(ev("job.completed", "a"))
    got: list[Event] = []
    start_dispatcher(lambda plugin, batch: got.extend(batch))
    wait_for(lambda: len(got) == 1)


def test_concurrent_publishers_and_dispatcher() -> None:
    bus = EventBus(maxlen=50_000)
    plugins = [f"p{i}" for i in range(5)]
    for plugin in plugins:
        bus.subscribe(plugin, "job.*")
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def deliver(plugin: str, batch: list[Event]) -> None:
        with lock:
            got[plugin] += len(batch)

    dispatcher = Dispatcher(bus, deliver, threads=3, max_batch=64)
    per_thread, threads = 2000, 4

    def publish(n: int) -> None:
        for i in range(per_thread):
            bus.publish(ev("job.completed", f"q{n}", i=i))

    publishers = [threading.Thread(target=publish, args=(n,)) for n in range(threads)]
    for t in publishers:
        t.start()
    for t in publishers:
        t.join(WAIT)
    total = per_thread * threads
    try:
        wait_for(lambda: all(got[p] == total for p in plugins))
    finally:
        dispatcher.stop()
    for plugin in plugins:
        stats = bus.stats(plugin)
        assert (stats.delivered, stats.dropped, stats.queued) == (total, 0, 0)


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        done.wait(0.005)
    pytest.fail("condition not reached")
