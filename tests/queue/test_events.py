"""Events: every transition appends its event with the fields ``events.FIELDS`` declares."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import COMMON_FIELDS, FIELDS, Event, EventType, render_markdown
from rwq.queue.producer import Producer
from rwq.queue.reaper import reap
from rwq.queue.scheduler import Scheduler
from rwq.queue.schedules import ScheduleStore, server_ms
from rwq.queue.worker import Worker, WorkerOptions
from rwq.schedule_spec import make_spec

WaitUntil = Callable[..., Any]
ReadEvents = Callable[[str], list[Event]]

OPTIONAL = {"tenant", "run_at", "reason", "from_queue", "labels"}
"""Fields ``events.FIELDS`` allows to be absent or empty."""


def check_fields(event_type: str, fields: dict[str, Any]) -> None:
    declared = set(FIELDS[EventType(event_type)])
    present = set(fields) - set(COMMON_FIELDS)
    assert present <= declared, f"{event_type}: undeclared {present - declared}"
    assert declared - OPTIONAL <= present, f"{event_type}: missing {declared - OPTIONAL - present}"
    empty = {k for k, v in fields.items() if v == ""} - OPTIONAL
    assert not empty, f"{event_type}: empty {empty}"


def raw_entries(broker: Broker, key: str) -> list[dict[str, str]]:
    return [fields for _, fields in broker.client.xrange(key)]


def test_every_transition_emits_its_declared_fields(
    make_broker: Callable[..., Broker], wait_until: WaitUntil
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    producer, admin = Producer(broker), Admin(broker)
    keys = broker.keys

    # job.enqueued, now and delayed (with run_at)
    now_jobs = producer.enqueue_many("q", [1, 2, 3, 4, 5])
    producer.enqueue("q", "later", delay=60, tenant="acme")
    # job.started, job.completed
    worker = Worker(broker, ["q"], {"*": print}, WorkerOptions(name="w1"))
    worker._lease.register()  # worker.status ("starting")
    a, b, c, d = broker.fetch("q", "w1", 4).jobs
    broker.complete("q", "w1", [(a.id, 1.5)])
    # job.failed + job.retried; job.failed + job.dead_lettered
    broker.fail("q", "w1", [Failure(b.id, 1.0, "E: retry", "tb", 60_000)])
    broker.fail("q", "w1", [Failure(c.id, 1.0, "E: fatal", "tb", permanent=True)])
    # job.timed_out (then job.failed, job.retried)
    broker.fail("q", "w1", [Failure(d.id, 30.0, "JobTimeout: t", "", 60_000, attempt=1,
                                    timeout=0.03, stopped="killed")])  # fmt: skip
    # job.requeued: an operator's requeue, a move to another queue, a shutdown hand-back
    admin.requeue([c.id])
    broker.fetch("q", "w1", 1)
    broker.fail("q", "w1", [Failure(c.id, 1.0, "E: fatal", "tb", permanent=True)])
    admin.requeue([c.id], to="elsewhere")
    broker.release("q", "w1", "shutdown", "")
    # job.requeued (worker_lost) and job.dead_lettered by the reaper; worker.status "dead"
    lost = Worker(broker, ["q"], {"*": print}, WorkerOptions(name="lost"))
    lost._lease.register()
    producer.enqueue("q", "last chance", max_retries=0)
    broker.fetch("q", "lost", 10)
    wait_until(lambda: not broker.client.exists(keys.heartbeat("lost")), what="expiry")
    broker.client.delete(keys.reaper_lock)
    assert reap(broker) is not None
    # queue.paused, queue.resumed, queue.purged
    admin.pause("q")
    admin.resume("q")
    admin.purge("q")
    # schedule.fired
    ScheduleStore(broker).add(make_spec("beat", {"queue": "q", "every": "1s"}))
    Scheduler(broker, {}).run_once(server_ms(broker.client) + 2000)

    seen: set[str] = set()
    for key in [broker.queue_keys("q").events, broker.queue_keys("elsewhere").events]:
        for fields in raw_entries(broker, key):
            check_fields(fields["type"], fields)
            seen.add(fields["type"])
    statuses = raw_entries(broker, keys.system_events)
    for fields in statuses:
        check_fields(fields["type"], fields)
        seen.add(fields["type"])
    assert seen == {t.value for t in EventType}
    assert {s["state"] for s in statuses} == {"starting", "dead"}
    assert len(now_jobs) == 5 and d.id == now_jobs[3].id


def test_enqueued_events_carry_run_at_only_when_delayed(
    producer: Producer, read_events: ReadEvents
) -> None:
    now = producer.enqueue("q", 1, tenant="acme", priority=7)
    later = producer.enqueue("q", 2, delay=60)
    first, second = read_events("q")
    assert first.data == {"job_id": now.id, "tenant": "acme", "priority": 7}
    assert (second.data["job_id"], second.data["tenant"], second.data["priority"]) == (
        later.id,
        "",
        5,
    )
    assert isinstance(second.data["run_at"], int)
    assert second.data["run_at"] == pytest.approx(later.run_at, abs=1)


def test_job_events_carry_attempts_workers_and_durations(
    producer: Producer, broker: Broker, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", 1, tenant="t")
    broker.fetch("q", "w1", 1)
    broker.fail("q", "w1", [Failure(job.id, 12.5, "ValueError: x", "tb", 10)])
    events = {e.type: e for e in read_events("q")}
    started, failed, retried = (
        events["job.started"],
        events["job.failed"],
        events["job.retried"],
    )
    assert (started.data["attempt"], started.data["worker"], started.data["tenant"]) == (
        1,
        "w1",
        "t",
    )
    assert isinstance(started.data["wait_ms"], float) and started.data["wait_ms"] >= 0
    assert (failed.data["duration_ms"], failed.data["error"]) == (12.5, "ValueError: x")
    assert retried.data["attempt"] == 1
    assert retried.data["run_at"] >= started.ts
    assert started.queue == "q" and started.ts > 0


def test_worker_status_events_describe_the_worker(
    broker: Broker, start_worker: Callable[..., Any]
) -> None:
    start_worker(["q", "r"], {"*": print}, name="w-ev", max_jobs=0).join()
    entries = broker.client.xrange(broker.keys.system_events)
    events = [Event.from_entry(i, f) for i, f in entries]
    assert [e.data["state"] for e in events] == ["starting", "stopped"]
    for event in events:
        assert event.type == "worker.status"
        assert (event.data["worker"], event.data["queues"], event.queue) == ("w-ev", "q,r", "")
        assert isinstance(event.data["pid"], int) and event.data["processed"] == 0


# -- parsing --------------------------------------------------------------------------------


def test_from_entry_parses_numbers_and_keeps_text() -> None:
    event = Event.from_entry(
        "1700000000123-4",
        {
            "type": "job.completed",
            "job_id": "0123",  # looks numeric, is an id
            "tenant": "",
            "attempt": "2",
            "worker": "host:1:ab",
            "duration_ms": "1.250",
        },
        "emails",
    )
    assert (event.type, event.ts, event.queue, event.id) == (
        "job.completed",
        1700000000123.0,
        "emails",
        "1700000000123-4",
    )
    assert event.data == {
        "job_id": "0123",
        "tenant": "",
        "attempt": 2,
        "worker": "host:1:ab",
        "duration_ms": 1.25,
    }
    assert event.to_dict() == {
        "id": "1700000000123-4",
        "type": "job.completed",
        "ts": 1700000000123.0,
        "source": "queue",
        "queue": "emails",
        "data": event.data,
    }


def test_from_entry_keeps_empty_and_malformed_numbers_as_text() -> None:
    event = Event.from_entry("5-0", {"type": "job.enqueued", "run_at": "", "priority": "high"})
    assert event.data == {"run_at": "", "priority": "high"}
    assert Event.from_entry("5-0", {}).type == ""


def test_every_event_type_is_declared_and_documented() -> None:
    assert set(FIELDS) == set(EventType)
    doc = render_markdown()
    assert all(f"`{kind.value}`" in doc for kind in EventType)


@pytest.mark.fuzz
@given(
    st.one_of(
        st.from_regex(r"[0-9]{1,20}-[0-9]{1,5}", fullmatch=True),
        st.sampled_from(["NaN", "1e400-0", "inf-1", "-5-0", "", "0x10-1", "١٢٣-0"]),
        st.text(max_size=20),
    ),
    st.dictionaries(
        st.sampled_from(["type", "job_id", "priority", "attempt", "wait_ms", "duration_ms",
                         "run_at", "count", "labels", "error", "tenant"]),
        st.one_of(st.text(max_size=20), st.sampled_from(["nan", "inf", "1e400", "1.5e400",
                                                         "-0", "9" * 30, "1.0", '{"a":1}'])),
    ),
)  # fmt: skip
def test_any_stream_entry_decodes_to_an_event_json_can_carry(
    entry_id: str, fields: dict[str, str]
) -> None:
    event = Event.from_entry(entry_id, fields, "q")
    text = json.dumps(event.to_dict(), allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["ts"] >= 0


def test_an_entry_id_that_is_not_a_number_has_ts_zero() -> None:
    for entry_id in ("NaN", "1e400-0", "inf-1", ""):
        assert Event.from_entry(entry_id, {"type": "job.completed"}).ts == 0.0
    assert Event.from_entry("1700000000000-3", {}).ts == 1700000000000.0
    event = Event.from_entry("1-0", {"wait_ms": "1.5e400", "priority": "nan", "attempt": "2"})
    assert event.data == {"wait_ms": "1.5e400", "priority": "nan", "attempt": 2}
