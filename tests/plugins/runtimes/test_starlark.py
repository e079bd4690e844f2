"""The Starlark runtime: plugins in sandbox processes, faults contained, the host unharmed."""

from __future__ import annotations

import os
import re
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rwq.plugins.contract.errors import InvalidArgument, PermissionDenied
from rwq.plugins.package.manifest import load_manifest
from rwq.plugins.runtimes.base import FaultKind, Hook, PluginFault, ResourceLimits
from rwq.plugins.runtimes.starlark import StarlarkPlugin, StarlarkRuntime

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).with_name("starlark_plugins")
HELLO = ROOT / "sdk" / "starlark" / "hello"
MIB = 1 << 20


class Host:
    """A fake ``host_call``: records ``(plugin, function, args)``; answers from ``answers``
    (an exception is raised)."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.answers = answers or {}

    def __call__(self, plugin: str, function: str, args: Any) -> Any:
        self.calls.append((plugin, function, args))
        answer = self.answers.get(function, {"ok": function})
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture(scope="module")
def runtime() -> Iterator[StarlarkRuntime]:
    rt = StarlarkRuntime()
    yield rt
    rt.close()


def limits(
    *, timeout: float = 10.0, memory: int = 64 * MIB, max_output: int = 1_000_000
) -> ResourceLimits:
    return ResourceLimits(
        max_memory_bytes=memory,
        timeout_s=timeout,
        max_cpu_percent=50.0,
        max_output_bytes=max_output,
    )


def load(
    runtime: StarlarkRuntime,
    path: Path | str,
    host: Host | None = None,
    lim: ResourceLimits | None = None,
) -> StarlarkPlugin:
    entry = path if isinstance(path, Path) else FIXTURES / path
    name = (entry.parent.name if entry.stem == "main" else entry.stem).replace("_", "-")
    return runtime.load(name, entry, lim or limits(), host or Host())


def write(tmp_path: Path, source: str, name: str = "main.star") -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


def fault_of(plugin: StarlarkPlugin, hook: Hook, arg: Any = None) -> PluginFault:
    with pytest.raises(PluginFault) as info:
        plugin.call(hook, arg)
    return info.value


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


SIZE = {"width": 80, "height": 20, "focused": True}


# -- the SDK ----------------------------------------------------------------------------------


def test_hello_plugin_answers_every_hook(runtime: StarlarkRuntime) -> None:
    host = Host()
    plugin = load(runtime, HELLO / "main.star", host)
    assert plugin.exports() == frozenset(Hook)
    events = [{"type": "job.completed"}, {"type": "job.failed"}, {"type": "job.completed"}]
    assert plugin.call(Hook.INITIALIZE, {"greeting": "hi"}) is None
    assert plugin.call(Hook.ACTIVATE, None) is None
    assert plugin.call(Hook.ON_EVENT, events) == {"changed": True}
    assert plugin.call(Hook.ON_TIMER, {"id": "tick", "ts": 1.0}) == {"changed": False}
    assert plugin.call(Hook.RENDER, SIZE) == [
        {"type": "text", "text": "hi: 3 events of 2 types"},
        {
            "type": "table",
            "columns": ["type", "count"],
            "rows": [["job.completed", 2], ["job.failed", 1]],
        },
    ]
    assert plugin.call(Hook.ON_INPUT, {"kind": "key", "key": "x"}) == {"changed": False}
    assert plugin.call(Hook.GET_CONFIG, None) == {"greeting": "hi"}
    assert plugin.call(Hook.SET_CONFIG, {"greeting": ""}) == {
        "error": "greeting must be a non-empty string"
    }
    assert plugin.call(Hook.HEALTH_CHECK, None) == {"status": "ok", "types": 2}
    call = {"function": "count", "args": "job.completed", "caller": "other"}
    assert plugin.call(Hook.ON_CALL, call) == 2
    exported = plugin.call(Hook.EXPORT_STATE, None)
    assert exported == {"counts": {"job.completed": 2, "job.failed": 1}, "total": 3}
    assert plugin.call(Hook.ON_INPUT, {"kind": "key", "key": "r"}) == {"changed": True}
    handover = {"from_version": "0.0.9", "state": exported}
    assert plugin.call(Hook.IMPORT_STATE, handover) is None
    assert plugin.call(Hook.RENDER, SIZE)[0]["text"] == "hi: 3 events of 2 types"
    assert plugin.call(Hook.DEACTIVATE, None) is None
    assert plugin.call(Hook.CLEANUP, None) is None
    assert host.calls == [
        ("hello", "set_timer", {"id": "tick", "interval_ms": 5000}),
        ("hello", "clear_timer", {"id": "tick"}),
    ]
    plugin.close()


@pytest.mark.parametrize("bundle", [HELLO], ids=["hello"])
def test_sdk_bundles_are_valid_and_load(runtime: StarlarkRuntime, bundle: Path) -> None:
    manifest = load_manifest(bundle / "manifest.yaml")
    assert manifest.runtime == "starlark"
    plugin = load(runtime, bundle / manifest.entry_point)
    assert Hook.RENDER in plugin.exports()
    if Hook.INITIALIZE in plugin.exports():
        plugin.call(Hook.INITIALIZE, manifest.config)
    assert isinstance(plugin.call(Hook.RENDER, SIZE), list)
    plugin.close()


# -- host calls and state ---------------------------------------------------------------------


def test_host_calls_round_trip_and_errors_are_values(runtime: StarlarkRuntime) -> None:
    denied = PermissionDenied(
        "host-calls", "purge_queue", "admin.queue.purge", "emails", "not granted"
    )
    host = Host(
        {
            "purge_queue": denied,
            "peek_job": RuntimeError("a bug in the host"),
            "storage_get": InvalidArgument("unknown argument 'key2'", function="storage_get"),
        }
    )
    plugin = load(runtime, "host_calls.star", host)
    enqueued, purged, peeked, logged, stored = plugin.call(Hook.RENDER, SIZE)
    assert enqueued == {"ok": "enqueue_job"}
    assert purged["error"]["code"] == "permission_denied"
    assert purged["error"]["permission"] == "admin.queue.purge"
    assert peeked == {"error": {"code": "internal", "message": "internal error (see the host log)"}}
    assert logged["error"]["code"] == "invalid_argument"  # refused in the sandbox
    assert stored["error"]["code"] == "invalid_argument"
    assert host.calls == [
        ("host-calls", "enqueue_job", {"queue": "emails", "payload": {"to": "a@example.com"},
                                        "priority": 7}),
        ("host-calls", "purge_queue", {"queue": "emails"}),
        ("host-calls", "peek_job", {"queue": "emails"}),
        ("host-calls", "storage_get", {"key": "k", "key2": "x"}),
    ]  # fmt: skip
    assert plugin.call(Hook.ON_INPUT, {"kind": "key"}) == {
        "changed": False,
        "code": "permission_denied",
    }
    plugin.call(Hook.ON_TIMER, {"id": "t", "ts": 1})
    assert host.calls[-1] == ("host-calls", "log", {"level": "info", "message": "tick t"})
    plugin.close()


def test_state_survives_calls_and_globals_are_frozen(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "state.star")
    for n in (1, 2, 3, 4):
        plugin.call(Hook.ON_EVENT, [{}] * n)
    assert plugin.call(Hook.RENDER, SIZE) == [
        {"count": 10, "kept": [2, 3, 4], "keys": ["count", "kept"]}
    ]
    fault = fault_of(plugin, Hook.ON_INPUT, {"kind": "key"})
    assert fault.kind is FaultKind.TRAP
    assert "state.star:16" in fault.reason and "Immutable" in fault.reason
    assert plugin.call(Hook.RENDER, SIZE)[0]["count"] == 10  # a trap leaves it running
    plugin.close()


# -- faults -----------------------------------------------------------------------------------


def test_memory_bomb_is_a_memory_fault_and_others_keep_running(
    runtime: StarlarkRuntime,
) -> None:
    bystander = load(runtime, HELLO / "main.star")
    bystander.call(Hook.INITIALIZE, {})
    before = rss_bytes()
    for fixture in ("memory_bomb.star", "growing.star"):
        bomb = load(runtime, fixture, lim=limits(memory=32 * MIB))
        fault = fault_of(bomb, Hook.RENDER, SIZE)
        assert fault.kind is FaultKind.MEMORY, fault
        assert not bomb.alive
        assert fault_of(bomb, Hook.RENDER, SIZE).kind is FaultKind.CRASH  # gone for good
        bomb.close()
        assert bystander.call(Hook.ON_EVENT, [{"type": "job.completed"}]) == {"changed": True}
    assert rss_bytes() - before < 50 * MIB
    fresh = load(runtime, HELLO / "main.star")
    assert fresh.call(Hook.RENDER, SIZE)
    fresh.close()
    bystander.close()


def test_infinite_loop_times_out_and_the_sandbox_stays(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "infinite_loop.star", lim=limits(timeout=0.3))
    fault = fault_of(plugin, Hook.RENDER, SIZE)
    assert fault.kind is FaultKind.TIMEOUT
    assert "infinite_loop.star" in fault.reason
    assert plugin.call(Hook.HEALTH_CHECK, None) == {"status": "ok"}
    plugin.close()


def test_watchdog_kills_a_sandbox_that_stops_answering(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, HELLO / "main.star", lim=limits(timeout=0.2))
    os.kill(plugin.pid, signal.SIGSTOP)  # stuck where check_cancelled cannot reach
    fault = fault_of(plugin, Hook.RENDER, SIZE)
    assert fault.kind is FaultKind.TIMEOUT
    assert "killed" in fault.reason
    assert not plugin.alive
    plugin.close()
    fresh = load(runtime, HELLO / "main.star")
    assert fresh.call(Hook.HEALTH_CHECK, None)["status"] == "ok"
    fresh.close()


def test_deep_recursion_faults(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "deep_recursion.star")
    fault = fault_of(plugin, Hook.RENDER, SIZE)
    assert fault.kind is FaultKind.TRAP
    assert "call stack" in fault.reason
    plugin.close()


def test_load_is_refused(runtime: StarlarkRuntime) -> None:
    with pytest.raises(PluginFault) as info:
        load(runtime, "uses_load.star")
    assert info.value.kind is FaultKind.LOAD
    assert "uses_load.star:1" in info.value.reason and "load" in info.value.reason


def test_syntax_error_is_a_load_fault_naming_the_line(runtime: StarlarkRuntime) -> None:
    with pytest.raises(PluginFault) as info:
        load(runtime, "bad_syntax.star")
    assert info.value.kind is FaultKind.LOAD
    assert "bad_syntax.star:4:" in info.value.reason


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def on_event(e):\n    return {}\n", "defines no render"),
        ("render = 5\n", "render must be a function"),
        ("X = 1 // 0\ndef render(s):\n    return []\n", "main.star:1:5: Floor division by zero"),
        ("def render(s):\n    return [f'{s}']\n", "f-strings"),
    ],
    ids=["no-render", "not-a-function", "top-level-error", "f-string"],
)
def test_bad_plugins_fail_to_load(
    runtime: StarlarkRuntime, tmp_path: Path, source: str, reason: str
) -> None:
    with pytest.raises(PluginFault) as info:
        load(runtime, write(tmp_path, source))
    assert info.value.kind is FaultKind.LOAD
    assert reason in info.value.reason


def test_top_level_loop_times_out_the_load(runtime: StarlarkRuntime, tmp_path: Path) -> None:
    source = "for i in range(1 << 30):\n    for j in range(1 << 30):\n        pass\n"
    with pytest.raises(PluginFault) as info:
        runtime.load("slow", write(tmp_path, source), limits(timeout=0.2), Host())
    assert info.value.kind is FaultKind.LOAD
    assert "timeout" in info.value.reason


def test_runtime_errors_are_traps_with_the_location(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "runtime_error.star")
    fault = fault_of(plugin, Hook.RENDER, {"width": 0})
    assert fault.kind is FaultKind.TRAP
    assert fault.hook == "render"
    assert "runtime_error.star:2:" in fault.reason and "division by zero" in fault.reason
    fault = fault_of(plugin, Hook.ON_INPUT, {"kind": "key"})
    assert "refused: key" in fault.reason
    assert plugin.call(Hook.RENDER, {"width": 1}) == [1]
    plugin.close()


def test_invalid_output_is_refused(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "invalid_output.star", lim=limits(max_output=10_000))
    fault = fault_of(plugin, Hook.RENDER, SIZE)
    assert fault.kind is FaultKind.INVALID_OUTPUT
    assert "not JSON" in fault.reason
    assert plugin.call(Hook.ON_INPUT, {"bytes": 100}) == "x" * 100
    fault = fault_of(plugin, Hook.ON_INPUT, {"bytes": 20_000})
    assert fault.kind is FaultKind.INVALID_OUTPUT
    assert "10000-byte cap" in fault.reason
    assert plugin.call(Hook.HEALTH_CHECK, None) == {"status": "ok"}
    plugin.close()


def test_undefined_hook_is_a_trap(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, "runtime_error.star")
    fault = fault_of(plugin, Hook.ON_EVENT, [])
    assert fault.kind is FaultKind.TRAP and "does not define on_event" in fault.reason
    plugin.close()


def test_killed_sandbox_is_a_crash_then_a_fresh_one_works(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, HELLO / "main.star")
    os.kill(plugin.pid, signal.SIGKILL)
    fault = fault_of(plugin, Hook.RENDER, SIZE)
    assert fault.kind is FaultKind.CRASH
    assert "SIGKILL" in fault.reason
    assert plugin.memory_bytes() == 0
    plugin.close()
    plugin.close()  # idempotent
    fresh = load(runtime, HELLO / "main.star")
    assert fresh.call(Hook.HEALTH_CHECK, None)["status"] == "ok"
    fresh.close()


def test_a_dead_zygote_is_replaced(runtime: StarlarkRuntime) -> None:
    survivor = load(runtime, HELLO / "main.star")
    zygote = runtime.zygote.pid
    assert zygote is not None
    os.kill(zygote, signal.SIGKILL)
    plugin = load(runtime, HELLO / "main.star")
    assert runtime.zygote.pid != zygote
    assert plugin.call(Hook.HEALTH_CHECK, None)["status"] == "ok"
    assert survivor.call(Hook.HEALTH_CHECK, None)["status"] == "ok"  # sandboxes live on
    plugin.close()
    survivor.close()


def test_closed_plugin_refuses_calls(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, HELLO / "main.star")
    plugin.close()
    assert fault_of(plugin, Hook.RENDER, SIZE).kind is FaultKind.CRASH


# -- the sandbox ------------------------------------------------------------------------------


def _fds(pid: int) -> dict[int, str]:
    base = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{base}/{fd}") for fd in os.listdir(base)}


def _limits(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/limits", encoding="ascii") as f:
        rows = f.read().splitlines()[1:]
    return {row[:26].strip(): row[26:47].strip() for row in rows}


def test_sandbox_has_no_environment_and_only_its_channel(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, HELLO / "main.star", lim=limits(memory=16 * MIB))
    zygote = runtime.zygote.pid
    assert zygote is not None
    for pid in (plugin.pid, zygote):
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert f.read() == b""
    fds = _fds(plugin.pid)
    assert {fd: fds[fd] for fd in (0, 1, 2)} == dict.fromkeys((0, 1, 2), "/dev/null")
    assert set(fds) == {0, 1, 2, 3} and fds[3].startswith("socket:")
    zygote_fds = _fds(zygote)
    assert {fd: zygote_fds[fd] for fd in (0, 1, 2)} == dict.fromkeys((0, 1, 2), "/dev/null")
    others = [target for fd, target in zygote_fds.items() if fd > 2]
    assert len(others) == 1 and others[0].startswith("socket:")  # its control socket
    caps = _limits(plugin.pid)
    assert caps["Max open files"] == "4"
    assert caps["Max file size"] == "0"
    assert caps["Max core file size"] == "0"
    assert caps["Max address space"] != "unlimited"
    assert caps["Max cpu time"] != "unlimited"  # set by the first call's deadline
    plugin.close()


def test_cpu_and_memory_are_reported(runtime: StarlarkRuntime) -> None:
    plugin = load(runtime, HELLO / "main.star")
    plugin.call(Hook.INITIALIZE, {})
    assert 0 < plugin.memory_bytes() < 64 * MIB
    assert plugin.cpu_seconds() >= 0.0
    assert plugin.throttled is False
    plugin.close()
    assert plugin.memory_bytes() == 0


def test_two_hundred_plugins_at_once(runtime: StarlarkRuntime, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "def on_event(events):\n"
        "    state.set('n', state.get('n', 0) + len(events))\n"
        "    return {'changed': True}\n"
        "def render(size):\n"
        "    return [{'type': 'text', 'text': '%d' % state.get('n', 0)}]\n",
    )
    started = time.perf_counter()
    plugins = [runtime.load(f"p{i}", source, limits(memory=16 * MIB), Host()) for i in range(200)]
    loaded = time.perf_counter() - started
    try:
        for plugin in plugins:
            plugin.call(Hook.ON_EVENT, [{"type": "job.completed"}] * 10)
            assert plugin.call(Hook.RENDER, SIZE) == [{"type": "text", "text": "10"}]
        private = statistics.median(p.memory_bytes() for p in plugins)
        print(
            f"\n200 Starlark sandboxes: {loaded / 200 * 1000:.1f} ms per load, "
            f"median private memory {private / 1024:.0f} KiB, "
            f"zygote {runtime.zygote.private_bytes() / 1024:.0f} KiB private"
        )
        assert 0 < private < 16 * MIB
    finally:
        for plugin in plugins:
            plugin.close()


def test_docs_examples_load(runtime: StarlarkRuntime, tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "starlark.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in doc.split("```python\n")[1:]]
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        if "def render(" not in block:
            block += "\ndef render(size):\n    return []\n"
        plugin = runtime.load(f"doc{i}", write(tmp_path, block, f"doc{i}.star"), limits(), Host())
        assert Hook.RENDER in plugin.exports()
        plugin.close()


def test_the_sandbox_and_the_host_agree_on_the_host_call_cap() -> None:
    """The sandbox refuses a host call over the cap itself (an error value to the plugin); the
    host takes a larger frame for an attack. The two constants must stay equal (the host
    never imports the sandbox's module, which loads the interpreter)."""
    from rwq.plugins.runtimes import starlark as host_side

    source = host_side.CHILD_SCRIPT.read_text(encoding="utf-8")
    [expression] = re.findall(r"^MAX_HOST_CALL_BYTES = (.+)$", source, re.MULTILINE)
    assert eval(expression, {}) == host_side.MAX_HOST_CALL_BYTES
