"""One plugin in its own wasmtime store: calls under a deadline, values checked both ways.

The store caps the plugin's linear memory; each call gets an epoch deadline (fuel in
deterministic mode) and its CPU time is charged to the plugin's budget; imported host
functions read their JSON arguments out of the plugin's memory and write their results back
through ``rwq_alloc``; everything the plugin returns is bounds-, size-, UTF-8- and
JSON-checked before the host uses it (``docs/abi.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime

from rwq.plugins.contract.errors import HostCallError, InternalError, InvalidArgument, error_result
from rwq.plugins.runtimes.base import FaultKind, Hook, HostCall, PluginFault, ResourceLimits
from rwq.plugins.runtimes.budget import CpuBudget
from rwq.plugins.runtimes.output import PluginOutput
from rwq.plugins.runtimes.wasm_abi import (
    ABI_VERSION,
    EXPORT_PREFIX,
    HOST_MODULE,
    MASK32,
    MAX_HOST_ARGUMENT_BYTES,
    WASI_MODULE,
    AbiVersionMismatch,
    decode_json,
    encode_json,
    error_text,
    pack,
    unpack,
)

if TYPE_CHECKING:
    from rwq.plugins.runtimes.wasm import WasmRuntime

log = logging.getLogger(__name__)

MAX_TABLE_ELEMENTS = 100_000
_PAGE = 65536
_ESUCCESS, _EFAULT, _ENOTSUP = 0, 21, 58


class _Abort(Exception):
    """Stops a call from host code; ``trapped`` when it unwound plugin code."""

    def __init__(self, kind: FaultKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.trapped = False


class _BadValue(Exception):
    """A (ptr, len) the plugin handed over is out of bounds, too big, not UTF-8 or not JSON."""


class WasmInstance:
    """One plugin in its own wasmtime store (see :class:`rwq.plugins.runtimes.base.
    PluginInstance`).

    Calls are serialised (a store is single-threaded). After a trap, a timeout or an aborted
    host call the plugin's memory may be half-updated, so the instance refuses further calls
    (``crash``) and the host reloads it; an invalid result or a refused argument allocation
    leaves it usable.
    """

    load_source: str = "compiled"
    """Where the compiled module came from: ``compiled``, ``disk`` or ``memory``."""

    def __init__(
        self,
        runtime: WasmRuntime,
        name: str,
        module: wasmtime.Module,
        hooks: frozenset[Hook],
        host_imports: tuple[str, ...],
        limits: ResourceLimits,
        host_call: HostCall,
    ) -> None:
        self.name = name
        self.limits = limits
        self.budget = CpuBudget(limits.max_cpu_percent, runtime.cpu_window_s)
        self.output = PluginOutput(name, runtime.output_keep_bytes, runtime.output_bytes_per_call)
        self._host = host_call
        self._ticker = runtime.ticker
        self._det = runtime.deterministic
        self._ticks = max(1, math.ceil(limits.timeout_s / runtime.tick_s)) + 1
        self._fuel = max(1, int(limits.timeout_s * self._det.fuel_per_second)) if self._det else 0
        self._rng = random.Random(self._det.seed if self._det else None)
        self._clock_reads = 0
        self._lock = threading.RLock()
        self._depth = 0
        self._broken: str | None = None
        self._close_pending = False
        self._cpu_s = 0.0
        self._started = 0.0
        self._hooks: dict[Hook, wasmtime.Func] = {}
        self._alloc: wasmtime.Func | None = None
        self.fuel_used = 0
        """Fuel the plugin burnt (deterministic mode)."""

        _LIVE.add(self)
        store = wasmtime.Store(runtime.engine)
        store.set_limits(
            memory_size=limits.max_memory_bytes,
            table_elements=MAX_TABLE_ELEMENTS,
            instances=1,
            tables=4,
            memories=1,
        )
        wasi = wasmtime.WasiConfig()  # nothing inherited: no argv, env, preopens or stdin
        wasi.stdout_custom = self.output.stdout
        wasi.stderr_custom = self.output.stderr
        store.set_wasi(wasi)
        self._store: wasmtime.Store | None = store
        linker = wasmtime.Linker(runtime.engine)
        linker.define_wasi()
        linker.allow_shadowing = True
        self._define_wasi_overrides(linker, runtime.wasi_types)
        for function in host_imports:
            linker.define_func(
                HOST_MODULE,
                function,
                runtime.host_function_type,
                self._host_function(function),
                True,
            )
        self._memory: wasmtime.Memory | None = None
        try:
            self._arm(store)
            try:
                abi = self._start(store, linker, module, hooks)
            finally:
                self._account(store)
        except (wasmtime.Trap, wasmtime.WasmtimeError, _Abort) as exc:
            kind, reason = self._classify(exc)
            self.close()
            reason = f"{kind.value} while starting: {reason}"
            raise PluginFault(name, FaultKind.LOAD, reason) from None
        if abi != ABI_VERSION:
            self.close()
            raise AbiVersionMismatch(name, abi)

    def _start(
        self,
        store: wasmtime.Store,
        linker: wasmtime.Linker,
        module: wasmtime.Module,
        hooks: frozenset[Hook],
    ) -> int:
        """Instantiate, run the reactor's ``_initialize`` and return the ABI version."""
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        memory, alloc = exports["memory"], exports["rwq_alloc"]
        assert isinstance(memory, wasmtime.Memory) and isinstance(alloc, wasmtime.Func)
        self._memory, self._alloc = memory, alloc
        for hook in hooks:
            func = exports[f"{EXPORT_PREFIX}{hook.value}"]
            assert isinstance(func, wasmtime.Func)
            self._hooks[hook] = func
        init = exports.get("_initialize")
        if isinstance(init, wasmtime.Func):
            init(store)
        version = exports["rwq_abi_version"]
        assert isinstance(version, wasmtime.Func)
        return int(version(store))

    # -- the PluginInstance protocol ----------------------------------------------------

    def exports(self) -> frozenset[Hook]:
        """The hooks the plugin implements."""
        return frozenset(self._hooks)

    def call(self, hook: Hook, argument: Any) -> Any:
        """Call a hook with a JSON argument; a hook the plugin does not export returns None.

        Raises:
            PluginFault: trap, timeout, memory, invalid output, or ``crash`` when the instance
                was broken by an earlier fault or closed.
        """
        func = self._hooks.get(hook)
        if func is None:
            return None
        data = encode_json(argument)
        with self._lock:
            store = self._store
            if self._depth:
                raise PluginFault(
                    self.name, FaultKind.CRASH, "called again while a call is running", hook
                )
            if self._broken is not None or store is None:
                raise PluginFault(self.name, FaultKind.CRASH, self._broken or "closed", hook)
            self._depth += 1
            self.output.begin_call()
            self._arm(store)
            try:
                ptr = self._put(store, data) if data else 0
                packed = func(store, ptr, len(data) if data else 0)
                return self._result(store, packed, hook)
            except (wasmtime.Trap, wasmtime.WasmtimeError, _Abort) as exc:
                kind, reason = self._classify(exc)
                if not isinstance(exc, _Abort) or exc.trapped:
                    self._broken = f"unusable after a {kind.value} fault in {hook.value}: {reason}"
                raise PluginFault(self.name, kind, reason, hook) from None
            except PluginFault:  # an invalid result: the plugin is intact
                raise
            except BaseException:  # interrupted mid-call (KeyboardInterrupt): state unknown
                self._broken = f"unusable after an interrupted call of {hook.value}"
                raise
            finally:
                self._depth -= 1
                self._account(store)
                self.output.end_call()
                if self._close_pending:
                    self.close()

    def memory_bytes(self) -> int:
        """Bytes of linear memory the plugin holds."""
        store, memory = self._store, self._memory
        if store is None or memory is None:
            return 0
        return memory.data_len(store)

    def cpu_seconds(self) -> float:
        """CPU time spent in calls (derived from fuel in deterministic mode)."""
        return self._cpu_s

    def close(self) -> None:
        """Release the store; a close during one of the plugin's own calls happens when the
        call returns. Never raises."""
        with self._lock:
            if self._depth:
                self._close_pending = True
                return
            store, self._store, self._memory = self._store, None, None
            self._broken = self._broken or "closed"
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    # -- extras for the manager -----------------------------------------------------------

    @property
    def throttled(self) -> bool:
        """Whether the plugin used more than ``max_cpu`` over the runtime's window."""
        return self.budget.throttled

    def start_budget(self) -> None:
        """Count the CPU budget from now on (what loading used is not charged)."""
        self.budget.clear()

    @property
    def cpu_share(self) -> tuple[float, float]:
        """The percentage of a core used lately, and the window in seconds it is taken over."""
        return self.budget.share_percent(), self.budget.window_s

    @property
    def usable(self) -> bool:
        """False once a fault broke the instance or it was closed."""
        return self._broken is None

    @property
    def from_cache(self) -> bool:
        """Whether the module was not compiled for this load."""
        return self.load_source != "compiled"

    # -- calls --------------------------------------------------------------------------

    def _arm(self, store: wasmtime.Store) -> None:
        """Give the next call its deadline and start counting its CPU time."""
        if self._fuel:
            store.set_fuel(self._fuel)
        else:
            store.set_epoch_deadline(self._ticks)
        if self._ticker is not None:
            self._ticker.enter()
        self._started = time.thread_time()

    def _account(self, store: wasmtime.Store) -> None:
        if self._fuel and self._det is not None:
            try:
                used = self._fuel - store.get_fuel()
            except wasmtime.WasmtimeError:
                used = self._fuel
            self.fuel_used += used
            seconds = used / self._det.fuel_per_second
        else:
            seconds = time.thread_time() - self._started
        if self._ticker is not None:
            self._ticker.leave()
        self._cpu_s += seconds
        self.budget.add(seconds)

    def _put(self, store: wasmtime.Store | wasmtime.Caller, data: bytes) -> int:
        """Copy ``data`` into a buffer the plugin allocates; returns its address."""
        memory, alloc = self._memory, self._alloc
        if memory is None or alloc is None:
            raise _Abort(FaultKind.CRASH, "host call before the instance was ready")
        ptr: int = alloc(store, len(data)) & MASK32
        if ptr == 0:
            raise _Abort(
                FaultKind.MEMORY,
                f"rwq_alloc({len(data)}) failed (max_memory {self.limits.max_memory_bytes})",
            )
        if ptr + len(data) > memory.data_len(store):
            raise _Abort(
                FaultKind.INVALID_OUTPUT,
                f"rwq_alloc({len(data)}) returned {ptr}, outside the plugin's memory",
            )
        memory.write(store, data, ptr)
        return ptr

    def _result(self, store: wasmtime.Store, packed: int, hook: Hook) -> Any:
        if packed == 0:
            return None
        ptr, length = unpack(packed)
        try:
            return self._read_json(store, ptr, length, self.limits.max_output_bytes)
        except _BadValue as exc:
            raise PluginFault(self.name, FaultKind.INVALID_OUTPUT, f"result {exc}", hook) from None

    def _read_json(
        self, store: wasmtime.Store | wasmtime.Caller, ptr: int, length: int, cap: int
    ) -> Any:
        memory = self._memory
        assert memory is not None
        if length > cap:
            raise _BadValue(f"of {length} bytes is over the cap of {cap}")
        size = memory.data_len(store)
        if length == 0 or ptr + length > size:
            raise _BadValue(f"({ptr}, {length}) is not inside the plugin's {size}-byte memory")
        try:
            return decode_json(memory.read(store, ptr, ptr + length))
        except ValueError as exc:
            raise _BadValue(str(exc)) from None

    def _classify(self, exc: BaseException) -> tuple[FaultKind, str]:
        if isinstance(exc, _Abort):
            return exc.kind, exc.reason
        if isinstance(exc, wasmtime.ExitTrap):
            return FaultKind.TRAP, f"called proc_exit({exc.code})"
        if isinstance(exc, wasmtime.Trap):
            code = exc.trap_code
            if code in (wasmtime.TrapCode.INTERRUPT, wasmtime.TrapCode.OUT_OF_FUEL):
                budget = f"{self._fuel} fuel" if self._fuel else f"{self.limits.timeout_s:g}s"
                return FaultKind.TIMEOUT, f"ran past its timeout ({budget})"
            reason = error_text(exc)
            frames = exc.frames
            if frames and frames[0].func_name:
                reason += f" in {frames[0].func_name}"
            if self._near_memory_cap():
                return FaultKind.MEMORY, f"{reason} with its memory at max_memory"
            return FaultKind.TRAP, reason
        if isinstance(exc, wasmtime.WasmtimeError):
            # The engine refused something the plugin's code did (e.g. a WASI call with
            # arguments out of range): the plugin's fault, like a trap.
            return FaultKind.TRAP, error_text(exc)
        return FaultKind.CRASH, error_text(exc)

    def _near_memory_cap(self) -> bool:
        """Whether a trap happened with memory so close to the cap that a refused
        ``memory.grow`` most likely caused it."""
        cap = self.limits.max_memory_bytes
        return self.memory_bytes() > cap - max(_PAGE, cap // 16)

    # -- imports ------------------------------------------------------------------------

    def _host_function(self, function: str) -> Callable[[wasmtime.Caller, int, int], int]:
        def host_function(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            return self._serve(caller, function, ptr & MASK32, length & MASK32)

        host_function.__name__ = f"rwq.{function}"
        return host_function

    def _serve(self, caller: wasmtime.Caller, function: str, ptr: int, length: int) -> int:
        """Run one imported host function: read its JSON argument, call the host API as
        this plugin, hand the JSON result (or error) back in the plugin's memory."""
        result: Any
        try:
            args = self._read_json(caller, ptr, length, MAX_HOST_ARGUMENT_BYTES) if length else None
        except _BadValue as exc:
            result = error_result(
                InvalidArgument(f"arguments {exc}", plugin=self.name, function=function)
            )
        else:
            try:
                result = self._host(self.name, function, args)
            except Exception as exc:  # every failure is an error result for the plugin
                if not isinstance(exc, HostCallError):
                    log.exception("host function %s failed for plugin %s", function, self.name)
                result = error_result(exc)
        try:
            data = encode_json(result)
        except (TypeError, ValueError):
            log.error("host function %s returned a non-JSON value to %s", function, self.name)
            data = encode_json(error_result(InternalError("internal error (see the host log)")))
        if not data:
            return 0
        try:
            out = self._put(caller, data)
        except _Abort as exc:
            exc.trapped = True
            raise
        return pack(out, len(data))

    def _define_wasi_overrides(
        self, linker: wasmtime.Linker, types: dict[str, wasmtime.FuncType]
    ) -> None:
        """Shadow the WASI functions that would block the host or break determinism."""
        linker.define_func(WASI_MODULE, "poll_oneoff", types["poll_oneoff"], _refuse_poll)
        if self._det is None:
            return
        for name, func in (
            ("clock_time_get", self._clock_time_get),
            ("clock_res_get", self._clock_res_get),
            ("random_get", self._random_get),
        ):
            linker.define_func(WASI_MODULE, name, types[name], func, True)

    def _guest_write(self, caller: wasmtime.Caller, ptr: int, data: bytes) -> int:
        memory = caller.get("memory")
        ptr &= MASK32
        if not isinstance(memory, wasmtime.Memory) or ptr + len(data) > memory.data_len(caller):
            return _EFAULT
        memory.write(caller, data, ptr)
        return _ESUCCESS

    def _clock_time_get(self, caller: wasmtime.Caller, _clock: int, _prec: int, ptr: int) -> int:
        assert self._det is not None
        now = self._det.clock_ns + self._clock_reads * self._det.clock_step_ns
        self._clock_reads += 1
        return self._guest_write(caller, ptr, now.to_bytes(8, "little"))

    def _clock_res_get(self, caller: wasmtime.Caller, _clock: int, ptr: int) -> int:
        assert self._det is not None
        return self._guest_write(caller, ptr, self._det.clock_step_ns.to_bytes(8, "little"))

    def _random_get(self, caller: wasmtime.Caller, ptr: int, length: int) -> int:
        length &= MASK32
        if length > MAX_HOST_ARGUMENT_BYTES:
            return _EFAULT
        return self._guest_write(caller, ptr, self._rng.randbytes(length))


def _refuse_poll(_in: int, _out: int, _n: int, _events: int) -> int:
    # Sleeping would block the host thread where no epoch can preempt it: plugins use timers.
    return _ENOTSUP


_LIVE: weakref.WeakSet[WasmInstance] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # wasmtime's WASI output threads panic if a store with captured output outlives the
    # interpreter; closing the stores first keeps exit quiet.
    for instance in list(_LIVE):
        instance.close()
