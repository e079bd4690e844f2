"""``rwq plugin check --abi``: the module's shape read against ABI v1, then the plugin hosted as
``rwq plugin check`` hosts it and every case of :data:`CASES` run on fresh instances."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import wasmtime

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.manifest import load_manifest
from rwq.plugins.runtimes.wasm import WasmRuntime
from rwq.plugins.runtimes.wasm_abi import (
    ABI_VERSION,
    RULES,
    AbiVersionMismatch,
    ModuleShape,
    error_text,
    module_shape,
)
from rwq.toolkit.abi.edges import EDGE_CASES
from rwq.toolkit.abi.harness import Harness, hosted
from rwq.toolkit.abi.hooks import HOOK_CASES
from rwq.toolkit.abi.report import (
    AbiInputError,
    AbiReport,
    Case,
    CaseFailed,
    NotExercised,
    Verdict,
)

__all__ = ["CASES", "SHAPE_CASES", "run_conformance"]

SHAPE_CASES: dict[str, str] = {
    "module": "it is a WebAssembly module wasmtime compiles",
    "imports": "it imports only host functions of the catalog (module rwq, each "
    "(i32, i32) -> i64) and WASI preview 1 functions",
    "memory": "it exports its linear memory as `memory` (32-bit, not shared)",
    "rwq_alloc": "it exports rwq_alloc(i32) -> i32",
    "rwq_abi_version": f"it exports rwq_abi_version() -> i32, which returns {ABI_VERSION}",
    "reactor": "it is a WASI reactor: no `_start` without `_initialize`, which is () -> ()",
    "hook-exports": "every other rwq_* export is a hook of ABI v1, typed (i32, i32) -> i64",
    "required-hooks": "it exports rwq_render",
    "loads": "the host instantiates it within max_memory and starts it (_initialize, "
    "rwq_abi_version, initialize, activate) with nothing granted",
}
"""The cases read from the module and its load by the host, with what each proves."""

CASES: tuple[Case, ...] = (*HOOK_CASES, *EDGE_CASES)
"""The cases run on fresh instances of a module the host loaded, in order."""


def run_conformance(
    settings: Settings,
    path: Path,
    *,
    companions: Sequence[Path] = (),
    client: Any = None,
) -> AbiReport:
    """Run every case on the compiled plugin at ``path`` (a directory or a zip bundle).

    Args:
        settings: where Redis is (the embedded Valkey unless ``redis_url``); the host gets a
            temporary state dir and a private key prefix.
        companions: bundles loaded beside it, granted what they ask (its dependencies).
        client: a Redis client to use instead of connecting with ``settings``.

    Raises:
        AbiInputError: ``path`` is no compiled plugin (a Starlark one, its module not built,
            not a bundle), a companion cannot be opened, or Redis cannot be reached.
    """
    _require_module(path)
    with tempfile.TemporaryDirectory(prefix="rwq-abi-") as tmp:
        scratch = Path(tmp)
        try:
            bundle = open_bundle(path, extract_dir=scratch / "extract")
            others = [(open_bundle(p, extract_dir=scratch / "extract"), p) for p in companions]
        except RwqError as exc:
            raise AbiInputError(str(exc)) from None
        if bundle.manifest.runtime != "wasm":
            raise _starlark(path, bundle.manifest.runtime)
        report = AbiReport(
            {"name": bundle.name, "version": str(bundle.version), "path": str(path),
             "sha256": bundle.sha256},
        )  # fmt: skip
        runtime = WasmRuntime(cache_dir=scratch / "cache")
        try:
            shape = _read_module(report, bundle, runtime)
        except BaseException:
            runtime.close()
            raise
        if shape is None or shape.problems:
            runtime.close()
            _skip_all(report, "not run: the host refuses a module that breaks the rules above")
            return report
        if client is None:
            client = _connect(settings, runtime)
        try:
            with hosted(settings, bundle, path, others, client, scratch, runtime, shape) as h:
                _loads(report, h)
                if h.manager.state(h.name) is PluginState.ACTIVE:
                    for case in CASES:
                        report.add(case.name, *_run(case, h))
                else:
                    _skip_all(report, "not run: the host did not start it (see loads)")
        finally:
            runtime.close()  # the host closes it too, unless building the host failed
        return report


def _require_module(path: Path) -> None:
    """A plugin directory names a module that was built (a zip is checked when opened)."""
    if not path.is_dir():
        if not path.exists():
            raise AbiInputError(f"{path}: no such plugin directory or bundle")
        return
    try:
        manifest = load_manifest(path)
    except RwqError as exc:
        raise AbiInputError(str(exc)) from None
    if manifest.runtime != "wasm":
        raise _starlark(path, manifest.runtime)
    if not (path / manifest.entry_point).is_file():
        raise AbiInputError(
            f"{path / manifest.entry_point} is missing: build the module first with "
            f"`rwq plugin build {path}`"
        )


def _starlark(path: Path, runtime: str) -> AbiInputError:
    return AbiInputError(
        f"{path} is a {runtime} plugin: --abi checks compiled (WASM) modules against the ABI; "
        f"run `rwq plugin check {path}` without --abi"
    )


def _connect(settings: Settings, runtime: WasmRuntime) -> Any:
    from rwq.connection import connect

    try:
        return connect(settings)
    except RwqError as exc:
        runtime.close()
        raise AbiInputError(str(exc)) from None


def _read_module(report: AbiReport, bundle: Bundle, runtime: WasmRuntime) -> ModuleShape | None:
    """The shape cases: the module compiled and read against each rule."""
    name = bundle.manifest.entry_point
    try:
        module, _ = runtime.cache.module(bundle.entry_point.read_bytes())
    except OSError as exc:
        raise AbiInputError(f"cannot read {bundle.entry_point}: {exc.strerror}") from None
    except wasmtime.WasmtimeError as exc:
        report.add("module", "fail", f"{name} is not a valid WebAssembly module: "
                   f"{error_text(exc)}")  # fmt: skip
        return None
    report.add("module", "pass", f"{name} compiled")
    shape = module_shape(module)
    broken = {problem.rule: problem.reason for problem in reversed(shape.problems)}
    for rule in RULES:
        if rule in broken:
            report.add(rule, "fail", f"the module {broken[rule]}")
        else:
            report.add(rule, "pass", _kept(rule, shape))
    return shape


def _kept(rule: str, shape: ModuleShape) -> str:
    if rule == "imports":
        names = ", ".join(shape.host_imports) or "none"
        return f"host functions imported: {names}"
    if rule == "hook-exports":
        return f"hooks exported: {', '.join(sorted(h.value for h in shape.hooks))}"
    if rule == "rwq_abi_version":
        return "exported as () -> i32"
    return "as required"


def _loads(report: AbiReport, h: Harness) -> None:
    fault = h.runtime.fault
    version: tuple[Verdict, str]
    if isinstance(fault, AbiVersionMismatch):
        version = ("fail", f"rwq_abi_version() returned {fault.version}; this host speaks "
                   f"ABI {ABI_VERSION}")  # fmt: skip
    elif h.runtime.entry_point is None or fault is not None:
        version = ("skip", "not called: the host did not instantiate the module (see loads)")
    else:
        version = ("pass", f"returned {ABI_VERSION}")
    report.cases = [
        c if c.name != "rwq_abi_version" else type(c)(c.name, *version) for c in report.cases
    ]
    state = h.manager.state(h.name)
    if state is PluginState.ACTIVE:
        report.add("loads", "pass", f"started by the host in {h.load_ms:g} ms, nothing granted")
        return
    reason = h.manager.reason(h.name) or f"it is {state.value}"
    here = set(h.manager.plugins())
    missing = [d.name for d in h.bundle.manifest.dependencies if d.name not in here]
    hint = f" (load its dependencies beside it with --with PATH: {', '.join(missing)})"
    report.add("loads", "fail", reason + (hint if missing else ""))


def _run(case: Case, h: Harness) -> tuple[Verdict, str]:
    if case.needs and not any(hook in h.hooks for hook in case.needs):
        exports = " or ".join(f"rwq_{hook.value}" for hook in case.needs)
        return "skip", f"not exported: {exports}"
    try:
        return "pass", case.run(h)
    except CaseFailed as failed:
        return "fail", str(failed)
    except NotExercised as why:
        return "skip", f"not exercised: {why}"


def _skip_all(report: AbiReport, reason: str) -> None:
    done = {case.name for case in report.cases}
    for name in [*SHAPE_CASES, *(case.name for case in CASES)]:
        if name not in done:
            report.add(name, "skip", reason)
