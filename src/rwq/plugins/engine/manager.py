"""The plugin lifecycle manager: one façade over the engine (:mod:`rwq.plugins.engine`) that
finds, approves, loads, feeds, renders, supervises, swaps and stops a host's plugins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.plugins.engine.approvals import Approvals, PendingApproval
from rwq.plugins.engine.bindings import HostBindings
from rwq.plugins.engine.calls import Calls
from rwq.plugins.engine.config import Configuration
from rwq.plugins.engine.delivery import Delivery
from rwq.plugins.engine.health import HealthChecks, PluginHealth
from rwq.plugins.engine.instances import Candidate, Instances
from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
from rwq.plugins.engine.loading import Loader
from rwq.plugins.engine.metrics import PluginCollector, PluginSnapshot
from rwq.plugins.engine.panels import ElementValidator, Panels, RenderResult
from rwq.plugins.engine.records import ChangeListener, LifecycleError, PluginTable, UnknownPlugin
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.engine.supervisor import Supervisor
from rwq.plugins.engine.swap import HotSwap, SwapListener, SwapResult
from rwq.plugins.eventbus.bus import DEFAULT_INBOX, EventBus
from rwq.plugins.eventbus.feed import HealthSampler, StatsSampler, StreamFeed
from rwq.plugins.host_api.outages import HostOutages
from rwq.plugins.host_api.service import HostAPI, LogSink, Notify
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.discovery import discover
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.package.paths import PluginPaths
from rwq.plugins.package.user_config import ConfigStore
from rwq.plugins.runtimes.base import PluginRuntime
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.policy import load_policy
from rwq.plugins.trust.signing import SignaturePolicy
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer

__all__ = [
    "Candidate",
    "ChangeListener",
    "ElementValidator",
    "LifecycleError",
    "PendingApproval",
    "PluginHealth",
    "PluginManager",
    "RenderResult",
    "SwapListener",
    "SwapResult",
    "UnknownPlugin",
]


class PluginManager:
    """Runs the plugins of one host process, through one object per concern.

    Args:
        settings: where plugins are searched (``plugin_dirs`` and the installed dir), where
            grants, audit and user configs live, read-only mode.
        runtimes: the sandboxes by manifest ``runtime`` (``"wasm"``, ``"starlark"``); the
            manager closes them in :meth:`stop`.
        client: the Redis client (``decode_responses=True``) for queue operations, plugin
            storage and the event feeds.
        policy_path: a policy file applied to pending permission requests (headless hosts).
        feeds: follow the queue event streams and run the samplers (tests publish to
            :attr:`bus` themselves).
        fault_policy: when a faulting plugin is disabled and retried.
        element_validator: checks render results after the size caps.
        dispatch_threads: dispatcher pool size.
        max_batch: most events handed to one ``on_event`` call.
        on_notify, on_log: where plugin notifications and log lines go (logged by default).
        clock: monotonic seconds (backoff, timers, rate limits).
        with_installed: host the user's installed plugins besides ``plugin_dirs``.
        granted_as_asked: plugins granted what each version's manifest asks for when it is
            reviewed, without asking (``rwq plugin dev``'s plugin).
    """

    def __init__(
        self,
        settings: Settings,
        runtimes: Mapping[str, PluginRuntime],
        client: Any,
        *,
        policy_path: Path | None = None,
        feeds: bool = True,
        fault_policy: FaultPolicy | None = None,
        element_validator: ElementValidator | None = None,
        dispatch_threads: int = 4,
        max_batch: int = DEFAULT_INBOX,
        on_notify: Notify | None = None,
        on_log: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        with_installed: bool = True,
        granted_as_asked: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.client = client
        self.paths = PluginPaths(settings, with_installed=with_installed)
        policy = load_policy(policy_path) if policy_path else None
        self.broker = Broker(client, settings)
        self.audit = AuditLog.from_settings(settings)
        self.grants = GrantStore.from_settings(settings, audit=self.audit)
        self.configs = ConfigStore.from_settings(settings)
        self.bus = EventBus()
        self.invalid: dict[Path, str] = {}
        """Bundles that could not be opened, with the reason (they have no plugin name)."""
        self._ops = ops = threading.RLock()
        """Serialises lifecycle operations."""
        self._table = table = PluginTable(clock=clock, inbox_stats=self.bus.stats)
        wake = threading.Event()
        bindings = HostBindings(table, client, self.broker.keys)
        declared: dict[str, set[str]] = {}
        sinks: dict[str, Any] = {"on_notify": on_notify, "on_log": on_log}
        self.outages = outages = HostOutages(partial(client.exists, self.broker.keys.workers))
        """Host calls that met a Redis outage: their plugins are retried, not blamed."""
        self.host_api = HostAPI(
            grants=self.grants, audit=self.audit, admin=Admin(self.broker),
            producer=Producer(self.broker), bus=self.bus, storage=bindings.storage,
            bindings=bindings.binding, dependencies=declared, call_plugin=self.call_plugin,
            read_only=settings.read_only, clock=clock, outages=outages,
            **{k: v for k, v in sinks.items() if v is not None},  # else logged
        )  # fmt: skip
        timers, fault_policy = self.host_api.timers, fault_policy or FaultPolicy()
        subs = Subscriptions(table, self.bus, self.grants, self.audit)
        instances = Instances(
            dict(runtimes), self.host_api, self.audit, self.configs, self.bus,
            set_quota=bindings.set_quota, wake=wake.set,
        )  # fmt: skip
        self._loader = loader = Loader(
            table, ops, instances, subs, self.grants, self.bus, policy=policy,
            release=self.host_api.release, declared=declared, extracted=self.paths.extracted,
            signatures=SignaturePolicy.from_settings(settings),
            granted_as_asked=frozenset(granted_as_asked), host_outage=outages.met_since,
        )  # fmt: skip
        retire = partial(loader.retire, graceful=False, event="disabled")
        self._calls = calls = Calls(
            table, self.bus, fault_policy, retire=retire, wake=wake.set,
            host_outage=outages.met_since,
        )  # fmt: skip
        self._panels = panels = Panels(table, calls, element_validator)
        self._delivery = delivery = Delivery(
            table, self.bus, calls, subs,
            prerender=panels.prerender, threads=dispatch_threads, max_batch=max_batch,
        )  # fmt: skip
        self._swap = swap = HotSwap(
            table, ops, loader, instances, calls, subs, self.bus, timers,
            set_quota=bindings.set_quota, extracted=self.paths.extracted,
        )  # fmt: skip
        self._approvals = Approvals(table, ops, self.grants, loader, swap, subs)
        self._config = Configuration(table, calls, self.configs)
        self._health = HealthChecks(table, calls)
        self._supervisor = Supervisor(
            table, ops, wake, timers, fault_policy, calls, subs,
            deliver=delivery.deliver, restart=loader.restart, host_healthy=outages.healthy,
        )  # fmt: skip
        self._feeds_wanted = feeds
        self._feeds: list[StreamFeed | StatsSampler | HealthSampler] = []
        self._started = self._stopped = False

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Discover the plugins, start the dispatcher, feeds and supervisor, and bring every
        plugin as far as it can go: active, awaiting approval, or error with the reason."""
        with self._ops:
            if self._started:
                return
            self._started = True
            found = discover(self.paths.search, self.paths.extracted)
            self._delivery.start()
            self._supervisor.start()
            if self._feeds_wanted:
                self._feeds = [
                    StreamFeed(self.client, self.broker.keys, self.bus),
                    StatsSampler(self.host_api.admin, self.bus),
                    HealthSampler(self.client, self.bus),
                ]
                for feed in self._feeds:
                    feed.start()
            self.invalid.update(self._loader.admit_found(found))

    def stop(self) -> None:
        """Deactivate and clean up every plugin, stop the threads and feeds, close the
        runtimes and flush the audit log. Idempotent."""
        with self._table.lock:
            if self._stopped:
                return
            self._stopped = True
        self._supervisor.stop()
        for feed in self._feeds:
            feed.stop()
        self._delivery.stop()
        with self._ops:
            self._loader.stop_all()
        self.audit.close()

    def __enter__(self) -> PluginManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- looking ---------------------------------------------------------------------------

    def plugins(self) -> list[str]:
        """Every plugin name known, in load order (refused ones last)."""
        return self._table.names()

    def state(self, name: str) -> PluginState:
        return self._table.get(name).state

    def reason(self, name: str) -> str:
        """Why the plugin is in its state (empty when active and well)."""
        return self._table.get(name).reason

    def manifest(self, name: str) -> PluginManifest | None:
        """The manifest of the running (else the latest seen) version; None if unreadable."""
        return self._table.get(name).manifest

    def snapshot(self) -> list[PluginSnapshot]:
        """Every plugin's state and figures, by name."""
        return self._table.snapshots()

    def status(self, name: str) -> PluginSnapshot:
        """One plugin's state and figures."""
        return self._table.snapshot(self._table.get(name))

    def collector(self) -> PluginCollector:
        """A Prometheus collector of every plugin's metrics (register it on a registry)."""
        return PluginCollector(self.snapshot)

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(name)`` (any thread) when a plugin's state or panel changes."""
        self._table.add_listener(listener)

    def remove_change_listener(self, listener: ChangeListener) -> None:
        self._table.remove_listener(listener)

    def add_swap_listener(self, listener: SwapListener) -> None:
        """Call ``listener(result, bundle)`` after every successful swap (in its thread)."""
        self._swap.add_listener(listener)

    def remove_swap_listener(self, listener: SwapListener) -> None:
        self._swap.remove_listener(listener)

    # -- approvals -------------------------------------------------------------------------

    def pending_approvals(self) -> list[PendingApproval]:
        """Plugins and new versions waiting for the user's decision, each with its review."""
        return self._approvals.pending()

    def approve(
        self,
        name: str,
        permissions: Iterable[str] | None = None,
        *,
        granted_by: str = "user",
        expires_in: float | None = None,
    ) -> PluginState:
        """Grant the pending permissions of ``name`` (or only ``permissions``); its state."""
        return self._approvals.approve(
            name, permissions, granted_by=granted_by, expires_in=expires_in
        )

    def deny(
        self, name: str, permissions: Iterable[str] | None = None, *, denied_by: str = "user"
    ) -> PluginState:
        """Refuse ``permissions`` of ``name``, all pending ones by default (remembered)."""
        return self._approvals.deny(name, permissions, denied_by=denied_by)

    def revoke(
        self, name: str, permissions: Iterable[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]:
        """Take ``permissions`` (all by default) from ``name``; returns those taken."""
        return self._approvals.revoke(name, permissions, revoked_by=revoked_by)

    # -- bringing plugins up and down ------------------------------------------------------

    def disable(self, name: str, reason: str = "disabled by the user") -> None:
        """Stop ``name`` (deactivate, clean up) until :meth:`enable`; no automatic retry."""
        self._loader.stop(name, PluginState.DISABLED, reason, event="disabled")

    def unload(self, name: str) -> None:
        """Stop ``name`` (deactivate, clean up) and drop the events waiting for it."""
        self._loader.stop(name, PluginState.UNLOADED, "unloaded by the user", event="removed")

    def forget(self, name: str) -> None:
        """Unload ``name`` and drop it from this host; its grants and stored data stay."""
        self._loader.forget(name)

    def enable(self, name: str) -> PluginState:
        """Load a stopped plugin again from its bundle on disk; returns its state."""
        return self._loader.enable(name)

    def restore(self, name: str, bundle: Bundle) -> PluginState:
        """Load ``bundle`` (a version known to work) into a stopped plugin; returns its state."""
        return self._loader.restore(name, bundle)

    def add(self, bundle: Bundle) -> PluginState:
        """Take in a plugin that appeared while the host runs; returns its state."""
        return self._loader.add(bundle)

    # -- hot swap --------------------------------------------------------------------------

    def reload(self, name: str) -> SwapResult:
        """Reopen the bundle of ``name``: a running plugin is replaced, a stopped one enabled."""
        return self._swap.reload(name)

    def replace(self, name: str, bundle: Bundle) -> SwapResult:
        """Replace the running instance of ``name`` by one loaded from ``bundle``, atomically."""
        return self._swap.replace(name, bundle)

    def prepare(self, name: str, bundle: Bundle) -> Candidate:
        """Load and initialize ``bundle`` beside the running instance of ``name``."""
        return self._swap.prepare(name, bundle)

    def swap(self, candidate: Candidate) -> SwapResult:
        """Put ``candidate`` in the place of its plugin's running instance, atomically."""
        return self._swap.swap(candidate)

    def discard(self, candidate: Candidate) -> None:
        """Drop a candidate that will not take over."""
        self._swap.discard(candidate)

    # -- panels, configuration, health, dependencies ---------------------------------------

    def set_view(self, name: str, view: tuple[int, int, bool] | None) -> None:
        """Say the panel of ``name`` is on screen at ``(width, height, focused)`` or not (None)."""
        self._panels.set_view(name, view)

    def render(
        self,
        name: str,
        width: int,
        height: int,
        focused: bool = False,
        *,
        wait: float | None = None,
    ) -> RenderResult:
        """The panel of ``name`` at this size (after ``wait`` seconds, the last one, stale)."""
        return self._panels.render(name, width, height, focused, wait)

    def dirty_panels(self) -> frozenset[str]:
        """Active plugins whose panel changed since its last :meth:`render`."""
        return self._panels.dirty_panels()

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool:
        """Hand an input event to the panel of ``name``; True when the panel changed."""
        return self._panels.on_input(name, event)

    def get_config(self, name: str) -> dict[str, Any]:
        """The configuration of ``name`` (its own answer when running)."""
        return self._config.get(name)

    def set_config(self, name: str, config: Mapping[str, Any]) -> None:
        """Replace the user's configuration of ``name`` (a running plugin may refuse it)."""
        self._config.set(name, config)

    def health(self, name: str) -> PluginHealth:
        """The plugin's health: its ``health_check`` answer when it has one."""
        return self._health.health(name)

    def call_plugin(self, chain: tuple[str, ...], target: str, function: str, args: Any) -> Any:
        """Run ``function`` of ``target`` for a dependant (the host API's ``call_dependency``)."""
        return self._calls.call_dependency(chain, target, function, args)
