"""A test double of a plugin runtime: each "plugin" is a behaviour scripted in JSON.

Nothing shipped may load unsandboxed plugins, so this lives in the tests. The entry point file
(``main.star``; the runtime is registered under ``starlark``) holds a JSON object::

    {
      "exports": ["render", "on_event", ...],      # default: every hook
      "render": [{"type": "text", "text": "hi"}],  # default: one text element counting events
      "initialize": {"error": "no"},               # what initialize answers (default null)
      "faults": {"on_event": {"kind": "trap", "times": 1}},  # kind: a FaultKind, "raise" or
                                                   # "invalid"; times: default every call;
                                                   # "if_host_error": true faults only after
                                                   # a host call of the hook failed
      "calls": {"on_event": [{"function": "log", "args": {...}}]},  # host calls per hook
      "functions": {"stats": [{"function": "get_queue_stats", "args": {}}]},  # on_call
      "block": {"import_state": "gate"},           # wait for FakeRuntime.gate("gate")
      "refuse_config_key": "invalid"               # set_config refuses configs with this key
    }

Tests reach the instances through :attr:`FakeRuntime.instances` and may change an instance's
behaviour while it runs (:meth:`FakeInstance.fail`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rwq.plugins.contract.errors import HostCallError, error_result
from rwq.plugins.runtimes.base import (
    FaultKind,
    Hook,
    HostCall,
    PluginFault,
    ResourceLimits,
)

GATE_TIMEOUT = 20.0


class FakeInstance:
    """One scripted plugin instance; records every call it gets."""

    def __init__(
        self, runtime: FakeRuntime, name: str, script: dict[str, Any], host_call: HostCall
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.script = script
        self.host_call = host_call
        self.lock = threading.Lock()
        self.calls: list[tuple[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.batches: list[int] = []
        self.timers: list[dict[str, Any]] = []
        self.inputs: list[Any] = []
        self.config: dict[str, Any] = {}
        self.imported: Any = None
        self.host_results: list[tuple[str, str, Any]] = []
        self.closed = False
        self._faults: dict[str, dict[str, Any]] = {
            hook: dict(spec) for hook, spec in script.get("faults", {}).items()
        }
        self._busy = threading.Lock()

    # -- the protocol ---------------------------------------------------------------------

    def exports(self) -> frozenset[Hook]:
        names = self.script.get("exports")
        return frozenset(Hook) if names is None else frozenset(Hook(n) for n in names)

    def call(self, hook: Hook, argument: Any) -> Any:
        # A real sandbox runs one call at a time; overlapping calls are a manager bug.
        if not self._busy.acquire(blocking=False):
            raise AssertionError(f"{self.name}: two calls at once ({hook})")
        try:
            return self._call(hook, argument)
        finally:
            self._busy.release()

    def memory_bytes(self) -> int:
        return 4096 + 64 * len(self.events)

    def cpu_seconds(self) -> float:
        return 0.001 * len(self.calls)

    def close(self) -> None:
        self.closed = True

    # -- behaviour ------------------------------------------------------------------------

    def fail(self, hook: str, kind: str, times: int | None = None) -> None:
        """Fault on the next ``times`` calls of ``hook`` (every call when None)."""
        with self.lock:
            self._faults[hook] = {"kind": kind, "times": times}

    def count(self, hook: str) -> int:
        with self.lock:
            return sum(1 for h, _ in self.calls if h == hook)

    def event_ids(self) -> list[str]:
        with self.lock:
            return [e["id"] for e in self.events]

    def _call(self, hook: Hook, argument: Any) -> Any:
        if self.closed:
            raise PluginFault(self.name, FaultKind.CRASH, "called after close", hook.value)
        with self.lock:
            self.calls.append((hook.value, argument))
        gate = self.script.get("block", {}).get(hook.value)
        if gate is not None:
            self.runtime.arrived(gate).set()
            if not self.runtime.gate(gate).wait(GATE_TIMEOUT):
                raise PluginFault(self.name, FaultKind.TIMEOUT, f"gate {gate} never opened")
        after_host = self._faults.get(hook.value, {}).get("if_host_error", False)
        invalid = False if after_host else self._maybe_fault(hook)
        host_failed = False
        for spec in self.script.get("calls", {}).get(hook.value, ()):
            result = self._host(hook.value, spec)
            host_failed |= isinstance(result, dict) and "error" in result
        if after_host and host_failed:
            invalid = self._maybe_fault(hook)
        if invalid:
            return "not what the contract says"
        return getattr(self, f"_on_{hook.value}")(argument)

    def _maybe_fault(self, hook: Hook) -> bool:
        with self.lock:
            spec = self._faults.get(hook.value)
            if spec is None:
                return False
            times = spec.get("times")
            if times is not None:
                if times <= 0:
                    return False
                spec["times"] = times - 1
        kind = spec["kind"]
        if kind == "invalid":
            return True
        if kind == "raise":
            raise RuntimeError("scripted bug")
        raise PluginFault(self.name, FaultKind(kind), "scripted fault", hook.value)

    def _host(self, hook: str, spec: dict[str, Any]) -> Any:
        function = spec["function"]
        try:
            result = self.host_call(self.name, function, spec.get("args"))
        except HostCallError as exc:
            result = error_result(exc)
        with self.lock:
            self.host_results.append((hook, function, result))
        return result

    def _on_initialize(self, config: Any) -> Any:
        self.config = dict(config)
        return self.script.get("initialize")

    def _on_activate(self, _: Any) -> None:
        return None

    def _on_deactivate(self, _: Any) -> None:
        return None

    def _on_cleanup(self, _: Any) -> None:
        return None

    def _on_on_event(self, events: list[dict[str, Any]]) -> Any:
        with self.lock:
            self.events.extend(events)
            self.batches.append(len(events))
        return {"changed": True}

    def _on_on_timer(self, timer: dict[str, Any]) -> Any:
        with self.lock:
            self.timers.append(timer)
        return {"changed": True}

    def _on_render(self, size: dict[str, Any]) -> Any:
        if "render" in self.script:
            return self.script["render"]
        return [{"type": "text", "text": f"{len(self.events)} events"}]

    def _on_on_input(self, event: Any) -> Any:
        self.inputs.append(event)
        return {"changed": True}

    def _on_get_config(self, _: Any) -> Any:
        return dict(self.config)

    def _on_set_config(self, config: dict[str, Any]) -> Any:
        refused = self.script.get("refuse_config_key")
        if refused is not None and refused in config:
            return {"error": f"{refused} is not allowed"}
        self.config = dict(config)
        return None

    def _on_health_check(self, _: Any) -> Any:
        return {"status": "ok", "events": len(self.events)}

    def _on_export_state(self, _: Any) -> Any:
        return {"events": len(self.events)}

    def _on_import_state(self, state: Any) -> None:
        self.imported = state

    def _on_on_call(self, call: dict[str, Any]) -> Any:
        result: Any = None
        for spec in self.script.get("functions", {}).get(call["function"], ()):
            result = self._host(f"on_call:{call['function']}", spec)
        return result


class FakeRuntime:
    """A :class:`~rwq.plugins.runtimes.base.PluginRuntime` of scripted plugins."""

    kind = "starlark"

    def __init__(self) -> None:
        self.instances: dict[str, list[FakeInstance]] = {}
        self.loads: list[tuple[str, ResourceLimits]] = []
        self.closed = False
        self._gates: dict[str, threading.Event] = {}
        self._arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> FakeInstance:
        script = json.loads(entry_point.read_text(encoding="utf-8") or "{}")
        if script.get("load_fault"):
            raise PluginFault(name, FaultKind.LOAD, str(script["load_fault"]))
        instance = FakeInstance(self, name, script, host_call)
        with self._lock:
            self.loads.append((name, limits))
            self.instances.setdefault(name, []).append(instance)
        return instance

    def close(self) -> None:
        self.closed = True

    def latest(self, name: str) -> FakeInstance:
        with self._lock:
            return self.instances[name][-1]

    def all_of(self, name: str) -> list[FakeInstance]:
        with self._lock:
            return list(self.instances.get(name, ()))

    def gate(self, name: str) -> threading.Event:
        """Set it to let calls blocked on ``name`` go on."""
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def arrived(self, name: str) -> threading.Event:
        """Set when a call reached the gate ``name``."""
        with self._lock:
            return self._arrived.setdefault(name, threading.Event())
