"""Hostile plugins (one attack each, in ``plugins/<name>/``) and how each must be contained.

Every case runs the plugin through ``rwq plugin check``'s harness against the session's
Valkey and asserts: the host is alive (this process and its Redis answer), host RSS grew less
than 50 MB, the offender is faulted with the right kind in the right hook (or ran ``ok`` with
its refused host call in the audit log). A few representative attacks also run next to a
well-behaved plugin in one :class:`PluginManager`, which must handle every event.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import wasmtime
import yaml

from rwq.config import Settings
from rwq.host.check import CheckReport, check_plugin
from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.runtimes.base import FaultKind, PluginRuntime
from rwq.plugins.runtimes.starlark import StarlarkRuntime
from rwq.plugins.runtimes.wasm import WasmRuntime
from rwq.queue.events import Event

pytestmark = pytest.mark.timeout(60)

PLUGINS = Path(__file__).parent / "plugins"
MIB = 1024 * 1024
RSS_BUDGET = 50 * MIB


def host_rss() -> int:
    """Resident memory of this (the host) process, in bytes, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def hostile_names() -> list[str]:
    return sorted(p.name for p in PLUGINS.iterdir() if (p / "manifest.yaml").is_file())


@dataclass(frozen=True)
class Contained:
    """How one hostile plugin must be contained."""

    fault: FaultKind | None = None
    """The first fault's kind; None: the plugin must run ``ok``."""
    hook: str = ""
    """The hook the fault names (``load`` for a refused load)."""
    grants: tuple[str, ...] = ()
    denied: str = ""
    """An operation that must be audited as refused (``permission:function``)."""
    render: str = ""
    """The text the plugin must end up rendering (it saw its attack fail)."""


def faulted(kind: FaultKind, hook: str, *grants: str) -> Contained:
    return Contained(fault=kind, hook=hook, grants=grants)


ON_EVENT = ("events.subscribe",)
T, M, TRAP, OUT, LOAD = (
    FaultKind.TIMEOUT, FaultKind.MEMORY, FaultKind.TRAP, FaultKind.INVALID_OUTPUT,
    FaultKind.LOAD,
)  # fmt: skip

EXPECTED: dict[str, Contained] = {
    # -- Starlark ------------------------------------------------------------------------
    "sl_loop_in_load": faulted(LOAD, "load"),
    "sl_loop_in_initialize": faulted(T, "initialize"),
    "sl_loop_in_on_event": faulted(T, "on_event", *ON_EVENT),
    "sl_memory_bomb": faulted(M, "on_event", *ON_EVENT),
    "sl_memory_growth": faulted(M, "on_event", *ON_EVENT),
    "sl_deep_recursion": faulted(TRAP, "render"),
    "sl_trap": faulted(TRAP, "on_event", *ON_EVENT),
    "sl_render_10mb": faulted(OUT, "render"),
    "sl_invalid_output": faulted(OUT, "render"),
    "sl_load_statement": faulted(LOAD, "load"),
    "sl_host_call_denied": Contained(denied="storage.write:storage_set", render="denied"),
    "sl_subscribe_denied": Contained(denied="events.subscribe:subscribe", render="denied"),
    "sl_enqueue_denied": Contained(denied="admin.queue.enqueue:enqueue_job", render="denied"),
    "sl_host_call_oversize": Contained(
        grants=("admin.queue.enqueue",), render="invalid_argument payload"
    ),
    "sl_nonfinite_args": Contained(
        grants=("admin.queue.enqueue", "admin.queue.peek"), render="delay payload older_than_s"
    ),
    "sl_forged_identity": Contained(
        grants=("storage.write",), denied="storage.write:storage_set", render="invalid_argument"
    ),
    # -- WASM ----------------------------------------------------------------------------
    "wasm_loop_in_load": faulted(LOAD, "load"),
    "wasm_loop_in_initialize": faulted(T, "initialize"),
    "wasm_loop_in_on_event": faulted(T, "on_event", *ON_EVENT),
    "wasm_memory_growth": faulted(M, "on_event", *ON_EVENT),
    "wasm_trap": faulted(TRAP, "on_event", *ON_EVENT),
    "wasm_deep_recursion": faulted(TRAP, "render"),
    "wasm_proc_exit": faulted(TRAP, "on_event", *ON_EVENT),
    "wasm_render_10mb": faulted(OUT, "render"),
    "wasm_invalid_utf8": faulted(OUT, "render"),
    "wasm_invalid_json": faulted(OUT, "render"),
    "wasm_oob_result": faulted(OUT, "render"),
    "wasm_oob_length": faulted(OUT, "render"),
    # render's argument is the first the host places with rwq_alloc
    "wasm_alloc_fails": faulted(M, "render", *ON_EVENT),
    "wasm_alloc_out_of_bounds": faulted(OUT, "render", *ON_EVENT),
    "wasm_foreign_import": faulted(LOAD, "load"),
    "wasm_oob_host_args": Contained(render="refused"),
    "wasm_host_call_denied": Contained(denied="storage.write:storage_set", render="denied"),
    "wasm_forged_identity": Contained(
        grants=("storage.write",), denied="storage.write:storage_set", render="refused"
    ),
    "wasm_wasi_file": Contained(render="blocked"),
    "wasm_wasi_env": Contained(render="blocked"),
    "wasm_wasi_socket": Contained(render="blocked"),
    "wasm_wasi_bad_flags": faulted(TRAP, "render"),
}


def job_events(n: int) -> list[Event]:
    kinds = ("job.completed", "job.failed")
    return [
        Event(
            type=kinds[i % 2],
            ts=time.time() * 1000,
            source="host",
            queue="emails",
            data={"job_id": f"j{i}"},
            id=f"sec:{i}",
        )
        for i in range(n)
    ]


def runtime_of(plugin: Path) -> str:
    return str(yaml.safe_load((plugin / "manifest.yaml").read_text("utf-8"))["runtime"])


BENIGN_WAT = """(module (memory (export "memory") 1)
  (data (i32.const 16) "[{\\"type\\":\\"text\\",\\"text\\":\\"hi\\"}]")
  (func (export "rwq_abi_version") (result i32) (i32.const 1))
  (func (export "rwq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "rwq_render") (param i32 i32) (result i64) (i64.const 68719476765)))"""

_warm: set[str] = set()


def warm_up(kind: str, settings: Settings, client: redis.Redis, root: Path) -> None:
    """Start each runtime once before RSS is measured: the first wasmtime engine or
    Starlark zygote is a one-off cost of the host, not the attack's."""
    if kind in _warm:
        return
    target = root / f"warm-{kind}"
    target.mkdir(parents=True)
    manifest = {"name": f"warm-{kind}", "version": "1.0.0", "api_version": "v1"}
    if kind == "wasm":
        manifest |= {"runtime": "wasm", "entry_point": "main.wasm"}
        (target / "main.wasm").write_bytes(wasmtime.wat2wasm(BENIGN_WAT))
    else:
        manifest |= {"runtime": "starlark", "entry_point": "main.star"}
        (target / "main.star").write_text(
            'def render(size):\n    return [{"type": "text", "text": "hi"}]\n', "utf-8"
        )
    (target / "manifest.yaml").write_text(yaml.safe_dump(manifest), "utf-8")
    for _ in range(2):
        assert check_plugin(settings, target, client=client).status == "ok"
    _warm.add(kind)


def denials(report: CheckReport) -> list[str]:
    return [a["operation"] for a in report.audit if not a["allowed"]]


def test_the_table_covers_every_hostile_plugin() -> None:
    assert sorted(EXPECTED) == hostile_names()
    assert len(EXPECTED) >= 20
    assert {runtime_of(PLUGINS / n) for n in EXPECTED} == {"starlark", "wasm"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_plugin_is_contained(
    name: str,
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    hostile: Callable[[str], Path],
) -> None:
    expect = EXPECTED[name]
    plugin = hostile(name)
    warm_up(runtime_of(plugin), settings, redis_client, tmp_path / "warm")
    before = host_rss()
    report = check_plugin(
        settings, plugin, grants=expect.grants, events=job_events(3), timeout=10.0,
        client=redis_client,
    )  # fmt: skip
    grown = host_rss() - before
    summary = json.dumps(report.to_dict(), default=str)[:3000]

    assert redis_client.ping()  # the host and its Redis are alive
    assert grown < RSS_BUDGET, f"host RSS grew {grown / MIB:.1f} MiB"
    if expect.fault is None:
        assert report.status == "ok", summary
        assert report.faults == [], summary
    else:
        assert report.status == "faulted", summary
        first = report.faults[0]
        assert (first.kind, first.hook) == (expect.fault.value, expect.hook), summary
    if expect.render:
        assert report.render == [{"type": "text", "text": expect.render}], summary
    if expect.denied:
        assert expect.denied in denials(report), summary


# -- next to a well-behaved plugin ------------------------------------------------------------

NEIGHBOURS = ["sl_loop_in_on_event", "sl_memory_bomb", "wasm_loop_in_on_event",
              "wasm_memory_growth", "wasm_proc_exit", "wasm_trap"]  # fmt: skip


def grant(manager: PluginManager, plugin: Path, permissions: list[str]) -> None:
    bundle = open_bundle(plugin)
    manager.grants.grant(
        bundle.name, permissions, version=str(bundle.version), bundle_hash=bundle.sha256,
        granted_by="security suite",
    )  # fmt: skip


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize("name", NEIGHBOURS)
def test_a_well_behaved_plugin_keeps_receiving_events(
    name: str,
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    hostile: Callable[..., Path],
    bystander: Callable[[Path], Path],
) -> None:
    plugins = tmp_path / "plugins"
    offender = hostile(name, plugins)
    friend = bystander(plugins)
    kind = runtime_of(offender)
    warm_up(kind, settings, redis_client, tmp_path / "warm")
    local = settings.replace(plugin_dirs=str(plugins))
    runtimes: dict[str, PluginRuntime] = {
        "starlark": StarlarkRuntime(),
        "wasm": WasmRuntime(cache_dir=tmp_path / "cache"),
    }
    manager = PluginManager(
        local, runtimes, redis_client, feeds=False,
        fault_policy=FaultPolicy(backoff_initial=3600.0), max_batch=5,
    )  # fmt: skip
    offender_name = open_bundle(offender).name
    grant(manager, offender, ["events.subscribe"])
    grant(manager, friend, ["events.subscribe"])
    before = host_rss()
    rounds, per_round = 4, 5
    try:
        manager.start()
        assert manager.state("bystander") is PluginState.ACTIVE
        assert manager.state(offender_name) is PluginState.ACTIVE
        for n in range(rounds):
            manager.bus.publish_many(job_events(per_round))
            seen = [{"type": "text", "text": f"seen {(n + 1) * per_round}"}]

            def counted(seen: list[dict[str, str]] = seen) -> bool:
                return manager.render("bystander", 80, 24).elements == seen

            assert wait_for(counted, 10.0), (n, manager.render("bystander", 80, 24))
        assert wait_for(lambda: manager.state(offender_name) is not PluginState.ACTIVE, 10.0)
        assert manager.status(offender_name).faults, manager.status(offender_name)
        assert manager.state("bystander") is PluginState.ACTIVE
    finally:
        manager.stop()
    assert redis_client.ping()
    grown = host_rss() - before
    assert grown < RSS_BUDGET, f"host RSS grew {grown / MIB:.1f} MiB"
