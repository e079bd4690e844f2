"""Instance slots: who a loaded plugin instance is at the host API, so that two instances of
one plugin are each checked against their own binding."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rwq.plugins.contract.errors import PermissionDenied
from rwq.plugins.host_api.service import HostAPI, PluginBinding
from rwq.plugins.runtimes.base import HostCall
from rwq.plugins.trust.audit import AuditLog

SUCCESSOR_OWNED = frozenset({"set_timer", "clear_timer", "subscribe", "unsubscribe"})
"""Host functions that act on what belongs to the plugin's name (timers, subscriptions): an
instance being replaced may no longer call them, or it would change its successor's."""

_ACTING: contextvars.ContextVar[Mapping[str, Slot]] = contextvars.ContextVar(
    "rwq_plugin_slots", default=MappingProxyType({})
)
"""The slots whose host calls are in progress in this context: a plugin's and, in a
dependency call made in the same thread, its callers'."""


@dataclass(eq=False)
class Slot:
    """One loaded instance's side of the host API: its identity, binding and what it holds."""

    name: str
    binding: PluginBinding
    live: bool = True
    """False once the instance is unloaded or dropped: every call is refused."""
    retiring: bool = False
    """Replaced: it winds down and may not touch its successor's timers or subscriptions."""
    chain: tuple[str, ...] | None = None
    """The delegation chain of the dependency call it is serving, if any."""
    subscriptions: set[str] = field(default_factory=set)
    """Bus subscriptions this instance made through ``subscribe``."""
    timers: set[str] = field(default_factory=set)
    """Timers this instance set."""


def acting(name: str) -> Slot | None:
    """The slot of ``name`` whose host call is in progress in this context, if any: the host
    API's binding lookup prefers it over the plugin's record."""
    return _ACTING.get().get(name)


def host_call_for(
    slot: Slot, api: HostAPI, audit: AuditLog, on_timer_set: Callable[[], None]
) -> HostCall:
    """The ``host_call`` an instance is loaded with: every call acts as ``slot``.

    ``on_timer_set`` is called after the instance set a timer (the timer loop wakes up).
    """

    def host_call(plugin: str, function: str, args: Any) -> Any:
        refusal = ""
        if plugin != slot.name:
            refusal = f"an instance of {slot.name} cannot act as {plugin}"
        elif not slot.live:
            refusal = "this instance was unloaded"
        elif slot.retiring and function in SUCCESSOR_OWNED:
            refusal = "this instance is being replaced"
        if refusal:
            what = str(function)[:64]
            audit.record(slot.name, f"none:{what}", "", False, reason=refusal)
            raise PermissionDenied(slot.name, what, None, None, refusal)
        token = _ACTING.set(MappingProxyType({**_ACTING.get(), slot.name: slot}))
        try:
            # The chain goes explicitly: a runtime may make host calls from another thread
            # than the one that called the dependency.
            result = api.call(slot.name, function, args, chain=slot.chain)
        finally:
            _ACTING.reset(token)
        if function == "subscribe":
            slot.subscriptions.add(result["id"])
        elif function == "unsubscribe":
            slot.subscriptions.discard(args["id"])
        elif function == "set_timer":
            slot.timers.add(args["id"])
            on_timer_set()
        elif function == "clear_timer":
            slot.timers.discard(args["id"])
        return result

    return host_call
