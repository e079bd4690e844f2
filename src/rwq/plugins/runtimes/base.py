"""The runtime contract: the hooks a plugin implements and the protocol every runtime meets.

Both sides of the plugin boundary are defined once: the hooks here (a plugin exports them),
the host functions in :mod:`rwq.plugins.contract` (a plugin imports them). Hook arguments and
results are JSON values; a runtime moves them across its sandbox boundary and validates what
comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from rwq.errors import RwqError
from rwq.plugins.contract.events import EventPayload


class Hook(StrEnum):
    """The hooks a plugin may export; only ``render`` is required."""

    INITIALIZE = "initialize"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    CLEANUP = "cleanup"
    ON_EVENT = "on_event"
    ON_TIMER = "on_timer"
    RENDER = "render"
    ON_INPUT = "on_input"
    GET_CONFIG = "get_config"
    SET_CONFIG = "set_config"
    HEALTH_CHECK = "health_check"
    EXPORT_STATE = "export_state"
    IMPORT_STATE = "import_state"
    ON_CALL = "on_call"


@dataclass(frozen=True)
class HookSpec:
    hook: Hook
    argument: str
    returns: str
    required: bool = False


HOOKS: dict[Hook, HookSpec] = {
    spec.hook: spec
    for spec in (
        HookSpec(Hook.INITIALIZE, "config: object (manifest defaults merged with user config)",
                 "null, or {\"error\": str} to refuse to start"),
        HookSpec(Hook.ACTIVATE, "null", "null"),
        HookSpec(Hook.DEACTIVATE, "null", "null"),
        HookSpec(Hook.CLEANUP, "null", "null"),
        HookSpec(Hook.ON_EVENT, "events: [event] (a batch, oldest first; see plugin-events.md)",
                 "{\"changed\": bool} — whether the panel needs a new render"),
        HookSpec(Hook.ON_TIMER, "{\"id\": str, \"ts\": number}", "{\"changed\": bool}"),
        HookSpec(Hook.RENDER, "{\"width\": int, \"height\": int, \"focused\": bool}",
                 "[element] (see ui-elements.md)", required=True),
        HookSpec(Hook.ON_INPUT, "{\"kind\": \"key\"|\"button\"|\"select\", ...}",
                 "{\"changed\": bool}"),
        HookSpec(Hook.GET_CONFIG, "null", "object"),
        HookSpec(Hook.SET_CONFIG, "object", "null, or {\"error\": str}"),
        HookSpec(Hook.HEALTH_CHECK, "null", "{\"status\": \"ok\"|\"degraded\"|\"failing\", ...}"),
        HookSpec(Hook.EXPORT_STATE, "null", "any JSON value (handed to the next version)"),
        HookSpec(Hook.IMPORT_STATE, "{\"from_version\": str, \"state\": any}", "null"),
        HookSpec(Hook.ON_CALL,
                 "{\"function\": str, \"args\": any, \"caller\": str} (a dependant's "
                 "call_dependency; the plugin's host calls meanwhile run with the intersection "
                 "of the chain's grants)",
                 "any JSON value (the caller's call_dependency result)"),
    )
}  # fmt: skip


class FaultKind(StrEnum):
    """Why a plugin call was stopped."""

    TIMEOUT = "timeout"
    MEMORY = "memory"
    CPU = "cpu"
    TRAP = "trap"
    CRASH = "crash"
    INVALID_OUTPUT = "invalid_output"
    LOAD = "load"


class PluginFault(RwqError):
    """A plugin misbehaved and was contained; the host carries on."""

    def __init__(self, plugin: str, kind: FaultKind, reason: str, hook: str = "") -> None:
        self.plugin = plugin
        self.kind = kind
        self.reason = reason
        self.hook = hook
        where = f" in {hook}" if hook else ""
        super().__init__(f"plugin {plugin} faulted{where}: {kind.value}: {reason}")


@dataclass(frozen=True)
class ResourceLimits:
    """What a plugin may use, from its manifest's ``resources``."""

    max_memory_bytes: int
    timeout_s: float
    """Longest single hook call."""
    max_cpu_percent: float
    """Share of one core over a window; over it the plugin is throttled."""
    max_output_bytes: int = 1_000_000
    """Largest JSON a hook may return."""


HostCall = Callable[[str, str, Any], Any]
"""``host_call(plugin, function, args) -> result``: the capability-gated host API entry the
runtime routes every imported host function through. Raises a typed error
(``PermissionDenied`` and friends) that the runtime turns into an error result."""


class PluginInstance(Protocol):
    """One loaded plugin inside its sandbox."""

    name: str

    def exports(self) -> frozenset[Hook]:
        """The hooks the plugin implements."""
        ...

    def call(self, hook: Hook, argument: Any) -> Any:
        """Call a hook with a JSON argument and return its JSON result.

        Raises:
            PluginFault: the call trapped, timed out, ran out of memory, crashed its sandbox
                or returned something invalid. The instance may be unusable afterwards.
        """
        ...

    def memory_bytes(self) -> int:
        """Memory the plugin holds now (private memory for a sandbox process)."""
        ...

    def cpu_seconds(self) -> float:
        """CPU time the plugin has used so far."""
        ...

    def close(self) -> None:
        """Release the instance; never raises."""
        ...


class PluginRuntime(Protocol):
    """A kind of sandbox (``wasm`` or ``starlark``)."""

    kind: str

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> PluginInstance:
        """Load a plugin from its entry point.

        Raises:
            PluginFault: with kind ``load`` when the code cannot be loaded.
        """
        ...

    def close(self) -> None:
        """Release what the runtime shares between plugins (engine, sandbox pool)."""
        ...


def to_guest_json(value: Any) -> bytes:
    """``value`` as the UTF-8 JSON a sandbox reads. A lone surrogate (a payload's or another
    plugin's ``"\\ud800"``) is not text a guest can decode: it becomes U+FFFD, so one bad
    string never costs a plugin its whole batch.

    A batch of events (a list of :class:`~rwq.plugins.contract.events.EventPayload`) is the
    join of each event's encoding, made once per event whichever plugin needs it first and
    reused for every other subscriber."""
    if type(value) is list and value and type(value[0]) is EventPayload:
        return _batch_json(value)
    return _encode(value)


def _batch_json(events: list[Any]) -> bytes:
    parts = []
    for event in events:
        if type(event) is not EventPayload:  # a mixed list: encode it as any value
            return _encode(events)
        encoded = event.encoded
        if encoded is None:  # two threads may both encode it: equal bytes, one is kept
            encoded = event.encoded = _encode(event)
        parts.append(encoded)
    return b"[" + b",".join(parts) + b"]"


def _encode(value: Any) -> bytes:
    try:
        return _GUEST_JSON.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return _GUEST_JSON.encode(_without_lone_surrogates(value)).encode("utf-8")


_GUEST_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():
            return value
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_lone_surrogates(v) for v in value]
    return value
