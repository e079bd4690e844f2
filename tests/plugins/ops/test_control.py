"""The control channel end to end: a :class:`ControlServer` beside a real manager and hot
reloader (the fake runtime), requests over the real Valkey pub/sub. Waits are generous upper
bounds, never timings."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from manager_host import WAIT, Host, job_event, publish, subscriber, wait_for, write_plugin

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.ops.control import ControlReply, ControlServer, request_reload
from rwq.plugins.ops.reloader import HotReloader
from rwq.queue.keys import InvalidPluginName, Keys


@pytest.fixture
def serve(host: Host) -> Iterator[Callable[..., ControlServer]]:
    """Start a reloader (not watching) and a control server for a started manager."""
    stops: list[Callable[[], None]] = []

    def make(manager: PluginManager, *, probation_s: float = 30.0, **kw: Any) -> ControlServer:
        reloader = HotReloader(manager, probation_s=probation_s, watch=False)
        reloader.start()
        server = ControlServer(manager, reloader, **kw)
        server.start()
        stops.extend([reloader.stop, server.stop])
        assert server.listening
        return server

    yield make
    for stop in reversed(stops):
        stop()


def keys(host: Host) -> Keys:
    return Keys(host.settings.prefix)


def raw_request(client: redis.Redis, k: Keys, payload: Any) -> ControlReply | None:
    """Publish ``payload`` (a dict gets a fresh id unless it has one) and return the first
    answer on its reply channel, or None when none came."""
    request_id = payload.get("id", uuid.uuid4().hex) if isinstance(payload, dict) else "none"
    if isinstance(payload, dict):
        payload = {"id": request_id, **payload}
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(k.plugin_control_reply(request_id))
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        assert client.publish(k.plugin_control, text) >= 1
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.2)
            if msg is not None and msg["type"] == "message":
                return ControlReply.from_json(msg["data"])
        return None
    finally:
        pubsub.close()


def test_a_reload_request_swaps_the_new_version_in_and_each_host_answers(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    server = serve(manager, identity="box:1")
    first = host.instance("p")
    write_plugin(host.root, "p", {"render": [{"type": "text", "text": "v1.1"}]}, version="1.1.0")
    result = request_reload(host.client, keys(host), "p")
    assert result.ok and result.received == 1 and result.missing == 0
    [reply] = result.replies
    assert (reply.host, reply.plugin, reply.outcome) == ("box:1", "p", "reloaded")
    assert (reply.old_version, reply.new_version) == ("1.0.0", "1.1.0")
    assert reply.elapsed_ms > 0 and reply.probation_s == 30.0
    assert first.closed
    assert manager.render("p", 20, 3).elements == [{"type": "text", "text": "v1.1"}]
    wait_for(lambda: server.handled == 1, "the answer counted")


def test_changed_code_of_the_same_version_awaiting_approval_is_told_apart_by_its_hash(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    d = write_plugin(host.root, "p", permissions=["ui.notifications"])
    host.grant(d, "ui.notifications")
    manager = host.started()
    serve(manager)
    running = manager.status("p").bundle_hash
    write_plugin(host.root, "p", {"render": []}, permissions=["ui.notifications"])  # unsigned
    [reply] = request_reload(host.client, keys(host), "p").replies
    assert reply.outcome == "awaiting approval"
    assert reply.new_version == reply.running_version == "1.0.0"
    assert reply.running_hash == running
    assert reply.new_hash and reply.new_hash != running


def test_two_hosts_each_answer(host: Host, serve: Callable[..., ControlServer]) -> None:
    write_plugin(host.root, "p")
    serve(host.started(), identity="a:1")
    serve(host.started(), identity="b:2")
    result = request_reload(host.client, keys(host), "p")
    assert result.received == 2
    assert [(r.host, r.outcome) for r in result.replies] == [
        ("a:1", "reloaded"),
        ("b:2", "reloaded"),
    ]


def test_no_running_host_is_told_apart(host: Host) -> None:
    result = request_reload(host.client, keys(host), "p", timeout=0.5)
    assert result.received == 0 and result.replies == [] and not result.ok


def test_an_unknown_plugin_is_answered_with_what_the_host_runs(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    write_plugin(host.root, "p")
    serve(host.started())
    result = request_reload(host.client, keys(host), "ghost")
    [reply] = result.replies
    assert not result.ok and not reply.ok and reply.outcome == "unknown plugin"
    assert "no plugin named 'ghost'" in reply.reason and "it runs: p" in reply.reason
    with pytest.raises(InvalidPluginName):
        request_reload(host.client, keys(host), "Not A Name")


def test_a_version_that_fails_to_initialise_is_refused_and_the_old_keeps_serving(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    serve(manager)
    subscriber(host.root, "p", {"initialize": {"error": "bad threshold"}}, version="1.1.0")
    host.grant(d, "events.subscribe")
    [reply] = request_reload(host.client, keys(host), "p").replies
    assert (reply.ok, reply.outcome, reply.new_version) == (False, "failed", "1.1.0")
    assert "bad threshold" in reply.reason and reply.old_version == "1.0.0"
    assert manager.status("p").version == "1.0.0"
    publish(manager, [job_event(1)])
    wait_for(lambda: len(host.runtime.all_of("p")[0].events) == 1, "the old version serving")


def test_waiting_out_the_probation_reports_a_rollback(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    serve(manager)
    subscriber(host.root, "p", {"faults": {"on_event": {"kind": "trap"}}}, version="1.1.0")
    host.grant(d, "events.subscribe")

    def fault_once_swapped() -> None:
        wait_for(lambda: manager.status("p").version == "1.1.0", "the new version")
        publish(manager, [job_event(1)])

    trigger = threading.Thread(target=fault_once_swapped)
    trigger.start()
    result = request_reload(host.client, keys(host), "p", settle=True, timeout=WAIT)
    trigger.join()
    [reply] = result.replies
    assert (reply.ok, reply.outcome, reply.probation_s) == (False, "rolled back", 0.0)
    assert "trap" in reply.reason and "back to 1.0.0" in reply.reason
    wait_for(lambda: manager.status("p").version == "1.0.0", "the old version back")
    assert manager.state("p") is PluginState.ACTIVE


def test_malformed_messages_are_ignored_and_bad_requests_answered(
    host: Host, serve: Callable[..., ControlServer], caplog: pytest.LogCaptureFixture
) -> None:
    write_plugin(host.root, "p")
    server = serve(host.started())
    k = keys(host)
    for junk in ("not json {", "[1, 2]", '"text"', json.dumps({"id": "bad id!", "op": "reload"}),
                 json.dumps({"op": "reload", "plugin": "p"})):  # fmt: skip
        assert host.client.publish(k.plugin_control, junk) == 1
    wait_for(lambda: server.ignored == 5, "five ignored messages")
    assert "not JSON" in caplog.text and "id: expected" in caplog.text

    bad_op = raw_request(host.client, k, {"op": "explode", "plugin": "p"})
    assert bad_op is not None and (bad_op.ok, bad_op.outcome) == (False, "bad request")
    assert "op: expected one of reload, got 'explode'" in bad_op.reason
    no_plugin = raw_request(host.client, k, {"op": "reload", "plugin": 7})
    assert no_plugin is not None and "plugin: expected a plugin name" in no_plugin.reason
    bad_settle = raw_request(host.client, k, {"op": "reload", "plugin": "p", "settle": "yes"})
    assert bad_settle is not None and "settle: expected true or false" in bad_settle.reason

    assert request_reload(host.client, k, "p").ok  # still serving
    assert server.listening


def test_stopping_the_server_ends_its_thread_and_unsubscribes(
    host: Host, serve: Callable[..., ControlServer]
) -> None:
    write_plugin(host.root, "p")
    server = serve(host.started())
    server.stop()
    assert not server.listening
    assert not any(t.name == "rwq-control" and t.is_alive() for t in threading.enumerate())
    wait_for(lambda: host.client.publish(keys(host).plugin_control, "{}") == 0, "unsubscribed")
