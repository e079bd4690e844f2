"""Hot reload end to end: bundles edited on disk under a watching :class:`HotReloader`, the
fake runtime, a real manager and Valkey. Waits are generous upper bounds, never timings."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from test_manager import (
    Host,
    job_event,
    publish,
    subscriber,
    wait_for,
    write_plugin,
)

from rwq.plugins.lifecycle import PluginState
from rwq.plugins.manager import PluginManager
from rwq.plugins.reloader import HotReloader


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
    host: Host, reloaders: list[HotReloader]
) -> None:
    d = subscriber(host.root, "p")
    host.grant(d, "events.subscribe")
    manager = host.started()
    reloader = watching(manager, reloaders, probation_s=30.0)
    subscriber(host.root, "p", {"faults": {"on_event": {"kind": "trap"}}}, version="1.1.0")
    host.grant(d, "events.subscribe")
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
    reloader = watching(manager, reloaders)
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
    host: Host, reloaders: list[HotReloader]
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
        subscriber(host.root, "p", version="1.1.0")
        host.grant(d, "events.subscribe")
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
