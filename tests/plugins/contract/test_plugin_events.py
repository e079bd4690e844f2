"""The plugin-side event contract: catalog, envelope, patterns and the generated doc."""

from __future__ import annotations

import json
import pickle
from dataclasses import fields
from pathlib import Path

import pytest

from rwq.plugins.contract.events import (
    CATALOG,
    QUEUE_STATS,
    SYSTEM_HEALTH,
    EventPayload,
    EventTypeError,
    check_pattern,
    glob_matcher,
    is_known_type,
    local_event,
    plugin_event_type,
)
from rwq.plugins.runtimes.base import to_guest_json
from rwq.queue.admin import QueueStats
from rwq.queue.events import Event, EventType

ROOT = Path(__file__).resolve().parents[3]


def test_catalog_covers_every_queue_event_and_the_host_types() -> None:
    assert {t.value for t in EventType} <= set(CATALOG)
    assert {
        QUEUE_STATS,
        SYSTEM_HEALTH,
        "plugin.loaded",
        "plugin.unloaded",
        "plugin.faulted",
        "plugin.reloaded",
    } <= set(CATALOG)
    stats_fields = {f.name for f in fields(QueueStats)} - {"queue"}
    assert set(CATALOG[QUEUE_STATS].fields) == stats_fields


def test_queue_events_convert_to_envelopes() -> None:
    fields_ = {"type": "job.completed", "job_id": "j1", "attempt": "1", "duration_ms": "2.5"}
    event = Event.from_entry("1700000000000-3", fields_, "emails")
    assert event == Event(
        type="job.completed",
        ts=1700000000000.0,
        source="queue",
        queue="emails",
        data={"job_id": "j1", "attempt": 1, "duration_ms": 2.5},
        id="1700000000000-3",
    )
    status = Event.from_entry("5-0", {"type": "worker.status", "pid": "7"})
    assert (status.source, status.queue, status.data) == ("worker", "", {"pid": 7})


def test_to_dict_is_json_safe() -> None:
    event = local_event(
        "plugin.sla.breach",
        {"ratio": float("nan"), "tags": ("a", "b"), 3: {"nested": {1, 2}}, "obj": object()},
        source="plugin:sla",
        queue="emails",
    )
    text = json.dumps(event.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["type"] == "plugin.sla.breach" and back["source"] == "plugin:sla"
    assert back["data"]["ratio"] is None and back["data"]["tags"] == ["a", "b"]
    assert sorted(back["data"]["3"]["nested"]) == [1, 2]
    assert back["id"].startswith("local:")


def test_every_subscriber_shares_one_payload_encoded_once() -> None:
    event = local_event("job.completed", {"job_id": "j1", "odd": "\ud800"}, queue="q")
    payload = event.to_dict()
    assert event.to_dict() is payload  # made once, whichever plugin asks first
    with pytest.raises(TypeError, match="read-only"):
        payload["type"] = "job.failed"
    with pytest.raises(TypeError, match="read-only"):
        payload.update(queue="other")
    copy = dict(payload)
    copy["type"] = "job.failed"  # a copy is the caller's own
    assert event.to_dict()["type"] == "job.completed"
    other = local_event("job.started", {"n": 1}, queue="q").to_dict()
    batch = to_guest_json([payload, other])
    assert payload.encoded is not None  # kept for the next subscriber
    assert to_guest_json([other, payload]) == b"[%s,%s]" % (other.encoded, payload.encoded)
    assert json.loads(batch) == [{**payload, "data": {"job_id": "j1", "odd": "\ufffd"}}, other]
    assert to_guest_json([payload, {"x": 1}]) == to_guest_json([dict(payload), {"x": 1}])
    revived = pickle.loads(pickle.dumps(event))
    assert revived == event and type(revived.to_dict()) is EventPayload


def test_plugin_emitted_types() -> None:
    assert plugin_event_type("alert-manager", "fired") == "plugin.alert-manager.fired"
    assert is_known_type("plugin.alert-manager.fired")
    assert not is_known_type("plugin.alert-manager")
    with pytest.raises(EventTypeError):
        plugin_event_type("bad.name", "fired")
    with pytest.raises(EventTypeError):
        plugin_event_type("ok", "")


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("job.*", "job.completed", True),
        ("job.*", "jobs.completed", False),
        ("*", "anything.at.all", True),
        ("*", "", True),
        ("plugin.alert-manager.*", "plugin.alert-manager.fired", True),
        ("plugin.alert-manager.*", "plugin.alert-manager2.fired", False),
        ("job.?ailed", "job.failed", True),
        ("tenant.[a]", "tenant.[a]", True),  # only * and ? are special
        ("emails", "emails", True),
        ("emails", "emails2", False),
    ],
)
def test_glob_matcher(pattern: str, value: str, matches: bool) -> None:
    assert glob_matcher(pattern)(value) is matches


@pytest.mark.parametrize("pattern", ["job.*", "*", "queue.stats", "plugin.x.*", "plugin.*"])
def test_patterns_that_can_match(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["jobs.*", "", "job completed", "queue.stat"])
def test_patterns_that_never_match_are_refused(pattern: str) -> None:
    with pytest.raises(EventTypeError):
        check_pattern(pattern)
