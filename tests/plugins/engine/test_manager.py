"""The lifecycle manager end to end: real bundles on disk, scripted plugins (the fake runtime),
real grants, audit, bus and Valkey. Waits are generous upper bounds, never timings."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_runtime import FakeInstance
from manager_host import WAIT, Host, job_event, publish, subscriber, wait_for, write_plugin
from prometheus_client import CollectorRegistry, generate_latest

from rwq.plugins.contract.ui import cap_elements
from rwq.plugins.engine.lifecycle import (
    FaultPolicy,
    IllegalTransition,
    PluginState,
    check_transition,
)
from rwq.plugins.engine.manager import LifecycleError, PluginManager
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.user_config import PluginConfigError
from rwq.plugins.trust.audit import read
from rwq.plugins.trust.grants import GrantStore, grants_path


def test_a_plugin_goes_active_takes_events_in_batches_and_renders(host: Host) -> None:
    d = subscriber(host.root, "counter", {"block": {"on_event": "first"}})
    host.grant(d, "events.subscribe")
    changed: list[str] = []
    manager = host.manager()
    manager.add_change_listener(changed.append)
    manager.start()
    assert manager.state("counter") is PluginState.ACTIVE
    inst = host.instance("counter")
    assert [h for h, _ in inst.calls] == ["initialize", "activate"]

    publish(manager, [job_event(0)])
    assert host.runtime.arrived("first").wait(WAIT)  # the plugin holds the first batch...
    publish(manager, [job_event(n) for n in range(1, 50)])  # ...while 49 more queue up
    host.runtime.gate("first").set()
    wait_for(lambda: len(inst.events) == 50, "50 events")
    assert inst.batches == [1, 49]
    assert [e["data"]["job_id"] for e in inst.events] == [f"j{n}" for n in range(50)]
    assert set(inst.events[0]) == {"id", "type", "ts", "source", "queue", "data"}

    wait_for(lambda: "counter" in manager.dirty_panels(), "a dirty panel")
    assert "counter" in changed
    result = manager.render("counter", 40, 10, focused=True)
    assert result.error is None and result.state is PluginState.ACTIVE
    assert result.elements == [{"type": "text", "text": "50 events"}]
    assert inst.calls[-1] == ("render", {"width": 40, "height": 10, "focused": True})
    assert "counter" not in manager.dirty_panels()
    assert manager.on_input("counter", {"kind": "key", "key": "r"})
    assert "counter" in manager.dirty_panels()
    assert manager.health("counter").status == "ok"


def test_a_plugin_awaits_approval_then_loads(host: Host) -> None:
    subscriber(host.root, "counter", permissions=["admin.stats.read"])
    manager = host.started()
    assert manager.state("counter") is PluginState.AWAITING_APPROVAL
    assert "counter" not in host.runtime.instances  # nothing runs before approval
    [pending] = manager.pending_approvals()
    assert pending.plugin == "counter" and not pending.update
    assert pending.review.pending == {"events.subscribe", "admin.stats.read"}

    assert manager.approve("counter", ["events.subscribe"]) is PluginState.AWAITING_APPROVAL
    assert manager.approve("counter", granted_by="tester") is PluginState.ACTIVE
    assert manager.pending_approvals() == []
    publish(manager, [job_event(1)])
    wait_for(lambda: len(host.instance("counter").events) == 1, "an event")
    with pytest.raises(LifecycleError, match="nothing awaits approval"):
        manager.approve("counter")


def test_a_denied_plugin_stays_unloaded(host: Host) -> None:
    subscriber(host.root, "nosy", permissions=["admin.queue.peek"])
    manager = host.started()
    assert manager.deny("nosy", denied_by="tester") is PluginState.UNLOADED
    assert "denied by tester" in manager.reason("nosy")
    assert "nosy" not in host.runtime.instances
    denied = {p for d in manager.grants.denials_for("nosy") for p in d.permissions}
    assert denied == {"events.subscribe", "admin.queue.peek"}
    publish(manager, [job_event(1)])
    assert manager.bus.subscriptions("nosy") == []


def test_partly_denied_plugin_loads_without_what_was_denied(host: Host) -> None:
    subscriber(host.root, "nosy", permissions=["admin.queue.peek"])
    manager = host.started()
    assert manager.deny("nosy", ["admin.queue.peek"]) is PluginState.AWAITING_APPROVAL
    assert manager.approve("nosy") is PluginState.ACTIVE


def test_refused_plugins_are_listed_with_their_reason(host: Host) -> None:
    write_plugin(host.root, "lonely", dependencies=[{"name": "absent"}])
    write_plugin(host.root, "old-dep", dependencies=[{"name": "base", "version": ">=2.0.0"}])
    write_plugin(host.root, "base")
    broken = host.root / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: Broken!\n", encoding="utf-8")
    manager = host.started()
    assert manager.state("base") is PluginState.ACTIVE
    assert manager.state("lonely") is PluginState.ERROR
    assert "requires absent, which is not installed" in manager.reason("lonely")
    assert manager.state("old-dep") is PluginState.ERROR
    assert "1.0.0 is installed" in manager.reason("old-dep")
    assert list(manager.invalid) == [broken]
    assert "lonely" not in host.runtime.instances


def test_a_dependant_waits_for_its_dependency_to_be_approved(host: Host) -> None:
    write_plugin(host.root, "alerts", permissions=["admin.alerts.send"])
    write_plugin(host.root, "sla", dependencies=[{"name": "alerts"}])
    manager = host.started()
    assert manager.state("alerts") is PluginState.AWAITING_APPROVAL
    assert manager.state("sla") is PluginState.ERROR
    assert "requires alerts, which is awaiting_approval" in manager.reason("sla")
    manager.approve("alerts")
    assert manager.state("alerts") is PluginState.ACTIVE
    assert manager.state("sla") is PluginState.ACTIVE


def test_a_dependant_installed_first_starts_when_its_dependency_arrives(
    host: Host, tmp_path: Path
) -> None:
    write_plugin(host.root, "sla", dependencies=[{"name": "alerts"}])
    write_plugin(host.root, "report", dependencies=[{"name": "sla"}])  # a chain of two
    manager = host.started()
    assert "requires alerts, which is not installed" in manager.reason("sla")
    assert "requires sla, which cannot load" in manager.reason("report")
    assert manager.add(open_bundle(write_plugin(host.root, "alerts"))) is PluginState.ACTIVE
    assert manager.state("sla") is PluginState.ACTIVE, manager.reason("sla")
    assert manager.state("report") is PluginState.ACTIVE, manager.reason("report")
    assert manager.state("alerts") is PluginState.ACTIVE  # its dependants' start left it be


def test_a_dependant_starts_once_its_dependency_is_replaced_by_a_version_it_accepts(
    host: Host, tmp_path: Path
) -> None:
    write_plugin(host.root, "base")
    write_plugin(host.root, "old-dep", dependencies=[{"name": "base", "version": ">=2.0.0"}])
    manager = host.started()
    assert "1.0.0 is installed" in manager.reason("old-dep")
    assert manager.replace("base", open_bundle(write_plugin(tmp_path, "base", version="2.0.0"))).ok
    assert manager.state("old-dep") is PluginState.ACTIVE


def test_load_and_initialize_failures_are_errors_with_the_reason(host: Host) -> None:
    write_plugin(host.root, "cannot", {"load_fault": "bad module"})
    write_plugin(host.root, "refuses", {"initialize": {"error": "no token configured"}})
    write_plugin(host.root, "headless", {"exports": ["initialize"]})
    manager = host.started()
    assert manager.state("cannot") is PluginState.ERROR
    assert "bad module" in manager.reason("cannot")
    assert "no token configured" in manager.reason("refuses")
    assert host.instance("refuses").closed
    assert "no render hook" in manager.reason("headless")


def test_disable_enable_and_unload(host: Host) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    first = host.instance("counter")
    manager.disable("counter", "too noisy")
    assert manager.state("counter") is PluginState.DISABLED
    assert manager.reason("counter") == "too noisy"
    assert [h for h, _ in first.calls][-2:] == ["deactivate", "cleanup"] and first.closed
    assert manager.status("counter").retry_in is None  # no automatic retry
    assert manager.render("counter", 10, 5).error == "too noisy"
    assert manager.enable("counter") is PluginState.ACTIVE
    assert host.instance("counter") is not first
    manager.unload("counter")
    assert manager.state("counter") is PluginState.UNLOADED
    result = manager.replace("counter", open_bundle(d))
    assert not result.ok and result.reason == "not running (unloaded)"
    with pytest.raises(LifecycleError, match="not running"):
        manager.prepare("counter", open_bundle(d))


# -- faults ------------------------------------------------------------------------------------


def test_a_plugin_that_keeps_faulting_is_disabled_and_the_others_never_notice(
    host: Host,
) -> None:
    flaky = subscriber(host.root, "flaky", {"faults": {"on_event": {"kind": "trap"}}})
    steady = subscriber(host.root, "steady", events=[{"type": "plugin.faulted"}])
    host.grant(flaky, "events.subscribe")
    host.grant(steady, "events.subscribe")
    manager = host.started()
    bad, good = host.instance("flaky"), host.instance("steady")
    sent: list[str] = []
    for n in range(3):  # one event per batch: three faulting calls
        event = job_event(n)
        sent.append(event.id)
        publish(manager, [event])
        wait_for(lambda n=n: bad.count("on_event") == n + 1, f"fault {n + 1}")
    wait_for(lambda: manager.state("flaky") is PluginState.DISABLED, "flaky disabled")
    reason = manager.reason("flaky")
    assert "3 faults in a row" in reason and "trap" in reason and "retrying in 60s" in reason
    assert bad.closed
    more = [job_event(n) for n in range(3, 203)]
    sent += [e.id for e in more]
    publish(manager, more)

    def jobs() -> list[str]:
        return [e["id"] for e in list(good.events) if e["type"] == "job.completed"]

    wait_for(lambda: len(jobs()) == len(sent), "every event at the steady plugin")
    assert jobs() == sent

    def faulted() -> list[dict[str, Any]]:
        return [e for e in list(good.events) if e["type"] == "plugin.faulted"]

    wait_for(lambda: len(faulted()) == 3, "three plugin.faulted events")
    assert {e["data"]["plugin"] for e in faulted()} == {"flaky"}
    assert bad.count("on_event") == 3  # nothing more reached the disabled one
    snap = manager.status("flaky")
    assert snap.state is PluginState.DISABLED and snap.errors == {"on_event": 3}
    assert snap.faults == {"trap": 3} and snap.disables == 1
    assert snap.retry_in is not None and 0 < snap.retry_in <= 60
    assert manager.health("flaky").status == "failing"
    assert manager.state("steady") is PluginState.ACTIVE


def test_a_success_resets_the_fault_streak(host: Host) -> None:
    d = subscriber(host.root, "wobbly", {"faults": {"on_event": {"kind": "timeout", "times": 2}}})
    host.grant(d, "events.subscribe")
    manager = host.started()
    inst = host.instance("wobbly")
    for n in range(6):
        publish(manager, [job_event(n)])
        wait_for(lambda n=n: inst.count("on_event") == n + 1, "a call")
        if n == 2:
            inst.fail("on_event", "timeout", times=2)
    assert manager.state("wobbly") is PluginState.ACTIVE
    assert manager.status("wobbly").errors == {"on_event": 4}


def test_a_fatal_fault_disables_at_once(host: Host) -> None:
    d = subscriber(host.root, "hungry", {"faults": {"on_event": {"kind": "memory"}}})
    host.grant(d, "events.subscribe")
    manager = host.started()
    publish(manager, [job_event(1)])
    wait_for(lambda: manager.state("hungry") is PluginState.DISABLED, "disabled")
    assert manager.reason("hungry").startswith("fatal fault: ")
    assert "memory" in manager.reason("hungry")
    assert manager.bus.subscriptions("hungry") == []


def test_a_disabled_plugin_is_reloaded_after_its_backoff_which_doubles(host: Host) -> None:
    d = subscriber(host.root, "phoenix", {"faults": {"on_event": {"kind": "crash"}}})
    host.grant(d, "events.subscribe")
    manager = host.started(fault_policy=FaultPolicy(backoff_initial=0.2, backoff_max=10))
    publish(manager, [job_event(1)])
    wait_for(lambda: manager.state("phoenix") is PluginState.DISABLED, "disabled")
    assert "retrying in 0.2s" in manager.reason("phoenix")
    wait_for(lambda: len(host.runtime.all_of("phoenix")) == 2, "the automatic reload")
    wait_for(lambda: manager.state("phoenix") is PluginState.ACTIVE, "active again")
    snap = manager.status("phoenix")
    assert snap.loads == 2 and snap.disables == 1
    publish(manager, [job_event(2)])  # the new instance crashes too: twice the wait
    wait_for(lambda: manager.state("phoenix") is PluginState.DISABLED, "disabled again")
    assert "retrying in 0.4s" in manager.reason("phoenix")


def test_an_invalid_render_is_a_fault(host: Host) -> None:
    write_plugin(host.root, "scribble", {"render": [{"type": "text"}, "not an element"]})
    manager = host.started()
    result = manager.render("scribble", 20, 5)
    assert result.elements == [] and result.error is not None
    assert "invalid_output" in result.error and "element 1" in result.error
    assert manager.status("scribble").consecutive_faults == 1
    with pytest.raises(ValueError, match="3 elements, over 2"):
        cap_elements([{}, {}, {}], max_elements=2)


# -- revocation --------------------------------------------------------------------------------


def test_revoking_works_at_once_for_a_running_plugin(host: Host) -> None:
    call = {"function": "get_queue_stats", "args": {"queue": None}}
    d = subscriber(host.root, "watcher", {"calls": {"on_event": [call]}},
                   permissions=["admin.stats.read"])  # fmt: skip
    host.grant(d, "events.subscribe", "admin.stats.read")
    manager = host.started()
    inst = host.instance("watcher")
    publish(manager, [job_event(1)])
    wait_for(lambda: len(inst.host_results) == 1, "a host call")
    assert "queues" in inst.host_results[0][2]

    manager.revoke("watcher", ["admin.stats.read"])
    publish(manager, [job_event(2)])
    wait_for(lambda: len(inst.host_results) == 2, "a second host call")
    assert inst.host_results[1][2]["error"]["code"] == "permission_denied"

    # Revoked by another process (the CLI): noticed when the grants file is re-read.
    GrantStore(grants_path(host.settings)).revoke("watcher", ["events.subscribe"])
    manager.grants.reload()
    publish(manager, [job_event(n) for n in range(3, 13)])
    wait_for(lambda: manager.bus.subscriptions("watcher") == [], "subscriptions dropped")
    wait_for(lambda: manager.bus.pending("watcher") == 0, "the inbox emptied")
    assert len(inst.events) == 2
    assert manager.state("watcher") is PluginState.ACTIVE
    manager.audit.flush()
    dropped = [r for r in read(manager.audit.path, plugin="watcher") if "deliver" in r.operation]
    assert dropped and not dropped[0].allowed


def test_a_subscription_is_cut_to_the_granted_queues(host: Host) -> None:
    d = subscriber(host.root, "tenant", events=[{"type": "job.failed", "queues": ["t.*", "x"]}])
    host.grant(d, "events.subscribe", queues=("t.*",))
    manager = host.started()
    subs = {s.type_pattern: s.queues for s in manager.bus.subscriptions("tenant")}
    assert subs == {"job.completed": ("t.*",), "job.failed": ("t.*",)}


# -- atomic replacement ------------------------------------------------------------------------


def test_swap_hands_over_state_and_delivers_every_event_exactly_once(
    host: Host, tmp_path: Path
) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    old = host.instance("counter")
    v2 = subscriber(tmp_path / "v2", "counter", {"block": {"import_state": "swap"}},
                    version="1.1.0")  # fmt: skip
    host.grant(v2, "events.subscribe")  # approved ahead (unsigned changes are asked about)
    sent: list[str] = []

    def send(n: int) -> None:
        events = [job_event(len(sent) + i) for i in range(n)]
        sent.extend(e.id for e in events)
        publish(manager, events)

    send(100)
    results: list[Any] = []
    bundle = open_bundle(v2)
    swapper = threading.Thread(target=lambda: results.append(manager.replace("counter", bundle)))
    swapper.start()
    assert host.runtime.arrived("swap").wait(WAIT)  # paused mid-swap, holding the plugin
    send(100)  # these wait in the inbox
    host.runtime.gate("swap").set()
    swapper.join(WAIT)
    [result] = results
    assert result.ok, result.reason
    assert (result.old_version, result.new_version) == ("1.0.0", "1.1.0")
    assert result.state_handed_over
    new = host.instance("counter")
    assert new is not old and old.closed
    assert [h for h, _ in old.calls][-3:] == ["export_state", "deactivate", "cleanup"]
    assert new.imported == {"from_version": "1.0.0", "state": {"events": len(old.events)}}
    send(100)

    def received() -> list[str]:
        return old.event_ids() + new.event_ids()

    wait_for(lambda: len(received()) >= len(sent), "every event")
    counts = Counter(received())
    assert set(counts) == set(sent) and set(counts.values()) == {1}
    assert len(new.events) >= 100  # at least what was sent after the swap
    assert manager.state("counter") is PluginState.ACTIVE
    assert manager.status("counter").version == "1.1.0"
    assert len(manager.bus.subscriptions("counter")) == 1


def test_a_failed_replacement_keeps_the_old_instance_running(host: Host, tmp_path: Path) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    old = host.instance("counter")
    bad = subscriber(tmp_path / "bad", "counter", {"initialize": {"error": "broken config"}},
                     version="2.0.0")  # fmt: skip
    host.grant(bad, "events.subscribe")
    result = manager.replace("counter", open_bundle(bad))
    assert not result.ok and "broken config" in result.reason
    assert host.instance("counter").closed and host.instance("counter") is not old
    assert manager.state("counter") is PluginState.ACTIVE
    assert manager.status("counter").version == "1.0.0"
    assert not old.closed
    publish(manager, [job_event(1)])
    wait_for(lambda: len(old.events) == 1, "the old instance still serving")

    crashing = subscriber(tmp_path / "crash", "counter",
                          {"faults": {"activate": {"kind": "crash"}}}, version="2.0.1")  # fmt: skip
    host.grant(crashing, "events.subscribe")
    result = manager.replace("counter", open_bundle(crashing))
    assert not result.ok and "activate faulted" in result.reason
    publish(manager, [job_event(2)])
    wait_for(lambda: len(old.events) == 2, "the old instance still serving")
    assert manager.bus.subscriptions("counter")[0].type_pattern == "job.completed"


def test_a_new_version_asking_for_more_waits_for_approval(host: Host, tmp_path: Path) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    greedy = subscriber(tmp_path / "v2", "counter", version="2.0.0",
                        permissions=["admin.stats.read"])  # fmt: skip
    result = manager.replace("counter", open_bundle(greedy))
    assert not result.ok and "awaits approval of admin.stats.read" in result.reason
    [pending] = manager.pending_approvals()
    assert pending.update and pending.version == "2.0.0"
    assert manager.approve("counter") is PluginState.ACTIVE
    assert manager.status("counter").version == "2.0.0"
    assert manager.pending_approvals() == []


def test_denying_an_update_keeps_the_running_version_and_its_grants(
    host: Host, tmp_path: Path
) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    greedy = subscriber(tmp_path / "v2", "counter", version="2.0.0",
                        permissions=["admin.queue.purge"])  # fmt: skip
    assert not manager.replace("counter", open_bundle(greedy)).ok
    assert manager.deny("counter") is PluginState.ACTIVE
    assert manager.pending_approvals() == []
    denied = {p for d in manager.grants.denials_for("counter") for p in d.permissions}
    assert denied == {"admin.queue.purge"}
    publish(manager, [job_event(1)])
    wait_for(lambda: len(host.instance("counter").events) == 1, "the running version serving")
    assert manager.status("counter").version == "1.0.0"


def test_reload_replaces_a_running_plugin_from_its_bundle_on_disk(host: Host) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    first = host.instance("counter")
    write_plugin(host.root, "counter", {"render": [{"type": "text", "text": "v2"}]},
                 version="1.0.1", permissions=["events.subscribe"],
                 events=[{"type": "job.completed"}])  # fmt: skip
    host.grant(host.root / "counter", "events.subscribe")
    result = manager.reload("counter")
    assert result.ok and result.new_version == "1.0.1" and first.closed
    assert manager.render("counter", 10, 3).elements == [{"type": "text", "text": "v2"}]
    manager.disable("counter")
    assert manager.reload("counter").ok  # a stopped plugin is enabled
    assert manager.state("counter") is PluginState.ACTIVE


# -- timers, config, dependencies --------------------------------------------------------------


def test_timers_reach_on_timer(host: Host) -> None:
    timer = {"function": "set_timer", "args": {"id": "tick", "interval_ms": 50}}
    write_plugin(host.root, "clock", {"calls": {"activate": [timer]}})
    manager = host.started()
    inst = host.instance("clock")
    wait_for(lambda: len(inst.timers) >= 3, "three firings")
    assert {t["id"] for t in inst.timers} == {"tick"}
    assert "clock" in manager.dirty_panels()
    manager.disable("clock")
    assert manager.host_api.timers.count("clock") == 0


def test_set_config_persists_across_managers(host: Host) -> None:
    write_plugin(host.root, "tuned", {"refuse_config_key": "bad"},
                 config={"threshold": 5, "unit": "s"})  # fmt: skip
    manager = host.started()
    assert manager.get_config("tuned") == {"threshold": 5, "unit": "s"}
    manager.set_config("tuned", {"threshold": 9})
    assert host.instance("tuned").config == {"threshold": 9, "unit": "s"}
    assert manager.get_config("tuned") == {"threshold": 9, "unit": "s"}
    with pytest.raises(PluginConfigError, match="bad is not allowed"):
        manager.set_config("tuned", {"bad": 1})
    with pytest.raises(PluginConfigError, match="expected an object"):
        manager.set_config("tuned", [1, 2])  # type: ignore[arg-type]
    manager.stop()

    again = host.started()
    assert host.instance("tuned").config == {"threshold": 9, "unit": "s"}
    again.disable("tuned")
    assert again.get_config("tuned") == {"threshold": 9, "unit": "s"}  # from the state dir


def test_a_dependency_call_runs_with_the_intersection_of_grants(host: Host) -> None:
    functions = {
        "stats": [{"function": "get_queue_stats", "args": {"queue": None}}],
        "system": [{"function": "get_system_stats", "args": {}}],
    }
    callee = write_plugin(host.root, "helper", {"functions": functions},
                          permissions=["admin.stats.read", "admin.system.stats"])  # fmt: skip
    calls = [
        {"function": "call_dependency", "args": {"plugin": "helper", "function": "stats"}},
        {"function": "call_dependency", "args": {"plugin": "helper", "function": "system"}},
    ]
    caller = subscriber(host.root, "caller", {"calls": {"on_event": calls}},
                        permissions=["admin.stats.read"],
                        dependencies=[{"name": "helper"}])  # fmt: skip
    host.grant(callee, "admin.stats.read", "admin.system.stats")
    host.grant(caller, "events.subscribe", "admin.stats.read")
    manager = host.started()
    publish(manager, [job_event(1)])
    inst = host.instance("caller")
    wait_for(lambda: len(inst.host_results) == 2, "two dependency calls")
    stats, system = (r[2] for r in inst.host_results)
    assert "queues" in stats
    assert system["error"]["code"] == "permission_denied"
    assert system["error"]["permission"] == "admin.system.stats"
    assert "caller" in system["error"]["message"]  # the caller is the one lacking it
    helper = host.instance("helper")
    assert [c[1]["caller"] for c in helper.calls if c[0] == "on_call"] == ["caller", "caller"]

    manager.audit.flush()
    chained = [
        (r.operation, r.allowed)
        for r in read(manager.audit.path)
        if r.chain == ("caller", "helper")
    ]
    assert chained == [
        ("dependency:stats", True),
        ("admin.stats.read:get_queue_stats", True),
        ("dependency:system", True),
        ("admin.system.stats:get_system_stats", False),
    ]
    assert manager.status("helper").calls == {"initialize": 1, "activate": 1, "on_call": 2}


# -- metrics and shutdown ----------------------------------------------------------------------


def test_metrics_snapshot_and_prometheus(host: Host) -> None:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    inst = host.instance("counter")
    publish(manager, [job_event(n) for n in range(5)])
    wait_for(lambda: len(inst.events) == 5, "5 events")
    manager.render("counter", 10, 5)
    snap = manager.status("counter")
    assert snap.state is PluginState.ACTIVE and snap.version == "1.0.0"
    assert snap.runtime == "starlark"
    assert snap.calls["render"] == 1 and snap.calls_total >= 4 and snap.errors_total == 0
    assert snap.events_delivered == 5 and snap.events_dropped == 0
    assert snap.latency_count == snap.calls_total and snap.latency_p99 >= snap.latency_p50 >= 0
    assert snap.cpu_seconds > 0 and snap.memory_bytes > 4096
    assert snap.to_dict()["state"] == "active"
    assert [s.name for s in manager.snapshot()] == ["counter"]

    registry = CollectorRegistry()
    registry.register(manager.collector())
    text = generate_latest(registry).decode()
    assert 'rwq_plugin_calls_total{hook="render",plugin="counter"} 1.0' in text
    assert "rwq_plugin_errors_total" in text
    assert 'rwq_plugin_latency_seconds{plugin="counter",quantile="0.99"}' in text
    assert 'rwq_plugin_latency_seconds_count{plugin="counter"}' in text
    assert 'rwq_plugin_cpu_seconds{plugin="counter"}' in text
    assert 'rwq_plugin_memory_bytes{plugin="counter"}' in text
    assert 'rwq_plugin_dropped_events_total{plugin="counter",reason="overflow"} 0.0' in text
    assert 'rwq_plugin_state{plugin="counter",state="active"} 1.0' in text
    assert 'rwq_plugin_state{plugin="counter",state="disabled"} 0.0' in text


def test_stop_cleans_up_every_plugin_and_leaves_no_threads(host: Host) -> None:
    def ours() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("rwq-")}

    before = ours()
    d = subscriber(host.root, "counter", {"calls": {"activate": [
        {"function": "set_timer", "args": {"id": "t", "interval_ms": 50}}]}})  # fmt: skip
    host.grant(d, "events.subscribe")
    manager = host.started(feeds=True)
    inst = host.instance("counter")
    wait_for(lambda: len(inst.timers) >= 1, "a timer")
    assert {t.name for t in ours() - before} >= {
        "rwq-plugin-supervisor",
        "rwq-plugin-dispatch-0",
        "rwq-stream-feed",
        "rwq-audit-writer",
    }
    manager.stop()
    manager.stop()  # idempotent
    assert [h for h, _ in inst.calls][-2:] == ["deactivate", "cleanup"] and inst.closed
    assert manager.state("counter") is PluginState.UNLOADED
    assert host.runtime.closed
    leftover = {t for t in ours() - before if t.is_alive()}
    assert not leftover, sorted(t.name for t in leftover)


def test_the_state_machine_refuses_illegal_moves() -> None:
    check_transition("p", PluginState.ACTIVE, PluginState.DISABLED)
    with pytest.raises(IllegalTransition, match="from active to loading"):
        check_transition("p", PluginState.ACTIVE, PluginState.LOADING)
    assert FaultPolicy(backoff_initial=5, backoff_max=300).backoff(10) == 300


def test_a_plugin_over_its_cpu_budget_gets_its_events_coalesced_later(host: Host) -> None:
    """Over max_cpu (the runtime says `throttled`): no on_event calls while over; once under
    budget every held job event arrives, in order."""
    d = subscriber(host.root, "busy")
    host.grant(d, "events.subscribe")
    manager = host.started()
    inst = host.instance("busy")
    changed: list[str] = []
    manager.add_change_listener(changed.append)
    inst.throttled = True  # type: ignore[attr-defined]
    inst.cpu_share = (14.2, 10.0)  # type: ignore[attr-defined]
    publish(manager, [job_event(n) for n in range(5)])
    wait_for(lambda: manager.status("busy").cpu_throttled, "the plugin marked throttled")
    assert inst.events == []
    assert "busy" in changed  # its panel is drawn again: it says it is throttled, in figures
    result = manager.render("busy", 40, 10)
    budget = manager.manifest("busy").resources.max_cpu  # type: ignore[union-attr]
    why = f"14.2% CPU over 10s > {budget:g}% budget (resources.max_cpu)"
    assert result.throttled and result.throttle_note == why
    assert manager.status("busy").throttle_note == why
    changed.clear()
    inst.throttled = False  # type: ignore[attr-defined]
    wait_for(lambda: len(inst.events) == 5, "the held events")
    assert [e["data"]["job_id"] for e in inst.events] == [f"j{n}" for n in range(5)]
    assert not manager.status("busy").cpu_throttled
    assert "busy" in changed
    assert not manager.render("busy", 40, 10).throttled


# -- dependants of a replaced plugin -----------------------------------------------------------


def test_a_new_version_outside_a_dependants_range_is_refused(host: Host, tmp_path: Path) -> None:
    """The dependant declares ``helper ^1``: 2.0.0 is refused with a reason naming it, 1.1.0
    takes over, and the dependant's ``call_dependency`` reaches the new instance."""
    call = {"function": "call_dependency", "args": {"plugin": "helper", "function": "ping"}}
    write_plugin(host.root, "helper", {"functions": {"ping": []}})
    caller = subscriber(host.root, "caller", {"calls": {"on_event": [call]}},
                        dependencies=[{"name": "helper", "version": "^1.0.0"}])  # fmt: skip
    host.grant(caller, "events.subscribe")
    manager = host.started()
    first = host.instance("helper")

    breaking = write_plugin(tmp_path / "v2", "helper", {"functions": {"ping": []}}, version="2.0.0")
    result = manager.replace("helper", open_bundle(breaking))
    assert not result.ok
    assert "caller 1.0.0 requires helper ^1.0.0" in result.reason
    with pytest.raises(LifecycleError, match="breaks its dependants: caller"):
        manager.prepare("helper", open_bundle(breaking))
    assert manager.status("helper").version == "1.0.0" and not first.closed
    assert len(host.runtime.all_of("helper")) == 1  # refused before loading anything

    compatible = write_plugin(tmp_path / "v1", "helper", {"functions": {"ping": []}},
                              version="1.1.0")  # fmt: skip
    assert manager.replace("helper", open_bundle(compatible)).ok
    new = host.instance("helper")
    assert new is not first and first.closed
    publish(manager, [job_event(1)])
    wait_for(lambda: new.count("on_call") == 1, "the dependant's call reaching 1.1.0")
    [(_, _, answer)] = host.instance("caller").host_results
    assert not (isinstance(answer, dict) and "error" in answer), answer
    assert manager.state("caller") is PluginState.ACTIVE


def test_an_approved_update_outside_a_dependants_range_is_refused(
    host: Host, tmp_path: Path
) -> None:
    write_plugin(host.root, "helper")
    write_plugin(host.root, "caller", dependencies=[{"name": "helper", "version": "<2.0.0"}])
    manager = host.started()
    manager.disable("caller")  # not running: the update breaks no one yet
    greedy = write_plugin(tmp_path / "v2", "helper", version="2.0.0",
                          permissions=["admin.stats.read"])  # fmt: skip
    assert "awaits approval" in manager.replace("helper", open_bundle(greedy)).reason
    assert manager.enable("caller") is PluginState.ACTIVE  # ...until the dependant is back
    assert manager.approve("helper") is PluginState.ACTIVE
    assert manager.status("helper").version == "1.0.0"
    assert manager.state("caller") is PluginState.ACTIVE


def test_swap_listeners_hear_every_swap(host: Host, tmp_path: Path) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    heard: list[tuple[str, str, str]] = []
    manager.add_swap_listener(lambda r, b: heard.append((r.plugin, r.new_version, b.sha256)))
    write_plugin(host.root, "p", version="1.0.1")
    assert manager.reload("p").ok
    v2 = open_bundle(write_plugin(tmp_path / "v2", "p", version="2.0.0"))
    assert manager.replace("p", v2).ok
    bad = write_plugin(tmp_path / "bad", "p", {"load_fault": "x"}, version="3.0.0")
    assert not manager.replace("p", open_bundle(bad)).ok
    assert [(n, v) for n, v, _ in heard] == [("p", "1.0.1"), ("p", "2.0.0")]
    assert heard[1][2] == v2.sha256


# -- panels on screen: rendered with the events that changed them --------------------------------


def renders_of(inst: FakeInstance) -> list[Any]:
    return [arg for hook, arg in inst.calls if hook == "render"]


def on_screen_counter(host: Host) -> tuple[PluginManager, FakeInstance]:
    d = subscriber(host.root, "counter")
    host.grant(d, "events.subscribe")
    manager = host.started()
    manager.set_view("counter", (40, 10, False))
    return manager, host.instance("counter")


def test_a_panel_on_screen_is_rendered_by_the_delivery_that_changed_it(host: Host) -> None:
    manager, inst = on_screen_counter(host)
    publish(manager, [job_event(0)])
    wait_for(lambda: len(renders_of(inst)) == 1, "the render made by the delivery")
    assert renders_of(inst) == [{"width": 40, "height": 10, "focused": False}]
    assert "counter" in manager.dirty_panels()

    result = manager.render("counter", 40, 10, False)  # ready: the plugin is not asked again
    assert result.elements == [{"type": "text", "text": "1 events"}] and not result.stale
    assert len(renders_of(inst)) == 1
    assert "counter" not in manager.dirty_panels()
    manager.render("counter", 40, 10, False)  # taken once: asked this time
    assert len(renders_of(inst)) == 2
    manager.render("counter", 60, 10, True)  # another view: asked
    assert renders_of(inst)[-1] == {"width": 60, "height": 10, "focused": True}


def test_a_change_after_the_early_render_makes_it_stale(host: Host) -> None:
    manager, inst = on_screen_counter(host)
    publish(manager, [job_event(0)])
    wait_for(lambda: len(renders_of(inst)) == 1, "the render made by the delivery")
    assert manager.on_input("counter", {"kind": "key", "key": "r"})  # changes the panel
    manager.render("counter", 40, 10, False)
    assert len(renders_of(inst)) == 2  # the early render was not shown


def test_changes_faster_than_the_early_renders_are_rendered_on_demand(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rwq.plugins.engine.panels.PRERENDER_EVERY", 3600.0)
    manager, inst = on_screen_counter(host)
    publish(manager, [job_event(0)])
    wait_for(lambda: len(inst.events) == 1 and len(renders_of(inst)) == 1, "the early render")
    publish(manager, [job_event(1)])  # too soon for another: the one made is out of date
    wait_for(lambda: len(inst.events) == 2, "the second event")
    result = manager.render("counter", 40, 10, False)
    assert result.elements == [{"type": "text", "text": "2 events"}]
    assert len(renders_of(inst)) == 2


def test_a_panel_off_screen_is_not_rendered_by_deliveries(host: Host) -> None:
    manager, inst = on_screen_counter(host)
    manager.set_view("counter", None)
    publish(manager, [job_event(0)])
    wait_for(lambda: len(inst.events) == 1, "the event")
    time.sleep(0.05)  # the delivery has returned: a render would have been made by now
    assert renders_of(inst) == []


def test_an_early_render_of_a_replaced_instance_is_not_shown(host: Host) -> None:
    manager, old = on_screen_counter(host)
    publish(manager, [job_event(0)])
    wait_for(lambda: len(renders_of(old)) == 1, "the render made by the delivery")
    manager.reload("counter")
    new = host.instance("counter")
    assert new is not old
    manager.render("counter", 40, 10, False)
    assert len(renders_of(new)) == 1
