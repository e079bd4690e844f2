"""The Starlark runtime: each plugin runs in a sandbox process of its own, never in the host;
this is the host's side of the conversation with it (see ``docs/starlark.md``)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from rwq.plugins.contract.errors import HostCallError, InternalError, error_result
from rwq.plugins.contract.host_functions import HOST_FUNCTIONS
from rwq.plugins.runtimes.base import (
    HOOKS,
    FaultKind,
    Hook,
    HostCall,
    PluginFault,
    ResourceLimits,
    to_guest_json,
)
from rwq.plugins.runtimes.budget import CpuBudget
from rwq.plugins.runtimes.sandbox import (
    ExitStatus,
    FrameTooLarge,
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxTimeout,
    Zygote,
)

__all__ = [
    "MAX_CALLSTACK",
    "MAX_SOURCE_BYTES",
    "WATCHDOG_GRACE_S",
    "StarlarkPlugin",
    "StarlarkRuntime",
    "render_markdown",
]

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("starlark_child.py")
MAX_SOURCE_BYTES = 1 << 20
"""Largest entry point accepted."""
MAX_CALLSTACK = 200
"""Deepest Starlark call stack (recursion past it is a ``trap``)."""
WATCHDOG_GRACE_S = 0.5
"""How long past a call's deadline the host waits before it kills the sandbox."""
MAX_HOST_CALL_BYTES = 1 << 20
"""Largest host call (its arguments' JSON) a sandbox may send: the sandbox refuses a larger
one itself (``starlark_child.MAX_HOST_CALL_BYTES``, equal; the host never imports that
module, which loads the interpreter)."""

_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _parse_result(data: bytes) -> Any:
    return json.loads(data, parse_constant=_reject_constant)


def _init_message(max_callstack: int) -> dict[str, Any]:
    """What the zygote needs: the host functions' parameters (for positional arguments) and
    the hook names a plugin may define."""
    return {
        "functions": {name: [p.name for p in spec.params] for name, spec in HOST_FUNCTIONS.items()},
        "hooks": [hook.value for hook in Hook],
        "max_callstack": max_callstack,
    }


class StarlarkPlugin:
    """One Starlark plugin in its sandbox (a :class:`~.base.PluginInstance`).

    Calls are serialised. After a fault that ends the sandbox (``memory``, ``cpu``, ``crash``,
    a ``timeout`` the watchdog had to enforce) every call raises a ``crash`` fault: load the
    plugin again for a fresh sandbox. A ``timeout`` the sandbox enforced itself, a ``trap``
    and an ``invalid_output`` leave it usable.
    """

    def __init__(
        self,
        name: str,
        sandbox: Sandbox,
        limits: ResourceLimits,
        host_call: HostCall,
        grace_s: float = WATCHDOG_GRACE_S,
    ) -> None:
        self.name = name
        self._sandbox = sandbox
        self._limits = limits
        self._host_call = host_call
        self._grace = grace_s
        self._max_frame = max(limits.max_output_bytes, MAX_HOST_CALL_BYTES) + 1024
        self._exports: frozenset[Hook] = frozenset()
        self._lock = threading.Lock()
        self._gone: str | None = None
        """Why the sandbox ended, once it has."""
        self._budget = CpuBudget(limits.max_cpu_percent)
        self._charged = 0.0

    @property
    def pid(self) -> int:
        """The sandbox process."""
        return self._sandbox.pid

    @property
    def alive(self) -> bool:
        return self._gone is None

    def exports(self) -> frozenset[Hook]:
        return self._exports

    def _load(self, file: str, source: str) -> None:
        request = {
            "file": file,
            "source": source,
            "timeout_ms": self._timeout_ms(),
            "max_output_bytes": self._limits.max_output_bytes,
        }
        body = _JSON.encode(request).encode()
        with self._lock:
            reply = self._converse("", b"L", body)
        known = {hook.value for hook in Hook}
        self._exports = frozenset(Hook(h) for h in reply["exports"] if h in known)
        for spec in HOOKS.values():
            if spec.required and spec.hook not in self._exports:
                raise PluginFault(self.name, FaultKind.LOAD, f"{file} defines no {spec.hook}")

    def call(self, hook: Hook, argument: Any) -> Any:
        hook = Hook(hook)
        arg = to_guest_json(argument)
        with self._lock:
            if self._gone is not None:
                raise PluginFault(
                    self.name, FaultKind.CRASH, f"the sandbox is gone ({self._gone})", hook.value
                )
            if hook not in self._exports:
                raise PluginFault(
                    self.name,
                    FaultKind.TRAP,
                    f"the plugin does not define {hook.value}",
                    hook.value,
                )
            body = b"%s\n%d\n%s" % (hook.value.encode(), self._timeout_ms(), arg)
            return self._converse(hook.value, b"C", body)

    def _timeout_ms(self) -> int:
        return max(1, round(self._limits.timeout_s * 1000))

    def _converse(self, hook: str, kind: bytes, body: bytes) -> Any:
        """Send a request, answer the sandbox's host calls, return its result (lock held)."""
        sandbox = self._sandbox
        deadline = time.monotonic() + self._limits.timeout_s + self._grace
        try:
            sandbox.send(kind, body)
            while True:
                frame, data = sandbox.recv(deadline, self._max_frame)
                if frame == b"H":
                    sandbox.send(b"A", self._answer(hook, data))
                elif frame == b"R":
                    return self._result(hook, data)
                elif frame == b"X":
                    return json.loads(data)
                elif frame == b"E":
                    self._raise_reported(hook, data)
                else:
                    self._bury(hook, FaultKind.CRASH, f"protocol violation: frame {frame!r}")
        except PluginFault:
            raise
        except SandboxTimeout:
            sandbox.kill()
            limit = self._limits.timeout_s
            self._bury(hook, FaultKind.TIMEOUT, f"no answer within {limit:g}s: sandbox killed")
        except FrameTooLarge as exc:
            self._bury(
                hook,
                FaultKind.INVALID_OUTPUT,
                f"sent {exc.size} bytes at once, over the {exc.cap}-byte cap",
            )
        except SandboxGone:
            self._died(hook)
        except Exception as exc:  # a bug here: the conversation cannot be trusted any more
            log.exception("plugin %s: the conversation with its sandbox failed", self.name)
            self._bury(hook, FaultKind.CRASH, f"the host failed: {type(exc).__name__}")
        except BaseException:  # KeyboardInterrupt and friends: end the sandbox, carry on
            self._sandbox.finish()
            self._gone = self._gone or "interrupted"
            raise

    def _answer(self, hook: str, data: bytes) -> bytes:
        """Run one host call for the plugin; every failure becomes an error value."""
        try:
            request = json.loads(data)
            function, args = request["f"], request["a"]
        except (ValueError, KeyError, TypeError):
            self._bury(hook, FaultKind.CRASH, "protocol violation: malformed host call")
        try:
            result = self._host_call(self.name, function, args)
        except Exception as exc:
            if not isinstance(exc, HostCallError):
                log.warning("host call %s of plugin %s failed", function, self.name, exc_info=True)
            result = error_result(exc)
        try:
            return to_guest_json(result)
        except (TypeError, ValueError):
            log.warning("host call %s returned a non-JSON result", function)
            return _JSON.encode(error_result(InternalError("non-JSON result"))).encode()

    def _result(self, hook: str, data: bytes) -> Any:
        cap = self._limits.max_output_bytes
        if len(data) > cap:
            raise PluginFault(
                self.name,
                FaultKind.INVALID_OUTPUT,
                f"the result is {len(data)} bytes of JSON, over the {cap}-byte cap",
                hook,
            )
        try:
            return _parse_result(data)
        except (ValueError, RecursionError) as exc:
            raise PluginFault(
                self.name, FaultKind.INVALID_OUTPUT, f"the result is not JSON: {exc}", hook
            ) from None

    def _raise_reported(self, hook: str, data: bytes) -> NoReturn:
        try:
            report = json.loads(data)
            kind = FaultKind(report["kind"])
            reason = str(report["reason"])
            fatal = bool(report.get("fatal"))
        except (ValueError, KeyError, TypeError):
            self._bury(hook, FaultKind.CRASH, "protocol violation: malformed fault report")
        if kind is FaultKind.MEMORY:
            reason = f"{reason} (cap {_mib(self._limits.max_memory_bytes)})"
        if fatal:
            self._bury(hook, kind, reason)
        raise PluginFault(self.name, kind, reason, hook)

    def _died(self, hook: str) -> NoReturn:
        """The channel closed: the sandbox died; say why from how it ended."""
        status = self._sandbox.finish()
        if self._gone == "closed":
            self._bury(hook, FaultKind.CRASH, "the plugin was closed during the call")
        kind, reason = _classify(status, self._sandbox.spawn_rss, self._limits.max_memory_bytes)
        self._bury(hook, kind, reason)

    def _bury(self, hook: str, kind: FaultKind, reason: str) -> NoReturn:
        """End the sandbox and raise the fault; later calls raise ``crash``."""
        self._sandbox.finish()
        if self._gone is None:
            self._gone = f"{kind.value}: {reason}"
        raise PluginFault(self.name, kind, reason, hook)

    def memory_bytes(self) -> int:
        return self._sandbox.private_bytes()

    def cpu_seconds(self) -> float:
        used = self._sandbox.cpu_seconds()
        self._budget.add(max(0.0, used - self._charged))  # charged when read, not per call
        self._charged = used
        return used

    @property
    def throttled(self) -> bool:
        """Whether the plugin used more than ``max_cpu`` of a core lately."""
        self.cpu_seconds()
        return self._budget.throttled

    def start_budget(self) -> None:
        """Count the CPU budget from now on (what loading used is not charged)."""
        self._charged = self._sandbox.cpu_seconds(fresh=True)
        self._budget.clear()

    @property
    def cpu_share(self) -> tuple[float, float]:
        """The percentage of a core used lately, and the window in seconds it is taken over."""
        self.cpu_seconds()
        return self._budget.share_percent(), self._budget.window_s

    def close(self) -> None:
        if self._gone is None:
            self._gone = "closed"
        try:
            self._sandbox.kill()  # a call in progress ends at once
            with self._lock:
                self._sandbox.finish()
        except Exception:
            log.exception("closing the sandbox of plugin %s failed", self.name)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def _classify(status: ExitStatus, spawn_rss: int, cap: int) -> tuple[FaultKind, str]:
    """Why a sandbox that died on its own died."""
    how = status.describe()
    sig = status.signal
    if sig == signal.SIGXCPU:
        return FaultKind.CPU, f"sandbox {how}: over its CPU time"
    if sig == signal.SIGABRT:
        return FaultKind.MEMORY, f"sandbox {how}: an allocation failed at its {_mib(cap)} cap"
    if sig in (signal.SIGSEGV, signal.SIGBUS) and status.max_rss >= spawn_rss + cap // 4:
        return FaultKind.MEMORY, f"sandbox {how} at its {_mib(cap)} memory cap"
    if sig == signal.SIGKILL:
        return FaultKind.CRASH, f"sandbox {how} (from outside the host, or the OOM killer)"
    return FaultKind.CRASH, f"sandbox {how}"


class StarlarkRuntime:
    """Runs Starlark plugins, one sandbox process each, forked from one zygote.

    Args:
        grace_s: how long past a call's deadline the watchdog waits before killing.
        max_callstack: deepest Starlark call stack.
    """

    kind = "starlark"

    def __init__(
        self, *, grace_s: float = WATCHDOG_GRACE_S, max_callstack: int = MAX_CALLSTACK
    ) -> None:
        self._grace = grace_s
        self._zygote = Zygote(CHILD_SCRIPT, _init_message(max_callstack))

    @property
    def zygote(self) -> Zygote:
        return self._zygote

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> StarlarkPlugin:
        source = _read_source(name, entry_point)
        try:
            sandbox = self._zygote.spawn(limits.max_memory_bytes)
        except SandboxError as exc:
            raise PluginFault(name, FaultKind.LOAD, str(exc)) from None
        plugin = StarlarkPlugin(name, sandbox, limits, host_call, self._grace)
        try:
            plugin._load(entry_point.name, source)
        except PluginFault as fault:
            plugin.close()
            reason = fault.reason
            if fault.kind is not FaultKind.LOAD:
                reason = f"{fault.kind.value} while loading: {reason}"
            raise PluginFault(name, FaultKind.LOAD, reason) from None
        return plugin

    def close(self) -> None:
        self._zygote.close()


def _read_source(name: str, entry_point: Path) -> str:
    try:
        data = entry_point.read_bytes()
    except OSError as exc:
        raise PluginFault(name, FaultKind.LOAD, f"cannot read {entry_point.name}: {exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise PluginFault(
            name,
            FaultKind.LOAD,
            f"{entry_point.name} is {len(data)} bytes, over the {MAX_SOURCE_BYTES}-byte cap",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PluginFault(name, FaultKind.LOAD, f"{entry_point.name} is not UTF-8: {exc}") from None


# -- the SDK reference ----------------------------------------------------------------------


def _literal(value: Any) -> str:
    """A parameter default as Starlark source; ``...`` for the plugin's queue scope."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return "..."


def _signature(name: str) -> str:
    params = [
        p.name if p.required else f"{p.name} = {_literal(p.default)}"
        for p in HOST_FUNCTIONS[name].params
    ]
    return f"rwq.{name}({', '.join(params)})"


def render_markdown() -> str:
    """The text of ``sdk/starlark/host-functions.md``, generated from the host API."""
    lines = [
        "# Starlark host functions",
        "",
        "<!-- Generated by `make docs`; do not edit by hand. -->",
        "",
        "Every host function of [the host API](../../docs/host-api.md) is a field of the",
        "`rwq` struct. Arguments may be positional, in the order below, or keywords. A call",
        "returns the function's JSON result, or an error value",
        '`{"error": {"code", "message", "permission"?, "argument"?}}` that',
        "`rwq.is_error(result)` recognises; a failed host call never stops the plugin. Each",
        "call is checked against the plugin's grants like any other plugin's.",
        "",
        "| call | permission | returns |",
        "|---|---|---|",
    ]
    for name in sorted(HOST_FUNCTIONS):
        spec = HOST_FUNCTIONS[name]
        perm = f"`{spec.permission}`" if spec.permission else "-"
        returns = spec.returns.replace("|", "\\|")
        lines.append(f"| `{_signature(name)}` | {perm} | `{returns}` |")
    lines += [
        "",
        "`...` as a default: `subscribe`'s `queues` defaults to the plugin's queue scope.",
        "",
        "Also in every plugin's globals:",
        "",
        "| name | what |",
        "|---|---|",
        "| `rwq.is_error(value)` | whether a host call's result is an error value |",
        "| `state.get(key, default = None)` | a value kept in the sandbox between calls |",
        "| `state.set(key, value)` | keep a value (string key, JSON-like value) |",
        "| `state.delete(key)` | forget a key; True if it was there |",
        "| `state.keys()` | the keys, sorted |",
        '| `print(*args, sep = " ")` | `rwq.log("info", ...)` of the joined text |',
        "| `json`, `struct`, `record`, `enum`, `map`, `filter`, `partial` | "
        "starlark-rust's library extensions |",
        "",
    ]
    return "\n".join(lines)
