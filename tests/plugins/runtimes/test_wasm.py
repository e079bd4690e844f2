"""The WASM runtime: the C SDK's hello plugin, host calls, and hostile modules contained.

C plugins are built with ``sdk/c/build.sh`` once per session (clang is required: ``make
toolchains`` installs it, and CI runs that first); hostile cases are small WAT modules.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import wasmtime

from rwq.config import Settings
from rwq.plugins.contract.errors import PermissionDenied
from rwq.plugins.contract.host_functions import HOST_FUNCTIONS
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.host_api.service import HostAPI, PluginBinding
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.package.manifest import load_manifest
from rwq.plugins.runtimes.base import HOOKS, FaultKind, Hook, PluginFault, ResourceLimits
from rwq.plugins.runtimes.budget import CpuBudget
from rwq.plugins.runtimes.wasm import Deterministic, WasmInstance, WasmRuntime
from rwq.plugins.trust.audit import AuditLog, read
from rwq.plugins.trust.grants import GrantStore
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer

ROOT = Path(__file__).resolve().parents[3]
SDK = ROOT / "sdk" / "c"
FIXTURES = Path(__file__).parent / "wasm"
LIMITS = ResourceLimits(max_memory_bytes=4 << 20, timeout_s=0.25, max_cpu_percent=50.0)
EBADF, ENOTSUP = 8, 58


# -- building plugins -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The C plugins, built with the SDK's build script: ``hello`` and ``probe``."""
    if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld are needed to build C plugins: run `make toolchains`")
    out = tmp_path_factory.mktemp("wasm-build")
    jobs = {
        name: (
            subprocess.Popen(
                [str(SDK / "build.sh"), str(source), str(out / f"{name}.wasm")],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        for name, source in (
            ("hello", SDK / "hello"),
            ("probe", FIXTURES),
            ("every_element", FIXTURES / "every_element"),
        )
    }
    for name, job in jobs.items():
        output, _ = job.communicate(timeout=120)
        assert job.returncode == 0, f"building {name} failed:\n{output}"
        assert "warning" not in output, output
    return {name: out / f"{name}.wasm" for name in jobs}


# The smallest module that meets ABI v1, around the body under test: a bump allocator.
PRELUDE = """
  (global $heap (mut i32) (i32.const 4096))
  (func (export "rwq_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "rwq_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
"""
RENDER_HI = """
  (data (i32.const 16) "[{\\"type\\":\\"text\\",\\"text\\":\\"hi\\"}]")
  (func (export "rwq_render") (param i32 i32) (result i64)
    (call $pack (i32.const 16) (i32.const 29)))
"""


def wat(body: str, *, imports: str = "", pages: int = 2, prelude: str = PRELUDE) -> bytes:
    text = f'(module {imports} (memory (export "memory") {pages}) {prelude} {body})'
    return wasmtime.wat2wasm(text)


def returning(data: bytes) -> bytes:
    """A module whose render returns ``data``."""
    literal = "".join(f"\\{byte:02x}" for byte in data)
    return wat(
        f"""(data (i32.const 16) "{literal}")
        (func (export "rwq_render") (param i32 i32) (result i64)
          (call $pack (i32.const 16) (i32.const {len(data)})))"""
    )


def save(tmp_path: Path, wasm: bytes, name: str = "main.wasm") -> Path:
    path = tmp_path / name
    path.write_bytes(wasm)
    return path


class FakeHost:
    """A ``HostCall`` that records calls and answers from ``results`` (an exception is
    raised)."""

    def __init__(self, **results: Any) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.results = results

    def __call__(self, plugin: str, function: str, args: Any) -> Any:
        self.calls.append((plugin, function, args))
        result = self.results.get(function)
        if isinstance(result, BaseException):
            raise result
        return result


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    rt = WasmRuntime(tmp_path / "cache")
    yield rt
    rt.close()


def fault(instance: WasmInstance, hook: Hook, argument: Any = None) -> PluginFault:
    with pytest.raises(PluginFault) as info:
        instance.call(hook, argument)
    assert info.value.plugin == instance.name and info.value.hook == hook
    return info.value


def load_fault(runtime: WasmRuntime, path: Path, host: Any = None) -> PluginFault:
    with pytest.raises(PluginFault) as info:
        runtime.load("bad", path, LIMITS, host or FakeHost())
    assert info.value.kind is FaultKind.LOAD
    return info.value


# -- the hello plugin -----------------------------------------------------------------------


def test_hello_counts_events_and_renders_a_text_and_a_table(
    runtime: WasmRuntime, built: dict[str, Path]
) -> None:
    host = FakeHost()
    hello = runtime.load("hello", built["hello"], LIMITS, host)
    assert hello.exports() == {Hook.INITIALIZE, Hook.ON_EVENT, Hook.RENDER, Hook.HEALTH_CHECK}

    assert hello.call(Hook.INITIALIZE, {"greeting": 'hé "quoted"\n'}) is None
    assert host.calls == [("hello", "log", {"level": "info", "message": "hello plugin started"})]

    batch = [
        {"id": "1-0", "type": "job.completed", "ts": 1, "source": "queue", "queue": "q",
         "data": {"job_id": "j1", "nested": [{"type": "not.this"}, "]}"]}},
        {"id": "1-1", "type": "job.failed", "ts": 2, "source": "queue", "queue": "q",
         "data": {"error": "boom \\ \u00e9"}},
        {"id": "1-2", "type": "job.completed", "ts": 3, "source": "queue", "queue": "q",
         "data": {}},
    ]  # fmt: skip
    assert hello.call(Hook.ON_EVENT, batch) == {"changed": True}
    assert hello.call(Hook.RENDER, {"width": 80, "height": 20, "focused": True}) == [
        {"type": "text", "text": 'hé "quoted"\n: 3 events of 2 types'},
        {
            "type": "table",
            "columns": ["type", "count"],
            "rows": [["job.completed", 2], ["job.failed", 1]],
        },
    ]
    assert hello.call(Hook.HEALTH_CHECK, None) == {"status": "ok", "events": 3}
    assert hello.call(Hook.ON_TIMER, {"id": "t", "ts": 1}) is None  # not exported
    assert 0 < hello.memory_bytes() <= LIMITS.max_memory_bytes
    assert hello.cpu_seconds() > 0


def test_hello_loads_with_the_limits_of_its_manifest(
    runtime: WasmRuntime, built: dict[str, Path]
) -> None:
    manifest = load_manifest(SDK / "hello" / "manifest.yaml")
    assert manifest.runtime == "wasm" and manifest.entry_point == "main.wasm"
    res = manifest.resources
    limits = ResourceLimits(res.max_memory, res.timeout, res.max_cpu)
    hello = runtime.load(manifest.name, built["hello"], limits, FakeHost())
    hello.call(Hook.INITIALIZE, manifest.config)
    assert hello.call(Hook.RENDER, {"width": 40, "height": 10, "focused": False})[0] == {
        "type": "text",
        "text": "hello: 0 events of 0 types",
    }


# -- host functions -------------------------------------------------------------------------

# on_input hands its argument to enqueue_job and returns what the host answered.
PASSTHROUGH = wat(
    RENDER_HI
    + """
    (func (export "rwq_on_input") (param i32 i32) (result i64)
      (call $enqueue (local.get 0) (local.get 1)))
    (func (export "rwq_on_timer") (param i32 i32) (result i64)
      (call $enqueue (i32.const 99999999) (i32.const 10)))
    (func (export "rwq_on_event") (param i32 i32) (result i64)
      (call $enqueue (i32.const 16) (i32.const 5)))""",
    imports='(import "rwq" "enqueue_job" (func $enqueue (param i32 i32) (result i64)))',
)


def test_host_calls_are_made_as_the_loaded_plugin_and_answer_in_its_memory(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    job = {"id": "j-1", "queue": "q", "payload": {"n": "é"}}
    host = FakeHost(enqueue_job=job)
    plugin = runtime.load("echo", save(tmp_path, PASSTHROUGH), LIMITS, host)
    args = {"queue": "q", "payload": {"n": "é"}, "plugin": "someone-else"}
    assert plugin.call(Hook.ON_INPUT, args) == job
    assert plugin.call(Hook.ON_INPUT, None) == job
    assert host.calls == [("echo", "enqueue_job", args), ("echo", "enqueue_job", None)]


def test_host_errors_reach_the_plugin_as_error_results(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    denied = PermissionDenied("echo", "enqueue_job", "admin.queue.enqueue", "q", "not granted")
    host = FakeHost(enqueue_job=denied)
    plugin = runtime.load("echo", save(tmp_path, PASSTHROUGH), LIMITS, host)
    error = plugin.call(Hook.ON_INPUT, {"queue": "q"})["error"]
    assert error["code"] == "permission_denied"
    assert error["permission"] == "admin.queue.enqueue"

    host.results["enqueue_job"] = RuntimeError("secret detail")
    error = plugin.call(Hook.ON_INPUT, {"queue": "q"})["error"]
    assert error["code"] == "internal" and "secret" not in error["message"]


def test_bad_host_call_arguments_are_an_error_result_not_a_call(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    host = FakeHost()
    plugin = runtime.load("echo", save(tmp_path, PASSTHROUGH), LIMITS, host)
    outside = plugin.call(Hook.ON_TIMER, {"id": "t", "ts": 1})["error"]
    assert outside["code"] == "invalid_argument" and "memory" in outside["message"]
    not_json = plugin.call(Hook.ON_EVENT, [])["error"]  # the 5 bytes "[{\"ty"
    assert not_json["code"] == "invalid_argument" and "JSON" in not_json["message"]
    assert host.calls == []


def test_an_ungranted_import_links_and_the_host_api_refuses_and_audits_it(
    runtime: WasmRuntime, tmp_path: Path, redis_client: redis.Redis, settings: Settings
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    grants = GrantStore(tmp_path / "grants.json", audit=audit)
    broker = Broker(redis_client, settings)
    binding = PluginBinding("1.0.0", "sha256:" + "e" * 64)
    api = HostAPI(
        grants=grants,
        audit=audit,
        admin=Admin(broker),
        producer=Producer(broker),
        bus=EventBus(),
        storage=lambda p: PluginStorage(redis_client, broker.keys, p),
        bindings={"echo": binding}.get,
    )
    plugin = runtime.load("echo", save(tmp_path, PASSTHROUGH), LIMITS, api.call)
    result = plugin.call(Hook.ON_INPUT, {"queue": "q", "payload": {"n": 1}})
    assert result["error"]["code"] == "permission_denied"
    assert result["error"]["permission"] == "admin.queue.enqueue"
    assert broker.queues() == []
    audit.flush()
    records = [r for r in read(audit.path) if r.plugin == "echo"]
    assert records and not records[-1].allowed
    assert "enqueue_job" in records[-1].operation
    audit.close()


@pytest.mark.parametrize(
    ("imports", "named"),
    [
        ('(import "rwq" "read_secrets" (func (param i32 i32) (result i64)))', "rwq.read_secrets"),
        ('(import "env" "system" (func (param i32) (result i32)))', "env.system"),
        ('(import "rwq" "log" (func (param i32) (result i32)))', "rwq.log"),
        ('(import "wasi_snapshot_preview1" "memory" (memory 1))', "wasi_snapshot_preview1.memory"),
        ('(import "wasi_snapshot_preview1" "sock_open" (func (param i32) (result i32)))',
         "sock_open"),
    ],
)  # fmt: skip
def test_imports_outside_the_catalog_are_refused_at_load(
    runtime: WasmRuntime, tmp_path: Path, imports: str, named: str
) -> None:
    path = save(tmp_path, wat(RENDER_HI, imports=imports))
    assert named in load_fault(runtime, path).reason


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (wasmtime.wat2wasm("(module)"), "memory"),
        (b"\0asm\x01\0\0\0garbage", "not a valid WebAssembly module"),
        (wat(RENDER_HI, prelude=PRELUDE.replace('(export "rwq_alloc") ', "")), "rwq_alloc"),
        (wat(RENDER_HI, prelude=PRELUDE.replace("(i32.const 1))", "(i32.const 2))")), "ABI 2"),
        (wat(""), "required hook rwq_render"),
        (wat(RENDER_HI + '(func (export "rwq_on_events") (param i32 i32) (result i64) '
                         "(i64.const 0))"), "rwq_on_events, which is not a hook"),
        (wat(RENDER_HI + '(func (export "rwq_on_event") (param i32) (result i32) '
                         "(i32.const 0))"), "hooks are (i32, i32) -> i64"),
        (wat(RENDER_HI + '(func (export "_start"))'), "reactor"),
        (wat(RENDER_HI + '(func (export "_initialize") unreachable)'), "trap while starting"),
        (wat(RENDER_HI + '(func (export "_initialize") (loop (br 0)))'), "timeout while starting"),
        (wat(RENDER_HI, pages=100), "memory"),
    ],
)  # fmt: skip
def test_modules_that_do_not_meet_the_abi_are_refused(
    runtime: WasmRuntime, tmp_path: Path, module: bytes, reason: str
) -> None:
    assert reason in load_fault(runtime, save(tmp_path, module)).reason


def test_an_unreadable_entry_point_is_a_load_fault(runtime: WasmRuntime, tmp_path: Path) -> None:
    assert "cannot read" in load_fault(runtime, tmp_path / "missing.wasm").reason


# -- hostile plugins ------------------------------------------------------------------------


def test_an_endless_hook_times_out_and_other_plugins_carry_on(
    runtime: WasmRuntime, built: dict[str, Path]
) -> None:
    probe = runtime.load("probe", built["probe"], LIMITS, FakeHost())
    hello = runtime.load("hello", built["hello"], LIMITS, FakeHost())
    assert fault(probe, Hook.ON_EVENT, [{"type": "x"}]).kind is FaultKind.TIMEOUT
    assert fault(probe, Hook.RENDER).kind is FaultKind.CRASH  # broken until reloaded
    assert not probe.usable
    assert hello.call(Hook.ON_EVENT, [{"type": "x"}]) == {"changed": True}
    reloaded = runtime.load("probe", built["probe"], LIMITS, FakeHost())
    assert reloaded.call(Hook.RENDER, None) == [{"type": "text", "text": "probe"}]


def test_the_epoch_ticker_wakes_up_for_a_call_after_sleeping(built: dict[str, Path]) -> None:
    runtime = WasmRuntime(tick_s=0.001)
    probe = runtime.load("probe", built["probe"], LIMITS, FakeHost())
    assert runtime.ticker is not None
    for _ in range(5000):  # idle: the ticker goes to sleep after 50 ticks
        if runtime.ticker.sleeping:
            break
        time.sleep(0.001)
    assert runtime.ticker.sleeping
    assert fault(probe, Hook.ON_EVENT, []).kind is FaultKind.TIMEOUT
    runtime.close()


def test_memory_growth_past_the_cap_is_a_memory_fault(
    runtime: WasmRuntime, built: dict[str, Path], tmp_path: Path
) -> None:
    probe = runtime.load("probe", built["probe"], LIMITS, FakeHost())
    assert fault(probe, Hook.ON_TIMER, {"id": "t", "ts": 1}).kind is FaultKind.MEMORY
    assert probe.memory_bytes() <= LIMITS.max_memory_bytes

    grower = wat(
        RENDER_HI
        + """(func (export "rwq_on_timer") (param i32 i32) (result i64)
               (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
               unreachable)"""
    )
    plugin = runtime.load("grower", save(tmp_path, grower), LIMITS, FakeHost())
    assert fault(plugin, Hook.ON_TIMER).kind is FaultKind.MEMORY
    assert plugin.memory_bytes() == LIMITS.max_memory_bytes


def test_an_argument_the_plugin_cannot_allocate_is_a_memory_fault(
    runtime: WasmRuntime, built: dict[str, Path]
) -> None:
    hello = runtime.load("hello", built["hello"], LIMITS, FakeHost())
    huge = [{"type": "job.completed", "data": "x" * 1000}] * 5000  # 5 MB > max_memory
    assert fault(hello, Hook.ON_EVENT, huge).kind is FaultKind.MEMORY
    assert hello.call(Hook.ON_EVENT, huge[:10]) == {"changed": True}  # still usable


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (wat("""(func (export "rwq_render") (param i32 i32) (result i64)
                  (call $pack (i32.const 131000) (i32.const 1000)))"""), "not inside"),
        (wat("""(func (export "rwq_render") (param i32 i32) (result i64)
                  (i64.const -1))"""), "over the cap"),
        (returning(b"\xff\xfe[]"), "not UTF-8"),
        (returning(b'[{"type": '), "not JSON"),
        (returning(b"[NaN]"), "not JSON"),
        (returning(b"[] []"), "not JSON"),
        (wat("""(func (export "rwq_render") (param i32 i32) (result i64)
                  (call $pack (i32.const 16) (i32.const 0)))"""), "not inside"),
    ],
)  # fmt: skip
def test_invalid_results_are_refused_and_the_plugin_stays_usable(
    runtime: WasmRuntime, tmp_path: Path, module: bytes, reason: str
) -> None:
    plugin = runtime.load("liar", save(tmp_path, module), LIMITS, FakeHost())
    for _ in range(2):
        error = fault(plugin, Hook.RENDER)
        assert error.kind is FaultKind.INVALID_OUTPUT
        assert reason in error.reason


def test_a_10mb_render_is_refused_by_the_output_cap(runtime: WasmRuntime, tmp_path: Path) -> None:
    big = wat(
        """(func (export "rwq_render") (param i32 i32) (result i64)
             (memory.fill (i32.const 0) (i32.const 0x20) (i32.const 10000000))
             (i32.store8 (i32.const 0) (i32.const 0x22))
             (i32.store8 (i32.const 9999999) (i32.const 0x22))
             (call $pack (i32.const 0) (i32.const 10000000)))""",
        pages=160,
    )
    limits = ResourceLimits(max_memory_bytes=16 << 20, timeout_s=5.0, max_cpu_percent=50.0)
    plugin = runtime.load("big", save(tmp_path, big), limits, FakeHost())
    error = fault(plugin, Hook.RENDER)
    assert error.kind is FaultKind.INVALID_OUTPUT
    assert f"10000000 bytes is over the cap of {limits.max_output_bytes}" in error.reason


def test_a_trap_is_reported_with_its_message(runtime: WasmRuntime, tmp_path: Path) -> None:
    module = wat(
        RENDER_HI
        + """(func $crash (export "rwq_on_input") (param i32 i32) (result i64) unreachable)
             (func (export "rwq_on_timer") (param i32 i32) (result i64)
               (i64.extend_i32_s (i32.div_s (i32.const 1) (i32.const 0))))
             (func (export "rwq_on_event") (param i32 i32) (result i64)
               (call $exit (i32.const 3)) (i64.const 0))""",
        imports='(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
    )
    path = save(tmp_path, module)
    for hook, text in (
        (Hook.ON_INPUT, "unreachable"),
        (Hook.ON_TIMER, "divide by zero"),
        (Hook.ON_EVENT, "proc_exit(3)"),
    ):
        plugin = runtime.load("crasher", path, LIMITS, FakeHost())
        error = fault(plugin, hook, {"kind": "key"})
        assert error.kind is FaultKind.TRAP
        assert text in error.reason


def test_wasi_gives_the_plugin_nothing_of_the_host(
    runtime: WasmRuntime, built: dict[str, Path]
) -> None:
    probe = runtime.load("probe", built["probe"], LIMITS, FakeHost())
    assert probe.call(Hook.HEALTH_CHECK, None) == {
        "status": "ok",
        "read_file": False,
        "list_dir": False,
        "create_file": False,
        "env": 0,
        "home": False,
        "args": 0,
        "preopen_3": EBADF,  # no preopened directory
        "sock_accept_3": EBADF,  # no socket
        "sleep": ENOTSUP,  # sleeping would block the host where no deadline reaches
    }


def test_stdout_and_stderr_go_to_the_plugin_log_capped(
    tmp_path: Path, built: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    runtime = WasmRuntime(output_keep_bytes=4096, output_bytes_per_call=1000)
    limits = ResourceLimits(LIMITS.max_memory_bytes, timeout_s=10.0, max_cpu_percent=100.0)
    probe = runtime.load("probe", built["probe"], limits, FakeHost())
    with caplog.at_level(logging.INFO, logger="rwq.plugin.probe"):
        probe.call(Hook.ON_INPUT, {"print": 2, "line": "hello from C"})
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "hello from C"),
        (logging.INFO, "hello from C"),
        (logging.WARNING, "done printing"),
    ]
    assert probe.output.text() == "hello from C\nhello from C\ndone printing\n"

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rwq.plugin.probe"):
        probe.call(Hook.ON_INPUT, {"print": 10_000, "line": "x" * 99})
    assert sum(len(r.getMessage()) + 1 for r in caplog.records[:-1]) <= 1000
    assert "bytes dropped" in caplog.records[-1].getMessage()
    assert probe.output.dropped >= 10_000 * 100 - 1000
    assert len(probe.output.text()) <= 4096
    runtime.close()


# -- the module cache -----------------------------------------------------------------------


def test_a_second_load_uses_the_cache_and_a_changed_module_is_recompiled(
    tmp_path: Path, built: dict[str, Path]
) -> None:
    cache = tmp_path / "cache"
    first = WasmRuntime(cache)
    assert first.load("hello", built["hello"], LIMITS, FakeHost()).load_source == "compiled"
    assert first.load("hello", built["hello"], LIMITS, FakeHost()).load_source == "memory"
    assert first.cache.stats.compiled == 1
    files = list((cache / "wasm").glob("*.cwasm"))
    assert len(files) == 1 and (cache / "wasm").stat().st_mode & 0o777 == 0o700

    second = WasmRuntime(cache)  # another process, in effect
    hello = second.load("hello", built["hello"], LIMITS, FakeHost())
    assert hello.load_source == "disk" and hello.from_cache
    assert second.cache.stats.compiled == 0 and second.cache.stats.disk_hits == 1
    assert hello.call(Hook.HEALTH_CHECK, None) == {"status": "ok", "events": 0}

    path = save(tmp_path, wat(RENDER_HI))
    assert second.load("p", path, LIMITS, FakeHost()).call(Hook.RENDER, None)[0]["text"] == "hi"
    path.write_bytes(wat(RENDER_HI.replace('\\"hi\\"', '\\"ho\\"')))  # same path, new code
    changed = second.load("p", path, LIMITS, FakeHost())
    assert changed.load_source == "compiled"
    assert changed.call(Hook.RENDER, None)[0]["text"] == "ho"
    first.close()
    second.close()


def test_the_cache_key_covers_the_engine_configuration(
    tmp_path: Path, built: dict[str, Path]
) -> None:
    normal = WasmRuntime(tmp_path)
    normal.load("hello", built["hello"], LIMITS, FakeHost())
    fuelled = WasmRuntime(tmp_path, deterministic=Deterministic())
    assert fuelled.load("hello", built["hello"], LIMITS, FakeHost()).load_source == "compiled"
    assert len(list((tmp_path / "wasm").glob("*.cwasm"))) == 2
    normal.close()
    fuelled.close()


def test_a_corrupt_cache_file_is_recompiled_not_loaded(
    tmp_path: Path, built: dict[str, Path]
) -> None:
    WasmRuntime(tmp_path).load("hello", built["hello"], LIMITS, FakeHost())
    (entry,) = (tmp_path / "wasm").glob("*.cwasm")
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    entry.write_bytes(bytes(blob))
    runtime = WasmRuntime(tmp_path)
    hello = runtime.load("hello", built["hello"], LIMITS, FakeHost())
    assert hello.load_source == "compiled" and runtime.cache.stats.refused == 1
    assert hello.call(Hook.HEALTH_CHECK, None)["status"] == "ok"
    runtime.close()


def test_a_cache_directory_others_can_write_is_not_trusted(
    tmp_path: Path, built: dict[str, Path]
) -> None:
    WasmRuntime(tmp_path).load("hello", built["hello"], LIMITS, FakeHost())
    (tmp_path / "wasm").chmod(0o777)
    runtime = WasmRuntime(tmp_path)
    assert runtime.load("hello", built["hello"], LIMITS, FakeHost()).load_source == "compiled"
    assert runtime.cache.stats.disk_hits == 0
    runtime.close()


# -- deterministic mode and the CPU budget --------------------------------------------------


def test_deterministic_mode_gives_the_same_results_every_time(built: dict[str, Path]) -> None:
    results = []
    for _ in range(2):
        runtime = WasmRuntime(deterministic=Deterministic(seed=7))
        probe = runtime.load("probe", built["probe"], LIMITS, FakeHost())
        state = probe.call(Hook.EXPORT_STATE, None)
        results.append((state, probe.fuel_used, probe.cpu_seconds()))
        assert fault(probe, Hook.ON_EVENT, []).kind is FaultKind.TIMEOUT  # out of fuel
        runtime.close()
    assert results[0] == results[1]
    state = results[0][0]
    assert (state["clock_s"], state["clock_ns"]) == (1_700_000_000, 0)
    other = WasmRuntime(deterministic=Deterministic(seed=8))
    probe = other.load("probe", built["probe"], LIMITS, FakeHost())
    assert probe.call(Hook.EXPORT_STATE, None)["random"] != state["random"]
    other.close()


def test_a_plugin_over_its_cpu_budget_is_throttled(built: dict[str, Path]) -> None:
    runtime = WasmRuntime(deterministic=Deterministic(), cpu_window_s=10.0)
    # 0.001% of a core over 10 s is 100 µs; one export_state burns ~1.4 ms worth of fuel.
    limits = ResourceLimits(LIMITS.max_memory_bytes, LIMITS.timeout_s, max_cpu_percent=0.001)
    probe = runtime.load("probe", built["probe"], limits, FakeHost())
    assert not probe.throttled
    probe.call(Hook.EXPORT_STATE, None)
    assert probe.throttled
    runtime.close()


def test_the_cpu_budget_forgets_what_left_the_window() -> None:
    now = [100.0]
    budget = CpuBudget(10.0, window_s=10.0, clock=lambda: now[0])
    assert budget.allowance_s == 1.0
    budget.add(0.6)
    now[0] += 5
    budget.add(0.6)
    assert budget.throttled and budget.used_s() == pytest.approx(1.2)
    now[0] += 6  # the first 0.6 s left the window
    assert not budget.throttled and budget.used_s() == pytest.approx(0.6)
    now[0] += 1000
    assert budget.used_s() == 0


# -- the instance's lifecycle ---------------------------------------------------------------


def test_a_closed_instance_refuses_calls(runtime: WasmRuntime, built: dict[str, Path]) -> None:
    hello = runtime.load("hello", built["hello"], LIMITS, FakeHost())
    hello.close()
    hello.close()
    assert fault(hello, Hook.RENDER).kind is FaultKind.CRASH
    assert hello.memory_bytes() == 0
    runtime.close()
    with pytest.raises(PluginFault, match="closed"):
        runtime.load("hello", built["hello"], LIMITS, FakeHost())


# -- the contract's docs --------------------------------------------------------------------


def test_abi_doc_names_every_hook_and_its_example_runs(
    runtime: WasmRuntime, tmp_path: Path
) -> None:
    doc = (ROOT / "docs" / "abi.md").read_text(encoding="utf-8")
    for hook in HOOKS:
        assert f"`rwq_{hook.value}`" in doc, hook
    (example,) = re.findall(r"```wat\n(.*?)```", doc, re.S)
    path = save(tmp_path, wasmtime.wat2wasm(example))
    plugin = runtime.load("example", path, LIMITS, FakeHost())
    assert plugin.call(Hook.RENDER, {"width": 10, "height": 2, "focused": False}) == [
        {"type": "text", "text": "hello"}
    ]


def test_the_c_header_declares_exactly_the_host_functions() -> None:
    header = (SDK / "rwq.h").read_text(encoding="utf-8")
    declared = re.findall(r"^RWQ__IMPORT\((\w+)\);", header, re.M)
    assert declared == list(HOST_FUNCTIONS)


def test_results_round_trip_unicode(runtime: WasmRuntime, tmp_path: Path) -> None:
    host = FakeHost(enqueue_job={"text": "snowman \u2603, emoji \U0001f600, lone \ud800"})
    plugin = runtime.load("echo", save(tmp_path, PASSTHROUGH), LIMITS, host)
    # a lone surrogate is no text a guest can decode: it arrives as U+FFFD
    assert plugin.call(Hook.ON_INPUT, {}) == {
        "text": "snowman \u2603, emoji \U0001f600, lone \ufffd"
    }


def test_the_c_sdk_writes_every_ui_element(runtime: WasmRuntime, built: dict[str, Path]) -> None:
    """sdk/c had helpers for text, badge, kv and table only: now one for every element, each
    writing what the host validates."""
    from rwq.plugins.contract.ui import TYPES, validate_elements

    plugin = runtime.load("every-element", built["every_element"], LIMITS, FakeHost())
    [rows] = validate_elements(plugin.call(Hook.RENDER, {"width": 80, "height": 40}))
    children = rows["children"]
    assert {c["type"] for c in children} | {"rows"} == set(TYPES)
    by_type = {c["type"]: c for c in children}
    gauges = [c for c in children if c["type"] == "gauge"]
    assert gauges == [
        {"type": "gauge", "value": 6.8323, "max": 100, "warn": 50, "crit": 90, "label": "load"},
        {"type": "gauge", "value": 3, "label": "bare"},  # no max, no thresholds
    ]
    assert by_type["progress"] == {"type": "progress", "value": 30, "total": 120,
                                   "label": "done"}  # fmt: skip
    assert by_type["sparkline"] == {"type": "sparkline", "values": [1, 3, 2, 5, 4], "min": 0,
                                    "label": "rate"}  # fmt: skip
    assert by_type["list"] == {"type": "list", "id": "queues", "title": "Queues",
                               "items": ["emails", "reports"], "selected": 1}  # fmt: skip
    buttons = [c for c in children if c["type"] == "button"]
    assert buttons == [
        {"type": "button", "id": "go", "label": "Go", "key": "g", "variant": "primary"},
        {"type": "button", "id": "plain", "label": "Plain"},
    ]
    assert by_type["columns"]["widths"] == [1, 2] and len(by_type["columns"]["children"]) == 2
    assert rows["gap"] == 1
