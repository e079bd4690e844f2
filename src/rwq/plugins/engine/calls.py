"""Calls into a plugin's instance: each timed, counted and its answer checked; a fault of the
live instance is contained, and too many disable the plugin for a backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rwq.plugins.contract.errors import InternalError, NotFound, RateLimited
from rwq.plugins.contract.events import PLUGIN_FAULTED
from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
from rwq.plugins.engine.outages import wait_for_host
from rwq.plugins.engine.records import PluginRecord, PluginTable
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.eventbus.feed import publish_local
from rwq.plugins.runtimes.base import FaultKind, Hook, PluginFault, PluginInstance

log = logging.getLogger(__name__)


def timed_call(
    rec: PluginRecord,
    instance: PluginInstance,
    hook: Hook,
    arg: Any,
    check: Callable[[Any], Any] | None = None,
) -> Any:
    """Call ``hook`` of ``instance`` and record it in ``rec``'s metrics; any failure, an
    answer ``check`` refuses included, comes out as a :class:`PluginFault`."""
    start = time.perf_counter()
    failed = True
    try:
        result = instance.call(hook, arg)
        if check is not None:
            try:
                result = check(result)
            except ValueError as exc:
                raise PluginFault(
                    rec.name, FaultKind.INVALID_OUTPUT, str(exc)[:500], hook.value
                ) from None
        failed = False
        return result
    except PluginFault as fault:
        rec.metrics.fault(fault.kind.value)
        raise
    except Exception as exc:
        log.exception("plugin %s: %s raised in the runtime", rec.name, hook.value)
        rec.metrics.fault(FaultKind.TRAP.value)
        raise PluginFault(
            rec.name, FaultKind.TRAP, f"{type(exc).__name__}: {exc}"[:500], hook.value
        ) from None
    finally:
        rec.metrics.record(hook.value, time.perf_counter() - start, failed=failed)


def panel_changed(result: Any) -> bool:
    """The ``{"changed": bool}`` answer of ``on_event``/``on_timer``/``on_input``."""
    if result is None:
        return False
    if isinstance(result, dict) and isinstance(result.get("changed", False), bool):
        return bool(result.get("changed", False))
    raise ValueError(f'expected {{"changed": bool}} or null, got {str(result)[:100]}')


class Calls:
    """Calls into the live instance of a plugin, with its faults contained.

    Args:
        table: the plugin records.
        bus: where ``plugin.faulted`` is published.
        fault_policy: when a faulting plugin is disabled and how long until it is retried.
        retire: stops the live instance of a plugin being disabled (no ``deactivate``).
        wake: wakes the supervisor (a disabled plugin's retry is due).
        host_outage: whether a host call of a plugin met a Redis outage since a time: its
            fault is then the host's, and it is retried until Redis answers (no fault limit).
    """

    def __init__(
        self,
        table: PluginTable,
        bus: EventBus,
        fault_policy: FaultPolicy,
        *,
        retire: Callable[[PluginRecord], None],
        wake: Callable[[], None],
        host_outage: Callable[[str, float], bool] | None = None,
    ) -> None:
        self._table = table
        self._bus = bus
        self._policy = fault_policy
        self._retire = retire
        self._wake = wake
        self._host_outage = host_outage

    def invoke(
        self, rec: PluginRecord, hook: Hook, arg: Any, check: Callable[[Any], Any] | None = None
    ) -> Any:
        """Call ``hook`` of the live instance (rec.lock held); a fault is contained (and
        re-raised), a success resets the fault streak."""
        instance = rec.instance
        if instance is None:
            raise PluginFault(rec.name, FaultKind.CRASH, "not loaded", hook.value)
        started = time.monotonic()
        try:
            result = timed_call(rec, instance, hook, arg, check)
        except PluginFault as fault:
            if rec.instance is instance:
                self._contain(rec, fault, started)
            raise
        rec.consecutive = 0
        return result

    def call_dependency(self, chain: tuple[str, ...], target: str, function: str, args: Any) -> Any:
        """Run ``function`` of ``target`` for a dependant (the host API's ``call_dependency``):
        its ``on_call`` hook, in this thread, with the delegation chain set on its slot so its
        own host calls are checked against every plugin of ``chain``."""
        rec = self._table.find(target)
        if rec is None or rec.state is not PluginState.ACTIVE:
            raise NotFound(f"{target} is not running", function="call_dependency")
        if Hook.ON_CALL not in rec.exports:
            raise NotFound(f"{target} exports no functions", function="call_dependency")
        manifest = rec.manifest
        timeout = manifest.resources.timeout if manifest is not None else 5.0
        if not rec.lock.acquire(timeout=timeout):
            raise RateLimited(f"{target} is busy; retry later", function="call_dependency")
        try:
            slot = rec.slot
            if rec.state is not PluginState.ACTIVE or slot is None:
                raise NotFound(f"{target} is not running", function="call_dependency")
            previous, slot.chain = slot.chain, tuple(chain)
            caller = chain[-2] if len(chain) > 1 else ""
            try:
                arg = {"function": function, "args": args, "caller": caller}
                return self.invoke(rec, Hook.ON_CALL, arg)
            except PluginFault as fault:
                raise InternalError(
                    f"{target}.{function} faulted: {fault.kind.value}",
                    function="call_dependency",
                ) from None
            finally:
                slot.chain = previous
        finally:
            rec.lock.release()

    def _contain(self, rec: PluginRecord, fault: PluginFault, started: float) -> None:
        """Count a fault of the live instance (rec.lock held); disable the plugin when it is
        fatal or one too many in a row, or until Redis answers when a host call of the faulted
        hook met an outage."""
        policy = self._policy
        log.warning("%s", fault)
        publish_local(
            self._bus,
            PLUGIN_FAULTED,
            {"plugin": rec.name, "version": rec.version, "error": str(fault)[:1000]},
        )
        if self._host_outage is not None and self._host_outage(rec.name, started):
            self._retire(rec)
            wait_for_host(self._table, rec, f"faulted ({fault.kind.value})")
            self._wake()
            return
        rec.consecutive += 1
        fatal = fault.kind in policy.fatal
        if not fatal and rec.consecutive < policy.max_consecutive:
            self._table.notify(rec.name)
            return
        why = (
            f"fatal fault: {fault}"
            if fatal
            else f"{rec.consecutive} faults in a row; last: {fault}"
        )
        delay = policy.backoff(rec.backoff_level)
        self._retire(rec)
        with self._table.lock:
            rec.backoff_level += 1
            rec.retry_at = self._table.clock() + delay
            rec.consecutive = 0
        rec.metrics.count_disable()
        self._table.set_state(rec, PluginState.DISABLED, f"{why}; retrying in {delay:g}s")
        self._wake()
