"""The plugin lifecycle: the states a plugin passes through, the moves allowed between them,
and the policy that disables a plugin that keeps failing (see ``docs/architecture.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rwq.errors import RwqError
from rwq.plugins.runtimes.base import FaultKind


class PluginState(StrEnum):
    """Where a plugin is in its lifecycle."""

    DISCOVERED = "discovered"
    """Its bundle was found and opened."""
    VALIDATED = "validated"
    """Manifest, bundle, runtime and dependencies are fine."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Some requested permission awaits the user's decision; not loaded."""
    LOADING = "loading"
    """Being loaded into its runtime and initialized."""
    READY = "ready"
    """Initialized, not yet activated."""
    ACTIVE = "active"
    """Activated and receiving events."""
    ERROR = "error"
    """Refused or failed to load; :attr:`reason` says why."""
    DISABLED = "disabled"
    """Stopped after faults (reloaded after a backoff) or by the user."""
    UNLOADED = "unloaded"
    """Stopped by the user, a denial or shutdown."""


_STOPPED = (PluginState.ERROR, PluginState.DISABLED, PluginState.UNLOADED)

TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    PluginState.DISCOVERED: frozenset({PluginState.VALIDATED, *_STOPPED}),
    PluginState.VALIDATED: frozenset(
        {PluginState.AWAITING_APPROVAL, PluginState.LOADING, *_STOPPED}
    ),
    PluginState.AWAITING_APPROVAL: frozenset(
        {PluginState.AWAITING_APPROVAL, PluginState.LOADING, PluginState.VALIDATED, *_STOPPED}
    ),
    PluginState.LOADING: frozenset({PluginState.READY, *_STOPPED}),
    PluginState.READY: frozenset({PluginState.ACTIVE, *_STOPPED}),
    PluginState.ACTIVE: frozenset({*_STOPPED}),
    PluginState.ERROR: frozenset({PluginState.VALIDATED, *_STOPPED}),
    PluginState.DISABLED: frozenset({PluginState.VALIDATED, *_STOPPED}),
    PluginState.UNLOADED: frozenset({PluginState.VALIDATED, *_STOPPED}),
}
"""The moves allowed out of each state. A hot swap keeps a plugin ``active`` throughout."""

RUNNING = frozenset({PluginState.LOADING, PluginState.READY, PluginState.ACTIVE})
"""States in which the plugin has a live instance."""


class IllegalTransition(RwqError):
    """The lifecycle manager tried a move the state machine does not allow (a bug)."""

    def __init__(self, plugin: str, old: PluginState, new: PluginState) -> None:
        self.plugin = plugin
        self.old = old
        self.new = new
        super().__init__(f"plugin {plugin!r} cannot go from {old.value} to {new.value}")


def check_transition(plugin: str, old: PluginState, new: PluginState) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(plugin, old, new)


@dataclass(frozen=True)
class FaultPolicy:
    """When a faulting plugin is disabled and when it is tried again.

    A plugin is disabled after ``max_consecutive`` faults in a row (a successful call resets
    the count) or at once by a fault of a ``fatal`` kind. It is reloaded automatically once,
    ``backoff_initial`` seconds later; each further disable doubles the wait, up to
    ``backoff_max``. A plugin that then runs ``healthy_after`` seconds without a fault starts
    over at ``backoff_initial``.
    """

    max_consecutive: int = 3
    fatal: frozenset[FaultKind] = frozenset({FaultKind.MEMORY, FaultKind.CRASH})
    backoff_initial: float = 5.0
    backoff_max: float = 300.0
    healthy_after: float = 300.0

    def backoff(self, level: int) -> float:
        """The wait before the automatic reload after the ``level``-th disable (0 first)."""
        return min(self.backoff_max, self.backoff_initial * 2.0 ** min(level, 32))
