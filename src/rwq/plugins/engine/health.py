"""A plugin's health: its own ``health_check`` answer when it has one, else the host's view
of its state and fault streak."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rwq.plugins.engine.calls import Calls
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginTable
from rwq.plugins.runtimes.base import Hook, PluginFault


@dataclass(frozen=True)
class PluginHealth:
    """A plugin's health: its own ``health_check`` when it has one, else the host's view."""

    plugin: str
    state: PluginState
    status: Literal["ok", "degraded", "failing", "inactive"]
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class HealthChecks:
    """Answers how the plugins are.

    Args:
        table: the plugin records.
        calls: calls into the plugins.
    """

    def __init__(self, table: PluginTable, calls: Calls) -> None:
        self._table = table
        self._calls = calls

    def health(self, name: str) -> PluginHealth:
        """The health of ``name``: its ``health_check`` answer when it has one."""
        rec = self._table.get(name)
        state = rec.state
        if state is not PluginState.ACTIVE:
            failing = state in (PluginState.ERROR, PluginState.DISABLED)
            return PluginHealth(name, state, "failing" if failing else "inactive", rec.reason)
        with rec.lock:
            if Hook.HEALTH_CHECK in rec.exports and rec.instance is not None:
                try:
                    detail = self._calls.invoke(rec, Hook.HEALTH_CHECK, None, check=health_answer)
                except PluginFault as fault:
                    return PluginHealth(name, rec.state, "failing", str(fault))
                return PluginHealth(name, rec.state, detail["status"], "", detail)
        status: Literal["ok", "degraded"] = "degraded" if rec.consecutive else "ok"
        why = f"{rec.consecutive} faults in a row" if rec.consecutive else ""
        return PluginHealth(name, rec.state, status, why)


def health_answer(result: Any) -> dict[str, Any]:
    """``result`` if it is an answer of ``health_check``: ``{"status": "ok"|"degraded"|
    "failing", ...}``; else ValueError."""
    if isinstance(result, dict) and result.get("status") in ("ok", "degraded", "failing"):
        return result
    raise ValueError(f'expected {{"status": "ok"|"degraded"|"failing", ...}}, got {result!r}'[:200])
