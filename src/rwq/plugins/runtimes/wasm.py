"""The WASM runtime: plugins compiled to WebAssembly, run by wasmtime under ABI v1 (the
contract a module meets is ``docs/abi.md``)."""

from __future__ import annotations

import platform
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from rwq.plugins.runtimes.base import FaultKind, HostCall, PluginFault, ResourceLimits
from rwq.plugins.runtimes.wasm_abi import ABI_VERSION, I32, I64, check_module, error_text
from rwq.plugins.runtimes.wasm_cache import WASMTIME_VERSION, ModuleCache
from rwq.plugins.runtimes.wasm_instance import WasmInstance

__all__ = ["ABI_VERSION", "Deterministic", "EpochTicker", "WasmInstance", "WasmRuntime"]


@dataclass(frozen=True)
class Deterministic:
    """Deterministic mode, for plugin tests: the same calls give the same results on every
    machine. Preemption counts fuel (WebAssembly instructions) instead of wall time, the WASI
    clocks read a fixed time that advances ``clock_step_ns`` per reading, and WASI randomness
    comes from a generator seeded with ``seed``."""

    seed: int = 0
    clock_ns: int = 1_700_000_000_000_000_000
    """What the first clock reading returns (2023-11-14T22:13:20Z)."""
    clock_step_ns: int = 1_000
    fuel_per_second: int = 100_000_000
    """Fuel per second of the manifest's timeout (roughly instructions per second), and the
    rate CPU time is derived from for the CPU budget."""


class WasmRuntime:
    """The ``wasm`` runtime: one wasmtime engine shared by every plugin it loads.

    It holds the engine, its epoch ticker and its module cache (:mod:`.wasm_cache`); each plugin
    gets a :class:`~.wasm_instance.WasmInstance` with a store of its own, whose limits are
    those of ``docs/abi.md``. :mod:`.wasm_abi` checks modules against the ABI.

    Args:
        cache_dir: compiled modules are cached in ``<cache_dir>/wasm/``; None keeps them in
            memory only.
        deterministic: run every plugin in deterministic mode (see :class:`Deterministic`).
        tick_s: the epoch period; a call overruns its timeout by at most about one tick.
        cpu_window_s: the window ``max_cpu`` is measured over.
        output_keep_bytes: how much of a plugin's stdout/stderr its instance keeps.
        output_bytes_per_call: how much output one call may produce; the rest is dropped.
    """

    kind = "wasm"

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        deterministic: Deterministic | None = None,
        tick_s: float = 0.005,
        cpu_window_s: float = 10.0,
        output_keep_bytes: int = 64 * 1024,
        output_bytes_per_call: int = 16 * 1024,
    ) -> None:
        self.deterministic = deterministic
        self.tick_s = tick_s
        self.cpu_window_s = cpu_window_s
        self.output_keep_bytes = output_keep_bytes
        self.output_bytes_per_call = output_bytes_per_call
        config = wasmtime.Config()
        config.cranelift_opt_level = "speed"
        if deterministic is not None:
            config.consume_fuel = True
        else:
            config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.engine_key = (
            f"abi={ABI_VERSION};fuel={deterministic is not None};"
            f"epoch={deterministic is None};opt=speed;{platform.machine()}-{sys.platform}"
        )
        self.cache = ModuleCache(
            self.engine, self.engine_key, cache_dir / "wasm" if cache_dir is not None else None
        )
        self._instances: weakref.WeakSet[WasmInstance] = weakref.WeakSet()
        # A FuncType belongs to the first engine it is used with: these are this engine's.
        self.host_function_type = wasmtime.FuncType([I32, I32], [I64])
        self.wasi_types = {
            "poll_oneoff": wasmtime.FuncType([I32, I32, I32, I32], [I32]),
            "clock_time_get": wasmtime.FuncType([I32, I64, I32], [I32]),
            "clock_res_get": wasmtime.FuncType([I32, I32], [I32]),
            "random_get": wasmtime.FuncType([I32, I32], [I32]),
        }
        self.ticker = EpochTicker(self.engine, tick_s) if deterministic is None else None
        self._closed = False

    @property
    def version(self) -> str:
        """The wasmtime version."""
        return WASMTIME_VERSION

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> WasmInstance:
        """Compile (or take from the cache), check, link and instantiate a plugin.

        Raises:
            PluginFault: kind ``load``, with the reason (unreadable file, invalid module, an
                import outside the catalog, a missing export, a trap while initialising...).
        """
        if self._closed:
            raise PluginFault(name, FaultKind.LOAD, "the WASM runtime is closed")
        try:
            wasm = entry_point.read_bytes()
        except OSError as exc:
            raise PluginFault(
                name, FaultKind.LOAD, f"cannot read {entry_point}: {exc.strerror}"
            ) from None
        try:
            module, source = self.cache.module(wasm)
        except wasmtime.WasmtimeError as exc:
            reason = f"{entry_point.name} is not a valid WebAssembly module: {error_text(exc)}"
            raise PluginFault(name, FaultKind.LOAD, reason) from None
        hooks, host_imports = check_module(name, module)
        instance = WasmInstance(self, name, module, hooks, host_imports, limits, host_call)
        instance.load_source = source
        self._instances.add(instance)
        return instance

    def instances(self) -> list[WasmInstance]:
        """The instances loaded and not yet collected."""
        return list(self._instances)

    def close(self) -> None:
        """Stop the epoch ticker and close every instance; never raises."""
        self._closed = True
        for instance in list(self._instances):
            instance.close()
        if self.ticker is not None:
            self.ticker.stop()


class EpochTicker:
    """Advances an engine's epoch every ``tick_s`` while calls are running, so each call can
    be given a deadline in ticks; after ``idle_ticks`` ticks without calls it sleeps until
    the next call starts (an idle host does not wake up 200 times a second)."""

    def __init__(self, engine: wasmtime.Engine, tick_s: float, idle_ticks: int = 50) -> None:
        self.engine = engine
        self.tick_s = tick_s
        self.idle_ticks = idle_ticks
        self._lock = threading.Lock()
        self._active = 0
        self._sleeping = False
        self._stopped = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sleeping(self) -> bool:
        """Whether the ticker waits for a call (no call has run for ``idle_ticks``)."""
        return self._sleeping

    def enter(self) -> None:
        """A call starts: the epoch must advance until it ends."""
        with self._lock:
            self._active += 1
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="rwq-wasm-epoch", daemon=True
                )
                self._thread.start()
            elif self._sleeping:
                self._sleeping = False
                self._wake.set()

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _run(self) -> None:
        idle = 0
        while not self._stopped:
            time.sleep(self.tick_s)
            self.engine.increment_epoch()
            with self._lock:
                if self._active or self._stopped:
                    idle = 0
                    continue
                idle += 1
                if idle < self.idle_ticks:
                    continue
                self._sleeping = True
                self._wake.clear()
            self._wake.wait()
            idle = 0
