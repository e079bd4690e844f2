"""What ``rwq plugin new`` writes, running in a real plugin host on real dead letters, in each
language: the Requeue button is refused until its permission is asked for, then requeues the
queues it was granted only; a rebuilt version keeps the counts (export_state/import_state)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.host.check import read_events
from rwq.host.local import LocalPluginHost
from rwq.plugins.engine.lifecycle import PluginState
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.producer import Producer
from rwq.toolkit.build import build_plugin
from rwq.toolkit.scaffold import LANGUAGES, new_plugin

REPO = Path(__file__).parents[2]
NODE_MODULES = REPO / "sdk" / "assemblyscript" / "node_modules"
NAME = "failures"
SOURCE = {"starlark": "main.star", "c": "main.c", "assemblyscript": "main.ts"}
COMMENTED = '  # - name: admin.queue.requeue\n  #   scope: {queues: ["emails"]}\n'
ASKED = '  - name: admin.queue.requeue\n    scope: {queues: ["billing"]}\n'
DENIED = "ask for admin.queue.requeue in manifest.yaml"
WAIT = 30.0


def toolchain(language: str) -> None:
    if language == "c" and (shutil.which("clang") is None or shutil.which("wasm-ld") is None):
        pytest.fail("clang and wasm-ld build C plugins: run `make toolchains`")
    if language == "assemblyscript" and (
        shutil.which("node") is None or not (NODE_MODULES / "assemblyscript").is_dir()
    ):
        pytest.fail("the AssemblyScript compiler is needed: run `make toolchains`")


def build(plugin: Path) -> None:
    result = build_plugin(plugin)
    assert result.ok, result.output


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The plugin ``rwq plugin new`` writes in a language, built once for the module."""
    made: dict[str, Path] = {}

    def template(language: str) -> Path:
        if language not in made:
            toolchain(language)
            plugin = new_plugin(NAME, language, tmp_path_factory.mktemp(language)).path
            if language == "assemblyscript":  # what `npm ci` in the plugin would install
                (plugin / "node_modules").symlink_to(NODE_MODULES)
            build(plugin)
            made[language] = plugin
        return made[language]

    return template


@pytest.fixture
def plugin(
    templates: Callable[[str], Path], tmp_path: Path, request: pytest.FixtureRequest
) -> Path:
    """A copy of the built template in ``language`` (the test's parameter)."""
    copy = tmp_path / "plugins" / NAME
    shutil.copytree(templates(request.getfixturevalue("language")), copy, symlinks=True)
    return copy


@pytest.fixture
def start(
    settings: Settings, redis_client: redis.Redis
) -> Iterator[Callable[[Path], LocalPluginHost]]:
    """A started host of the plugin, granted what each version asks for (as ``rwq plugin
    dev`` grants it), no event feeds, no file watching; stopped at the end."""
    hosts: list[LocalPluginHost] = []

    def run(plugin: Path) -> LocalPluginHost:
        options = HostOptions(
            watch=False, feeds=False, with_installed=False, screen=True,
            granted_as_asked=frozenset({NAME}),
        )  # fmt: skip
        host = build_host(settings.replace(plugin_dirs=str(plugin)), redis_client, options)
        hosts.append(host)
        host.start()
        assert host.manager.state(NAME) is PluginState.ACTIVE, host.manager.reason(NAME)
        return host

    yield run
    for host in hosts:
        host.stop()


def panel(host: LocalPluginHost) -> str:
    result = host.manager.render(NAME, 76, 40)
    assert result.error is None, result.error
    return str(result.elements)


def wait_for(host: LocalPluginHost, text: str) -> str:
    deadline = time.monotonic() + WAIT
    while text not in (shown := panel(host)):
        if time.monotonic() > deadline:
            raise AssertionError(f"the panel never showed {text!r}: {shown}")
        time.sleep(0.02)
    return shown


def press(host: LocalPluginHost, button: str) -> None:
    assert host.manager.on_input(NAME, {"kind": "button", "id": button})


def dead_letters(broker: Broker, queue: str, n: int) -> None:
    """``n`` jobs of ``queue`` failed for good."""
    producer = Producer(broker)
    ids = [producer.enqueue(queue, {"n": i}).id for i in range(n)]
    assert sorted(j.id for j in broker.fetch(queue, "w-test", n).jobs) == sorted(ids)
    broker.fail(queue, "w-test", [Failure(i, 1.0, "boom", permanent=True) for i in ids])


def depths(broker: Broker) -> dict[str, tuple[int, int]]:
    return {q.queue: (q.pending, q.dead) for q in Admin(broker).stats().queues}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_requeue_button_is_refused_until_asked_for_then_requeues_its_queues_only(
    language: str,
    plugin: Path,
    start: Callable[[Path], LocalPluginHost],
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    broker = Broker(redis_client, settings)
    dead_letters(broker, "billing", 2)
    dead_letters(broker, "reports", 1)
    host = start(plugin)
    manager = host.manager

    # As generated: the permission is commented out, so the button is refused, and says so.
    press(host, "requeue")
    wait_for(host, f"denied on billing, reports: {DENIED}")
    assert depths(broker) == {"billing": (0, 2), "reports": (0, 1)}
    assert "admin.queue.requeue" not in host.permissions(NAME).granted

    # The tutorial's step: uncommented, scoped to one queue, taken in by a reload.
    manifest = plugin / "manifest.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert COMMENTED in text
    manifest.write_text(text.replace(COMMENTED, ASKED), encoding="utf-8")
    swapped = manager.reload(NAME)
    assert swapped.ok, swapped.reason
    assert "admin.queue.requeue" in host.permissions(NAME).granted

    press(host, "requeue")
    shown = wait_for(host, "requeued 2 dead letters from billing")
    assert f"denied on reports: {DENIED}" in shown
    assert depths(broker) == {"billing": (2, 0), "reports": (0, 1)}  # really moved back

    press(host, "requeue")
    shown = wait_for(host, f"denied on reports: {DENIED}")
    assert "requeued" not in shown  # billing has none left to requeue
    press(host, "reset")
    assert DENIED not in panel(host)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_rebuilt_version_keeps_the_counts(
    language: str, plugin: Path, start: Callable[[Path], LocalPluginHost]
) -> None:
    host = start(plugin)
    manager = host.manager
    manager.bus.publish_many(read_events(plugin / "fixtures" / "events.jsonl"))
    wait_for(host, "3 queues, 51 completed, 27 failed (34.6%)")
    before = panel(host)
    assert "CardDeclined: insufficient funds" in before

    source = plugin / SOURCE[language]
    text = source.read_text(encoding="utf-8")
    assert text.count('"failure %"') == 1
    source.write_text(text.replace('"failure %"', '"fail rate"'), encoding="utf-8")
    if language != "starlark":
        build(plugin)
    swapped = manager.reload(NAME)
    assert swapped.ok and swapped.state_handed_over, swapped

    after = wait_for(host, "fail rate")
    assert "3 queues, 51 completed, 27 failed (34.6%)" in after
    # the same rows: the queues' counts and the latest failures
    assert after.replace("fail rate", "failure %") == before
