"""A plugin's sandboxed instances: a new one loaded and initialized beside any running one (a
candidate), and one that is replaced or dropped wound down and closed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rwq.plugins.engine.calls import timed_call
from rwq.plugins.engine.records import PluginRecord, cpu_seconds
from rwq.plugins.engine.subscriptions import subscribe_scope
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.host_api.service import HostAPI, PluginBinding
from rwq.plugins.host_api.slots import Slot, host_call_for
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.package.user_config import ConfigStore, PluginConfigError, effective_config
from rwq.plugins.runtimes.base import (
    Hook,
    PluginFault,
    PluginInstance,
    PluginRuntime,
    ResourceLimits,
)
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.review import Review

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Candidate:
    """A new instance loaded and initialized beside the running one, ready to take over
    (:meth:`PluginManager.swap`) or be dropped (:meth:`PluginManager.discard`)."""

    plugin: str
    bundle: Bundle
    review: Review
    instance: PluginInstance
    exports: frozenset[Hook]
    slot: Slot = field(repr=False)


class LoadFailed(Exception):
    """A new instance could not be loaded or initialized; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Instances:
    """Loads and closes a plugin's instances in their runtimes.

    Args:
        runtimes: the sandboxes by manifest ``runtime``.
        host_api: what every instance's host calls go to (through its own slot).
        audit: records host calls an instance may not make any more.
        configs: the user's plugin configurations (``initialize`` gets the effective one).
        bus: where a dropped candidate's subscriptions are.
        set_quota: gives a plugin its storage quota (a first instance, before it loads).
        wake: wakes the supervisor (an instance set a timer).
    """

    def __init__(
        self,
        runtimes: Mapping[str, PluginRuntime],
        host_api: HostAPI,
        audit: AuditLog,
        configs: ConfigStore,
        bus: EventBus,
        *,
        set_quota: Callable[[str, PluginManifest], None],
        wake: Callable[[], None],
    ) -> None:
        self._runtimes = runtimes
        self._host_api = host_api
        self._audit = audit
        self._configs = configs
        self._bus = bus
        self._set_quota = set_quota
        self._wake = wake

    def has_runtime(self, kind: str) -> bool:
        return kind in self._runtimes

    def close_runtimes(self) -> None:
        """Close every runtime (the host stops); a failure is logged."""
        for runtime in self._runtimes.values():
            try:
                runtime.close()
            except Exception:
                log.exception("closing the %s runtime failed", runtime.kind)

    def prepare(self, rec: PluginRecord, bundle: Bundle, review: Review) -> Candidate:
        """A new instance of ``bundle``, loaded and initialized, not yet in place.

        Raises:
            LoadFailed: it could not be loaded, exports no ``render`` or its ``initialize``
                faulted or refused to start.
        """
        m = bundle.manifest
        runtime = self._runtimes.get(m.runtime)
        if runtime is None:
            raise LoadFailed(f"this host has no {m.runtime} runtime")
        binding = PluginBinding(str(m.version), bundle.sha256, subscribe_scope(review))
        slot = Slot(rec.name, binding)
        limits = ResourceLimits(
            max_memory_bytes=m.resources.max_memory,
            timeout_s=m.resources.timeout,
            max_cpu_percent=m.resources.max_cpu,
        )
        if rec.instance is None:  # a replacement gets its quota when it takes over
            self._set_quota(rec.name, m)
        try:
            instance = runtime.load(
                rec.name,
                bundle.entry_point,
                limits,
                host_call_for(slot, self._host_api, self._audit, self._wake),
            )
        except PluginFault as fault:
            rec.metrics.fault(fault.kind.value)
            raise LoadFailed(f"load failed: {fault.reason}") from None
        except Exception as exc:
            log.exception("the %s runtime failed to load plugin %s", m.runtime, rec.name)
            raise LoadFailed(f"load failed: {type(exc).__name__}: {exc}") from None
        cand = Candidate(rec.name, bundle, review, instance, frozenset(), slot)
        try:
            cand.exports = frozenset(instance.exports())
            if Hook.RENDER not in cand.exports:
                raise LoadFailed("the plugin exports no render hook")
            if Hook.INITIALIZE in cand.exports:
                self._initialize(rec, cand)
        except LoadFailed:
            self.drop(cand)
            raise
        except Exception as exc:
            self.drop(cand)
            raise LoadFailed(f"load failed: {type(exc).__name__}: {exc}") from None
        return cand

    def _initialize(self, rec: PluginRecord, cand: Candidate) -> None:
        try:
            config = effective_config(cand.bundle.manifest.config, self._configs.get(rec.name))
        except PluginConfigError as exc:
            raise LoadFailed(str(exc)) from None
        try:
            result = timed_call(rec, cand.instance, Hook.INITIALIZE, config)
        except PluginFault as fault:
            raise LoadFailed(f"initialize faulted: {fault.reason}") from None
        if isinstance(result, dict) and "error" in result:
            refusal = str(result["error"])[:500]
            raise LoadFailed(f"initialize refused to start: {refusal}")

    def drop(self, cand: Candidate) -> None:
        """Close a candidate that will not take over, with what it subscribed and set."""
        cand.slot.live = False
        for sub_id in cand.slot.subscriptions:
            self._bus.unsubscribe(sub_id)
        for timer_id in cand.slot.timers:
            self._host_api.timers.clear(cand.plugin, timer_id)
        close(cand.instance)

    @staticmethod
    def wind_down(
        rec: PluginRecord, old: PluginInstance, slot: Slot, exports: frozenset[Hook]
    ) -> None:
        """Deactivate, clean up and close a replaced instance (its faults no longer count)."""
        for hook in (Hook.DEACTIVATE, Hook.CLEANUP):
            if hook in exports:
                try:
                    timed_call(rec, old, hook, None)
                except PluginFault as fault:
                    log.warning("plugin %s: the replaced instance faulted: %s", rec.name, fault)
        slot.live = False
        rec.metrics.retire(cpu_seconds(old))
        close(old)


def start_budget(instance: Any) -> None:
    """Count the CPU budget from now: loading, initializing and activating (reading stored
    state, say) are a one-off cost, not the steady share ``max_cpu`` limits."""
    start = getattr(instance, "start_budget", None)
    if start is not None:
        start()


def close(instance: PluginInstance) -> None:
    """Close ``instance``; a failure is logged."""
    try:
        instance.close()
    except Exception:
        log.exception("closing plugin instance %s failed", getattr(instance, "name", "?"))
