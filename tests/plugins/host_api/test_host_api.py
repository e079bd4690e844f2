"""The host API: every function through ``call()`` with and without its permission, bypass
attempts, read-only mode, events, alerts, timers, rate limits and delegated calls."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from hostile_text import hostile_text
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.contract.arguments import validate_arguments
from rwq.plugins.contract.errors import (
    ErrorCode,
    HostCallError,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    UnknownFunction,
    error_result,
)
from rwq.plugins.contract.events import ALERT_RAISED
from rwq.plugins.contract.host_functions import HOST_FUNCTIONS
from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.host_api.service import HostAPI, PluginBinding
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.host_api.timers import TimerTable
from rwq.plugins.trust.audit import AuditLog, AuditRecord, read
from rwq.plugins.trust.grants import GrantStore
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.producer import Producer

ROOT = Path(__file__).resolve().parents[3]
VERSION = "1.0.0"
PLUGINS = ("alpha", "beta", "gamma")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Host:
    """A host API over real Redis, grant store, audit log and bus."""

    api: HostAPI
    grants: GrantStore
    audit: AuditLog
    bus: EventBus
    broker: Broker
    producer: Producer
    clock: FakeClock
    bindings: dict[str, PluginBinding]
    dependencies: dict[str, set[str]]
    notices: list[tuple[str, str, str]] = field(default_factory=list)
    lines: list[tuple[str, str, str]] = field(default_factory=list)

    def grant(self, plugin: str, *permissions: str, queues: tuple[str, ...] = ("*",)) -> None:
        b = self.bindings[plugin]
        self.grants.grant(
            plugin, permissions, version=b.version, bundle_hash=b.bundle_hash, queues=queues
        )

    def call(self, plugin: str, function: str, args: Any = None) -> Any:
        return self.api.call(plugin, function, args)

    def records(self, plugin: str | None = None) -> list[AuditRecord]:
        self.audit.flush()
        return [r for r in read(self.audit.path) if plugin is None or r.plugin == plugin]

    def seed(self, queue: str = "q") -> list[str]:
        """Two pending and two dead jobs on ``queue``; returns the dead ids."""
        self.producer.enqueue_many(queue, [{"n": 1}, {"n": 2}])
        dead = [self.producer.enqueue(queue, {"n": i}).id for i in (3, 4)]
        # Dead-letter the last two: fetch all four, put the first two back as pending.
        fetched = self.broker.fetch(queue, "w-test", 4).jobs
        by_id = {j.id: j for j in fetched}
        self.broker.fail(
            queue, "w-test", [Failure(i, 1.0, "boom", permanent=True) for i in dead if i in by_id]
        )
        alive = [j.id for j in fetched if j.id not in dead]
        self.broker.release(queue, "w-test", "shutdown", "")
        assert len(alive) == 2
        return dead


@pytest.fixture
def host(redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> Iterator[Host]:
    audit = AuditLog(tmp_path / "audit.jsonl")
    grants = GrantStore(tmp_path / "grants.json", audit=audit)
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    bus = EventBus()
    clock = FakeClock()
    bindings = {p: PluginBinding(VERSION, "sha256:" + p[0] * 64) for p in PLUGINS}
    dependencies: dict[str, set[str]] = {}
    stores: dict[str, PluginStorage] = {}

    def storage(plugin: str) -> PluginStorage:
        if plugin not in stores:
            stores[plugin] = PluginStorage(
                redis_client, broker.keys, plugin, max_keys=10, max_bytes=1000
            )
        return stores[plugin]

    h = Host(
        api=None,  # type: ignore[arg-type]
        grants=grants,
        audit=audit,
        bus=bus,
        broker=broker,
        producer=producer,
        clock=clock,
        bindings=bindings,
        dependencies=dependencies,
    )
    h.api = HostAPI(
        grants=grants,
        audit=audit,
        admin=Admin(broker),
        producer=producer,
        bus=bus,
        storage=storage,
        bindings=bindings.get,
        dependencies=dependencies,
        on_notify=lambda *a: h.notices.append(a),
        on_log=lambda *a: h.lines.append(a),
        clock=clock,
    )
    yield h
    audit.close()


# Valid arguments for every function, given the queue and its dead job ids.
ARGS: dict[str, Callable[[str, list[str]], dict[str, Any]]] = {
    "subscribe": lambda q, d: {"type": "job.*", "queues": [q]},
    "unsubscribe": lambda q, d: {"id": "sub-999"},
    "enqueue_job": lambda q, d: {"queue": q, "payload": {"n": 9}, "priority": 7},
    "peek_job": lambda q, d: {"queue": q, "n": 2},
    "list_dead": lambda q, d: {"queue": q},
    "requeue_job": lambda q, d: {"queue": q, "job_id": d[0]},
    "requeue_jobs": lambda q, d: {"queue": q, "all": True},
    "purge_queue": lambda q, d: {"queue": q, "target": "dead"},
    "delete_dead": lambda q, d: {"queue": q, "ids": d},
    "pause_queue": lambda q, d: {"queue": q},
    "resume_queue": lambda q, d: {"queue": q},
    "get_queue_stats": lambda q, d: {"queue": q},
    "get_system_stats": lambda q, d: {},
    "log": lambda q, d: {"level": "info", "message": "hello"},
    "show_notification": lambda q, d: {"message": "hi"},
    "set_timer": lambda q, d: {"id": "tick", "interval_ms": 100},
    "clear_timer": lambda q, d: {"id": "tick"},
    "storage_get": lambda q, d: {"key": "k"},
    "storage_set": lambda q, d: {"key": "k", "value": '"v"'},
    "storage_delete": lambda q, d: {"key": "k"},
    "storage_list": lambda q, d: {},
    "storage_usage": lambda q, d: {},
    "emit": lambda q, d: {"type": "ping", "data": {"x": 1}},
    "send_alert": lambda q, d: {"severity": "warning", "title": "t", "message": "m"},
    "call_dependency": lambda q, d: {"plugin": "beta", "function": "f"},
}
GATED = sorted(n for n, s in HOST_FUNCTIONS.items() if s.permission is not None)
QUEUE_SCOPED = sorted(n for n in GATED if CATALOG[HOST_FUNCTIONS[n].permission or ""].queue_scoped)


def test_the_declarations_cover_every_function() -> None:
    assert set(ARGS) == set(HOST_FUNCTIONS)
    for spec in HOST_FUNCTIONS.values():
        assert spec.permission is None or spec.permission in CATALOG
        assert not spec.destructive or spec.writes
    assert {n for n, s in HOST_FUNCTIONS.items() if s.destructive} == {
        "delete_dead",
        "purge_queue",
        "requeue_jobs",
    }


def test_the_grant_store_must_audit_to_the_same_log(host: Host, tmp_path: Path) -> None:
    silent = GrantStore(tmp_path / "other.json")
    with pytest.raises(RwqError, match="audit"):
        HostAPI(
            grants=silent,
            audit=host.audit,
            admin=host.api.admin,
            producer=host.producer,
            bus=host.bus,
            storage=host.api.storage,
            bindings=host.bindings.get,
        )


# -- every function, with and without its permission -----------------------------------------


@pytest.mark.parametrize("function", GATED)
def test_allowed_with_the_permission(host: Host, function: str) -> None:
    dead = host.seed("q")
    permission = HOST_FUNCTIONS[function].permission
    assert permission is not None
    host.grant("alpha", permission, queues=("q",))
    result = host.call("alpha", function, ARGS[function]("q", dead))
    json.dumps(result, allow_nan=False)  # JSON-safe
    assert any(
        r.operation == f"{permission}:{function}" and r.allowed and r.kind == "check"
        for r in host.records("alpha")
    )


@pytest.mark.parametrize("function", GATED)
def test_denied_without_the_permission_names_it_and_is_audited(host: Host, function: str) -> None:
    dead = host.seed("q")
    permission = HOST_FUNCTIONS[function].permission
    host.grant(
        "alpha", "admin.system.stats" if permission != "admin.system.stats" else "ui.notifications"
    )
    with pytest.raises(PermissionDenied) as denied:
        host.call("alpha", function, ARGS[function]("q", dead))
    exc = denied.value
    assert exc.code is ErrorCode.PERMISSION_DENIED
    assert exc.permission == permission
    assert permission is not None and permission in str(exc)
    assert error_result(exc)["error"]["permission"] == permission
    assert error_result(exc)["error"]["code"] == "permission_denied"
    refusals = [r for r in host.records("alpha") if not r.allowed]
    assert [r.operation for r in refusals] == [f"{permission}:{function}"]
    # Nothing happened.
    assert host.broker.client.zcard(host.broker.queue_keys("q").dead) == 2
    assert host.bus.subscriptions("alpha") == []


def test_the_basic_results(host: Host) -> None:
    dead = host.seed("q")
    host.grant(
        "alpha",
        "admin.queue.enqueue",
        "admin.queue.peek",
        "admin.job.requeue",
        "admin.queue.purge",
        "admin.queue.pause",
        "admin.stats.read",
        "admin.system.stats",
    )
    job = host.call("alpha", "enqueue_job", {"queue": "q", "payload": [1], "tenant": "t1"})
    assert (job["queue"], job["payload"], job["tenant"], job["state"]) == (
        "q",
        [1],
        "t1",
        "pending",
    )
    peeked = host.call("alpha", "peek_job", {"queue": "q", "n": 10})
    assert job["id"] in [j["id"] for j in peeked]
    page = host.call("alpha", "list_dead", {"queue": "q", "error": "BOOM", "limit": 1})
    assert page["total"] == 2 and len(page["jobs"]) == 1
    assert host.call("alpha", "requeue_job", {"queue": "q", "job_id": dead[0]}) == {"requeued": 1}
    with pytest.raises(NotFound):
        host.call("alpha", "requeue_job", {"queue": "q", "job_id": dead[0]})
    with pytest.raises(NotFound):
        host.call("alpha", "peek_job", {"queue": "nope"})
    assert host.call("alpha", "pause_queue", {"queue": "q"}) == {"changed": True}
    assert host.call("alpha", "pause_queue", {"queue": "q"}) == {"changed": False}
    stats = host.call("alpha", "get_queue_stats", {"queue": "q"})
    (row,) = stats["queues"]
    assert (row["queue"], row["dead"], row["paused"]) == ("q", 1, True)
    system = host.call("alpha", "get_system_stats")
    assert system["queues"] == 1 and system["workers"] == 0
    assert system["rss_bytes"] > 0 and system["redis_latency_ms"] is not None
    assert host.call("alpha", "purge_queue", {"queue": "q"})["purged"] == 4


@pytest.mark.parametrize("name", ["dead", "all"])
def test_purge_never_takes_a_reserved_word_for_a_queue(host: Host, name: str) -> None:
    """``dead`` and ``all`` mean every queue's dead letters / everything to admin purge; a
    plugin naming them as a queue must not purge every queue."""
    host.seed("q")
    host.grant("alpha", "admin.queue.purge")
    with pytest.raises(HostCallError):
        host.call("alpha", "purge_queue", {"queue": name})
    assert host.broker.client.zcard(host.broker.queue_keys("q").dead) == 2


# -- bypass attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", QUEUE_SCOPED)
def test_a_queue_outside_the_granted_glob_is_denied(host: Host, function: str) -> None:
    inside, outside = host.seed("tenant.a"), host.seed("other")
    permission = HOST_FUNCTIONS[function].permission
    assert permission is not None
    host.grant("alpha", permission, queues=("tenant.*",))
    with pytest.raises(PermissionDenied) as denied:
        host.call("alpha", function, ARGS[function]("other", outside))
    assert denied.value.permission == permission
    assert "outside the granted scope" in str(denied.value)
    host.call("alpha", function, ARGS[function]("tenant.a", inside))


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("list_dead", {}),
        ("get_queue_stats", {}),
        ("requeue_jobs", {"all": True}),
        ("requeue_jobs", {"queue": "tenant.a", "all": True, "to": "other"}),
        ("subscribe", {"type": "job.*"}),  # default queues: the binding's scope ("*")
        ("subscribe", {"type": "job.*", "queues": ["*"]}),
        ("subscribe", {"type": "job.*", "queues": ["tenant.a", "other"]}),
        ("subscribe", {"type": "job.*", "queues": ["t*"]}),
    ],
)
def test_every_queue_a_call_touches_must_be_granted(
    host: Host, function: str, args: dict[str, Any]
) -> None:
    host.seed("tenant.a")
    host.seed("other")
    permission = HOST_FUNCTIONS[function].permission
    assert permission is not None
    host.grant("alpha", permission, queues=("tenant.*",))
    with pytest.raises(PermissionDenied):
        host.call("alpha", function, args)
    assert host.broker.client.zcard(host.broker.queue_keys("tenant.a").dead) == 2
    assert host.bus.subscriptions("alpha") == []


def test_a_subscription_glob_must_lie_inside_the_granted_glob(host: Host) -> None:
    host.grant("alpha", "events.subscribe", queues=("tenant.?",))
    # As a name, "tenant.*" matches the glob "tenant.?"; as a glob it reaches "tenant.abc".
    with pytest.raises(PermissionDenied, match="reaches beyond"):
        host.call("alpha", "subscribe", {"type": "job.*", "queues": ["tenant.*"]})
    assert [r.allowed for r in host.records("alpha") if r.kind == "check"] == [False]
    host.call("alpha", "subscribe", {"type": "job.*", "queues": ["tenant.a"]})
    host.grant("beta", "events.subscribe", queues=("tenant.*",))
    host.call("beta", "subscribe", {"type": "job.*", "queues": ["tenant.eu.*", "tenant.?"]})


def test_the_default_subscription_queues_are_the_plugins_queue_scope(host: Host) -> None:
    host.bindings["alpha"] = PluginBinding(VERSION, host.bindings["alpha"].bundle_hash, ("t.*",))
    host.grant("alpha", "events.subscribe", queues=("t.*",))
    host.call("alpha", "subscribe", {"type": "job.*"})
    (sub,) = host.bus.subscriptions("alpha")
    assert sub.queues == ("t.*",)


# Every (function, identity key) pair, except where the key is one of the function's own
# parameters (call_dependency's ``plugin`` names the callee, not the caller).
IDENTITY_CASES = [
    (function, key)
    for function in sorted(HOST_FUNCTIONS)
    for key in ("caller", "plugin", "source", "chain")
    if key not in {p.name for p in HOST_FUNCTIONS[function].params}
]


@pytest.mark.parametrize(("function", "key"), IDENTITY_CASES)
def test_identity_can_never_come_from_the_arguments(host: Host, function: str, key: str) -> None:
    for permission in {s.permission for s in HOST_FUNCTIONS.values()} - {None}:
        host.grant("alpha", permission or "")
    args = {**ARGS[function]("q", ["x"]), key: "beta"}
    with pytest.raises(InvalidArgument) as refused:
        host.call("alpha", function, args)
    assert refused.value.argument == key
    assert "acts as the calling plugin" in str(refused.value)
    assert [r.allowed for r in host.records("alpha") if r.kind == "check"] == [False]


def test_storage_is_the_callers_own(host: Host) -> None:
    host.grant("alpha", "storage.read", "storage.write")
    host.grant("beta", "storage.read", "storage.write")
    host.call("alpha", "storage_set", {"key": "secret", "value": "alpha's"})
    assert host.call("beta", "storage_get", {"key": "secret"}) is None
    assert host.call("beta", "storage_list") == []
    assert host.call("beta", "storage_delete", {"key": "secret"}) == {"deleted": False}
    assert host.call("alpha", "storage_get", {"key": "secret"}) == "alpha's"
    assert host.call("alpha", "storage_usage")["keys"] == 1


def test_storage_quota_is_a_typed_error(host: Host) -> None:
    host.grant("alpha", "storage.read", "storage.write")
    with pytest.raises(QuotaExceeded):
        host.call("alpha", "storage_set", {"key": "k", "value": "x" * 1000})
    for i in range(10):
        host.call("alpha", "storage_set", {"key": f"k{i}", "value": "1"})
    with pytest.raises(QuotaExceeded) as refused:
        host.call("alpha", "storage_set", {"key": "k10", "value": "1"})
    assert error_result(refused.value)["error"]["code"] == "quota_exceeded"
    assert host.call("alpha", "storage_list", {"prefix": "k1"}) == ["k1"]


def test_unknown_functions_and_unloaded_plugins_are_refused_and_audited(host: Host) -> None:
    with pytest.raises(UnknownFunction):
        host.call("alpha", "eval", {"code": "1"})
    with pytest.raises(UnknownFunction):
        host.call("alpha", None, {})  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="not loaded"):
        host.call("mallory", "log", {"level": "info", "message": "hi"})
    ops = [(r.plugin, r.operation, r.allowed) for r in host.records()]
    assert ("alpha", "unknown:eval", False) in ops
    assert ("mallory", "none:log", False) in ops


@pytest.mark.parametrize(
    ("function", "args", "argument"),
    [
        ("peek_job", [1, 2], None),
        ("peek_job", {"queue": "q", "n": "1"}, "n"),
        ("peek_job", {"queue": "q", "n": True}, "n"),
        ("peek_job", {"queue": "q", "n": 1000}, "n"),
        ("peek_job", {"queue": "q", "n": 0}, "n"),
        ("peek_job", {"queue": "q", "state": "secret"}, "state"),
        ("peek_job", {}, "queue"),
        ("peek_job", {"queue": None}, "queue"),
        ("peek_job", {"queue": "../x"}, "queue"),
        ("peek_job", {"queue": "q*"}, "queue"),
        ("peek_job", {"queue": "q", "limit": 5}, "limit"),
        ("enqueue_job", {"queue": "q", "payload": "x" * (600 * 1024)}, "payload"),
        ("enqueue_job", {"queue": "q", "payload": float("nan")}, "payload"),
        ("enqueue_job", {"queue": "q", "payload": {1}}, "payload"),
        ("enqueue_job", {"queue": "q", "payload": 1, "priority": 10}, "priority"),
        ("enqueue_job", {"queue": "q", "payload": 1, "tenant": "a\nb"}, "tenant"),
        ("enqueue_job", {"queue": "q", "payload": 1, "delay": -1}, "delay"),
        ("enqueue_job", {"queue": "q", "payload": 1, "delay": float("inf")}, "delay"),
        ("subscribe", {"type": "job.*", "queues": "*"}, "queues"),
        ("subscribe", {"type": "job.*", "queues": ["a"] * 33}, "queues"),
        ("subscribe", {"type": "job.*", "queues": ["a[b]"]}, "queues"),
        ("subscribe", {"type": "job.*", "interval": 0.01}, "interval"),
        ("storage_set", {"key": "k", "value": "x" * (65 * 1024)}, "value"),
        ("storage_set", {"key": "k", "value": {"a": 1}}, "value"),
        ("storage_get", {"key": "x" * 300}, "key"),
        ("log", {"level": "info", "message": "x" * 5000}, "message"),
        ("log", {"level": "critical", "message": "x"}, "level"),
        ("emit", {"type": "Ping"}, "type"),
        ("emit", {"type": ".ping"}, "type"),
        ("emit", {"type": "ping", "data": [1]}, "data"),
        ("emit", {"type": "ping", "data": {"x": "y" * 20_000}}, "data"),
        ("set_timer", {"id": "t", "interval_ms": 49}, "interval_ms"),
        ("set_timer", {"id": "t", "interval_ms": 1.5}, "interval_ms"),
        ("set_timer", {"id": "a/b", "interval_ms": 100}, "id"),
        ("requeue_jobs", {"ids": [1]}, "ids"),
        ("call_dependency", {"plugin": "../beta", "function": "f"}, "plugin"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    host: Host, function: str, args: Any, argument: str | None
) -> None:
    for permission in {s.permission for s in HOST_FUNCTIONS.values()} - {None}:
        host.grant("alpha", permission or "")
    host.producer.enqueue("q", 1)
    with pytest.raises(InvalidArgument) as refused:
        host.call("alpha", function, args)
    assert refused.value.argument == argument
    assert error_result(refused.value)["error"]["code"] == "invalid_argument"
    assert host.broker.client.zcard(host.broker.queue_keys("q").pending) == 1
    assert host.bus.subscriptions("alpha") == []


def test_errors_inside_become_internal_and_never_leak(host: Host) -> None:
    host.grant("alpha", "storage.read")

    def broken(plugin: str) -> PluginStorage:
        raise RuntimeError("connection string with a password")

    host.api.storage = broken
    with pytest.raises(InternalError) as failed:
        host.call("alpha", "storage_get", {"key": "k"})
    result = error_result(failed.value)["error"]
    assert result["code"] == "internal" and "password" not in result["message"]
    assert error_result(ValueError("raw"))["error"]["code"] == "internal"


# -- read-only mode ------------------------------------------------------------------------


def test_read_only_refuses_changes_and_still_reads(host: Host) -> None:
    dead = host.seed("q")
    host.grant("alpha", "operator", "admin.queue.peek", "admin.queue.purge", "admin.queue.requeue")
    host.api.read_only = True
    for function, args in [
        ("purge_queue", {"queue": "q", "target": "all"}),
        ("requeue_jobs", {"queue": "q", "all": True}),
        ("requeue_jobs", {"ids": dead}),
        ("requeue_job", {"queue": "q", "job_id": dead[0]}),
        ("enqueue_job", {"queue": "q", "payload": 1}),
    ]:
        with pytest.raises(HostCallError) as refused:
            host.call("alpha", function, args)
        assert error_result(refused.value)["error"]["code"] == "read_only"
    assert len(host.call("alpha", "peek_job", {"queue": "q", "n": 10})) == 2
    assert host.call("alpha", "list_dead", {"queue": "q"})["total"] == 2
    assert host.call("alpha", "get_queue_stats", {"queue": "q"})["queues"][0]["dead"] == 2
    refusals = [r for r in host.records("alpha") if not r.allowed]
    assert len(refusals) == 5 and all("read-only" in r.reason for r in refusals)
    host.api.read_only = False
    assert host.call("alpha", "purge_queue", {"queue": "q", "target": "all"})["purged"] == 4


# -- events and alerts -----------------------------------------------------------------------


def test_an_emitted_event_reaches_only_subscribers_of_its_type(host: Host) -> None:
    host.grant("beta", "events.subscribe")
    host.grant("gamma", "events.subscribe")
    host.call("beta", "subscribe", {"type": "plugin.alpha.*"})
    host.call("gamma", "subscribe", {"type": "plugin.delta.*"})
    sent = host.call("alpha", "emit", {"type": "sla.breached", "data": {"tenant": "t1"}})
    assert sent["type"] == "plugin.alpha.sla.breached"
    (event,) = host.bus.drain("beta")
    assert (event.type, event.source, dict(event.data)) == (
        "plugin.alpha.sla.breached",
        "plugin:alpha",
        {"tenant": "t1"},
    )
    assert host.bus.drain("gamma") == []


def test_send_alert_publishes_from_the_caller(host: Host) -> None:
    host.grant("beta", "events.subscribe")
    host.call("beta", "subscribe", {"type": "*"})
    host.grant("alpha", "admin.alerts.send")
    host.call("alpha", "send_alert", {"severity": "critical", "title": "t", "message": "m"})
    (event,) = host.bus.drain("beta")
    assert event.type == ALERT_RAISED and event.source == "plugin:alpha"
    assert dict(event.data) == {
        "from": "alpha",
        "severity": "critical",
        "title": "t",
        "message": "m",
        "key": None,
        "repeat": False,
    }


def test_subscriptions_are_capped_and_only_their_owner_may_cancel_them(host: Host) -> None:
    host.grant("alpha", "events.subscribe")
    host.grant("beta", "events.subscribe")
    host.api.max_subscriptions = 2
    first = host.call("alpha", "subscribe", {"type": "job.*"})["id"]
    host.call("alpha", "subscribe", {"type": "queue.stats", "interval": 1})
    with pytest.raises(QuotaExceeded):
        host.call("alpha", "subscribe", {"type": "worker.status"})
    with pytest.raises(NotFound):
        host.call("beta", "unsubscribe", {"id": first})
    assert len(host.bus.subscriptions("alpha")) == 2
    assert host.call("alpha", "unsubscribe", {"id": first}) is None
    with pytest.raises(NotFound):
        host.call("alpha", "unsubscribe", {"id": first})
    with pytest.raises(InvalidArgument, match="matches no event type"):
        host.call("alpha", "subscribe", {"type": "jobs.*"})


# -- timers, notifications, logs -------------------------------------------------------------


def test_timers_come_due_repeat_and_clear(host: Host) -> None:
    host.call("alpha", "set_timer", {"id": "tick", "interval_ms": 100})
    host.call("alpha", "set_timer", {"id": "once", "interval_ms": 250, "repeat": False})
    host.call("beta", "set_timer", {"id": "tick", "interval_ms": 1000})
    timers = host.api.timers
    assert timers.next_due() == pytest.approx(1000.1)
    assert timers.due(1000.05) == []
    assert [(f.plugin, f.id) for f in timers.due(1000.1)] == [("alpha", "tick")]
    fired = timers.due(1000.3)
    assert [(f.plugin, f.id) for f in fired] == [("alpha", "tick"), ("alpha", "once")]
    assert set(fired[0].argument()) == {"id", "ts"}
    assert timers.count("alpha") == 1  # "once" is gone
    assert host.call("alpha", "clear_timer", {"id": "tick"}) == {"cleared": True}
    assert host.call("alpha", "clear_timer", {"id": "tick"}) == {"cleared": False}
    assert [(f.plugin, f.id) for f in timers.due(1002.0)] == [("beta", "tick")]


def test_a_late_repeating_timer_fires_once_and_does_not_catch_up() -> None:
    table = TimerTable(clock=lambda: 0.0)
    table.set("alpha", "t", 100)
    assert len(table.due(10.0)) == 1
    assert table.next_due() == pytest.approx(10.1)


def test_timers_are_capped_per_plugin(host: Host) -> None:
    for i in range(16):
        host.call("alpha", "set_timer", {"id": f"t{i}", "interval_ms": 50})
    host.call("alpha", "set_timer", {"id": "t0", "interval_ms": 500})  # replacing is fine
    with pytest.raises(QuotaExceeded):
        host.call("alpha", "set_timer", {"id": "t16", "interval_ms": 50})
    host.call("beta", "set_timer", {"id": "t16", "interval_ms": 50})  # per plugin
    host.api.release("alpha")
    assert host.api.timers.count("alpha") == 0


def test_notifications_are_rate_limited_per_plugin(host: Host) -> None:
    host.grant("alpha", "ui.notifications")
    host.grant("beta", "ui.notifications")
    for i in range(5):
        host.call("alpha", "show_notification", {"message": f"n{i}"})
    with pytest.raises(RateLimited) as refused:
        host.call("alpha", "show_notification", {"message": "one too many"})
    assert error_result(refused.value)["error"]["code"] == "rate_limited"
    host.call("beta", "show_notification", {"message": "mine", "level": "warning"})
    host.clock.now += 2.0  # 5 per 10 s: one more after 2 s
    host.call("alpha", "show_notification", {"message": "later"})
    with pytest.raises(RateLimited):
        host.call("alpha", "show_notification", {"message": "again"})
    assert len(host.notices) == 7
    assert host.notices[5] == ("beta", "mine", "warning")


def test_log_lines_carry_the_plugin(host: Host) -> None:
    host.call("alpha", "log", {"level": "warning", "message": "disk low"})
    assert host.lines == [("alpha", "warning", "disk low")]
    assert any(r.operation == "none:log" and r.allowed for r in host.records("alpha"))


# -- delegation ----------------------------------------------------------------------------


def test_a_dependency_runs_with_the_intersection_of_grants(host: Host) -> None:
    host.seed("q")
    host.dependencies["alpha"] = {"beta"}
    host.grant("alpha", "admin.stats.read")
    host.grant("beta", "admin.stats.read", "admin.queue.purge")
    calls: list[tuple[tuple[str, ...], str, str, Any]] = []

    def call_plugin(chain: tuple[str, ...], plugin: str, function: str, args: Any) -> Any:
        calls.append((chain, plugin, function, args))
        # The dependency's own code runs; its host calls carry its own identity.
        if function == "purge":
            return host.call(plugin, "purge_queue", {"queue": "q", "target": "dead"})
        return host.call(plugin, "get_queue_stats", {"queue": "q"})["queues"][0]["dead"]

    host.api.call_plugin = call_plugin
    args = {"plugin": "beta", "function": "dead_count", "args": {"q": "q"}}
    assert host.call("alpha", "call_dependency", args) == 2
    assert calls == [(("alpha", "beta"), "beta", "dead_count", {"q": "q"})]
    with pytest.raises(PermissionDenied) as denied:
        host.call("alpha", "call_dependency", {"plugin": "beta", "function": "purge"})
    assert denied.value.permission == "admin.queue.purge"
    assert denied.value.chain == ("alpha", "beta")
    assert "alpha: " in str(denied.value)  # the caller is the one lacking it
    assert host.broker.client.zcard(host.broker.queue_keys("q").dead) == 2
    # Called directly, the dependency has its own grants.
    assert host.call("beta", "purge_queue", {"queue": "q", "target": "dead"}) == {"purged": 2}
    chained = [(r.operation, r.allowed) for r in host.records() if r.chain == ("alpha", "beta")]
    assert chained == [
        ("dependency:dead_count", True),
        ("admin.stats.read:get_queue_stats", True),
        ("dependency:purge", True),
        ("admin.queue.purge:purge_queue", False),
    ]


def test_only_declared_dependencies_may_be_called(host: Host) -> None:
    host.dependencies["alpha"] = {"beta"}
    host.dependencies["beta"] = {"alpha"}
    host.api.call_plugin = lambda chain, plugin, function, args: host.call(
        plugin, "call_dependency", {"plugin": "alpha", "function": "back"}
    )
    with pytest.raises(PermissionDenied, match="does not declare gamma"):
        host.call("alpha", "call_dependency", {"plugin": "gamma", "function": "f"})
    with pytest.raises(PermissionDenied, match="cycle"):
        host.call("alpha", "call_dependency", {"plugin": "beta", "function": "f"})
    refused = [(r.plugin, r.chain, r.allowed) for r in host.records() if not r.allowed]
    assert refused == [
        ("gamma", ("alpha", "gamma"), False),
        ("alpha", ("alpha", "beta", "alpha"), False),
    ]


def test_a_failing_dependency_is_a_typed_error(host: Host) -> None:
    host.dependencies["alpha"] = {"beta"}

    def boom(chain: tuple[str, ...], plugin: str, function: str, args: Any) -> Any:
        raise RwqError("beta trapped")

    host.api.call_plugin = boom
    with pytest.raises(HostCallError) as failed:
        host.call("alpha", "call_dependency", {"plugin": "beta", "function": "f"})
    assert failed.value.code is ErrorCode.INTERNAL and "beta trapped" in str(failed.value)


def test_alert_raised_is_a_subscribable_event_type() -> None:
    from rwq.plugins.contract.events import ALERT_RAISED, CATALOG, check_pattern

    assert ALERT_RAISED in CATALOG
    check_pattern(ALERT_RAISED)  # raises if no event type could match


# -- hostile arguments ------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("function", "args", "argument"),
    [
        ("subscribe", {"type": "job.*", "interval": 10**309}, "interval"),
        ("subscribe", {"type": "job.*", "interval": -(10**400)}, "interval"),
        ("list_dead", {"queue": "q", "older_than_s": 10**309}, "older_than_s"),
        ("list_dead", {"queue": "q", "older_than_s": float("nan")}, "older_than_s"),
        ("peek_job", {"queue": "q", "n": 10**400}, "n"),
        ("enqueue_job", {"queue": "q", "payload": 1, "tenant": "evil\n"}, "tenant"),
        ("enqueue_job", {"queue": "q", "payload": 1, "tenant": "a\x9bb"}, "tenant"),
        ("enqueue_job", {"queue": "q\n", "payload": 1}, "queue"),
        ("enqueue_job", {"queue": "q", "payload": 1, "job_id": "id\n"}, "job_id"),
        ("emit", {"type": "ping\n"}, "type"),
        ("emit", {"type": "ping", "data": {"a": [[[[float("inf")]]]]}}, "data"),
        ("storage_set", {"key": "k\n", "value": "1"}, "key"),
        ("call_dependency", {"plugin": "beta\n", "function": "f"}, "plugin"),
        ("enqueue_job", {"queue": "q", "payload": 1, "tenant": "\ud800"}, "tenant"),
        ("enqueue_job", {"queue": "q", "payload": nested(900)}, "payload"),
        ("emit", {"type": "ping", "data": {"deep": nested(600)}}, "data"),
        ("emit", {"type": "ping", "data": {"k\udc80": 1}}, "data"),
    ],
)
def test_hostile_arguments_are_invalid_arguments_naming_them(
    host: Host, function: str, args: dict[str, Any], argument: str
) -> None:
    for permission in {s.permission for s in HOST_FUNCTIONS.values()} - {None}:
        host.grant("alpha", permission or "")
    with pytest.raises(InvalidArgument) as refused:
        host.call("alpha", function, args)
    assert refused.value.argument == argument
    assert host.broker.client.zcard(host.broker.queue_keys("q").pending) == 0


_hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300)
    | st.floats() | hostile_text | st.sampled_from(["q", "q\n", "job.*", "k", "info", "dead"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@pytest.mark.fuzz
@given(st.sampled_from(sorted(HOST_FUNCTIONS)), st.data())
def test_any_argument_is_checked_or_named(function: str, data: st.DataObject) -> None:
    """Every parameter of every function set to anything: the call's arguments are either
    checked values (finite numbers, whole-string pattern matches) or an InvalidArgument that
    names the argument — never another exception."""
    spec = HOST_FUNCTIONS[function]
    args = dict(ARGS[function]("q", ["id-1"]))
    names = [p.name for p in spec.params] + ["extra"]
    for _ in range(data.draw(st.integers(1, 3))):
        args[data.draw(st.sampled_from(names))] = data.draw(_hostile_values)
    try:
        checked = validate_arguments(spec, args, ("*",))
    except InvalidArgument as refused:
        assert refused.argument is None or refused.argument in args
        return
    for p in spec.params:
        value = checked[p.name]
        if p.type == "number" and value is not None:
            assert math.isfinite(value)
        if p.pattern and isinstance(value, str):
            assert re.fullmatch(p.pattern, value), (p.name, value)
