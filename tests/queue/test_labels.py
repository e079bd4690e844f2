"""Labels: payload fields named by ``event_labels`` are copied at enqueue into the job's hash
and carried by every job event, so events can be grouped by them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rwq.config import Settings
from rwq.errors import ConfigError
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.events import FIELDS, Event, EventType
from rwq.queue.job import Job
from rwq.queue.job_control import WorkerControl
from rwq.queue.producer import JobSpec, Producer
from rwq.queue.reaper import reap
from rwq.queue.worker import Worker, WorkerOptions

WaitUntil = Callable[..., Any]
ReadEvents = Callable[[str], list[Event]]

JOB_EVENTS = {t.value for t in EventType if t.value.startswith("job.")}
LABELLED = {"kind": "search.index", "type": "bulk", "size": 3, "nested": {"kind": "x"}}
LABELS = {"kind": "search.index", "type": "bulk"}


def stored_labels(broker: Broker, queue: str, job_id: str) -> str | None:
    raw: str | None = broker.client.hget(broker.queue_keys(queue).job(job_id), "labels")
    return raw


def events_of(read_events: ReadEvents, queue: str, job_id: str) -> list[Event]:
    return [e for e in read_events(queue) if e.data.get("job_id") == job_id]


def test_every_job_event_carries_the_labels(
    make_broker: Callable[..., Broker], read_events: ReadEvents, wait_until: WaitUntil
) -> None:
    broker = make_broker(heartbeat_interval=0.05, heartbeat_ttl=0.2)
    producer, admin = Producer(broker), Admin(broker)
    # Each path of the enqueue script: now/delayed, with/without a tenant, batch/one.
    now = producer.enqueue("q", LABELLED)
    tenant = producer.enqueue("q", LABELLED, tenant="acme")
    later = producer.enqueue("q", LABELLED, delay=60)
    batch = producer.enqueue_many("q", [LABELLED, JobSpec(LABELLED, tenant="acme")])
    ids = [now.id, tenant.id, later.id] + [j.id for j in batch]
    for job in [now, tenant, later, *batch]:
        assert job.labels == LABELS
    for job_id in ids:
        assert json.loads(stored_labels(broker, "q", job_id) or "") == LABELS
        job = admin.job("q", job_id)
        assert job is not None and job.labels == LABELS
        assert job.to_dict()["labels"] == LABELS

    # started + completed; failed + retried; timed_out + failed + retried; failed +
    # dead_lettered; requeued (operator,
    # moved to another queue, shutdown, worker lost); dead_lettered by the reaper.
    Worker(broker, ["q"], {"*": print}, WorkerOptions(name="w1"))._lease.register()
    a, b, c, d = broker.fetch("q", "w1", 4).jobs
    assert a.labels == LABELS  # the worker's job has them too
    a.attach(WorkerControl(broker, "w1"))
    assert a.progress(0.5, "half")  # job.progress
    broker.complete("q", "w1", [(a.id, 1.5)])
    broker.fail("q", "w1", [Failure(b.id, 1.0, "E: retry", "tb", 60_000)])
    broker.fail("q", "w1", [Failure(d.id, 9.0, "JobTimeout: t", "", 60_000, timeout=0.009,
                                    stopped="abandoned")])  # fmt: skip
    broker.fail("q", "w1", [Failure(c.id, 1.0, "E: fatal", "tb", permanent=True)])
    assert [j.labels for j in admin.peek("q", target="dead")] == [LABELS]
    assert [j.labels for j in admin.peek("q", target="completed")] == [LABELS]
    admin.requeue([c.id])
    broker.fetch("q", "w1", 1)
    broker.fail("q", "w1", [Failure(c.id, 1.0, "E: fatal", "tb", permanent=True)])
    admin.requeue([c.id], to="elsewhere")
    assert json.loads(stored_labels(broker, "elsewhere", c.id) or "") == LABELS
    broker.release("q", "w1", "shutdown", "")
    Worker(broker, ["q"], {"*": print}, WorkerOptions(name="lost"))._lease.register()
    last = producer.enqueue("q", {"kind": "last", "type": 7}, max_retries=0)
    held = broker.fetch("q", "lost", 10).jobs
    assert last.id in {j.id for j in held}
    wait_until(lambda: not broker.client.exists(broker.keys.heartbeat("lost")), what="expiry")
    broker.client.delete(broker.keys.reaper_lock)
    assert reap(broker) is not None
    admin.cancel(producer.enqueue("q", LABELLED).id)  # job.cancelled

    seen: set[str] = set()
    for queue in ["q", "elsewhere"]:
        for event in read_events(queue):
            if not event.type.startswith("job."):
                continue
            seen.add(event.type)
            want = {"kind": "last", "type": 7} if event.data["job_id"] == last.id else LABELS
            assert event.data.get("labels") == want, event
            assert "labels" in FIELDS[EventType(event.type)]
    assert seen == JOB_EVENTS


@pytest.mark.parametrize(
    "payload",
    [
        {"i": 1},
        {"kind": None, "type": {"nested": "object"}, "other": "x"},
        {"kind": ["a", "list"], "type": {}},
        [{"kind": "in a list"}],
        "kind",
        7,
        None,
    ],
)
def test_no_labels_when_the_payload_has_none(
    broker: Broker, producer: Producer, read_events: ReadEvents, payload: Any
) -> None:
    one = producer.enqueue("q", payload)
    (many,) = producer.enqueue_many("q", [payload])
    assert one.labels is None and many.labels is None
    broker.fetch("q", "w1", 2)
    for job in (one, many):
        assert stored_labels(broker, "q", job.id) is None
        events = events_of(read_events, "q", job.id)
        assert [e.type for e in events] == ["job.enqueued", "job.started"]
        raw = broker.client.xrange(broker.queue_keys("q").events)
        assert all("labels" not in fields for _, fields in raw)
        assert all("labels" not in e.data for e in events)
    loaded = Admin(broker).job("q", one.id)
    assert loaded is not None and loaded.labels is None and loaded.payload == payload


def test_only_scalars_are_kept_and_strings_are_cut(
    broker: Broker, producer: Producer, read_events: ReadEvents
) -> None:
    payload = {"kind": "k" * 100, "type": {"deep": "x"}, "extra": "not named"}
    job = producer.enqueue("q", payload)
    assert job.labels == {"kind": "k" * 64}
    (event,) = events_of(read_events, "q", job.id)
    assert event.data["labels"] == {"kind": "k" * 64}
    assert Admin(broker).job("q", job.id).payload == payload  # type: ignore[union-attr]
    for value in (True, 0, -12, 2.5, ""):
        labelled = producer.enqueue("q", {"kind": value})
        assert labelled.labels == {"kind": value}
        (event,) = events_of(read_events, "q", labelled.id)
        assert event.data["labels"] == {"kind": value}
        assert type(event.data["labels"]["kind"]) is type(value)


def test_at_most_four_labels(make_broker: Callable[..., Broker], read_events: ReadEvents) -> None:
    broker = make_broker(event_labels="a,b,c,d")
    payload = {"a": 1, "b": "two", "c": False, "d": 4.5, "e": 5, "kind": "not named"}
    job = Producer(broker).enqueue("q", payload)
    (event,) = events_of(read_events, "q", job.id)
    assert event.data["labels"] == {"a": 1, "b": "two", "c": False, "d": 4.5}
    with pytest.raises(ConfigError, match="event_labels: at most 4 fields, got 5"):
        make_broker(event_labels="a,b,c,d,e")


def test_disabled_when_the_setting_is_empty(
    make_broker: Callable[..., Broker], read_events: ReadEvents
) -> None:
    broker = make_broker(event_labels="")
    producer = Producer(broker)
    one = producer.enqueue("q", LABELLED, tenant="acme")
    (many,) = producer.enqueue_many("q", [LABELLED])
    for job in (one, many):
        assert job.labels is None
        assert stored_labels(broker, "q", job.id) is None
        (event,) = events_of(read_events, "q", job.id)
        assert "labels" not in event.data
    assert many.payload == LABELLED


def test_unicode_and_separators_in_values_stay_inside_the_label(
    broker: Broker, producer: Producer, read_events: ReadEvents
) -> None:
    weird = [
        {"kind": "Zürich ☃ 😀 日本", "type": "a\x1eb\x1fc"},
        {"kind": "\x00\n\t\x7f\"'\\", "type": "\ud800"},  # a lone surrogate is valid JSON text
        {"kind": "x\x1e" * 40},
    ]
    # Between plain jobs in one batch: a separator leaking out would break the next record.
    payloads: list[Any] = [{"i": 0}, weird[0], {"i": 1}, weird[1], weird[2], {"i": 2}]
    jobs = producer.enqueue_many("q", payloads)
    jobs.append(producer.enqueue("q", weird[0], tenant="t\u00e9nant"))
    want = [None, weird[0], None, weird[1], {"kind": ("x\x1e" * 40)[:64]}, None, weird[0]]
    for job, labels in zip(jobs, want, strict=True):
        assert job.labels == labels
        (event,) = events_of(read_events, "q", job.id)
        assert event.data.get("labels") == labels
        raw = stored_labels(broker, "q", job.id)
        if labels is not None:
            assert raw is not None and raw.isascii() and "\x1e" not in raw and "\x1f" not in raw
    admin = Admin(broker)
    for job, payload in zip(jobs, [*payloads, weird[0]], strict=True):
        loaded = admin.job("q", job.id)
        assert loaded is not None and loaded.payload == payload
    assert admin.job("q", jobs[-1].id).tenant == "t\u00e9nant"  # type: ignore[union-attr]


def test_a_job_hash_without_labels_reads_as_none() -> None:
    """Jobs enqueued before labels existed, or with a value some other writer put there."""
    assert Job.from_fields({"spec": "{}"}).labels is None
    assert Job.from_fields({"spec": "{}", "labels": "not json"}).labels is None
    assert Job.from_fields({"spec": "{}", "labels": "[1]"}).labels is None
    assert Event.from_entry("1-0", {"type": "job.started", "labels": "{oops"}).data == {}
    event = Event.from_entry("1-0", {"type": "job.started", "labels": '{"kind":"a"}'})
    assert event.data == {"labels": {"kind": "a"}}


# -- the setting --------------------------------------------------------------------------------


def test_the_setting_from_env_file_and_flags(tmp_path: Path) -> None:
    assert Settings().label_fields == ("kind", "type")
    assert Settings.load(env={"RWQ_EVENT_LABELS": "region, kind"}).label_fields == (
        "region",
        "kind",
    )
    assert Settings.load(env={"RWQ_EVENT_LABELS": ""}).label_fields == ()  # empty disables
    config = tmp_path / "rwq.yaml"
    config.write_text("event_labels: [kind, tier]\n", encoding="utf-8")
    assert Settings.load(config, env={}).label_fields == ("kind", "tier")
    config.write_text("event_labels: []\n", encoding="utf-8")
    assert Settings.load(config, env={}).label_fields == ()
    assert Settings.load(env={}, event_labels="type").label_fields == ("type",)
    # Kept as one string, so str() of it (how the demo hands settings to workers) recreates it.
    assert Settings(event_labels=["a", "b"]).event_labels == "a,b"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a,a", "a field is named twice"),
        ("a,,b", "got ''"),
        ("a b", "got 'a b'"),
        ("x" * 65, "1-64 characters"),
        ("a,b,c,d,e", "at most 4 fields"),
    ],
)
def test_bad_settings_name_the_variable(value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"\$RWQ_EVENT_LABELS: event_labels: .*{message}"):
        Settings.load(env={"RWQ_EVENT_LABELS": value})
    config = tmp_path / "rwq.yaml"
    config.write_text(f"event_labels: {json.dumps(value)}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        Settings.load(config, env={})
    config.write_text("event_labels: {kind: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rwq\.yaml: event_labels: expected a list"):
        Settings.load(config, env={})
