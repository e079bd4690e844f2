"""Hot swap: a running plugin's instance replaced atomically by a candidate loaded beside it,
the old one's state handed over, the old one wound down only once the new one serves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rwq.errors import RwqError
from rwq.plugins.contract.events import PLUGIN_RELOADED
from rwq.plugins.engine.calls import Calls, timed_call
from rwq.plugins.engine.instances import Candidate, Instances, LoadFailed, start_budget
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.loading import Loader, awaiting_reason
from rwq.plugins.engine.records import LifecycleError, PluginRecord, PluginTable
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.eventbus.feed import publish_local
from rwq.plugins.host_api.timers import TimerTable
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.runtimes.base import Hook, PluginFault
from rwq.plugins.trust.review import Review

log = logging.getLogger(__name__)

SwapListener = Callable[["SwapResult", Bundle], None]
"""Called with the result and the new bundle once a running plugin's instance was replaced,
whoever asked (:meth:`PluginManager.replace`, ``swap``, ``reload``, an approved update)."""


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


class HotSwap:
    """Replaces running instances: in one step (:meth:`replace`) or prepared first
    (:meth:`prepare`, then :meth:`swap` or :meth:`discard`).

    Args:
        table: the plugin records.
        ops: the lock that serialises lifecycle operations.
        loader: validates and reviews the new bundle; enables a stopped plugin on reload.
        instances: loads the candidate and winds the old instance down.
        calls: calls into the running instance (``export_state``).
        subscriptions: moves the manifest subscriptions to the new instance.
        bus: where the subscriptions are and ``plugin.reloaded`` is published.
        timers: the host API's timers (the old instance's are cleared).
        set_quota: gives the plugin the new manifest's storage quota.
        extracted: where reopened bundles are extracted.
    """

    def __init__(
        self,
        table: PluginTable,
        ops: threading.RLock,
        loader: Loader,
        instances: Instances,
        calls: Calls,
        subscriptions: Subscriptions,
        bus: EventBus,
        timers: TimerTable,
        *,
        set_quota: Callable[[str, PluginManifest], None],
        extracted: Path,
    ) -> None:
        self._table = table
        self._ops = ops
        self._loader = loader
        self._instances = instances
        self._calls = calls
        self._subscriptions = subscriptions
        self._bus = bus
        self._timers = timers
        self._set_quota = set_quota
        self._extracted = extracted
        self._listeners: tuple[SwapListener, ...] = ()

    def add_listener(self, listener: SwapListener) -> None:
        """Call ``listener(result, bundle)`` after every successful swap, in the thread that
        made it (lifecycle operations are serialised meanwhile: take note, do not wait)."""
        with self._table.lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: SwapListener) -> None:
        with self._table.lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def reload(self, name: str) -> SwapResult:
        """Reopen the bundle of ``name``: a running plugin is replaced, a stopped one
        enabled."""
        with self._ops:
            rec = self._table.get(name)
            if rec.state is not PluginState.ACTIVE:
                old = rec.version
                try:
                    state = self._loader.enable(name)
                except LifecycleError as exc:
                    return SwapResult(name, False, exc.reason, old, old)
                ok = state is PluginState.ACTIVE
                return SwapResult(name, ok, "" if ok else rec.reason, old, rec.version)
            if rec.bundle is None:
                return SwapResult(name, False, "no bundle to reload from")
            try:
                bundle = open_bundle(rec.bundle.path, extract_dir=self._extracted)
            except RwqError as exc:
                return SwapResult(name, False, f"cannot reopen {rec.bundle.path}: {exc}")
            return self.replace(name, bundle)

    def replace(self, name: str, bundle: Bundle) -> SwapResult:
        """Replace the running instance of ``name`` by one loaded from ``bundle``.

        The new instance is loaded and initialized beside the old one, which keeps serving.
        Only if that worked is the old one paused (its events wait in the inbox), its state
        exported into the new one, the new one activated and put in its place. On any
        failure the old instance keeps running and the result says why. A new version that
        asks for more permissions waits for approval (:meth:`PluginManager.pending_approvals`);
        one outside the version range a running dependant declares is refused. A hot
        reloader listening (:meth:`add_listener`) puts the new version on probation.
        """
        with self._ops:
            try:
                rec = self._running(name)
                review = self._loader.check_update(rec, bundle)
            except LifecycleError as exc:
                version = self._table.version(name)
                return SwapResult(name, False, exc.reason, version, str(bundle.version))
            if review.pending:
                rec.update = (bundle, review)
                rec.update_signature = self._loader.signature(bundle)[0]
                self._table.notify(name)
                return SwapResult(
                    name,
                    False,
                    f"version {bundle.version} {awaiting_reason(review)}",
                    rec.version,
                    str(bundle.version),
                )
            return self.swap_in(rec, bundle, review)

    def prepare(self, name: str, bundle: Bundle) -> Candidate:
        """Load and initialize ``bundle`` beside the running instance of ``name``.

        Raises:
            LifecycleError: the plugin is not running, the bundle is for another plugin,
                asks for permissions not granted yet, or failed to load or initialize.
        """
        with self._ops:
            rec = self._running(name)
            review = self._loader.check_update(rec, bundle)
            if review.pending:
                raise LifecycleError(name, f"version {bundle.version} {awaiting_reason(review)}")
            try:
                return self._instances.prepare(rec, bundle, review)
            except LoadFailed as exc:
                raise LifecycleError(name, exc.reason) from None

    def swap(self, candidate: Candidate) -> SwapResult:
        """Put ``candidate`` in the place of its plugin's running instance, atomically: the
        old one's state is handed over, the new one activated, and only then the reference
        switched. On failure the candidate is discarded and the old one keeps running."""
        with self._ops:
            return self._commit(self._table.get(candidate.plugin), candidate)

    def discard(self, candidate: Candidate) -> None:
        """Drop a candidate that will not take over."""
        self._instances.drop(candidate)

    def swap_in(self, rec: PluginRecord, bundle: Bundle, review: Review) -> SwapResult:
        """Prepare ``bundle`` (reviewed, nothing pending) and swap it in (ops lock held)."""
        try:
            candidate = self._instances.prepare(rec, bundle, review)
        except LoadFailed as exc:
            return SwapResult(rec.name, False, exc.reason, rec.version, str(bundle.version))
        return self._commit(rec, candidate)

    def _running(self, name: str) -> PluginRecord:
        rec = self._table.get(name)
        if rec.state is not PluginState.ACTIVE or rec.instance is None:
            raise LifecycleError(name, f"not running ({rec.state.value})")
        return rec

    def _commit(self, rec: PluginRecord, cand: Candidate) -> SwapResult:
        name = rec.name
        new_version = str(cand.bundle.version)
        with rec.lock:
            old, old_slot, old_version = rec.instance, rec.slot, rec.version
            if not cand.slot.live:
                return SwapResult(
                    name, False, "the candidate was discarded", old_version, new_version
                )
            if rec.state is not PluginState.ACTIVE or old is None or old_slot is None:
                self._instances.drop(cand)
                return SwapResult(name, False, "stopped meanwhile", old_version, new_version)

            def failed(why: str) -> SwapResult:
                self._instances.drop(cand)
                return SwapResult(name, False, why, old_version, new_version)

            handed = False
            if Hook.EXPORT_STATE in rec.exports and Hook.IMPORT_STATE in cand.exports:
                try:
                    exported = self._calls.invoke(rec, Hook.EXPORT_STATE, None)
                except PluginFault as fault:
                    return failed(f"the running version's export_state faulted: {fault.reason}")
                try:
                    arg = {"from_version": old_version, "state": exported}
                    timed_call(rec, cand.instance, Hook.IMPORT_STATE, arg)
                except PluginFault as fault:
                    return failed(f"import_state faulted: {fault.reason}")
                handed = True
            if Hook.ACTIVATE in cand.exports:
                try:
                    timed_call(rec, cand.instance, Hook.ACTIVATE, None)
                except PluginFault as fault:
                    return failed(f"activate faulted: {fault.reason}")
            # Subscribe the new manifest first, then drop the old instance's subscriptions:
            # an event published meanwhile reaches the inbox once either way.
            receiving = self._subscriptions.may_receive(name, cand.slot.binding)
            new_subs = (
                self._subscriptions.subscribe_manifest(
                    name, cand.bundle.manifest, cand.slot.binding
                )
                if receiving
                else []
            )
            keep = {*new_subs, *cand.slot.subscriptions}
            for sub in self._bus.subscriptions(name):
                if sub.id not in keep:
                    self._bus.unsubscribe(sub.id)
            for timer_id in old_slot.timers - cand.slot.timers:
                self._timers.clear(name, timer_id)
            old_slot.retiring = True
            old_exports = rec.exports
            start_budget(cand.instance)
            with self._table.lock:
                rec.instance, rec.slot, rec.exports = cand.instance, cand.slot, cand.exports
                rec.bundle, rec.review, rec.update = cand.bundle, cand.review, None
                rec.signature = self._loader.signature(cand.bundle)[0]
                rec.manifest_subs, rec.receiving = new_subs, receiving
                rec.consecutive = 0
                rec.dirty = True
                self._loader.declare(name, cand.bundle.manifest)
            self._set_quota(name, cand.bundle.manifest)
            rec.metrics.count_load()
        self._table.notify(name)  # the new version's panel first, then the old one's exit
        self._instances.wind_down(rec, old, old_slot, old_exports)
        publish_local(
            self._bus,
            PLUGIN_RELOADED,
            {"plugin": name, "version": new_version, "previous_version": old_version},
        )
        self._loader.retry_blocked()  # a dependant may accept this version only
        result = SwapResult(name, True, "", old_version, new_version, handed)
        for listener in self._listeners:
            try:
                listener(result, cand.bundle)
            except Exception:
                log.exception("plugin swap listener failed")
        return result
