"""The manager's record of each plugin and the table that holds them: lookups, state changes,
change notices and snapshots, under one bookkeeping lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState, check_transition
from rwq.plugins.engine.metrics import PluginMetrics, PluginSnapshot
from rwq.plugins.eventbus.bus import InboxStats
from rwq.plugins.host_api.slots import Slot
from rwq.plugins.host_api.timers import TimerFired
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.runtimes.base import Hook, PluginInstance
from rwq.plugins.trust.review import Review
from rwq.plugins.trust.signing import SignatureStatus
from rwq.queue.events import Event

log = logging.getLogger(__name__)

ChangeListener = Callable[[str], None]
"""Called with a plugin's name when its state changes or its panel needs a new render."""


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


@dataclass(eq=False)
class PluginRecord:
    """The manager's record of one plugin; fields change under the table's lock or the
    plugin's own."""

    name: str
    bundle: Bundle | None
    state: PluginState = PluginState.DISCOVERED
    reason: str = ""
    notes: tuple[str, ...] = ()
    signature: SignatureStatus | None = None
    """Its bundle's signature (None when ``plugin_signatures`` is off)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Serialises every call into the instance."""
    metrics: PluginMetrics = field(default_factory=PluginMetrics)
    instance: PluginInstance | None = None
    slot: Slot | None = None
    exports: frozenset[Hook] = frozenset()
    review: Review | None = None
    update: tuple[Bundle, Review] | None = None
    """A new version awaiting approval while this one runs."""
    update_signature: SignatureStatus | None = None
    """The signature of the version in :attr:`update`."""
    manifest_subs: list[str] = field(default_factory=list)
    receiving: bool = False
    """The manifest's subscriptions are registered (``events.subscribe`` is granted)."""
    consecutive: int = 0
    backoff_level: int = 0
    retry_at: float | None = None
    waiting_for_host: bool = False
    """Disabled by a Redis outage (not its own fault): reloaded once Redis answers."""
    outage_level: int = 0
    """Retries since it was stopped by an outage (see :mod:`rwq.plugins.engine.outages`)."""
    active_since: float = 0.0
    blocked_by: frozenset[str] = frozenset()
    """Required dependencies that were not running when this plugin was to load."""
    dirty: bool = False
    last_render: list[Any] = field(default_factory=list)
    view: tuple[int, int, bool] | None = None
    """The panel's size and focus while it is on screen (see
    :meth:`~rwq.plugins.engine.panels.Panels.set_view`)."""
    prerendered: tuple[PluginInstance, tuple[int, int, bool], list[Any]] | None = None
    """A render made right after ``on_event`` changed the panel: by which instance, for which
    view, its elements — taken by the next render of that view."""
    prerendered_at: float = float("-inf")
    timers_pending: list[TimerFired] = field(default_factory=list)
    timers_scheduled: bool = False
    deferred: list[Event] = field(default_factory=list)
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


class PluginTable:
    """Every plugin's record by name, in load order, and the lock that guards their
    bookkeeping; it tells the change listeners of every state change and dirty panel.

    Args:
        clock: monotonic seconds (when a plugin became active, when it is retried).
        inbox_stats: a plugin's inbox figures (``EventBus.stats``), for its snapshot.
    """

    def __init__(
        self, *, clock: Callable[[], float], inbox_stats: Callable[[str], InboxStats]
    ) -> None:
        self.lock = threading.RLock()
        """Guards the records' bookkeeping; never held while calling into a plugin."""
        self.clock = clock
        self._inbox_stats = inbox_stats
        self._records: dict[str, PluginRecord] = {}
        self._listeners: tuple[ChangeListener, ...] = ()

    # -- lookups -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every plugin name known, in load order."""
        with self.lock:
            return list(self._records)

    def records(self) -> list[PluginRecord]:
        """Every record, in load order."""
        with self.lock:
            return list(self._records.values())

    def find(self, name: str) -> PluginRecord | None:
        return self._records.get(name)

    def get(self, name: str) -> PluginRecord:
        """The record of ``name``.

        Raises:
            UnknownPlugin: no plugin of that name is known.
        """
        rec = self._records.get(name)
        if rec is None:
            raise UnknownPlugin(name, self._records)
        return rec

    def version(self, name: str) -> str:
        """The version of ``name``; empty if it is unknown or has no bundle."""
        rec = self._records.get(name)
        return rec.version if rec is not None else ""

    def add(self, name: str, bundle: Bundle | None) -> PluginRecord:
        """The record of ``name``, made (with ``bundle``) if there is none yet."""
        with self.lock:
            rec = self._records.get(name)
            if rec is None:
                rec = self._records[name] = PluginRecord(name, bundle)
            return rec

    def remove(self, name: str) -> None:
        with self.lock:
            self._records.pop(name, None)

    # -- changes -----------------------------------------------------------------------------

    def set_state(self, rec: PluginRecord, state: PluginState, reason: str = "") -> None:
        """Move ``rec`` to ``state`` (a legal transition) and tell the listeners."""
        with self.lock:
            check_transition(rec.name, rec.state, state)
            rec.state, rec.reason = state, reason
            if state is PluginState.ACTIVE:
                rec.active_since = self.clock()
        self.notify(rec.name)

    def mark_dirty(self, rec: PluginRecord, *, prerendered: bool = False) -> None:
        """The panel of ``rec`` changed; unless the change was just rendered (``prerendered``),
        a render made before it is out of date."""
        with self.lock:
            rec.dirty = True
            if not prerendered:
                rec.prerendered = None
        self.notify(rec.name)

    def notify(self, name: str) -> None:
        """Tell every change listener that ``name`` changed."""
        for listener in self._listeners:
            try:
                listener(name)
            except Exception:
                log.exception("plugin change listener failed")

    def add_listener(self, listener: ChangeListener) -> None:
        with self.lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with self.lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    # -- snapshots ---------------------------------------------------------------------------

    def snapshots(self) -> list[PluginSnapshot]:
        """Every plugin's state and figures, by name."""
        with self.lock:
            records = sorted(self._records.values(), key=lambda r: r.name)
        return [self.snapshot(rec) for rec in records]

    def snapshot(self, rec: PluginRecord) -> PluginSnapshot:
        """The state and figures of ``rec``."""
        instance = rec.instance
        if instance is not None and rec.lock.acquire(blocking=False):
            try:  # read between calls only: a runtime need not be thread-safe
                if rec.instance is instance:
                    rec.metrics.sample(cpu_seconds(instance), memory_bytes(instance))
            finally:
                rec.lock.release()
        stats = self._inbox_stats(rec.name)
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
            signature=rec.signature,
            bundle_hash=rec.bundle.sha256 if rec.bundle is not None else "",
            **rec.metrics.view(),
        )


def cpu_seconds(instance: PluginInstance) -> float:
    """The CPU time ``instance`` used; 0 if its runtime cannot say."""
    try:
        return float(instance.cpu_seconds())
    except Exception:
        return 0.0


def memory_bytes(instance: PluginInstance) -> int:
    """The memory ``instance`` holds; 0 if its runtime cannot say."""
    try:
        return int(instance.memory_bytes())
    except Exception:
        return 0
