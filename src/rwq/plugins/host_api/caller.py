"""Who a host call acts as: the plugin the runtime bound, the version and bundle hash the host
loaded of it, and the delegation chain of the dependency call it runs in."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

__all__ = ["DELEGATION", "Caller", "PluginBinding"]


@dataclass(frozen=True)
class PluginBinding:
    """What the host loaded of a plugin: checks run against this version and bundle hash."""

    version: str
    bundle_hash: str
    queues: tuple[str, ...] = ("*",)
    """The plugin's queue scope (what its grant of ``events.subscribe`` is limited to): the
    default ``queues`` of a ``subscribe`` call."""


@dataclass(frozen=True)
class Caller:
    """The plugin a host call acts as, never anything in the call's arguments."""

    plugin: str
    binding: PluginBinding
    chain: tuple[str, ...]
    """The delegation chain ending with ``plugin``; empty for a direct call."""


DELEGATION: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "rwq_host_call_chain", default=()
)
"""The chain (caller first) of the ``call_dependency`` in progress in this context: the
callee's own host calls act within it."""
