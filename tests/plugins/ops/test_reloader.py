"""Hot reload end to end: bundles edited on disk under a watching :class:`HotReloader`, the
fake runtime, a real manager and Valkey. Waits are generous upper bounds, never timings."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from manager_host import (
    WAIT,
    Host,
    job_event,
    publish,
    subscriber,
    wait_for,
    write_plugin,
)

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import LifecycleError, PluginManager
from rwq.plugins.ops.reloader import HotReloader
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.install import Installation
from rwq.plugins.package.pack import pack
from rwq.plugins.package.paths import PluginPaths


@pytest.fixture
def reloaders() -> Iterator[list[HotReloader]]:
    made: list[HotReloader] = []
    yield made
    for reloader in made:
        reloader.stop()


def watching(
    manager: PluginManager, made: list[HotReloader], probation_s: float = 0.5
) -> HotReloader:
    reloader = HotReloader(manager, probation_s=probation_s)
    made.append(reloader)
    reloader.start()
    return reloader


def version_of(manager: PluginManager, name: str) -> str:
    return manager.status(name).version


def test_an_edited_plugin_is_reloaded_and_serves(host: Host, reloaders: list[HotReloader]) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    write_plugin(host.root, "p", version="1.1.0")
    wait_for(lambda: version_of(manager, "p") == "1.1.0", "the new version")
    assert manager.state("p") is PluginState.ACTIVE
    assert manager.render("p", 80, 24).error is None
    assert [a.outcome for a in reloader.history("p")] == ["reloaded"]
    assert host.runtime.all_of("p")[0].closed


def test_a_broken_manifest_keeps_the_old_version_and_says_why(
    host: Host, reloaders: list[HotReloader]
) -> None:
    d = write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    (d / "manifest.yaml").write_text("name: p\nversion: [not, a, version]\n", encoding="utf-8")
    wait_for(lambda: bool(reloader.history("p")), "the failed attempt")
    attempt = reloader.history("p")[-1]
    assert attempt.outcome == "invalid"
    assert attempt.reason
    assert manager.state("p") is PluginState.ACTIVE
    assert version_of(manager, "p") == "1.0.0"
    assert not host.instance("p").closed


def test_a_load_fault_keeps_the_old_version(host: Host, reloaders: list[HotReloader]) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    write_plugin(host.root, "p", {"load_fault": "nope"}, version="1.1.0")
    wait_for(lambda: bool(reloader.history("p")), "the failed attempt")
    attempt = reloader.history("p")[-1]
    assert (attempt.outcome, attempt.version) == ("failed", "1.1.0")
    assert "nope" in attempt.reason
    assert version_of(manager, "p") == "1.0.0"


def test_a_version_faulting_in_probation_is_rolled_back(
    host: Host, reloaders: list[HotReloader], tmp_path: Path
) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    reloader = watching(manager, reloaders, probation_s=30.0)
    faulty: dict[str, Any] = {"faults": {"on_event": {"kind": "trap"}}}
    # Granted before it is saved: a watcher that sees the save first would ask for approval.
    host.grant(subscriber(tmp_path / "staged", "p", faulty, version="1.1.0"), "events.subscribe")
    subscriber(host.root, "p", faulty, version="1.1.0")
    wait_for(lambda: version_of(manager, "p") == "1.1.0", "the new version")
    publish(manager, [job_event(1)])
    wait_for(lambda: any(a.outcome == "rolled back" for a in reloader.history("p")), "the rollback")
    wait_for(lambda: manager.state("p") is PluginState.ACTIVE, "the old version running")
    assert version_of(manager, "p") == "1.0.0"
    assert "faulted" in reloader.history("p")[-1].reason
    publish(manager, [job_event(2)])
    wait_for(lambda: host.instance("p").events != [], "the restored version serving")


def test_quick_saves_coalesce_into_one_reload(host: Host, reloaders: list[HotReloader]) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    # A quiet time longer than a loaded machine takes between two saves (5 ms by default).
    reloader = HotReloader(manager, probation_s=0.5, debounce_ms=3000, step_ms=500)
    reloaders.append(reloader)
    reloader.start()
    loads = len(host.runtime.all_of("p"))
    for minor in (1, 2, 3):
        write_plugin(host.root, "p", version=f"1.{minor}.0")
    wait_for(lambda: version_of(manager, "p") == "1.3.0", "the last version")
    assert len(reloader.history("p")) == 1
    assert len(host.runtime.all_of("p")) == loads + 1


def test_more_permissions_wait_for_approval(host: Host, reloaders: list[HotReloader]) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    write_plugin(host.root, "p", version="1.1.0", permissions=["storage.read"])
    wait_for(lambda: bool(reloader.history("p")), "the attempt")
    assert reloader.history("p")[-1].outcome == "awaiting approval"
    assert [p.version for p in manager.pending_approvals() if p.update] == ["1.1.0"]
    assert version_of(manager, "p") == "1.0.0"


def test_events_during_a_reload_are_delivered_exactly_once(
    host: Host, reloaders: list[HotReloader], tmp_path: Path
) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    watching(manager, reloaders)
    stop = threading.Event()
    sent: list[str] = []

    def produce() -> None:
        n = 0
        while not stop.is_set():
            event = job_event(n)
            publish(manager, [event])
            sent.append(event.id)
            n += 1
            stop.wait(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: len(sent) > 50, "some events")
        host.grant(subscriber(tmp_path / "staged", "p", version="1.1.0"), "events.subscribe")
        subscriber(host.root, "p", version="1.1.0")  # saved once granted, as above
        wait_for(lambda: version_of(manager, "p") == "1.1.0", "the new version")
        wait_for(lambda: len(host.instance("p").events) > 50, "events to the new version")
    finally:
        stop.set()
        producer.join()

    def received() -> Counter[str]:
        return Counter(i for inst in host.runtime.all_of("p") for i in inst.event_ids())

    wait_for(lambda: set(received()) >= set(sent), "every event delivered")
    assert set(received()) == set(sent)
    assert max(received().values()) == 1
    assert len(host.runtime.all_of("p")) == 2


# -- probation for every swap, requests, dependants ---------------------------------------------


def test_manager_reload_is_on_probation_and_rolled_back(
    host: Host, reloaders: list[HotReloader]
) -> None:
    """No watching: a swap made by ``manager.reload`` is still put on probation."""
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    reloader = HotReloader(manager, probation_s=30.0, watch=False)
    reloaders.append(reloader)
    reloader.start()
    subscriber(host.root, "p", {"faults": {"on_event": {"kind": "trap"}}}, version="1.1.0")
    host.grant(d, "events.subscribe")
    assert manager.reload("p").ok
    assert reloader.in_probation("p")
    publish(manager, [job_event(1)])
    wait_for(lambda: any(a.outcome == "rolled back" for a in reloader.history("p")), "rollback")
    wait_for(lambda: version_of(manager, "p") == "1.0.0", "the old version back")
    assert "back to 1.0.0" in reloader.history("p")[-1].reason
    publish(manager, [job_event(2)])
    wait_for(lambda: host.instance("p").events != [], "the restored version serving")


def test_an_update_approved_later_is_on_probation(host: Host, reloaders: list[HotReloader]) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    reloader = watching(manager, reloaders, probation_s=30.0)
    subscriber(host.root, "p", {"faults": {"on_event": {"kind": "trap"}}}, version="1.1.0",
               permissions=["storage.read"])  # fmt: skip
    wait_for(lambda: bool(manager.pending_approvals()), "the update awaiting approval")
    assert reloader.history("p")[-1].outcome == "awaiting approval"
    manager.approve("p")
    assert version_of(manager, "p") == "1.1.0"
    assert reloader.in_probation("p")
    publish(manager, [job_event(1)])
    wait_for(lambda: reloader.history("p")[-1].outcome == "rolled back", "the rollback")
    wait_for(lambda: version_of(manager, "p") == "1.0.0", "the old version back")


def test_a_request_reloads_an_unchanged_plugin_and_says_how_it_ended(
    host: Host, reloaders: list[HotReloader]
) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = HotReloader(manager, probation_s=0.2, watch=False)
    reloaders.append(reloader)
    reloader.start()
    first = host.instance("p")
    attempt = reloader.request("p").result(WAIT)
    assert (attempt.plugin, attempt.version, attempt.outcome) == ("p", "1.0.0", "reloaded")
    assert first.closed and host.instance("p") is not first
    settled = reloader.request("p", settle=True).result(WAIT)
    assert settled.outcome == "reloaded" and "passed its 0.2s probation" in settled.reason
    assert not reloader.in_probation("p")

    write_plugin(host.root, "p", {"initialize": {"error": "no config"}}, version="1.1.0")
    failed = reloader.request("p").result(WAIT)
    assert (failed.version, failed.outcome) == ("1.1.0", "failed")
    assert "no config" in failed.reason
    assert version_of(manager, "p") == "1.0.0"
    with pytest.raises(LifecycleError, match="not in a plugin directory"):
        reloader.request("ghost")


def test_a_settled_request_reports_the_rollback(host: Host, reloaders: list[HotReloader]) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    reloader = HotReloader(manager, probation_s=30.0, watch=False)
    reloaders.append(reloader)
    reloader.start()
    subscriber(host.root, "p", {"faults": {"on_event": {"kind": "trap"}}}, version="1.1.0")
    host.grant(d, "events.subscribe")
    answer = reloader.request("p", settle=True)
    wait_for(lambda: version_of(manager, "p") == "1.1.0", "the new version")
    assert not answer.done()  # still on probation
    publish(manager, [job_event(1)])
    attempt = answer.result(WAIT)
    assert (attempt.version, attempt.outcome) == ("1.1.0", "rolled back")
    assert "trap" in attempt.reason and "back to 1.0.0" in attempt.reason


def test_a_save_breaking_a_dependants_range_is_refused(
    host: Host, reloaders: list[HotReloader]
) -> None:
    """``caller`` needs ``helper <2``: a save of helper 2.0.0 fails naming it; 1.5.0 goes in
    and the caller's dependency calls reach it."""
    call = {"function": "call_dependency", "args": {"plugin": "helper", "function": "ping"}}
    write_plugin(host.root, "helper", {"functions": {"ping": []}})
    caller = subscriber(host.root, "caller", {"calls": {"on_event": [call]}},
                        dependencies=[{"name": "helper", "version": "<2.0.0"}])  # fmt: skip
    host.grant(caller, "events.subscribe")
    manager = host.started()
    reloader = watching(manager, reloaders)
    write_plugin(host.root, "helper", {"functions": {"ping": []}}, version="2.0.0")
    wait_for(lambda: bool(reloader.history("helper")), "the attempt")
    attempt = reloader.history("helper")[-1]
    assert (attempt.version, attempt.outcome) == ("2.0.0", "failed")
    assert "caller 1.0.0 requires helper <2.0.0" in attempt.reason
    assert version_of(manager, "helper") == "1.0.0"

    write_plugin(host.root, "helper", {"functions": {"ping": []}}, version="1.5.0")
    wait_for(lambda: version_of(manager, "helper") == "1.5.0", "the compatible version")
    publish(manager, [job_event(1)])
    new = host.instance("helper")
    wait_for(lambda: new.count("on_call") == 1, "the caller's call reaching 1.5.0")
    assert manager.state("caller") is PluginState.ACTIVE


def test_a_candidate_failing_to_load_does_not_count_against_the_running_probation(
    host: Host, reloaders: list[HotReloader]
) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = HotReloader(manager, probation_s=30.0, watch=False)
    reloaders.append(reloader)
    reloader.start()
    write_plugin(host.root, "p", version="1.1.0")
    assert reloader.request("p").result(WAIT).outcome == "reloaded"
    write_plugin(host.root, "p", {"faults": {"initialize": {"kind": "trap"}}}, version="1.2.0")
    for _ in range(2):  # the second answer comes after the first's probation check
        assert reloader.request("p").result(WAIT).outcome == "failed"
    assert version_of(manager, "p") == "1.1.0" and reloader.in_probation("p")
    assert [a.outcome for a in reloader.history("p")] == ["reloaded", "failed"]


def test_a_request_loads_a_stopped_plugin_again_but_a_save_does_not(
    host: Host, reloaders: list[HotReloader]
) -> None:
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    manager.disable("p")
    write_plugin(host.root, "p", version="1.1.0")
    attempt = reloader.request("p").result(WAIT)  # the save's event is this same attempt
    assert (attempt.outcome, attempt.reason) == ("reloaded", "was stopped")
    assert manager.state("p") is PluginState.ACTIVE and version_of(manager, "p") == "1.1.0"
    manager.disable("p")
    write_plugin(host.root, "p", version="1.2.0")
    wait_for(lambda: reloader.history("p")[-1].version == "1.2.0", "the save's attempt")
    assert reloader.history("p")[-1].outcome == "failed"
    assert "not running (disabled)" in reloader.history("p")[-1].reason
    assert manager.state("p") is PluginState.DISABLED


def test_a_new_plugin_directory_is_taken_in_through_approval(
    host: Host, reloaders: list[HotReloader]
) -> None:
    """A running host did not see a plugin added to its directories ("unknown plugin"): it is
    discovered, waits for approval like any other, and runs once approved."""
    write_plugin(host.root, "p")
    manager = host.started()
    reloader = watching(manager, reloaders)
    subscriber(host.root, "newcomer")  # asks for events.subscribe, not granted
    wait_for(lambda: "newcomer" in manager.plugins(), "the new plugin")
    wait_for(lambda: manager.state("newcomer") is PluginState.AWAITING_APPROVAL, "approval")
    assert [p.plugin for p in manager.pending_approvals()] == ["newcomer"]
    assert [a.outcome for a in reloader.history("newcomer")] == ["awaiting approval"]
    manager.approve("newcomer", ["events.subscribe"])
    assert manager.state("newcomer") is PluginState.ACTIVE
    write_plugin(host.root, "quiet")  # asks for nothing: it runs at once
    wait_for(lambda: "quiet" in manager.plugins(), "the second new plugin")
    wait_for(lambda: manager.state("quiet") is PluginState.ACTIVE, "it to run")
    assert reloader.reload("quiet").result(timeout=WAIT).outcome == "reloaded"


def test_a_removed_plugin_is_unloaded_from_the_running_host(
    host: Host, reloaders: list[HotReloader]
) -> None:
    """After `rwq plugin remove` the TUI's panel kept rendering and the manager said active."""
    import shutil

    write_plugin(host.root, "p")
    write_plugin(host.root, "q")
    manager = host.started()
    reloader = watching(manager, reloaders)
    shutil.rmtree(host.root / "q")
    wait_for(lambda: "q" not in manager.plugins(), "the removed plugin unloaded")
    assert host.runtime.all_of("q")[0].closed
    # the attempt is recorded just after the plugin is forgotten
    wait_for(lambda: [a.outcome for a in reloader.history("q")] == ["removed"], "the attempt")
    assert manager.state("p") is PluginState.ACTIVE


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "zip"])
def test_an_install_replacing_a_running_plugin_reloads_it(
    host: Host, reloaders: list[HotReloader], tmp_path: Path, packed: bool
) -> None:
    """`rwq plugin update` stages the new copy under a hidden name, then moves it into place:
    the host took the hidden copy for the plugin, then unloaded the plugin when the copy was
    moved away (and logged a traceback a millisecond while it was on probation)."""
    paths = PluginPaths(host.settings)

    def install(version: str) -> None:
        source = write_plugin(tmp_path / f"src-{version}", "p", version=version)
        bundle_path = pack(source, tmp_path / "dist") if packed else source
        bundle = open_bundle(bundle_path, extract_dir=paths.extracted)
        with Installation(paths) as installation:
            installation.stage(bundle_path, bundle, replace=True)
            time.sleep(0.3)  # the staged copy sits there a while (checks, other bundles)
            installation.commit()

    install("1.0.0")
    manager = host.started()
    assert version_of(manager, "p") == "1.0.0"
    reloader = watching(manager, reloaders)
    install("1.1.0")
    wait_for(lambda: version_of(manager, "p") == "1.1.0", "the installed version serving")
    install("1.2.0")  # while 1.1.0 is on probation
    wait_for(lambda: version_of(manager, "p") == "1.2.0", "the next one serving")
    wait_for(lambda: not reloader.in_probation("p"), "the probation passed")
    assert manager.state("p") is PluginState.ACTIVE
    outcomes = [a.outcome for a in reloader.history("p")]
    assert "removed" not in outcomes and outcomes.count("reloaded") == 2, outcomes
