"""The conformance run's host: the plugin loaded by the builder ``rwq plugin check`` uses, with
nothing granted, a private state dir and key prefix; and fresh instances of its module in the
same wasmtime runtime, each under the manifest's limits, calling the real host API as the
plugin, every host call recorded with the answer it got."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.plugins.contract.errors import ErrorCode, HostCallError
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.host_api.service import PluginBinding
from rwq.plugins.host_api.slots import Slot, host_call_for
from rwq.plugins.host_api.storage import MAX_VALUE_BYTES, StorageUsage
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.user_config import effective_config
from rwq.plugins.runtimes.base import (
    Hook,
    HostCall,
    PluginFault,
    PluginInstance,
    PluginRuntime,
    ResourceLimits,
)
from rwq.plugins.runtimes.wasm import WasmInstance, WasmRuntime
from rwq.plugins.runtimes.wasm_abi import ModuleShape
from rwq.toolkit.abi.answers import check_answer, shown
from rwq.toolkit.abi.report import CaseFailed

__all__ = ["Guest", "Harness", "HookCall", "HostCallMade", "hosted"]

STORAGE = ("storage.read", "storage.write")
INJECTED = (
    ErrorCode.INTERNAL,
    ErrorCode.RATE_LIMITED,
    ErrorCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND,
)
"""The errors the host-errors case answers host calls with, in turn."""


@dataclass(frozen=True)
class HostCallMade:
    """A host call a plugin made and how it was answered."""

    function: str
    args: Any
    code: str | None
    """The error code of the answer; None when the call succeeded."""

    def __str__(self) -> str:
        return self.function if self.code is None else f"{self.function} ({self.code})"


@dataclass(frozen=True)
class HookCall:
    """A hook called, the host calls the plugin made meanwhile, and its fault if it had one."""

    hook: Hook
    host_calls: tuple[HostCallMade, ...]
    fault: PluginFault | None


class HostCalls:
    """The ``host_call`` of one fresh instance: to the real host API, or, when ``inject``, an
    error of :data:`INJECTED` for every call; each call is recorded."""

    def __init__(self, host_call: HostCall, inject: bool) -> None:
        self._host_call = host_call
        self.inject = inject
        self.made: list[HostCallMade] = []

    def __call__(self, plugin: str, function: str, args: Any) -> Any:
        if self.inject:
            code = INJECTED[len(self.made) % len(INJECTED)]
            self.made.append(HostCallMade(function, args, code.value))
            raise HostCallError(
                "injected by rwq plugin check --abi", code=code, plugin=plugin, function=function
            )
        try:
            result = self._host_call(plugin, function, args)
        except HostCallError as exc:
            self.made.append(HostCallMade(function, args, exc.code.value))
            raise
        except Exception:
            self.made.append(HostCallMade(function, args, ErrorCode.INTERNAL.value))
            raise
        self.made.append(HostCallMade(function, args, None))
        return result


def fault_text(fault: PluginFault) -> str:
    """``on_event trap: wasm trap: ...``: a fault as a reason line."""
    return f"{fault.hook or 'load'} {fault.kind.value}: {fault.reason}"


class Guest:
    """One fresh instance of the plugin's module; :meth:`call` checks every answer."""

    def __init__(self, instance: WasmInstance, calls: HostCalls, journal: list[HookCall]) -> None:
        self.instance = instance
        self.calls = calls
        self.fault: PluginFault | None = None
        """The fault of its last call, if it faulted."""
        self._journal = journal

    @property
    def hooks(self) -> frozenset[Hook]:
        return self.instance.exports()

    def call(self, hook: Hook, argument: Any = None) -> Any:
        """The answer of ``hook`` (None when it is not exported), checked against the ABI.

        Raises:
            CaseFailed: the call faulted, or the answer is not one of ``hook``.
        """
        first = len(self.calls.made)
        try:
            result = self.faulting(hook, argument)
        except PluginFault as fault:
            refused = [c for c in self.calls.made[first:] if c.code is not None]
            after = f" after {refused[-1].function} answered {refused[-1].code}" if refused else ""
            raise CaseFailed(fault_text(fault) + after) from None
        why = check_answer(hook, result) if hook in self.hooks else None
        if why is not None:
            raise CaseFailed(f"{hook.value} answered {shown(result)}: {why}")
        return result

    def faulting(self, hook: Hook, argument: Any = None) -> Any:
        """The raw result of ``hook``, unchecked; a fault is raised (and journaled)."""
        first = len(self.calls.made)
        self.fault = None
        try:
            result = self.instance.call(hook, argument)
        except PluginFault as fault:
            self.fault = fault
            self._note(hook, first, fault)
            raise
        self._note(hook, first, None)
        return result

    def start(self, config: dict[str, Any]) -> None:
        """``initialize(config)`` then ``activate``, as the host starts a plugin.

        Raises:
            CaseFailed: either faulted or answered wrong, or ``initialize`` refused to start.
        """
        refusal = self.call(Hook.INITIALIZE, config)
        if refusal is not None:
            raise CaseFailed(f"initialize refused to start: {refusal['error'][:200]}")
        self.call(Hook.ACTIVATE)

    def timers(self) -> list[str]:
        """The ids of the timers this instance set, in the order it set them."""
        ids = [
            c.args.get("id")
            for c in self.calls.made
            if c.function == "set_timer" and c.code is None and isinstance(c.args, dict)
        ]
        return list(dict.fromkeys(i for i in ids if isinstance(i, str)))

    def _note(self, hook: Hook, first: int, fault: PluginFault | None) -> None:
        self._journal.append(HookCall(hook, tuple(self.calls.made[first:]), fault))

    def close(self) -> None:
        self.instance.close()


class _Capture:
    """The wasm runtime the host loads the plugin with, noting how it loaded it: its module,
    limits and any load fault."""

    kind = "wasm"

    def __init__(self, inner: WasmRuntime, plugin: str) -> None:
        self.inner = inner
        self.plugin = plugin
        self.entry_point: Path | None = None
        self.limits: ResourceLimits | None = None
        self.fault: PluginFault | None = None

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> PluginInstance:
        if name != self.plugin:
            return self.inner.load(name, entry_point, limits, host_call)
        self.entry_point, self.limits = entry_point, limits
        try:
            return self.inner.load(name, entry_point, limits, host_call)
        except PluginFault as fault:
            self.fault = fault
            raise

    def close(self) -> None:
        self.inner.close()


@dataclass
class Harness:
    """The plugin hosted for the cases, and the means to drive fresh instances of it."""

    bundle: Bundle
    hooks: frozenset[Hook]
    """The hooks the module exports."""
    host_imports: tuple[str, ...]
    """The host functions the module imports."""
    manager: PluginManager
    runtime: _Capture
    load_ms: float
    journal: list[HookCall] = field(default_factory=list)
    """Every hook call of every fresh instance (but those with injected errors), in order."""

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def config(self) -> dict[str, Any]:
        """What ``initialize`` gets: the manifest's defaults (no user configuration here)."""
        return effective_config(self.bundle.manifest.config, {})

    @property
    def limits(self) -> ResourceLimits:
        assert self.runtime.limits is not None
        return self.runtime.limits

    def guest(self, *, inject: bool = False) -> Guest:
        """A fresh instance, not started: the manifest's limits, the host API acting as the
        plugin (as its loaded version and bundle), or injected errors."""
        manager, entry_point = self.manager, self.runtime.entry_point
        assert entry_point is not None
        slot = Slot(self.name, PluginBinding(str(self.bundle.version), self.bundle.sha256))
        calls = HostCalls(host_call_for(slot, manager.host_api, manager.audit, _no_wake), inject)
        try:
            instance = self.runtime.inner.load(self.name, entry_point, self.limits, calls)
        except PluginFault as fault:
            raise CaseFailed(f"a fresh instance did not load: {fault.reason}") from None
        return Guest(instance, calls, [] if inject else self.journal)

    @contextmanager
    def started(self, *, inject: bool = False) -> Iterator[Guest]:
        """A fresh instance, initialized and activated; closed afterwards."""
        guest = self.guest(inject=inject)
        try:
            guest.start(self.config)
            yield guest
        finally:
            guest.close()

    def grant_storage(self) -> list[str]:
        """Grant the storage permissions the manifest asks for (never more); their names."""
        m = self.bundle.manifest
        asked = sorted({p.name for p in m.permissions} & set(STORAGE))
        if asked:
            self.manager.grants.grant_requested(
                self.name, m.permissions, asked, version=str(self.bundle.version),
                bundle_hash=self.bundle.sha256, granted_by="rwq plugin check --abi",
            )  # fmt: skip
        return asked

    def fill_storage(self) -> StorageUsage:
        """Fill the plugin's store to its quota of bytes (or keys), so any new key is
        refused."""
        store = self.manager.host_api.storage(self.name)
        usage = store.usage()
        n = 0
        while usage.keys < usage.max_keys and usage.bytes < usage.max_bytes:
            key = f"rwq-abi-check-{n:06d}"
            room = usage.max_bytes - usage.bytes - len(key)
            if room <= 0:
                break
            size = min(MAX_VALUE_BYTES, room)
            if 0 < room - size < 64:  # leave the last key room for more than a few bytes
                size = room // 2
            usage = store.set(key, "x" * size)
            n += 1
        return usage


def _no_wake() -> None:
    """Timers a fresh instance sets fire at the host's own instance, not at it."""


@contextmanager
def hosted(
    settings: Settings,
    bundle: Bundle,
    path: Path,
    companions: Sequence[tuple[Bundle, Path]],
    client: Any,
    scratch: Path,
    runtime: WasmRuntime,
    shape: ModuleShape,
) -> Iterator[Harness]:
    """The plugin at ``path`` hosted as ``rwq plugin check`` hosts it (its companions granted
    what they ask, it nothing), started; stopped on the way out."""
    from rwq.host.build import HostOptions, build_host
    from rwq.host.check import isolated
    from rwq.plugins.engine.lifecycle import FaultPolicy

    capture = _Capture(runtime, bundle.name)
    runtimes: dict[str, PluginRuntime] = {"wasm": capture}
    if any(b.manifest.runtime == "starlark" for b, _ in companions):
        from rwq.plugins.runtimes.starlark import StarlarkRuntime

        runtimes["starlark"] = StarlarkRuntime()
    with isolated(settings, scratch, [(bundle, path), *companions], client) as local:
        options = HostOptions(
            reloads=False,
            feeds=False,
            runtimes=lambda: runtimes,
            fault_policy=FaultPolicy(backoff_initial=3600.0),  # no reload mid-run
        )
        manager = build_host(local, client, options).manager
        try:
            for other, _ in companions:
                asked = [p.name for p in other.manifest.permissions]
                if asked and other.name != bundle.name:
                    manager.grants.grant(
                        other.name, asked, version=str(other.version),
                        bundle_hash=other.sha256, granted_by="rwq plugin check --abi --with",
                    )  # fmt: skip
            started = time.perf_counter()
            manager.start()
            pending = [p for p in manager.pending_approvals() if p.plugin == bundle.name]
            if pending:  # nothing is granted: every permission asked for is denied
                manager.deny(bundle.name, sorted(pending[0].review.pending), denied_by="--abi")
            load_ms = (time.perf_counter() - started) * 1000
            yield Harness(
                bundle, shape.hooks, shape.host_imports, manager, capture, round(load_ms, 1)
            )
        finally:
            manager.stop()
