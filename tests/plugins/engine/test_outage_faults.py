"""Plugins faulted by a Redis outage (their host calls failed) are retried until Redis answers,
not left disabled or in error; plugins that fault on their own keep the fault limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from manager_host import Host, job_event, publish, subscriber, wait_for, write_plugin

from rwq.config import Settings
from rwq.connection import connect
from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
from rwq.valkey.standalone import StandaloneServer

STATS = {"function": "get_queue_stats", "args": {"queue": None}}


@pytest.fixture
def server(make_server: Callable[..., StandaloneServer]) -> StandaloneServer:
    return make_server()


@pytest.fixture
def outage_host(settings: Settings, server: StandaloneServer, tmp_path: Path) -> Iterator[Host]:
    """A plugin host on a server of its own (the test stops it), failing fast."""
    root = tmp_path / "plugins"
    root.mkdir()
    here = settings.replace(
        redis_url=server.url, socket_timeout=0.5, socket_connect_timeout=0.3, redis_retries=0,
        plugin_dirs=str(root),
    )  # fmt: skip
    host = Host(here, connect(here), root)  # type: ignore[arg-type]
    yield host
    for manager in host.managers:
        manager.stop()


def test_a_plugin_faulted_by_an_outage_is_retried_until_redis_answers(
    outage_host: Host, server: StandaloneServer
) -> None:
    host = outage_host
    script = {
        "calls": {"on_event": [STATS]},
        "faults": {"on_event": {"kind": "timeout", "if_host_error": True}},
    }
    d = subscriber(host.root, "watcher", script, permissions=["admin.stats.read"])
    host.grant(d, "events.subscribe", "admin.stats.read")
    manager = host.started(fault_policy=FaultPolicy(max_consecutive=1, backoff_initial=60))
    server.kill()
    publish(manager, [job_event(1)])
    wait_for(lambda: manager.state("watcher") is PluginState.DISABLED, "disabled by the outage")
    assert "while Redis was unavailable" in manager.reason("watcher")
    assert manager.status("watcher").disables == 0  # not counted against the plugin
    server.start()
    wait_for(lambda: manager.state("watcher") is PluginState.ACTIVE, "active again", timeout=30)
    publish(manager, [job_event(2)])
    inst = host.instance("watcher")
    wait_for(lambda: inst.count("on_event") == 1, "the next event")
    assert manager.state("watcher") is PluginState.ACTIVE


def test_a_load_that_failed_in_an_outage_is_retried_rather_than_left_in_error(
    outage_host: Host, server: StandaloneServer
) -> None:
    host = outage_host
    script = {
        "calls": {"initialize": [STATS]},
        "faults": {"initialize": {"kind": "timeout", "if_host_error": True}},
    }
    d = write_plugin(host.root, "starter", script, permissions=["admin.stats.read"])
    host.grant(d, "admin.stats.read")
    server.kill()
    manager = host.started()
    wait_for(lambda: manager.state("starter") is PluginState.DISABLED, "waiting for Redis")
    assert "while Redis was unavailable" in manager.reason("starter")
    server.start()
    wait_for(lambda: manager.state("starter") is PluginState.ACTIVE, "loaded", timeout=30)


def test_a_plugin_faulting_on_its_own_keeps_the_fault_limits(outage_host: Host) -> None:
    host = outage_host
    d = subscriber(host.root, "clumsy", {"faults": {"on_event": {"kind": "timeout"}}})
    host.grant(d, "events.subscribe")
    manager = host.started(fault_policy=FaultPolicy(max_consecutive=1, backoff_initial=60))
    publish(manager, [job_event(1)])
    wait_for(lambda: manager.state("clumsy") is PluginState.DISABLED, "disabled")
    assert "retrying in 60s" in manager.reason("clumsy")
    assert manager.status("clumsy").disables == 1
