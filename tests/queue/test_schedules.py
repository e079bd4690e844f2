"""Periodic jobs on a standalone server and on the cluster: one job per tick however many
schedulers race, missed ticks coalesced or skipped, cron and intervals, rwq.yaml's schedules
synced. Times are injected (``run_once(now)``) or ticks are one second apart; nothing asserts
how long anything took."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.scheduler import Scheduler
from rwq.queue.schedules import ScheduleError, ScheduleStore, server_ms
from rwq.schedule_spec import make_spec

ReadEvents = Callable[[str], list[Event]]
WaitUntil = Callable[..., Any]


def fired(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == "schedule.fired"]


def test_a_tick_enqueues_its_job_once(broker: Broker, read_events: ReadEvents) -> None:
    store = ScheduleStore(broker)
    payload = {"kind": "report", "n": 1}
    spec = make_spec("report", {"queue": "q", "cron": "*/5 * * * *", "payload": payload,
                                "priority": 8, "tenant": "acme"})  # fmt: skip
    assert store.add(spec) and not store.add(spec)  # the same definition: nothing changes
    state = store.get("report")
    assert state is not None and state.next_ms is not None and state.next_ms % 300_000 == 0
    tick = state.next_ms
    scheduler = Scheduler(broker, {})
    assert scheduler.run_once(tick - 1)[0] == []  # not due yet
    [result], earliest = scheduler.run_once(tick + 10)
    assert (result.outcome.outcome, result.outcome.job_id) == ("fired", f"report:{tick}")
    assert earliest == tick + 300_000
    assert scheduler.run_once(tick + 20)[0] == []  # the tick is past: nothing more
    job = Admin(broker).job("q", f"report:{tick}")
    assert job is not None and job.state == "pending"
    assert (job.payload, job.priority, job.tenant, job.labels) == (payload, 8, "acme",
                                                                   {"kind": "report"})  # fmt: skip
    [event] = fired(read_events("q"))
    assert event.data["schedule"] == "report" and event.data["job_id"] == f"report:{tick}"
    assert event.data["tick"] == tick and event.data["missed"] == 0
    assert isinstance(event.data["late_ms"], int)
    after = store.get("report")
    assert after is not None
    assert (after.last_tick, after.last_job, after.next_ms, after.fired) == (
        tick, f"report:{tick}", tick + 300_000, 1)  # fmt: skip


def test_schedulers_racing_enqueue_one_job_per_tick(
    broker: Broker, read_events: ReadEvents
) -> None:
    settings = broker.settings
    ScheduleStore(broker).add(make_spec("tick", {"queue": "q", "every": "1s"}))
    start = ScheduleStore(broker).get("tick")
    assert start is not None and start.next_ms is not None
    racers = [Scheduler(Broker(connect(settings), settings), {}) for _ in range(4)]
    barrier = threading.Barrier(len(racers))
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(scheduler: Scheduler) -> None:
        for n in range(10):  # ten ticks, every racer at the same instants
            barrier.wait()
            results, _ = scheduler.run_once(start.next_ms + n * 1000 + 5)
            with lock:
                outcomes.extend(r.outcome.outcome for r in results)

    threads = [threading.Thread(target=race, args=(s,)) for s in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(outcomes)["fired"] == 10
    ticks = [e.data["tick"] for e in fired(read_events("q"))]
    assert ticks == [start.next_ms + n * 1000 for n in range(10)]
    pending = broker.client.zrange(broker.queue_keys("q").pending, 0, -1)
    assert sorted(pending) == sorted(f"tick:{t}" for t in ticks)


def test_running_schedulers_fire_each_second_once(
    broker: Broker, read_events: ReadEvents, wait_until: WaitUntil
) -> None:
    settings = broker.settings
    ScheduleStore(broker).add(make_spec("beat", {"queue": "q", "every": "1s"}))
    schedulers = [Scheduler(Broker(connect(settings), settings), {}) for _ in range(3)]
    for s in schedulers:
        s.start()
    try:
        wait_until(lambda: len(fired(read_events("q"))) >= 3, timeout=20, what="three ticks")
    finally:
        for s in schedulers:
            s.stop()
    ticks = [e.data["tick"] for e in fired(read_events("q"))]
    assert len(ticks) == len(set(ticks)) and ticks == sorted(ticks)
    jobs = broker.client.zrange(broker.queue_keys("q").pending, 0, -1)
    assert sorted(jobs) == sorted(f"beat:{t}" for t in ticks)
    assert sum(s.fired for s in schedulers) == len(ticks)


def _away(broker: Broker, name: str, queue: str, next_ms: int) -> None:
    """As if no scheduler ran since ``next_ms`` was due."""
    broker.client.hset(broker.queue_keys(queue).schedule(name), "next_ms", str(next_ms))


def test_missed_ticks_are_coalesced_into_one_job(broker: Broker, read_events: ReadEvents) -> None:
    store = ScheduleStore(broker)
    store.add(make_spec("tick", {"queue": "q", "every": "1s"}))
    now = server_ms(broker.client) // 1000 * 1000 + 500
    _away(broker, "tick", "q", now - 500 - 10_000)  # ten ticks passed, this second's is due
    [result], earliest = Scheduler(broker, {}).run_once(now)
    assert result.outcome.outcome == "fired" and result.tick == now - 500
    assert result.missed == 10 and earliest == now + 500
    [event] = fired(read_events("q"))
    assert event.data["missed"] == 10
    assert broker.client.zcard(broker.queue_keys("q").pending) == 1


@pytest.mark.parametrize("policy", ["coalesce", "skip"])
def test_a_long_missed_tick_fires_or_is_skipped_by_policy(
    broker: Broker, read_events: ReadEvents, policy: str
) -> None:
    store = ScheduleStore(broker)
    spec = make_spec("nightly", {"queue": "q", "cron": "0 3 * * *", "missed": policy})
    store.add(spec)
    day = 86_400_000
    three = spec.next_tick(1_700_000_000_000)  # some 03:00 UTC
    _away(broker, "nightly", "q", three)
    now = three + 2 * day + 2 * 3_600_000  # two days and two hours later: 05:00
    [result], earliest = Scheduler(broker, {}).run_once(now)
    assert result.tick == three + 2 * day and result.missed == 2
    assert earliest == three + 3 * day  # resumes at the next 03:00
    state = store.get("nightly")
    assert state is not None and state.next_ms == three + 3 * day
    jobs = broker.client.zrange(broker.queue_keys("q").pending, 0, -1)
    if policy == "coalesce":
        assert result.outcome.outcome == "fired" and jobs == [f"nightly:{three + 2 * day}"]
        assert state.fired == 1
    else:
        assert result.outcome.outcome == "skipped" and jobs == [] and not fired(read_events("q"))
        assert state.skipped == 3 and state.fired == 0


def test_a_changed_or_removed_schedule_is_not_fired_from_what_was_read(broker: Broker) -> None:
    store = ScheduleStore(broker)
    store.add(make_spec("t", {"queue": "q", "every": "1s", "payload": 1}))
    old = store.get("t")
    assert old is not None and old.next_ms is not None
    store.add(make_spec("t", {"queue": "q", "every": "1s", "payload": 2}))
    assert store.fire(old, old.next_ms, old.next_ms + 1000).outcome == "changed"
    new = store.get("t")
    assert new is not None and new.rev != old.rev
    assert store.remove("t") and not store.remove("t")
    assert store.fire(new, new.next_ms or 0, 0).outcome == "gone"
    assert store.list() == [] and broker.client.zcard(broker.queue_keys("q").pending) == 0


def test_a_schedule_moved_to_another_queue_leaves_nothing_behind(broker: Broker) -> None:
    store = ScheduleStore(broker)
    store.add(make_spec("t", {"queue": "a", "every": "1s"}))
    store.add(make_spec("t", {"queue": "b", "every": "1s"}))
    assert [s.spec.queue for s in store.list()] == ["b"]
    assert not broker.client.exists(broker.queue_keys("a").schedule("t"))


def test_rwq_yaml_schedules_are_synced_and_win_over_runtime_ones(
    make_broker: Callable[..., Broker],
) -> None:
    yaml = '{"nightly":{"queue":"reports","cron":"0 3 * * *"},"beat":{"queue":"q","every":"1m"}}'
    broker = make_broker(schedules=yaml)
    store = ScheduleStore(broker)
    store.add(make_spec("beat", {"queue": "q", "every": "5s"}))  # added at run time
    scheduler = Scheduler(broker)  # the settings' schedules
    assert sorted(store.sync(scheduler.specs)) == ["beat", "nightly"]
    states = {s.name: s for s in store.list()}
    assert states["beat"].spec.every == "1m" and states["beat"].origin == "rwq.yaml"
    assert states["nightly"].origin == "rwq.yaml"
    assert store.sync(scheduler.specs) == []  # unchanged: state kept
    store.remove("nightly")  # stays removed until a scheduler starts with that file again
    assert [s.name for s in store.list()] == ["beat"]


def test_read_only_refuses_schedule_changes(make_broker: Callable[..., Broker]) -> None:
    store = ScheduleStore(make_broker(read_only=True))
    with pytest.raises(ScheduleError, match="read-only"):
        store.add(make_spec("t", {"queue": "q", "every": "1s"}))
    with pytest.raises(ScheduleError, match="read-only"):
        store.remove("t")


def test_a_payload_over_the_limit_is_refused(make_broker: Callable[..., Broker]) -> None:
    store = ScheduleStore(make_broker(payload_limit=64))
    with pytest.raises(ScheduleError, match="payload_limit"):
        store.add(make_spec("t", {"queue": "q", "every": "1s", "payload": "x" * 100}))


def test_a_scheduler_outlives_a_redis_outage_and_coalesces_what_it_missed(
    make_server: Callable[..., Any], settings: Settings, wait_until: WaitUntil
) -> None:
    server = make_server(persistence=True)
    target = settings.replace(redis_url=server.url)
    client = connect(target)
    broker = Broker(client, target)
    ScheduleStore(broker).add(make_spec("beat", {"queue": "q", "every": "1s"}))
    scheduler = Scheduler(Broker(connect(target), target), {})
    events = broker.queue_keys("q").events

    def fired_entries() -> list[dict[str, str]]:
        return [f for _, f in client.xrange(events) if f["type"] == "schedule.fired"]

    scheduler.start()
    try:
        wait_until(lambda: fired_entries(), timeout=20, what="a first tick")
        server.stop()  # saved: what was fired stays fired
        time.sleep(2.5)  # ticks pass with the server down
        server.start()
        wait_until(
            lambda: any(int(f["missed"]) >= 1 for f in fired_entries()),
            timeout=30,
            what="the missed ticks coalesced",
        )
    finally:
        scheduler.stop()
    ticks = [int(f["tick"]) for f in fired_entries()]
    assert len(ticks) == len(set(ticks)) and ticks == sorted(ticks)
