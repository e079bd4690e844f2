"""Plugins stopped by a Redis outage rather than by their own faults: disabled until the host's
Redis answers again, then reloaded, however many times it takes (the fault limits of
:class:`~rwq.plugins.engine.lifecycle.FaultPolicy` are for plugins that fault on their own)."""

from __future__ import annotations

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginRecord, PluginTable

FIRST_RETRY = 1.0
"""Seconds before the first retry of a plugin stopped by an outage; each further one waits
twice as long, up to :data:`MAX_RETRY`."""
MAX_RETRY = 30.0


def retry_delay(level: int) -> float:
    """The wait before the ``level``-th retry (0 first) of a plugin stopped by an outage."""
    return min(MAX_RETRY, FIRST_RETRY * 2.0 ** min(level, 16))


def wait_for_host(table: PluginTable, rec: PluginRecord, what: str) -> float:
    """Disable ``rec`` (its instance retired already) until Redis answers: the supervisor
    reloads it once the wait is over and Redis answers. Returns the wait in seconds."""
    with table.lock:
        delay = retry_delay(rec.outage_level)
        rec.outage_level += 1
        rec.waiting_for_host = True
        rec.retry_at = table.clock() + delay
        rec.consecutive = 0
    reason = f"{what} while Redis was unavailable; retrying in {delay:g}s, until it answers"
    table.set_state(rec, PluginState.DISABLED, reason)
    return delay


def postpone(table: PluginTable, rec: PluginRecord) -> float:
    """Redis still does not answer: try ``rec`` again later (longer each time)."""
    with table.lock:
        delay = retry_delay(rec.outage_level)
        rec.outage_level += 1
        rec.retry_at = table.clock() + delay
    return delay


def recovered(rec: PluginRecord) -> None:
    """``rec`` is active again: its next outage starts over at :data:`FIRST_RETRY`."""
    rec.waiting_for_host = False
    rec.outage_level = 0
