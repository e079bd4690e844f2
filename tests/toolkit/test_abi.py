"""``rwq plugin check --abi`` as a library: the SDKs' hello plugins, a fresh C template and a
sample pass; small WAT modules that each break one rule of ABI v1 fail the case of that rule,
with the reason an author needs (and no other case that the rule does not touch)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import wasmtime

from rwq.config import Settings
from rwq.samples import SAMPLES_DIR
from rwq.toolkit.abi import CASES, SHAPE_CASES, AbiInputError, AbiReport, run_conformance
from rwq.toolkit.build import build_plugin
from rwq.toolkit.scaffold import new_plugin

REPO = Path(__file__).parents[2]
SDK = REPO / "sdk"
NODE_MODULES = SDK / "assemblyscript" / "node_modules"
EVERY_CASE = [*SHAPE_CASES, *(case.name for case in CASES)]


def verdicts(report: AbiReport) -> dict[str, str]:
    return {case.name: case.verdict for case in report.cases}


def reason(report: AbiReport, name: str) -> str:
    [case] = [c for c in report.cases if c.name == name]
    return case.reason


def failed(report: AbiReport) -> set[str]:
    return {case.name for case in report.cases if case.verdict == "fail"}


def run(settings: Settings, client: redis.Redis, path: Path, **kw: object) -> AbiReport:
    report = run_conformance(settings, path, client=client, **kw)  # type: ignore[arg-type]
    assert [case.name for case in report.cases] == EVERY_CASE
    return report


# -- modules that meet the ABI ---------------------------------------------------------------


@pytest.fixture(scope="session")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The SDKs' hello plugins, built into copies of their directories."""
    if shutil.which("clang") is None or not (NODE_MODULES / "assemblyscript").is_dir():
        pytest.fail("clang and the AssemblyScript compiler are needed: run `make toolchains`")
    out = tmp_path_factory.mktemp("hellos")
    built = {}
    for language in ("c", "assemblyscript"):
        plugin = shutil.copytree(SDK / language / "hello", out / language)
        done = subprocess.run([str(SDK / language / "build.sh"), str(plugin)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        built[language] = plugin
    return built


def test_the_c_hello_passes_every_case_it_exports(
    settings: Settings, redis_client: redis.Redis, hellos: dict[str, Path]
) -> None:
    report = run(settings, redis_client, hellos["c"])
    assert report.ok and report.exit_code == 0, report.to_dict()
    got = verdicts(report)
    for name in (
        "module",
        "imports",
        "rwq_abi_version",
        "reactor",
        "loads",
        "initialize",
        "render",
        "on-event",
        "on-event-empty",
        "on-event-max-batch",
        "on-event-large",
        "argument-out-of-memory",
        "repeated-calls",
        "host-errors",
        "health-check",
    ):
        assert got[name] == "pass", (name, reason(report, name))  # fmt: skip
    assert got["on-timer"] == "skip" and reason(report, "on-timer") == "not exported: rwq_on_timer"
    # it calls log only, which needs no permission: nothing to see for these
    assert reason(report, "permission-denied").startswith("not exercised")
    assert "does not import storage_set" in reason(report, "storage-quota")
    assert reason(report, "rwq_abi_version") == "returned 1"


def test_the_assemblyscript_hello_passes_every_case_it_exports(
    settings: Settings, redis_client: redis.Redis, hellos: dict[str, Path]
) -> None:
    """Its SDK reads a batch in place (a full one runs under hello's 2 MB) and its rwq_alloc
    answers 0 where memory cannot grow (it held 32 times a batch and trapped)."""
    report = run(settings, redis_client, hellos["assemblyscript"])
    assert report.ok and report.exit_code == 0 and failed(report) == set(), report.to_dict()
    got = verdicts(report)
    for name in (
        "loads",
        "initialize",
        "render",
        "on-event",
        "on-event-empty",
        "on-event-max-batch",
        "on-event-large",
        "on-event-unknown-types",
        "argument-out-of-memory",
        "repeated-calls",
        "host-errors",
        "null-argument",
    ):
        assert got[name] == "pass", (name, reason(report, name))  # fmt: skip
    assert "rwq_alloc(" in reason(report, "argument-out-of-memory")


def test_a_fresh_c_template_passes(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    plugin = new_plugin("fresh", "c", tmp_path).path
    assert build_plugin(plugin).ok
    report = run(settings, redis_client, plugin)
    assert report.ok, report.to_dict()
    got = verdicts(report)
    for name in ("activate", "on-timer", "on-input", "wind-down", "permission-denied"):
        assert got[name] == "pass", (name, reason(report, name))
    # its refresh timer, its Reset button and an unknown kind were all handed over
    assert "refresh" in reason(report, "on-timer")
    assert '"kind":"button","id":"reset"' in reason(report, "on-input")
    assert "get_queue_stats answered permission_denied" in reason(report, "permission-denied")


def test_a_sample_with_its_store_full_keeps_working(
    settings: Settings, redis_client: redis.Redis
) -> None:
    report = run(settings, redis_client, SAMPLES_DIR / "alert-manager")
    got = verdicts(report)
    assert got["storage-quota"] == "pass", reason(report, "storage-quota")
    assert "answered quota_exceeded" in reason(report, "storage-quota")
    for name in (
        "get-config",
        "set-config",
        "export-state",
        "import-state",
        "on-call",
        "permission-denied",
    ):
        assert got[name] == "pass", (name, reason(report, name))  # fmt: skip


def test_a_dependency_is_loaded_with_with(settings: Settings, redis_client: redis.Redis) -> None:
    monitor, alerts = SAMPLES_DIR / "tenant-sla-monitor", SAMPLES_DIR / "alert-manager"
    alone = run(settings, redis_client, monitor)
    assert verdicts(alone)["loads"] == "fail"
    assert "--with PATH: alert-manager" in reason(alone, "loads")
    assert reason(alone, "render") == "not run: the host did not start it (see loads)"
    beside = run(settings, redis_client, monitor, companions=[alerts])
    assert beside.ok, beside.to_dict()


# -- modules that break one rule ---------------------------------------------------------------

CHANGED = '{"changed":false}'
HI = '[{"type":"text","text":"hi"}]'
LOG = '{"level":"info","message":"x"}'
STORE = '{"key":"k","value":"v"}'


def wat_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def module(
    *,
    version: int = 1,
    on_event: str = "",
    event_result: str = CHANGED,
    render_result: str = HI,
    reset: bool = True,
    imports: str = "",
    extra: str = "",
    hook: str = "rwq_on_event",
) -> bytes:
    """A module that meets ABI v1 unless told otherwise: an arena allocator (growing memory, 0
    when it cannot) emptied at the end of each hook, on_event and render answering constants.
    ``on_event`` is code run first in on_event (locals $ptr and $len, $r an i64)."""
    text = f"""(module {imports}
      (memory (export "memory") 2)
      (global $heap (mut i32) (i32.const 65536))
      (data (i32.const 16) "{wat_string(event_result)}")
      (data (i32.const 256) "{wat_string(render_result)}")
      (data (i32.const 512) "{wat_string(LOG)}")
      (data (i32.const 768) "{wat_string(STORE)}")
      (func (export "rwq_abi_version") (result i32) (i32.const {version}))
      (func (export "rwq_alloc") (param $n i32) (result i32)
        (local $p i32) (local $end i32) (local $have i32)
        (local.set $p (global.get $heap))
        (local.set $end (i32.add (local.get $p) (local.get $n)))
        (local.set $have (i32.mul (memory.size) (i32.const 65536)))
        (if (i32.gt_u (local.get $end) (local.get $have))
          (then (if (i32.eq (memory.grow (i32.add (i32.shr_u
                    (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1)))
                    (i32.const -1))
                  (then (return (i32.const 0))))))
        (global.set $heap (local.get $end))
        (local.get $p))
      (func $pack (param $ptr i32) (param $len i32) (result i64)
        (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
                (i64.extend_i32_u (local.get $len))))
      (func $done {"(global.set $heap (i32.const 65536))" if reset else ""})
      (func (export "{hook}") (param $ptr i32) (param $len i32) (result i64) (local $r i64)
        {on_event}
        (call $done)
        (call $pack (i32.const 16) (i32.const {len(event_result)})))
      (func (export "rwq_render") (param i32 i32) (result i64)
        (call $done)
        (call $pack (i32.const 256) (i32.const {len(render_result)})))
      {extra})"""
    return wasmtime.wat2wasm(text)


MANIFEST = """\
name: {name}
version: 1.0.0
api_version: v1
description: a module of the ABI conformance tests
runtime: wasm
entry_point: main.wasm
permissions: [{permissions}]
resources:
  max_memory: 4MB
  timeout: 1s
  max_storage: 2KB
"""


def plugin(tmp_path: Path, wasm: bytes, name: str = "wat", permissions: str = "") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "manifest.yaml").write_text(MANIFEST.format(name=name, permissions=permissions))
    (root / "main.wasm").write_bytes(wasm)
    return root


def test_a_module_that_meets_the_abi_passes(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    report = run(settings, redis_client, plugin(tmp_path, module()))
    assert report.ok, report.to_dict()
    assert "rwq_alloc(" in reason(report, "argument-out-of-memory")
    assert reason(report, "host-errors").startswith("not exercised")


SHAPE_BREAKS = [
    pytest.param(
        module(extra='(func (export "_start"))'),
        "reactor", "is a WASI command (exports _start); build it as a reactor", id="command",
    ),
    pytest.param(
        module(hook="rwq_on_evnt"), "hook-exports",
        "exports rwq_on_evnt, which is not a hook (did you mean rwq_on_event?", id="misspelt-hook",
    ),
    pytest.param(
        wasmtime.wat2wasm('(module (memory (export "memory") 1) '
                          '(func (export "rwq_alloc") (param i32) (result i32) (i32.const 0)) '
                          '(func (export "rwq_render") (param i32 i32) (result i64) '
                          '(i64.const 0)))'),
        "rwq_abi_version", "does not export rwq_abi_version() -> i32", id="no-version",
    ),
    pytest.param(
        module(imports='(import "env" "abort" (func))'), "imports",
        "imports env.abort; only host functions (rwq.*) and WASI preview 1", id="env-import",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("wasm", "case", "why"), SHAPE_BREAKS)
def test_a_module_breaking_a_shape_rule_fails_that_rule_and_is_not_run(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, wasm: bytes, case: str, why: str
) -> None:
    report = run(settings, redis_client, plugin(tmp_path, wasm))
    assert failed(report) == {case}, report.to_dict()
    assert why in reason(report, case)
    assert verdicts(report)["loads"] == "skip" and verdicts(report)["render"] == "skip"
    assert report.exit_code == 1


def test_a_module_speaking_another_version_fails_rwq_abi_version(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    report = run(settings, redis_client, plugin(tmp_path, module(version=2)))
    assert failed(report) == {"rwq_abi_version", "loads"}
    assert (
        reason(report, "rwq_abi_version") == "rwq_abi_version() returned 2; this host speaks ABI 1"
    )


def test_an_invalid_module_fails_module(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    report = run(settings, redis_client, plugin(tmp_path, b"\0asm\x01\0\0\0garbage"))
    assert failed(report) == {"module"}
    assert "main.wasm is not a valid WebAssembly module" in reason(report, "module")
    assert all(v == "skip" for n, v in verdicts(report).items() if n != "module")


TRAP_ON_EMPTY = "(if (i32.eq (local.get $len) (i32.const 2)) (then unreachable))"
IMPORT_LOG = '(import "rwq" "log" (func $log (param i32 i32) (result i64)))'
TRAP_ON_LOG_ERROR = f"""(if (i64.ne (call $log (i32.const 512) (i32.const {len(LOG)}))
                                   (i64.const 0)) (then unreachable))"""
IMPORT_SET = '(import "rwq" "storage_set" (func $set (param i32 i32) (result i64)))'
SET = f"(local.set $r (call $set (i32.const 768) (i32.const {len(STORE)})))"
# an answer {"error": ...} has "e" as its third byte; storage_set's usage {"keys": ...} a "k"
TRAP_ON_SET_ERROR = f"""{SET}
  (if (i32.eq (i32.load8_u (i32.add (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 32)))
                                    (i32.const 2))) (i32.const 101)) (then unreachable))"""

BATCHES = {"on-event", "on-event-empty", "on-event-max-batch", "on-event-large",
           "on-event-unknown-types", "repeated-calls", "host-errors"}  # fmt: skip
"""The cases that call on_event: all fail when on_event answers wrong."""
RENDERS = {*BATCHES, "render", "argument-out-of-memory"}
"""The cases that call render: all fail when render answers wrong."""

HOOK_BREAKS = [
    pytest.param(
        {"event_result": "{changed:"}, "on-event", "on_event invalid_output: result is not JSON",
        BATCHES, id="not-json",
    ),
    pytest.param(
        {"render_result": '[{"type":"txt","text":"hi"}]'}, "render",
        "at 80x24: render answered [{\"type\":\"txt\",\"text\":\"hi\"}]: [0]: unknown type 'txt'",
        RENDERS, id="invalid-element",
    ),
    pytest.param(
        {"on_event": TRAP_ON_EMPTY}, "on-event-empty",
        "[]: on_event trap: wasm trap: wasm `unreachable` instruction executed",
        {"on-event-empty"}, id="empty-batch",
    ),
    pytest.param(
        {"reset": False}, "repeated-calls", "its memory grew at every reading",
        {"repeated-calls"}, id="leak",
    ),
    pytest.param(
        {"imports": IMPORT_LOG, "on_event": TRAP_ON_LOG_ERROR}, "host-errors",
        "on_event trap: wasm trap: wasm `unreachable` instruction executed after log "
        "answered internal",
        {"host-errors", "repeated-calls"},  # log is rate-limited: 300 rounds meet the limit
        id="host-error",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "case", "why", "touched"), HOOK_BREAKS)
def test_a_module_breaking_a_hook_rule_fails_that_case(
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    changes: dict[str, object],
    case: str,
    why: str,
    touched: set[str],
) -> None:
    """The case of the rule fails with its reason; only cases calling the broken hook fail."""
    report = run(settings, redis_client, plugin(tmp_path, module(**changes)))  # type: ignore[arg-type]
    assert case in failed(report) and failed(report) <= touched, report.to_dict()
    assert why in reason(report, case)
    assert verdicts(report)["loads"] == "pass" and report.exit_code == 1


def test_a_module_that_traps_on_a_refused_host_call_fails_permission_denied_and_storage_quota(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    wasm = module(imports=IMPORT_SET, on_event=TRAP_ON_SET_ERROR)
    report = run(settings, redis_client, plugin(tmp_path, wasm, permissions="storage.write"))
    assert {"permission-denied", "storage-quota", "host-errors"} <= failed(report)
    assert "after storage_set answered permission_denied" in reason(report, "permission-denied")
    assert "with its store full" in reason(report, "storage-quota")
    assert "after storage_set answered quota_exceeded" in reason(report, "storage-quota")


def test_a_module_that_checks_its_host_calls_passes_storage_quota(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    wasm = module(imports=IMPORT_SET, on_event=SET)
    report = run(settings, redis_client, plugin(tmp_path, wasm, permissions="storage.write"))
    assert report.ok, report.to_dict()
    assert "storage_set answered permission_denied" in reason(report, "permission-denied")
    assert "1 storage_set call answered quota_exceeded" in reason(report, "storage-quota")
    assert "storage_set" in reason(report, "host-errors")
    # without storage.write in its manifest the quota cannot be reached
    other = tmp_path / "other"
    other.mkdir()
    unasked = run(settings, redis_client, plugin(other, wasm))
    assert "does not ask for storage.write" in reason(unasked, "storage-quota")


# -- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_to_do(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    starlark = new_plugin("scripted", "starlark", tmp_path).path
    with pytest.raises(AbiInputError, match="is a starlark plugin: --abi checks compiled"):
        run_conformance(settings, starlark, client=redis_client)
    unbuilt = new_plugin("unbuilt", "c", tmp_path).path
    with pytest.raises(AbiInputError, match=r"main.wasm is missing: .*rwq plugin build"):
        run_conformance(settings, unbuilt, client=redis_client)
    with pytest.raises(AbiInputError, match="no such plugin directory or bundle"):
        run_conformance(settings, tmp_path / "nowhere", client=redis_client)


def test_the_abi_doc_lists_every_case() -> None:
    doc = (REPO / "docs" / "abi.md").read_text(encoding="utf-8")
    section = doc.split("## Conformance: rwq plugin check --abi", 1)[1].split("\n## ", 1)[0]
    for name in EVERY_CASE:
        assert f"| `{name}` |" in section, name
