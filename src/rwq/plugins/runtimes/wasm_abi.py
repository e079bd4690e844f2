"""WASM plugin ABI v1 (``docs/abi.md``): the names and types a module must use, checked.

A module exports ``memory``, ``rwq_alloc``, ``rwq_abi_version`` and one ``rwq_<hook>`` per hook
it implements; it imports host functions from module ``rwq`` (one import per catalog
function, each ``(ptr, len) -> i64``) and WASI preview 1, nothing else. Every value crossing
the boundary is UTF-8 JSON in linear memory, named by ``(ptr, len)``; results are packed into
an ``i64`` as ``ptr << 32 | len`` (``0`` is null).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import wasmtime

from rwq.plugins.contract.host_functions import HOST_FUNCTIONS
from rwq.plugins.runtimes.base import HOOKS, FaultKind, Hook, PluginFault, to_guest_json

ABI_VERSION = 1
HOST_MODULE = "rwq"
WASI_MODULE = "wasi_snapshot_preview1"
EXPORT_PREFIX = "rwq_"
MAX_HOST_ARGUMENT_BYTES = 1 << 20
"""Largest JSON argument a plugin may pass to a host function."""

HOST_TYPE = "(i32, i32) -> i64"
"""The type of every host function import and hook export."""
MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
I32 = wasmtime.ValType.i32()
I64 = wasmtime.ValType.i64()
_RESERVED_EXPORTS = {"rwq_alloc", "rwq_free", "rwq_abi_version"}
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_JSON_ASCII = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


RULES = (
    "imports",
    "memory",
    "rwq_alloc",
    "rwq_abi_version",
    "reactor",
    "hook-exports",
    "required-hooks",
)
"""The rules of a module's shape, in the order :func:`check_module` applies them."""


@dataclass(frozen=True)
class AbiProblem:
    """A way a module breaks one rule of ABI v1's shape."""

    rule: str
    """One of :data:`RULES`."""
    reason: str
    """What is wrong, worded to follow "the module ..." (``does not export rwq_alloc ...``)."""


class AbiVersionMismatch(PluginFault):
    """The module's ``rwq_abi_version`` returned another version than the host speaks."""

    def __init__(self, plugin: str, version: int) -> None:
        self.version = version
        super().__init__(
            plugin, FaultKind.LOAD, f"speaks ABI {version}; this host speaks ABI {ABI_VERSION}"
        )


@dataclass(frozen=True)
class ModuleShape:
    """What a module exports and imports, read against ABI v1."""

    hooks: frozenset[Hook]
    host_imports: tuple[str, ...]
    problems: tuple[AbiProblem, ...]
    """Every rule it breaks (an empty tuple when it meets them all)."""


def check_module(name: str, module: wasmtime.Module) -> tuple[frozenset[Hook], tuple[str, ...]]:
    """The hooks a module exports and the host functions it imports, if it meets ABI v1.

    Raises:
        PluginFault: kind ``load``, naming the first import or export at fault.
    """
    shape = module_shape(module)
    if shape.problems:
        raise PluginFault(name, FaultKind.LOAD, shape.problems[0].reason)
    return shape.hooks, shape.host_imports


def module_shape(module: wasmtime.Module) -> ModuleShape:
    """The hooks and host imports of ``module`` and every rule of ABI v1 it breaks, rule by
    rule in the order of :data:`RULES`."""
    problems: list[AbiProblem] = []

    def refuse(rule: str, reason: str) -> None:
        problems.append(AbiProblem(rule, reason))

    host_imports: list[str] = []
    for imp in module.imports:
        where = f"{imp.module}.{imp.name}"
        if imp.module == HOST_MODULE:
            if imp.name not in HOST_FUNCTIONS:
                refuse(
                    "imports",
                    f"imports {where}, which is not a host function (see docs/host-api.md)",
                )
            elif not is_func(imp.type, [I32, I32], [I64]):
                typed = describe(imp.type)
                refuse("imports", f"imports {where} as {typed}; host functions are {HOST_TYPE}")
            else:
                host_imports.append(imp.name)
        elif imp.module == WASI_MODULE:
            if not isinstance(imp.type, wasmtime.FuncType):
                refuse("imports", f"imports {where}, which is not a WASI function")
        else:
            refuse(
                "imports",
                f"imports {where}; only host functions (rwq.*) and WASI preview 1 "
                f"({WASI_MODULE}.*) are linked",
            )
    exports = {e.name: e.type for e in module.exports}
    memory = exports.get("memory")
    if not isinstance(memory, wasmtime.MemoryType) or memory.is_64 or memory.is_shared:
        refuse("memory", "does not export its linear memory as `memory` (32-bit, not shared)")
    if not is_func(exports.get("rwq_alloc"), [I32], [I32]):
        refuse("rwq_alloc", "does not export rwq_alloc(size: i32) -> i32")
    if not is_func(exports.get("rwq_abi_version"), [], [I32]):
        refuse("rwq_abi_version", "does not export rwq_abi_version() -> i32")
    if "_start" in exports and "_initialize" not in exports:
        refuse("reactor", "is a WASI command (exports _start); build it as a reactor")
    if "_initialize" in exports and not is_func(exports["_initialize"], [], []):
        refuse("reactor", "exports _initialize with a type other than () -> ()")
    known = {hook.value for hook in Hook}
    hooks: set[Hook] = set()
    for export, kind in exports.items():
        if not export.startswith(EXPORT_PREFIX) or export in _RESERVED_EXPORTS:
            continue
        hook = export[len(EXPORT_PREFIX) :]
        if hook not in known:
            near = difflib.get_close_matches(hook, sorted(known), n=1)
            hint = f"did you mean {EXPORT_PREFIX}{near[0]}? " if near else ""
            refuse(
                "hook-exports",
                f"exports {export}, which is not a hook ({hint}hooks: {', '.join(sorted(known))})",
            )
        elif not is_func(kind, [I32, I32], [I64]):
            refuse(
                "hook-exports",
                f"exports {export} as {describe(kind)}; hooks are {HOST_TYPE}",
            )
        else:
            hooks.add(Hook(hook))
    for spec in HOOKS.values():
        export = f"{EXPORT_PREFIX}{spec.hook.value}"
        if spec.required and export not in exports:  # mistyped, it broke "hook-exports"
            refuse("required-hooks", f"does not export the required hook {export}")
    return ModuleShape(frozenset(hooks), tuple(host_imports), tuple(problems))


def is_func(kind: object, params: list[wasmtime.ValType], results: list[wasmtime.ValType]) -> bool:
    return isinstance(kind, wasmtime.FuncType) and kind.params == params and kind.results == results


def describe(kind: object) -> str:
    if isinstance(kind, wasmtime.FuncType):
        params = ", ".join(str(p) for p in kind.params)
        results = ", ".join(str(r) for r in kind.results) or "()"
        return f"({params}) -> {results}"
    return type(kind).__name__.removesuffix("Type").lower()


def pack(ptr: int, length: int) -> int:
    """``ptr << 32 | len`` as the signed i64 wasmtime passes."""
    packed = (ptr << 32) | length
    return packed - (1 << 64) if packed >= 1 << 63 else packed


def unpack(packed: int) -> tuple[int, int]:
    """``(ptr, len)`` of a packed i64 (signed or not)."""
    packed &= MASK64
    return packed >> 32, packed & MASK32


def decode_json(raw: bytes | bytearray) -> Any:
    """Strict UTF-8 JSON: one value, no ``NaN``/``Infinity``.

    Raises:
        ValueError: with the reason, beginning "is not UTF-8" or "is not JSON".
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"is not JSON: {str(exc)[:200]}") from None


def encode_json(value: Any) -> bytes:
    """UTF-8 JSON of ``value``; empty for null (passed as ``(0, 0)``)."""
    if value is None:
        return b""
    return to_guest_json(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
