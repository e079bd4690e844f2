"""The plugin lifecycle manager: the engine that finds, approves, loads, feeds, renders,
supervises, swaps and stops plugins.

One :class:`PluginManager` per host process owns the plugin core: the grant store and audit
log, the event bus and its dispatcher, the host API, the feeds and samplers, and a record per
plugin that moves through :class:`~rwq.plugins.lifecycle.PluginState`.

Concurrency, in short:

* Calls into one plugin instance are serialised by the plugin's lock; different plugins run in
  parallel (dispatcher threads, timer workers, the caller's thread for ``render``).
* Lifecycle operations (start, approve, enable, replace, stop...) are serialised by one lock of
  their own and never wait for a plugin while holding the bookkeeping lock.
* A fault of a plugin is contained in its record: counted, published as ``plugin.faulted``,
  and after :attr:`FaultPolicy.max_consecutive` faults in a row (or one fatal fault) the plugin
  is disabled and reloaded once after a backoff. Other plugins never wait for it longer than
  one of its calls.
* Each loaded instance has its own host-call entry (a :class:`~rwq.plugins.slots.Slot`) bound
  to its version and bundle hash, so an old and a new version may run side by side during a
  hot swap, each checked against its own grants; a dependency call sets the callee's slot's
  delegation chain, so its host calls are checked against every plugin of the chain.

The state machine is :mod:`rwq.plugins.lifecycle`, the figures :mod:`rwq.plugins.metrics`,
the user's plugin configuration :mod:`rwq.plugins.user_config`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.audit import AuditLog
from rwq.plugins.bundle import Bundle, open_bundle
from rwq.plugins.bus import DEFAULT_INBOX, BusError, Dispatcher, EventBus
from rwq.plugins.contract.errors import InternalError, NotFound, RateLimited
from rwq.plugins.contract.events import (
    PLUGIN_FAULTED,
    PLUGIN_LOADED,
    PLUGIN_RELOADED,
    PLUGIN_UNLOADED,
    SAMPLED,
    BusEvent,
)
from rwq.plugins.contract.ui import cap_elements
from rwq.plugins.feed import HealthSampler, StatsSampler, StreamFeed, publish_local
from rwq.plugins.grants import GrantStore
from rwq.plugins.host_api import HostAPI, LogSink, Notify, PluginBinding
from rwq.plugins.lifecycle import RUNNING, FaultPolicy, PluginState, check_transition
from rwq.plugins.manifest import PluginManifest
from rwq.plugins.metrics import PluginCollector, PluginMetrics, PluginSnapshot
from rwq.plugins.paths import PluginPaths
from rwq.plugins.policy import Policy, load_policy
from rwq.plugins.registry import DuplicatePlugin, discover, load_order
from rwq.plugins.review import Review
from rwq.plugins.runtimes.base import (
    FaultKind,
    Hook,
    PluginFault,
    PluginInstance,
    PluginRuntime,
    ResourceLimits,
)
from rwq.plugins.scope import narrow
from rwq.plugins.slots import Slot, acting, host_call_for
from rwq.plugins.storage import PluginStorage
from rwq.plugins.timers import TimerFired
from rwq.plugins.user_config import (
    ConfigStore,
    PluginConfigError,
    check_config,
    effective_config,
)
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

log = logging.getLogger(__name__)

PRERENDER_EVERY = 0.02
"""Seconds between two renders of a panel made right after ``on_event`` (see
:meth:`PluginManager.set_view`); changes coming faster are rendered by the panel's renderer."""
_TICK = 0.2
"""Longest the supervisor sleeps: the revocation poll and backoff resolution."""
_SUBSCRIBE = "events.subscribe"

ElementValidator = Callable[[list[Any]], list[Any]]
"""Checks a panel's UI elements (raises ``ValueError`` naming the problem) and returns them;
the full UI schema check plugs in here."""
ChangeListener = Callable[[str], None]
"""Called with a plugin's name when its state changes or its panel needs a new render."""
SwapListener = Callable[["SwapResult", Bundle], None]
"""Called with the result and the new bundle once a running plugin's instance was replaced,
whoever asked (:meth:`PluginManager.replace`, ``swap``, ``reload``, an approved update)."""


# -- errors and results ---------------------------------------------------------------------


class UnknownPlugin(RwqError):
    """No plugin of that name was discovered."""

    def __init__(self, plugin: str, known: Iterable[str]) -> None:
        self.plugin = plugin
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no plugin named {plugin!r} (known: {listed})")


class LifecycleError(RwqError):
    """A lifecycle operation cannot be done in the plugin's present state."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        self.reason = reason
        super().__init__(f"plugin {plugin!r}: {reason}")


@dataclass(frozen=True)
class RenderResult:
    """What a panel shows: its UI elements, or why there are none."""

    elements: list[Any]
    state: PluginState
    error: str | None = None
    stale: bool = False
    """The plugin was busy; these are the elements of its last good render."""
    throttled: bool = False
    """The plugin is over its ``max_cpu`` budget: its events are held back meanwhile."""
    throttle_note: str = ""
    """Why, in figures (see :attr:`PluginSnapshot.throttle_note`)."""


@dataclass(frozen=True)
class SwapResult:
    """The outcome of replacing a running instance; on failure the old one keeps running."""

    plugin: str
    ok: bool
    reason: str = ""
    old_version: str = ""
    new_version: str = ""
    state_handed_over: bool = False
    """The old instance's ``export_state`` went to the new one's ``import_state``."""


@dataclass(frozen=True)
class PendingApproval:
    """A plugin (or a new version of a running one) waiting for the user's decision."""

    plugin: str
    version: str
    review: Review
    update: bool
    """A new version of a running plugin; the running one stays until it is approved."""
    manifest: PluginManifest | None = None
    """The manifest of the version waiting (its author and description for the dialog)."""


@dataclass(frozen=True)
class PluginHealth:
    """A plugin's health: its own ``health_check`` when it has one, else the host's view."""

    plugin: str
    state: PluginState
    status: Literal["ok", "degraded", "failing", "inactive"]
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _changed(result: Any) -> bool:
    """The ``{"changed": bool}`` answer of ``on_event``/``on_timer``/``on_input``."""
    if result is None:
        return False
    if isinstance(result, dict) and isinstance(result.get("changed", False), bool):
        return bool(result.get("changed", False))
    raise ValueError(f'expected {{"changed": bool}} or null, got {str(result)[:100]}')


def _health(result: Any) -> dict[str, Any]:
    if isinstance(result, dict) and result.get("status") in ("ok", "degraded", "failing"):
        return result
    raise ValueError(f'expected {{"status": "ok"|"degraded"|"failing", ...}}, got {result!r}'[:200])


# -- records --------------------------------------------------------------------------------


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


@dataclass(eq=False)
class _Plugin:
    """The manager's record of one plugin; fields change under the manager's locks."""

    name: str
    bundle: Bundle | None
    state: PluginState = PluginState.DISCOVERED
    reason: str = ""
    notes: tuple[str, ...] = ()
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Serialises every call into the instance."""
    metrics: PluginMetrics = field(default_factory=PluginMetrics)
    instance: PluginInstance | None = None
    slot: Slot | None = None
    exports: frozenset[Hook] = frozenset()
    review: Review | None = None
    update: tuple[Bundle, Review] | None = None
    """A new version awaiting approval while this one runs."""
    manifest_subs: list[str] = field(default_factory=list)
    receiving: bool = False
    """The manifest's subscriptions are registered (``events.subscribe`` is granted)."""
    consecutive: int = 0
    backoff_level: int = 0
    retry_at: float | None = None
    active_since: float = 0.0
    blocked_by: frozenset[str] = frozenset()
    """Required dependencies that were not running when this plugin was to load."""
    dirty: bool = False
    last_render: list[Any] = field(default_factory=list)
    view: tuple[int, int, bool] | None = None
    """The panel's size and focus while it is on screen (see :meth:`PluginManager.set_view`)."""
    prerendered: tuple[PluginInstance, tuple[int, int, bool], list[Any]] | None = None
    """A render made right after ``on_event`` changed the panel: by which instance, for which
    view, its elements — taken by the next :meth:`PluginManager.render` of that view."""
    prerendered_at: float = float("-inf")
    timers_pending: list[TimerFired] = field(default_factory=list)
    timers_scheduled: bool = False
    deferred: list[BusEvent] = field(default_factory=list)
    """Events held back while the plugin is over its CPU budget (coalesced)."""
    cpu_throttled: bool = False
    throttle_note: str = ""
    """While throttled: the CPU it used, over which window, against which budget and the
    manifest setting that raises it."""

    @property
    def manifest(self) -> PluginManifest | None:
        return self.bundle.manifest if self.bundle is not None else None

    @property
    def version(self) -> str:
        return str(self.bundle.version) if self.bundle is not None else ""


class _LoadFailed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# -- the manager ----------------------------------------------------------------------------


class PluginManager:
    """Runs the plugins of one host process.

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
    ) -> None:
        self.settings = settings
        self.runtimes = dict(runtimes)
        self.client = client
        self.paths = PluginPaths(settings)
        self.policy: Policy | None = load_policy(policy_path) if policy_path else None
        self.fault_policy = fault_policy or FaultPolicy()
        self.element_validator = element_validator
        self.clock = clock
        self.broker = Broker(client, settings)
        self.admin = Admin(self.broker)
        self.producer = Producer(self.broker)
        self.audit = AuditLog.from_settings(settings)
        self.grants = GrantStore.from_settings(settings, audit=self.audit)
        self.configs = ConfigStore.from_settings(settings)
        self.bus = EventBus()
        self._dependencies: dict[str, set[str]] = {}
        self._storages: dict[str, PluginStorage] = {}
        extra: dict[str, Any] = {}
        if on_notify is not None:
            extra["on_notify"] = on_notify
        if on_log is not None:
            extra["on_log"] = on_log
        self.host_api = HostAPI(
            grants=self.grants,
            audit=self.audit,
            admin=self.admin,
            producer=self.producer,
            bus=self.bus,
            storage=self._storage,
            bindings=self._binding,
            dependencies=self._dependencies,
            call_plugin=self.call_plugin,
            read_only=settings.read_only,
            clock=clock,
            **extra,
        )
        self._feeds_wanted = feeds
        self._dispatch_threads = dispatch_threads
        self._max_batch = max_batch
        self.invalid: dict[Path, str] = {}
        """Bundles that could not be opened, with the reason (they have no plugin name)."""
        self._plugins: dict[str, _Plugin] = {}
        self._lock = threading.RLock()
        """Guards the records' bookkeeping; never held while calling into a plugin."""
        self._ops = threading.RLock()
        """Serialises lifecycle operations."""
        self._listeners: tuple[ChangeListener, ...] = ()
        self._swap_listeners: tuple[SwapListener, ...] = ()
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._started = False
        self._stopped = False
        self._dispatcher: Dispatcher | None = None
        self._feeds: list[StreamFeed | StatsSampler | HealthSampler] = []
        self._supervisor: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Discover the plugins, start the dispatcher, feeds and supervisor, and bring every
        plugin as far as it can go: active, awaiting approval, or error with the reason."""
        with self._ops:
            if self._started:
                return
            self._started = True
            found = discover(self.paths.search, self.paths.extracted)
            plan = load_order(found.bundles)
            by_name = {b.name: b for b in found.bundles}
            for path, error in found.errors.items():
                if isinstance(error, DuplicatePlugin):
                    rec = self._record(error.name, None)
                    if rec.state is PluginState.DISCOVERED:
                        self._set_state(rec, PluginState.ERROR, str(error))
                else:
                    self.invalid[path] = str(error)
            self._dispatcher = Dispatcher(
                self.bus,
                self._deliver,
                threads=self._dispatch_threads,
                max_batch=self._max_batch,
                on_error=self._dispatch_failed,
                name="rwq-plugin-dispatch",
            )
            self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rwq-plugin-work")
            if self._feeds_wanted:
                self._feeds = [
                    StreamFeed(self.client, self.broker.keys, self.bus),
                    StatsSampler(self.admin, self.bus),
                    HealthSampler(self.client, self.bus),
                ]
                for feed in self._feeds:
                    feed.start()
            self._supervisor = threading.Thread(
                target=self._supervise, name="rwq-plugin-supervisor", daemon=True
            )
            self._supervisor.start()
            for bundle in plan.order:
                rec = self._record(bundle.name, bundle)
                rec.notes = plan.notes.get(bundle.name, ())
                try:
                    self._admit(rec, bundle)
                except Exception as exc:  # a bug: still bring up the other plugins
                    log.exception("plugin %s failed to start", bundle.name)
                    with self._lock:
                        rec.state, rec.reason = PluginState.ERROR, f"failed to start: {exc}"
            for name, refusal in sorted(plan.refused.items()):
                rec = self._record(name, by_name.get(name))
                self._set_state(rec, PluginState.ERROR, refusal.reason)

    def stop(self) -> None:
        """Deactivate and clean up every plugin, stop the threads and feeds, close the
        runtimes and flush the audit log. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._halt.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        for feed in self._feeds:
            feed.stop()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        with self._ops:
            for rec in reversed(list(self._plugins.values())):
                with rec.lock:
                    if rec.instance is not None:
                        self._retire(rec, graceful=True, event="shutdown")
                        self._set_state(rec, PluginState.UNLOADED, "host stopped")
            for runtime in self.runtimes.values():
                try:
                    runtime.close()
                except Exception:
                    log.exception("closing the %s runtime failed", runtime.kind)
        self.audit.close()

    def __enter__(self) -> PluginManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- looking -----------------------------------------------------------------------------

    def plugins(self) -> list[str]:
        """Every plugin name known, in load order (refused ones last)."""
        with self._lock:
            return list(self._plugins)

    def state(self, name: str) -> PluginState:
        return self._get(name).state

    def reason(self, name: str) -> str:
        """Why the plugin is in its state (empty when active and well)."""
        return self._get(name).reason

    def manifest(self, name: str) -> PluginManifest | None:
        """The manifest of the running (else the latest seen) version; None if unreadable."""
        return self._get(name).manifest

    def pending_approvals(self) -> list[PendingApproval]:
        """Plugins, and new versions of running plugins, waiting for the user's decision;
        each with the :class:`Review` the approval dialog shows."""
        out = []
        with self._lock:
            for rec in self._plugins.values():
                if rec.update is not None:
                    bundle, review = rec.update
                    out.append(
                        PendingApproval(
                            rec.name, str(bundle.version), review, True, bundle.manifest
                        )
                    )
                elif rec.state is PluginState.AWAITING_APPROVAL and rec.review is not None:
                    out.append(
                        PendingApproval(rec.name, rec.version, rec.review, False, rec.manifest)
                    )
        return out

    def snapshot(self) -> list[PluginSnapshot]:
        """Every plugin's state and figures, by name."""
        with self._lock:
            records = sorted(self._plugins.values(), key=lambda r: r.name)
        return [self._snapshot(rec) for rec in records]

    def status(self, name: str) -> PluginSnapshot:
        """One plugin's state and figures."""
        return self._snapshot(self._get(name))

    def collector(self) -> PluginCollector:
        """A Prometheus collector of every plugin's metrics (register it on a registry)."""
        return PluginCollector(self.snapshot)

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(name)`` (from any thread) when a plugin's state changes or its
        panel needs a new render."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_change_listener(self, listener: ChangeListener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def add_swap_listener(self, listener: SwapListener) -> None:
        """Call ``listener(result, bundle)`` after every successful swap, in the thread that
        made it (lifecycle operations are serialised meanwhile: take note, do not wait). The
        hot reloader puts every new version on probation through this."""
        with self._lock:
            self._swap_listeners = (*self._swap_listeners, listener)

    def remove_swap_listener(self, listener: SwapListener) -> None:
        with self._lock:
            self._swap_listeners = tuple(x for x in self._swap_listeners if x != listener)

    def dirty_panels(self) -> frozenset[str]:
        """Active plugins whose panel changed since its last :meth:`render`."""
        with self._lock:
            return frozenset(
                r.name for r in self._plugins.values() if r.dirty and r.state is PluginState.ACTIVE
            )

    # -- approvals ---------------------------------------------------------------------------

    def approve(
        self,
        name: str,
        permissions: Iterable[str] | None = None,
        *,
        granted_by: str = "user",
        expires_in: float | None = None,
    ) -> PluginState:
        """Grant the pending permissions of ``name`` (or only ``permissions``); once nothing
        is pending the plugin loads (or its new version takes over). Returns its state."""
        with self._ops:
            rec, bundle, review = self._awaiting(name)
            self.grants.approve(review, permissions, granted_by=granted_by, expires_in=expires_in)
            self._decided(rec, bundle)
            return rec.state

    def deny(
        self, name: str, permissions: Iterable[str] | None = None, *, denied_by: str = "user"
    ) -> PluginState:
        """Refuse ``permissions`` of ``name`` (remembered). Without ``permissions`` every
        pending one is refused and the plugin (or its new version) is not loaded; with them,
        the plugin loads without those once nothing else is pending."""
        with self._ops:
            rec, bundle, review = self._awaiting(name)
            if permissions is not None:
                names = frozenset(permissions)
            elif rec.update is not None:  # what the running version holds stays granted
                names = review.pending - self._granted_to_running(rec)
            else:
                names = review.pending
            if names:
                self.grants.deny(
                    name,
                    sorted(names),
                    version=str(bundle.version),
                    bundle_hash=bundle.sha256,
                    denied_by=denied_by,
                )
            if permissions is not None:
                self._decided(rec, bundle)
            elif rec.update is not None:
                rec.update = None
                self._notify(name)
            else:
                rec.review = None
                self._set_state(rec, PluginState.UNLOADED, f"permissions denied by {denied_by}")
            return rec.state

    def revoke(
        self, name: str, permissions: Iterable[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]:
        """Take ``permissions`` (all by default) from ``name``. Host calls are refused from
        the next call on; without ``events.subscribe`` its subscriptions are dropped now."""
        removed = self.grants.revoke(
            name, None if permissions is None else list(permissions), revoked_by=revoked_by
        )
        rec = self._plugins.get(name)
        if rec is not None:
            with rec.lock:
                self._sync_subscriptions(rec)
        return removed

    def _granted_to_running(self, rec: _Plugin) -> frozenset[str]:
        slot = rec.slot
        if slot is None:
            return frozenset()
        binding = (slot.binding.version, slot.binding.bundle_hash)
        return frozenset(
            p
            for g in self.grants.grants_for(rec.name)
            if g.binding == binding
            for p in g.permissions
        )

    def _awaiting(self, name: str) -> tuple[_Plugin, Bundle, Review]:
        rec = self._get(name)
        if rec.update is not None:
            return rec, rec.update[0], rec.update[1]
        if (
            rec.state is PluginState.AWAITING_APPROVAL
            and rec.bundle is not None
            and rec.review is not None
        ):
            return rec, rec.bundle, rec.review
        raise LifecycleError(name, f"nothing awaits approval (it is {rec.state.value})")

    def _decided(self, rec: _Plugin, bundle: Bundle) -> None:
        review = self._review(rec.name, bundle, policy=False)
        if rec.update is not None:
            if review.pending:
                rec.update = (bundle, review)
                self._notify(rec.name)
                return
            rec.update = None
            problem = self._dependant_problem(rec.name, bundle)
            result = (
                SwapResult(rec.name, False, problem, rec.version, str(bundle.version))
                if problem
                else self._swap_in(rec, bundle, review)
            )
            if not result.ok:
                log.warning("plugin %s: approved update failed: %s", rec.name, result.reason)
            return
        if review.pending:
            rec.review = review
            self._set_state(rec, PluginState.AWAITING_APPROVAL, _awaiting_reason(review))
            return
        self._load(rec, bundle, review)

    # -- lifecycle operations ------------------------------------------------------------------

    def disable(self, name: str, reason: str = "disabled by the user") -> None:
        """Stop ``name`` (deactivate, clean up) until :meth:`enable`; no automatic retry."""
        with self._ops:
            rec = self._get(name)
            with rec.lock:
                if rec.instance is not None:
                    self._retire(rec, graceful=True, event="disabled")
                rec.retry_at = None
                rec.update = None
                self._set_state(rec, PluginState.DISABLED, reason)

    def unload(self, name: str) -> None:
        """Stop ``name`` (deactivate, clean up) and drop the events waiting for it."""
        with self._ops:
            rec = self._get(name)
            with rec.lock:
                if rec.instance is not None:
                    self._retire(rec, graceful=True, event="removed")
                rec.retry_at = None
                rec.update = None
                self._set_state(rec, PluginState.UNLOADED, "unloaded by the user")

    def forget(self, name: str) -> None:
        """Unload ``name`` and drop it from this host: its bundle left the plugin directories
        (``rwq plugin remove``). Its grants and stored data stay."""
        with self._ops:
            rec = self._get(name)
            with rec.lock:
                if rec.instance is not None:
                    self._retire(rec, graceful=True, event="removed")
            with self._lock:
                self._plugins.pop(name, None)

    def enable(self, name: str) -> PluginState:
        """Load a disabled, unloaded or failed plugin again from its bundle on disk
        (validated and reviewed anew). Returns its state."""
        with self._ops:
            rec = self._get(name)
            if rec.state not in (PluginState.DISABLED, PluginState.UNLOADED, PluginState.ERROR):
                raise LifecycleError(name, f"cannot enable a plugin that is {rec.state.value}")
            rec.retry_at = None
            self._restart(rec)
            return rec.state

    def restore(self, name: str, bundle: Bundle) -> PluginState:
        """Load ``bundle`` (a version known to work) into a stopped plugin: the rollback of a
        hot reload whose new version was disabled. Returns its state.

        Raises:
            LifecycleError: the plugin runs (use :meth:`replace`) or the bundle is another's.
        """
        with self._ops:
            rec = self._get(name)
            if rec.state not in (PluginState.DISABLED, PluginState.UNLOADED, PluginState.ERROR):
                raise LifecycleError(name, f"cannot restore a plugin that is {rec.state.value}")
            if bundle.name != name:
                raise LifecycleError(name, f"the bundle is plugin {bundle.name!r}")
            rec.retry_at = None
            self._admit(rec, bundle)
            return rec.state

    def add(self, bundle: Bundle) -> PluginState:
        """Take in a plugin that appeared in a plugin directory while the host runs: it is
        reviewed like one found at start (awaiting approval unless granted) and loaded.

        Raises:
            LifecycleError: a plugin of that name is here already.
        """
        with self._ops:
            if bundle.name in self._plugins:
                raise LifecycleError(bundle.name, "a plugin of this name is loaded already")
            rec = self._record(bundle.name, bundle)
            try:
                self._admit(rec, bundle)
            except Exception as exc:  # a bug: said on the plugin, the host goes on
                log.exception("plugin %s failed to start", bundle.name)
                self._set_state(rec, PluginState.ERROR, f"failed to start: {exc}")
            return rec.state

    def reload(self, name: str) -> SwapResult:
        """Reopen the bundle of ``name``: a running plugin is replaced atomically (see
        :meth:`replace`); a stopped one is enabled."""
        with self._ops:
            rec = self._get(name)
            if rec.state is not PluginState.ACTIVE:
                old = rec.version
                try:
                    state = self.enable(name)
                except LifecycleError as exc:
                    return SwapResult(name, False, exc.reason, old, old)
                ok = state is PluginState.ACTIVE
                return SwapResult(name, ok, "" if ok else rec.reason, old, rec.version)
            if rec.bundle is None:
                return SwapResult(name, False, "no bundle to reload from")
            try:
                bundle = open_bundle(rec.bundle.path, extract_dir=self.paths.extracted)
            except RwqError as exc:
                return SwapResult(name, False, f"cannot reopen {rec.bundle.path}: {exc}")
            return self.replace(name, bundle)

    # -- atomic replacement --------------------------------------------------------------------

    def replace(self, name: str, bundle: Bundle) -> SwapResult:
        """Replace the running instance of ``name`` by one loaded from ``bundle``.

        The new instance is loaded and initialized beside the old one, which keeps serving.
        Only if that worked is the old one paused (its events wait in the inbox), its state
        exported into the new one, the new one activated and put in its place. On any
        failure the old instance keeps running and the result says why. A new version that
        asks for more permissions waits for approval (:meth:`pending_approvals`); one outside
        the version range a running dependant declares is refused. A hot reloader listening
        (:meth:`add_swap_listener`) puts the new version on probation.
        """
        with self._ops:
            try:
                rec = self._running(name)
                review = self._check_update(rec, bundle)
            except LifecycleError as exc:
                return SwapResult(name, False, exc.reason, self._version(name), str(bundle.version))
            if review.pending:
                rec.update = (bundle, review)
                self._notify(name)
                return SwapResult(
                    name,
                    False,
                    f"version {bundle.version} {_awaiting_reason(review)}",
                    rec.version,
                    str(bundle.version),
                )
            return self._swap_in(rec, bundle, review)

    def prepare(self, name: str, bundle: Bundle) -> Candidate:
        """Load and initialize ``bundle`` beside the running instance of ``name``.

        Raises:
            LifecycleError: the plugin is not running, the bundle is for another plugin,
                asks for permissions not granted yet, or failed to load or initialize.
        """
        with self._ops:
            rec = self._running(name)
            review = self._check_update(rec, bundle)
            if review.pending:
                raise LifecycleError(name, f"version {bundle.version} {_awaiting_reason(review)}")
            try:
                return self._prepare(rec, bundle, review)
            except _LoadFailed as exc:
                raise LifecycleError(name, exc.reason) from None

    def swap(self, candidate: Candidate) -> SwapResult:
        """Put ``candidate`` in the place of its plugin's running instance, atomically: the
        old one's state is handed over, the new one activated, and only then the reference
        switched. On failure the candidate is discarded and the old one keeps running."""
        with self._ops:
            rec = self._get(candidate.plugin)
            return self._commit(rec, candidate)

    def discard(self, candidate: Candidate) -> None:
        """Drop a candidate that will not take over."""
        self._drop_candidate(candidate)

    def _running(self, name: str) -> _Plugin:
        rec = self._get(name)
        if rec.state is not PluginState.ACTIVE or rec.instance is None:
            raise LifecycleError(name, f"not running ({rec.state.value})")
        return rec

    def _check_update(self, rec: _Plugin, bundle: Bundle) -> Review:
        manifest = bundle.manifest
        if manifest.name != rec.name:
            raise LifecycleError(rec.name, f"the bundle is plugin {manifest.name!r}")
        if manifest.runtime not in self.runtimes:
            raise LifecycleError(rec.name, f"this host has no {manifest.runtime} runtime")
        problem, _ = self._dependency_problem(manifest)
        if problem:
            raise LifecycleError(rec.name, problem)
        problem = self._dependant_problem(rec.name, bundle)
        if problem:
            raise LifecycleError(rec.name, problem)
        try:
            return self._review(rec.name, bundle)
        except RwqError as exc:
            raise LifecycleError(rec.name, f"cannot review its permissions: {exc}") from None

    def _swap_in(self, rec: _Plugin, bundle: Bundle, review: Review) -> SwapResult:
        try:
            candidate = self._prepare(rec, bundle, review)
        except _LoadFailed as exc:
            return SwapResult(rec.name, False, exc.reason, rec.version, str(bundle.version))
        return self._commit(rec, candidate)

    def _commit(self, rec: _Plugin, cand: Candidate) -> SwapResult:
        name = rec.name
        new_version = str(cand.bundle.version)
        with rec.lock:
            old, old_slot, old_version = rec.instance, rec.slot, rec.version
            if not cand.slot.live:
                return SwapResult(
                    name, False, "the candidate was discarded", old_version, new_version
                )
            if rec.state is not PluginState.ACTIVE or old is None or old_slot is None:
                self._drop_candidate(cand)
                return SwapResult(name, False, "stopped meanwhile", old_version, new_version)

            def failed(why: str) -> SwapResult:
                self._drop_candidate(cand)
                return SwapResult(name, False, why, old_version, new_version)

            handed = False
            if Hook.EXPORT_STATE in rec.exports and Hook.IMPORT_STATE in cand.exports:
                try:
                    exported = self._invoke(rec, Hook.EXPORT_STATE, None)
                except PluginFault as fault:
                    return failed(f"the running version's export_state faulted: {fault.reason}")
                try:
                    arg = {"from_version": old_version, "state": exported}
                    self._timed_call(rec, cand.instance, Hook.IMPORT_STATE, arg)
                except PluginFault as fault:
                    return failed(f"import_state faulted: {fault.reason}")
                handed = True
            if Hook.ACTIVATE in cand.exports:
                try:
                    self._timed_call(rec, cand.instance, Hook.ACTIVATE, None)
                except PluginFault as fault:
                    return failed(f"activate faulted: {fault.reason}")
            # Subscribe the new manifest first, then drop the old instance's subscriptions:
            # an event published meanwhile reaches the inbox once either way.
            receiving = self._may_receive(name, cand.slot.binding)
            new_subs = (
                self._subscribe_manifest(name, cand.bundle.manifest, cand.slot.binding)
                if receiving
                else []
            )
            keep = {*new_subs, *cand.slot.subscriptions}
            for sub in self.bus.subscriptions(name):
                if sub.id not in keep:
                    self.bus.unsubscribe(sub.id)
            for timer_id in old_slot.timers - cand.slot.timers:
                self.host_api.timers.clear(name, timer_id)
            old_slot.retiring = True
            old_exports = rec.exports
            _start_budget(cand.instance)
            with self._lock:
                rec.instance, rec.slot, rec.exports = cand.instance, cand.slot, cand.exports
                rec.bundle, rec.review, rec.update = cand.bundle, cand.review, None
                rec.manifest_subs, rec.receiving = new_subs, receiving
                rec.consecutive = 0
                rec.dirty = True
                self._dependencies[name] = _declared(cand.bundle.manifest)
            self._quota(name, cand.bundle.manifest)
            rec.metrics.count_load()
        self._wind_down(rec, old, old_slot, old_exports)
        publish_local(
            self.bus,
            PLUGIN_RELOADED,
            {"plugin": name, "version": new_version, "previous_version": old_version},
        )
        result = SwapResult(name, True, "", old_version, new_version, handed)
        for listener in self._swap_listeners:
            try:
                listener(result, cand.bundle)
            except Exception:
                log.exception("plugin swap listener failed")
        self._notify(name)
        return result

    def _wind_down(
        self, rec: _Plugin, old: PluginInstance, slot: Slot, exports: frozenset[Hook]
    ) -> None:
        """Deactivate, clean up and close a replaced instance (its faults no longer count)."""
        for hook in (Hook.DEACTIVATE, Hook.CLEANUP):
            if hook in exports:
                try:
                    self._timed_call(rec, old, hook, None)
                except PluginFault as fault:
                    log.warning("plugin %s: the replaced instance faulted: %s", rec.name, fault)
        slot.live = False
        rec.metrics.retire(_cpu(old))
        _close(old)

    def _drop_candidate(self, cand: Candidate) -> None:
        cand.slot.live = False
        for sub_id in cand.slot.subscriptions:
            self.bus.unsubscribe(sub_id)
        for timer_id in cand.slot.timers:
            self.host_api.timers.clear(cand.plugin, timer_id)
        _close(cand.instance)

    # -- panels --------------------------------------------------------------------------------

    def set_view(self, name: str, view: tuple[int, int, bool] | None) -> None:
        """Say that the panel of ``name`` is on screen at ``(width, height, focused)`` (None:
        not shown). While it is, a change ``on_event`` reports is rendered at once by the
        thread that delivered the events, in the same hold of the plugin, at most
        :data:`PRERENDER_EVERY` apart: the panel's renderer then finds the elements ready
        instead of waiting for the plugin."""
        rec = self._plugins.get(name)
        if rec is None:
            return
        with self._lock:
            rec.view = view
            if rec.prerendered is not None and rec.prerendered[1] != view:
                rec.prerendered = None

    def render(
        self,
        name: str,
        width: int,
        height: int,
        focused: bool = False,
        *,
        wait: float | None = None,
    ) -> RenderResult:
        """The panel of ``name`` at this size: its UI elements, checked and capped.

        Args:
            wait: the longest to wait for the plugin if it is busy (default: until it is
                free); after that the last good render comes back marked ``stale``.
        """
        rec = self._get(name)
        if rec.state is not PluginState.ACTIVE:
            return RenderResult([], rec.state, rec.reason or f"the plugin is {rec.state.value}")
        view = (int(width), int(height), bool(focused))
        with self._lock:
            ready = rec.prerendered
            if ready is not None and ready[0] is rec.instance and ready[1] == view:
                rec.prerendered = None
                rec.dirty = False
                return RenderResult(ready[2], rec.state, throttled=rec.cpu_throttled,
                                    throttle_note=rec.throttle_note)  # fmt: skip
        if not rec.lock.acquire(timeout=-1 if wait is None else wait):
            return RenderResult(list(rec.last_render), rec.state, None, stale=True)
        try:
            if rec.state is not PluginState.ACTIVE or rec.instance is None:
                return RenderResult([], rec.state, rec.reason)
            arg = {"width": int(width), "height": int(height), "focused": bool(focused)}
            try:
                elements: list[Any] = self._invoke(rec, Hook.RENDER, arg, check=self._elements)
            except PluginFault as fault:
                return RenderResult([], rec.state, str(fault))
            with self._lock:
                rec.dirty = False
                rec.last_render = elements
            return RenderResult(elements, rec.state, throttled=rec.cpu_throttled,
                                throttle_note=rec.throttle_note)  # fmt: skip
        finally:
            rec.lock.release()

    def _elements(self, result: Any) -> list[Any]:
        elements = cap_elements(result)
        if self.element_validator is not None:
            elements = self.element_validator(elements)
        return elements

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool:
        """Hand a key press, button or selection to the panel of ``name``; True when the
        panel changed (it is marked dirty)."""
        rec = self._get(name)
        with rec.lock:
            if rec.state is not PluginState.ACTIVE or Hook.ON_INPUT not in rec.exports:
                return False
            try:
                changed: bool = self._invoke(rec, Hook.ON_INPUT, dict(event), check=_changed)
            except PluginFault:
                return False
        if changed:
            self._mark_dirty(rec)
        return changed

    # -- configuration and health --------------------------------------------------------------

    def get_config(self, name: str) -> dict[str, Any]:
        """The plugin's configuration: its ``get_config`` answer when running and exported,
        else the manifest's defaults with the user's stored values on top."""
        rec = self._get(name)
        with rec.lock:
            if rec.state is PluginState.ACTIVE and Hook.GET_CONFIG in rec.exports:
                try:
                    result = self._invoke(rec, Hook.GET_CONFIG, None, check=_object)
                except PluginFault:
                    pass
                else:
                    return dict(result)
        manifest = rec.manifest
        defaults = manifest.config if manifest is not None else {}
        return effective_config(defaults, self.configs.get(name))

    def set_config(self, name: str, config: Mapping[str, Any]) -> None:
        """Replace the user's configuration of ``name``: a running plugin gets the effective
        configuration through ``set_config`` first (and may refuse it); then it is stored in
        the state dir, so the next ``initialize`` gets it too.

        Raises:
            PluginConfigError: not a JSON object, too large, or refused by the plugin.
        """
        rec = self._get(name)
        user = check_config(name, config)
        manifest = rec.manifest
        effective = effective_config(manifest.config if manifest else {}, user)
        with rec.lock:
            if rec.state is PluginState.ACTIVE and Hook.SET_CONFIG in rec.exports:
                try:
                    result = self._invoke(rec, Hook.SET_CONFIG, effective)
                except PluginFault as fault:
                    raise PluginConfigError(name, f"the plugin faulted: {fault.reason}") from None
                if isinstance(result, dict) and "error" in result:
                    raise PluginConfigError(name, f"refused: {str(result['error'])[:500]}")
            self.configs.set(name, user)
        self._mark_dirty(rec)

    def health(self, name: str) -> PluginHealth:
        """The plugin's health: its ``health_check`` answer when it has one."""
        rec = self._get(name)
        state = rec.state
        if state is not PluginState.ACTIVE:
            failing = state in (PluginState.ERROR, PluginState.DISABLED)
            return PluginHealth(name, state, "failing" if failing else "inactive", rec.reason)
        with rec.lock:
            if Hook.HEALTH_CHECK in rec.exports and rec.instance is not None:
                try:
                    detail = self._invoke(rec, Hook.HEALTH_CHECK, None, check=_health)
                except PluginFault as fault:
                    return PluginHealth(name, rec.state, "failing", str(fault))
                return PluginHealth(name, rec.state, detail["status"], "", detail)
        status: Literal["ok", "degraded"] = "degraded" if rec.consecutive else "ok"
        why = f"{rec.consecutive} faults in a row" if rec.consecutive else ""
        return PluginHealth(name, rec.state, status, why)

    # -- dependencies ----------------------------------------------------------------------------

    def call_plugin(self, chain: tuple[str, ...], target: str, function: str, args: Any) -> Any:
        """Run ``function`` of ``target`` for a dependant (the host API's ``call_dependency``):
        its ``on_call`` hook, in this thread, with the delegation chain set on its slot so its
        own host calls are checked against every plugin of ``chain``."""
        rec = self._plugins.get(target)
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
                return self._invoke(rec, Hook.ON_CALL, arg)
            except PluginFault as fault:
                raise InternalError(
                    f"{target}.{function} faulted: {fault.kind.value}",
                    function="call_dependency",
                ) from None
            finally:
                slot.chain = previous
        finally:
            rec.lock.release()

    # -- admission and loading -------------------------------------------------------------------

    def _record(self, name: str, bundle: Bundle | None) -> _Plugin:
        with self._lock:
            rec = self._plugins.get(name)
            if rec is None:
                rec = self._plugins[name] = _Plugin(name, bundle)
            return rec

    def _get(self, name: str) -> _Plugin:
        rec = self._plugins.get(name)
        if rec is None:
            raise UnknownPlugin(name, self._plugins)
        return rec

    def _version(self, name: str) -> str:
        rec = self._plugins.get(name)
        return rec.version if rec is not None else ""

    def _restart(self, rec: _Plugin) -> None:
        if rec.bundle is None:
            self._set_state(rec, PluginState.ERROR, "no bundle to load from")
            return
        try:
            bundle = open_bundle(rec.bundle.path, extract_dir=self.paths.extracted)
        except RwqError as exc:
            self._set_state(rec, PluginState.ERROR, f"cannot reopen {rec.bundle.path}: {exc}")
            return
        if bundle.name != rec.name:
            self._set_state(rec, PluginState.ERROR, f"{bundle.path} now holds {bundle.name}")
            return
        self._admit(rec, bundle)

    def _admit(self, rec: _Plugin, bundle: Bundle) -> None:
        """Validate, review and (when nothing is pending) load a stopped plugin."""
        rec.bundle = bundle
        self._set_state(rec, PluginState.VALIDATED)
        manifest = bundle.manifest
        if manifest.runtime not in self.runtimes:
            self._set_state(rec, PluginState.ERROR, f"this host has no {manifest.runtime} runtime")
            return
        problem, blocked = self._dependency_problem(manifest)
        rec.blocked_by = blocked
        problem = problem or self._dependant_problem(rec.name, bundle)
        if problem:
            self._set_state(rec, PluginState.ERROR, problem)
            return
        try:
            review = self._review(rec.name, bundle)
        except RwqError as exc:  # the grants file is unreadable: nothing can be checked
            self._set_state(rec, PluginState.ERROR, f"cannot review its permissions: {exc}")
            return
        if review.pending:
            rec.review = review
            self._set_state(rec, PluginState.AWAITING_APPROVAL, _awaiting_reason(review))
            return
        self._load(rec, bundle, review)

    def _dependency_problem(self, manifest: PluginManifest) -> tuple[str, frozenset[str]]:
        """Why the required dependencies stop ``manifest`` from loading now (empty if they
        do not), and which of them merely are not running yet."""
        problems: list[str] = []
        blocked: set[str] = set()
        for dep in manifest.dependencies:
            if dep.optional:
                continue
            other = self._plugins.get(dep.name)
            if other is None or other.bundle is None:
                problems.append(f"requires {dep.name}, which is not installed")
            elif not dep.version.contains(other.bundle.version):
                problems.append(
                    f"requires {dep.name} {dep.version}, but {other.bundle.version} is installed"
                )
            elif other.state is not PluginState.ACTIVE:
                blocked.add(dep.name)
                problems.append(f"requires {dep.name}, which is {other.state.value}")
        return "; ".join(problems), frozenset(blocked)

    def _dependant_problem(self, name: str, bundle: Bundle) -> str:
        """Why ``bundle`` may not take the place of ``name``: the running plugins whose
        declared range for ``name`` its version is outside (empty if none)."""
        version = bundle.version
        with self._lock:
            running = [r for r in self._plugins.values() if r.state in RUNNING and r.name != name]
        problems = [
            f"{rec.name} {rec.version} requires {name} {dep.version}"
            for rec in running
            if rec.manifest is not None
            for dep in rec.manifest.dependencies
            if dep.name == name and not dep.version.contains(version)
        ]
        if not problems:
            return ""
        return f"version {version} breaks its dependants: {'; '.join(problems)}"

    def _review(self, name: str, bundle: Bundle, *, policy: bool = True) -> Review:
        """The review of ``bundle``'s requests (the policy applied to what is pending). The
        running instance's binding keeps its grants even if an update that failed to load
        was reviewed since."""
        m = bundle.manifest
        requested = list(m.permissions)
        rec = self._plugins.get(name)
        slot = rec.slot if rec is not None else None
        running = [(slot.binding.version, slot.binding.bundle_hash)] if slot is not None else []
        review = self.grants.review(name, requested, str(m.version), bundle.sha256, keep=running)
        if review.pending and policy and self.policy is not None:
            review = self.grants.apply_policy(
                self.policy, name, requested, str(m.version), bundle.sha256
            )
        return review

    def _load(self, rec: _Plugin, bundle: Bundle, review: Review) -> None:
        """Load, initialize, activate and subscribe; ACTIVE or ERROR with the reason."""
        self._set_state(rec, PluginState.LOADING)
        rec.bundle, rec.review = bundle, review
        with self._lock:
            self._dependencies[rec.name] = _declared(bundle.manifest)
        try:
            cand = self._prepare(rec, bundle, review)
        except _LoadFailed as exc:
            self.host_api.release(rec.name)
            self._set_state(rec, PluginState.ERROR, exc.reason)
            return
        with rec.lock:
            with self._lock:
                rec.instance, rec.slot, rec.exports = cand.instance, cand.slot, cand.exports
                rec.consecutive = 0
            rec.metrics.count_load()
            self._set_state(rec, PluginState.READY)
            if Hook.ACTIVATE in rec.exports:
                try:
                    self._timed_call(rec, cand.instance, Hook.ACTIVATE, None)
                except PluginFault as fault:
                    self._retire(rec, graceful=False, event=None)
                    self._set_state(rec, PluginState.ERROR, f"activate faulted: {fault.reason}")
                    return
            self._start_receiving(rec)
            _start_budget(cand.instance)
            self._set_state(rec, PluginState.ACTIVE)
            self._mark_dirty(rec)
        publish_local(
            self.bus,
            PLUGIN_LOADED,
            {"plugin": rec.name, "version": rec.version, "runtime": bundle.manifest.runtime},
        )
        self._retry_blocked()

    def _prepare(self, rec: _Plugin, bundle: Bundle, review: Review) -> Candidate:
        """A new instance of ``bundle``, loaded and initialized, not yet in place."""
        m = bundle.manifest
        runtime = self.runtimes.get(m.runtime)
        if runtime is None:
            raise _LoadFailed(f"this host has no {m.runtime} runtime")
        binding = PluginBinding(str(m.version), bundle.sha256, _subscribe_scope(review))
        slot = Slot(rec.name, binding)
        limits = ResourceLimits(
            max_memory_bytes=m.resources.max_memory,
            timeout_s=m.resources.timeout,
            max_cpu_percent=m.resources.max_cpu,
        )
        if rec.instance is None:  # a replacement gets its quota when it takes over
            self._quota(rec.name, m)
        try:
            instance = runtime.load(
                rec.name,
                bundle.entry_point,
                limits,
                host_call_for(slot, self.host_api, self.audit, self._wake.set),
            )
        except PluginFault as fault:
            rec.metrics.fault(fault.kind.value)
            raise _LoadFailed(f"load failed: {fault.reason}") from None
        except Exception as exc:
            log.exception("the %s runtime failed to load plugin %s", m.runtime, rec.name)
            raise _LoadFailed(f"load failed: {type(exc).__name__}: {exc}") from None
        cand = Candidate(rec.name, bundle, review, instance, frozenset(), slot)
        try:
            cand.exports = frozenset(instance.exports())
            if Hook.RENDER not in cand.exports:
                raise _LoadFailed("the plugin exports no render hook")
            if Hook.INITIALIZE in cand.exports:
                try:
                    config = effective_config(m.config, self.configs.get(rec.name))
                except PluginConfigError as exc:
                    raise _LoadFailed(str(exc)) from None
                try:
                    result = self._timed_call(rec, instance, Hook.INITIALIZE, config)
                except PluginFault as fault:
                    raise _LoadFailed(f"initialize faulted: {fault.reason}") from None
                if isinstance(result, dict) and "error" in result:
                    refusal = str(result["error"])[:500]
                    raise _LoadFailed(f"initialize refused to start: {refusal}")
        except _LoadFailed:
            self._drop_candidate(cand)
            raise
        except Exception as exc:
            self._drop_candidate(cand)
            raise _LoadFailed(f"load failed: {type(exc).__name__}: {exc}") from None
        return cand

    def _retire(self, rec: _Plugin, *, graceful: bool, event: str | None) -> None:
        """Stop the live instance (rec.lock held): deactivate and clean up when ``graceful``,
        release what it holds through the host API, close it, publish ``plugin.unloaded``
        with reason ``event`` (unless None). The caller sets the new state."""
        instance, slot = rec.instance, rec.slot
        if instance is None or slot is None:
            return
        if graceful:
            for hook in (Hook.DEACTIVATE, Hook.CLEANUP):
                if hook in rec.exports:
                    try:
                        self._timed_call(rec, instance, hook, None)
                    except PluginFault as fault:
                        log.warning("plugin %s: %s faulted while stopping", rec.name, fault)
        slot.live = False
        with self._lock:
            rec.instance, rec.slot, rec.exports = None, None, frozenset()
            rec.manifest_subs, rec.receiving, rec.dirty = [], False, False
            rec.timers_pending = []
        self.host_api.release(rec.name)
        self._discard_inbox(rec)
        rec.metrics.retire(_cpu(instance))
        _close(instance)
        if event is not None:
            publish_local(
                self.bus,
                PLUGIN_UNLOADED,
                {"plugin": rec.name, "version": rec.version, "reason": event},
            )

    def _retry_blocked(self) -> None:
        """Admit plugins that were waiting for dependencies now running."""
        with self._lock:
            waiting = [
                r
                for r in self._plugins.values()
                if r.state is PluginState.ERROR and r.blocked_by and r.bundle is not None
            ]
        for rec in waiting:
            if all(self._plugins[d].state is PluginState.ACTIVE for d in rec.blocked_by):
                assert rec.bundle is not None
                self._admit(rec, rec.bundle)

    # -- calls into plugins -----------------------------------------------------------------------

    def _timed_call(
        self,
        rec: _Plugin,
        instance: PluginInstance,
        hook: Hook,
        arg: Any,
        check: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Call ``hook`` and record it; any failure comes out as a :class:`PluginFault`."""
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

    def _invoke(
        self, rec: _Plugin, hook: Hook, arg: Any, check: Callable[[Any], Any] | None = None
    ) -> Any:
        """Call ``hook`` of the live instance (rec.lock held); a fault is contained (and
        re-raised), a success resets the fault streak."""
        instance = rec.instance
        if instance is None:
            raise PluginFault(rec.name, FaultKind.CRASH, "not loaded", hook.value)
        try:
            result = self._timed_call(rec, instance, hook, arg, check)
        except PluginFault as fault:
            if rec.instance is instance:
                self._contain(rec, fault)
            raise
        rec.consecutive = 0
        return result

    def _contain(self, rec: _Plugin, fault: PluginFault) -> None:
        """Count a fault of the live instance (rec.lock held); disable the plugin when it is
        fatal or one too many in a row."""
        policy = self.fault_policy
        rec.consecutive += 1
        log.warning("%s", fault)
        publish_local(
            self.bus,
            PLUGIN_FAULTED,
            {"plugin": rec.name, "version": rec.version, "error": str(fault)[:1000]},
        )
        fatal = fault.kind in policy.fatal
        if not fatal and rec.consecutive < policy.max_consecutive:
            self._notify(rec.name)
            return
        why = (
            f"fatal fault: {fault}"
            if fatal
            else f"{rec.consecutive} faults in a row; last: {fault}"
        )
        delay = policy.backoff(rec.backoff_level)
        self._retire(rec, graceful=False, event="disabled")
        with self._lock:
            rec.backoff_level += 1
            rec.retry_at = self.clock() + delay
            rec.consecutive = 0
        rec.metrics.count_disable()
        self._set_state(rec, PluginState.DISABLED, f"{why}; retrying in {delay:g}s")
        self._wake.set()

    @staticmethod
    def _throttle_note(rec: _Plugin) -> str:
        share = getattr(rec.instance, "cpu_share", None)
        budget = rec.manifest.resources.max_cpu if rec.manifest is not None else None
        if share is None or budget is None:
            return "over its CPU budget (resources.max_cpu)"
        percent, window = share
        return f"{percent:.1f}% CPU over {window:g}s > {budget:g}% budget (resources.max_cpu)"

    # -- events --------------------------------------------------------------------------------

    def _deliver(self, name: str, batch: list[BusEvent]) -> None:
        rec = self._plugins.get(name)
        if rec is None:
            return
        with rec.lock:
            if (
                rec.state is not PluginState.ACTIVE
                or rec.slot is None
                or Hook.ON_EVENT not in rec.exports
            ):
                rec.metrics.discard(len(batch))
                return
            if not self._may_receive(name, rec.slot.binding):
                rec.metrics.discard(len(batch))
                self._sync_subscriptions(rec)
                return
            throttled = bool(getattr(rec.instance, "throttled", False))
            if throttled != rec.cpu_throttled:
                rec.cpu_throttled = throttled
                rec.throttle_note = self._throttle_note(rec) if throttled else ""
                self._notify(name)  # its panel says so (or stops saying so)
            if throttled:
                # Over its max_cpu budget: hold the events back, coalesced, until it is under
                # again (the manager's poll hands them over then).
                rec.metrics.discard(self._defer(rec, batch))
                return
            if rec.deferred:
                batch, rec.deferred = [*rec.deferred, *batch], []
            if not batch:
                return
            try:
                changed = self._invoke(
                    rec, Hook.ON_EVENT, [e.to_dict() for e in batch], check=_changed
                )
            except PluginFault:
                return
            if changed:
                self._prerender(rec)
        if changed:
            self._mark_dirty(rec, prerendered=True)

    def _prerender(self, rec: _Plugin) -> None:
        """Render the panel of ``rec`` now if it is on screen (rec.lock held, the events just
        handled): see :meth:`set_view`. Otherwise, or too soon after the last one, the panel's
        renderer will ask for a render itself."""
        with self._lock:
            view, instance = rec.view, rec.instance
            rec.prerendered = None  # older than the change just made
        now = time.monotonic()
        if (
            view is None
            or instance is None
            or Hook.RENDER not in rec.exports
            or now - rec.prerendered_at < PRERENDER_EVERY
        ):
            return
        arg = {"width": view[0], "height": view[1], "focused": view[2]}
        try:
            elements: list[Any] = self._invoke(rec, Hook.RENDER, arg, check=self._elements)
        except PluginFault:
            return  # contained; the renderer renders again and shows what happened
        with self._lock:
            rec.prerendered = (instance, view, elements)
            rec.prerendered_at = now
            rec.last_render = elements

    @staticmethod
    def _defer(rec: _Plugin, batch: list[BusEvent]) -> int:
        """Add ``batch`` to the held-back events: sampled events keep only the latest per
        (type, queue), the rest the newest ``DEFAULT_INBOX``. Returns how many were dropped."""
        held: dict[tuple[str, str], BusEvent] = {}
        kept: list[BusEvent] = []
        for event in [*rec.deferred, *batch]:
            if event.type in SAMPLED:
                held[(event.type, event.queue)] = event
            else:
                kept.append(event)
        dropped = max(0, len(kept) - DEFAULT_INBOX)
        rec.deferred = [*kept[dropped:], *held.values()]
        return dropped

    def _dispatch_failed(self, plugin: str, exc: BaseException) -> None:
        log.error("delivering events to plugin %s failed", plugin, exc_info=exc)

    def _may_receive(self, name: str, binding: PluginBinding) -> bool:
        """Whether the binding holds an unexpired grant of ``events.subscribe`` (no audit
        record: this is the host's bookkeeping, not a plugin's call)."""
        now = time.time()
        wanted = (binding.version, binding.bundle_hash)
        return any(
            _SUBSCRIBE in g.permissions and g.binding == wanted and not g.expired(now)
            for g in self.grants.grants_for(name)
        )

    def _subscribe_manifest(
        self, name: str, manifest: PluginManifest, binding: PluginBinding
    ) -> list[str]:
        """Register the manifest's subscriptions, their queues cut to the granted scope."""
        ids: list[str] = []
        for sub in manifest.events:
            queues = narrow(sub.queues, binding.queues)
            if not queues:
                log.info("plugin %s: no granted queue in %s for %s", name, sub.queues, sub.type)
                continue
            try:
                ids.append(self.bus.subscribe(name, sub.type, queues=queues, interval=sub.interval))
            except BusError as exc:
                log.warning("plugin %s: subscription %s refused: %s", name, sub.type, exc)
        return ids

    def _start_receiving(self, rec: _Plugin) -> None:
        slot, manifest = rec.slot, rec.manifest
        if slot is None or manifest is None or not self._may_receive(rec.name, slot.binding):
            rec.receiving = False
            return
        rec.manifest_subs = self._subscribe_manifest(rec.name, manifest, slot.binding)
        rec.receiving = True

    def _sync_subscriptions(self, rec: _Plugin) -> None:
        """Drop the subscriptions of a plugin no longer granted ``events.subscribe`` and
        register the manifest's once it is granted again (rec.lock held)."""
        if rec.state is not PluginState.ACTIVE or rec.slot is None:
            return
        if self._may_receive(rec.name, rec.slot.binding):
            if not rec.receiving:
                self._start_receiving(rec)
            return
        dropped = self.bus.unsubscribe_all(rec.name)
        was = rec.receiving
        rec.manifest_subs, rec.receiving = [], False
        self._discard_inbox(rec)
        if dropped or was:
            self.audit.record(
                rec.name,
                f"{_SUBSCRIBE}:deliver",
                "",
                False,
                reason=f"not granted; {dropped} subscriptions dropped",
            )
            self._notify(rec.name)

    def _discard_inbox(self, rec: _Plugin) -> None:
        while batch := self.bus.drain(rec.name):
            rec.metrics.discard(len(batch))

    # -- the supervisor: timers, backoff, revocations ----------------------------------------

    def _supervise(self) -> None:
        next_poll = 0.0
        while not self._halt.is_set():
            self._wake.clear()
            try:
                now = self.clock()
                for fired in self.host_api.timers.due(now):
                    self._queue_timer(fired)
                self._retry_disabled(now)
                if now >= next_poll:
                    next_poll = now + _TICK
                    self._poll(now)
            except Exception:
                log.exception("plugin supervisor failed; carrying on")
            wait = _TICK
            due = self.host_api.timers.next_due()
            if due is not None:
                wait = min(wait, max(0.0, due - self.clock()))
            self._wake.wait(wait)

    def _poll(self, now: float) -> None:
        with self._lock:
            active = [r for r in self._plugins.values() if r.state is PluginState.ACTIVE]
        for rec in active:
            if rec.backoff_level and now - rec.active_since >= self.fault_policy.healthy_after:
                rec.backoff_level = 0
            if rec.lock.acquire(blocking=False):  # a busy plugin is looked at next round
                try:
                    self._sync_subscriptions(rec)
                    if rec.deferred and not getattr(rec.instance, "throttled", False):
                        self._submit(lambda r: self._deliver(r.name, []), rec)
                finally:
                    rec.lock.release()

    def _retry_disabled(self, now: float) -> None:
        with self._lock:
            due = [
                r
                for r in self._plugins.values()
                if r.state is PluginState.DISABLED and r.retry_at is not None and r.retry_at <= now
            ]
            for rec in due:
                rec.retry_at = None
        for rec in due:
            self._submit(self._auto_reload, rec)

    def _auto_reload(self, rec: _Plugin) -> None:
        with self._ops:
            if self._halt.is_set() or rec.state is not PluginState.DISABLED:
                return
            log.info("plugin %s: reloading after its backoff", rec.name)
            self._restart(rec)

    def _queue_timer(self, fired: TimerFired) -> None:
        rec = self._plugins.get(fired.plugin)
        if rec is None:
            return
        with self._lock:
            rec.timers_pending.append(fired)
            if rec.timers_scheduled:
                return
            rec.timers_scheduled = True
        self._submit(self._run_timers, rec)

    def _run_timers(self, rec: _Plugin) -> None:
        """Hand a plugin its due timers, one ``on_timer`` each, in one hold of its lock."""
        while True:
            with self._lock:
                batch, rec.timers_pending = rec.timers_pending, []
                if not batch or self._halt.is_set():
                    rec.timers_scheduled = False
                    return
            changed = False
            with rec.lock:
                for fired in batch:
                    if rec.state is not PluginState.ACTIVE or Hook.ON_TIMER not in rec.exports:
                        break
                    try:
                        changed |= self._invoke(rec, Hook.ON_TIMER, fired.argument(), _changed)
                    except PluginFault:
                        break
            if changed:
                self._mark_dirty(rec)

    def _submit(self, work: Callable[[_Plugin], None], rec: _Plugin) -> None:
        if self._workers is None or self._halt.is_set():
            return

        def run() -> None:
            try:
                work(rec)
            except Exception:
                log.exception("plugin %s: background work failed", rec.name)

        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self._workers.submit(run)

    # -- the host API's view -------------------------------------------------------------------

    def _binding(self, name: str) -> PluginBinding | None:
        slot = acting(name)
        if slot is not None:
            return slot.binding if slot.live else None
        rec = self._plugins.get(name)
        if rec is None or rec.state not in RUNNING:
            return None
        slot = rec.slot
        return slot.binding if slot is not None and slot.live else None

    def _storage(self, name: str) -> PluginStorage:
        storage = self._storages.get(name)
        if storage is None:
            raise RwqError(f"plugin {name!r} has no storage here (not loaded)")
        return storage

    def _quota(self, name: str, manifest: PluginManifest) -> None:
        r = manifest.resources
        with self._lock:
            storage = self._storages.get(name)
            if (
                storage is None
                or storage.max_keys != r.max_storage_keys
                or storage.max_bytes != r.max_storage
            ):
                self._storages[name] = PluginStorage(
                    self.client,
                    self.broker.keys,
                    name,
                    max_keys=r.max_storage_keys,
                    max_bytes=r.max_storage,
                )

    # -- bookkeeping -----------------------------------------------------------------------------

    def _set_state(self, rec: _Plugin, state: PluginState, reason: str = "") -> None:
        with self._lock:
            check_transition(rec.name, rec.state, state)
            rec.state, rec.reason = state, reason
            if state is PluginState.ACTIVE:
                rec.active_since = self.clock()
        self._notify(rec.name)

    def _mark_dirty(self, rec: _Plugin, *, prerendered: bool = False) -> None:
        """The panel of ``rec`` changed; unless the change was just rendered (``prerendered``),
        a render made before it is out of date."""
        with self._lock:
            rec.dirty = True
            if not prerendered:
                rec.prerendered = None
        self._notify(rec.name)

    def _notify(self, name: str) -> None:
        for listener in self._listeners:
            try:
                listener(name)
            except Exception:
                log.exception("plugin change listener failed")

    def _snapshot(self, rec: _Plugin) -> PluginSnapshot:
        instance = rec.instance
        if instance is not None and rec.lock.acquire(blocking=False):
            try:  # read between calls only: a runtime need not be thread-safe
                if rec.instance is instance:
                    rec.metrics.sample(_cpu(instance), _memory(instance))
            finally:
                rec.lock.release()
        stats = self.bus.stats(rec.name)
        manifest = rec.manifest
        retry_in = None
        if rec.state is PluginState.DISABLED and rec.retry_at is not None:
            retry_in = max(0.0, rec.retry_at - self.clock())
        return PluginSnapshot(
            name=rec.name,
            version=rec.version,
            runtime=manifest.runtime if manifest is not None else "",
            state=rec.state,
            reason=rec.reason,
            events_delivered=max(0, stats.delivered - rec.metrics.discarded),
            events_dropped=stats.dropped,
            events_coalesced=stats.coalesced,
            events_throttled=stats.throttled,
            events_queued=stats.queued,
            consecutive_faults=rec.consecutive,
            retry_in=retry_in,
            dirty=rec.dirty,
            cpu_throttled=rec.cpu_throttled,
            throttle_note=rec.throttle_note,
            **rec.metrics.view(),
        )


# -- helpers -------------------------------------------------------------------------------------


def _start_budget(instance: Any) -> None:
    """Count the CPU budget from now: loading, initializing and activating (reading stored
    state, say) are a one-off cost, not the steady share ``max_cpu`` limits."""
    start = getattr(instance, "start_budget", None)
    if start is not None:
        start()


def _object(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    raise ValueError(f"expected an object, got {type(result).__name__}")


def _declared(manifest: PluginManifest) -> set[str]:
    return {d.name for d in manifest.dependencies}


def _subscribe_scope(review: Review) -> tuple[str, ...]:
    """The queues the plugin's ``events.subscribe`` grant covers (its binding's scope)."""
    for item in review.items:
        if item.permission == _SUBSCRIBE and item.status == "granted" and item.granted_queues:
            return item.granted_queues
    return ("*",)


def _awaiting_reason(review: Review) -> str:
    return "awaits approval of " + ", ".join(sorted(review.pending))


def _cpu(instance: PluginInstance) -> float:
    try:
        return float(instance.cpu_seconds())
    except Exception:
        return 0.0


def _memory(instance: PluginInstance) -> int:
    try:
        return int(instance.memory_bytes())
    except Exception:
        return 0


def _close(instance: PluginInstance) -> None:
    try:
        instance.close()
    except Exception:
        log.exception("closing plugin instance %s failed", getattr(instance, "name", "?"))
