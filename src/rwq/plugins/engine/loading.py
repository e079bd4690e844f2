"""Bringing plugins up and down: a bundle validated, its dependencies and permissions checked,
its instance loaded and activated; or deactivated, released and closed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rwq.errors import RwqError
from rwq.plugins.contract.events import PLUGIN_LOADED, PLUGIN_UNLOADED
from rwq.plugins.engine.calls import timed_call
from rwq.plugins.engine.dependencies import dependant_problem, dependency_problem
from rwq.plugins.engine.instances import Instances, LoadFailed, close, start_budget
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.outages import recovered, wait_for_host
from rwq.plugins.engine.records import LifecycleError, PluginRecord, PluginTable, cpu_seconds
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.eventbus.feed import publish_local
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.discovery import Discovery, DuplicatePlugin, load_order
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.runtimes.base import Hook, PluginFault
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.policy import Policy
from rwq.plugins.trust.review import Review
from rwq.plugins.trust.signing import SignaturePolicy, SignatureStatus

log = logging.getLogger(__name__)

AS_ASKED_BY = "rwq plugin dev"
"""Who the grants of a plugin granted as asked are recorded as given by."""
_STOPPED = (PluginState.DISABLED, PluginState.UNLOADED, PluginState.ERROR)


class Loader:
    """Takes plugins from their bundle to active and back, for the user and the host.

    Args:
        table: the plugin records.
        ops: the lock that serialises lifecycle operations.
        instances: loads and closes instances.
        subscriptions: registers a loaded plugin's manifest subscriptions.
        grants: reviews a bundle's permission requests.
        bus: where ``plugin.loaded`` and ``plugin.unloaded`` are published.
        policy: applied to pending permission requests (headless hosts).
        release: drops what a plugin holds through the host API.
        declared: plugin name to the dependencies its running manifest declares (the host
            API's view); kept up to date here.
        extracted: where reopened bundles are extracted.
        granted_as_asked: plugins granted what each version asks for, as asked, when it is
            reviewed (``rwq plugin dev``'s), by :data:`AS_ASKED_BY`.
    """

    def __init__(
        self,
        table: PluginTable,
        ops: threading.RLock,
        instances: Instances,
        subscriptions: Subscriptions,
        grants: GrantStore,
        bus: EventBus,
        *,
        policy: Policy | None,
        release: Callable[[str], None],
        declared: dict[str, set[str]],
        extracted: Path,
        signatures: SignaturePolicy | None = None,
        granted_as_asked: frozenset[str] = frozenset(),
        host_outage: Callable[[str, float], bool] | None = None,
    ) -> None:
        self._host_outage = host_outage
        """Whether a host call of a plugin met a Redis outage since a time: a load that failed
        then is retried until Redis answers, rather than left in error."""
        self._table = table
        self._ops = ops
        self._instances = instances
        self._subscriptions = subscriptions
        self._grants = grants
        self._bus = bus
        self._policy = policy
        self._release = release
        self._declared = declared
        self._extracted = extracted
        self._signatures = signatures
        self._as_asked = granted_as_asked

    # -- the host's and the user's operations -----------------------------------------------

    def admit_found(self, found: Discovery) -> dict[Path, str]:
        """Bring every discovered plugin as far as it can go, in dependency order: active,
        awaiting approval, or error with the reason. Returns the bundles that could not be
        opened, with the reason (they have no plugin name)."""
        invalid: dict[Path, str] = {}
        plan = load_order(found.bundles)
        by_name = {b.name: b for b in found.bundles}
        for path, error in found.errors.items():
            if isinstance(error, DuplicatePlugin):
                rec = self._table.add(error.name, None)
                if rec.state is PluginState.DISCOVERED:
                    self._table.set_state(rec, PluginState.ERROR, str(error))
            else:
                invalid[path] = str(error)
        for bundle in plan.order:
            rec = self._table.add(bundle.name, bundle)
            rec.notes = plan.notes.get(bundle.name, ())
            try:
                self.admit(rec, bundle)
            except Exception as exc:  # a bug: still bring up the other plugins
                log.exception("plugin %s failed to start", bundle.name)
                with self._table.lock:
                    rec.state, rec.reason = PluginState.ERROR, f"failed to start: {exc}"
        for name, refusal in sorted(plan.refused.items()):
            refused = by_name.get(name)
            rec = self._table.add(name, refused)
            if refused is not None:  # admitted again once what it waits for runs
                rec.blocked_by = dependency_problem(self._table, refused.manifest)[1]
            self._table.set_state(rec, PluginState.ERROR, refusal.reason)
        return invalid

    def stop_all(self) -> None:
        """Deactivate and clean up every plugin, the last loaded first, and close the
        runtimes (the host stops)."""
        with self._ops:
            for rec in reversed(self._table.records()):
                with rec.lock:
                    if rec.instance is not None:
                        self.retire(rec, graceful=True, event="shutdown")
                        self._table.set_state(rec, PluginState.UNLOADED, "host stopped")
            self._instances.close_runtimes()

    def add(self, bundle: Bundle) -> PluginState:
        """Take in a plugin that appeared in a plugin directory while the host runs: it is
        reviewed like one found at start (awaiting approval unless granted) and loaded.

        Raises:
            LifecycleError: a plugin of that name is here already.
        """
        with self._ops:
            if self._table.find(bundle.name) is not None:
                raise LifecycleError(bundle.name, "a plugin of this name is loaded already")
            rec = self._table.add(bundle.name, bundle)
            try:
                self.admit(rec, bundle)
            except Exception as exc:  # a bug: said on the plugin, the host goes on
                log.exception("plugin %s failed to start", bundle.name)
                self._table.set_state(rec, PluginState.ERROR, f"failed to start: {exc}")
            return rec.state

    def enable(self, name: str) -> PluginState:
        """Load a disabled, unloaded or failed plugin again from its bundle on disk
        (validated and reviewed anew). Returns its state.

        Raises:
            LifecycleError: the plugin is not stopped.
        """
        with self._ops:
            rec = self._table.get(name)
            if rec.state not in _STOPPED:
                raise LifecycleError(name, f"cannot enable a plugin that is {rec.state.value}")
            rec.retry_at = None
            self.restart(rec)
            return rec.state

    def restore(self, name: str, bundle: Bundle) -> PluginState:
        """Load ``bundle`` (a version known to work) into a stopped plugin: the rollback of a
        hot reload whose new version was disabled. Returns its state.

        Raises:
            LifecycleError: the plugin runs (replace it instead) or the bundle is another's.
        """
        with self._ops:
            rec = self._table.get(name)
            if rec.state not in _STOPPED:
                raise LifecycleError(name, f"cannot restore a plugin that is {rec.state.value}")
            if bundle.name != name:
                raise LifecycleError(name, f"the bundle is plugin {bundle.name!r}")
            rec.retry_at = None
            self.admit(rec, bundle)
            return rec.state

    def stop(self, name: str, state: PluginState, reason: str, *, event: str) -> None:
        """Deactivate and clean up ``name`` and leave it in ``state`` (disabled or unloaded)
        with ``reason``; no automatic retry, no pending update."""
        with self._ops:
            rec = self._table.get(name)
            with rec.lock:
                if rec.instance is not None:
                    self.retire(rec, graceful=True, event=event)
                rec.retry_at = None
                rec.update = None
                self._table.set_state(rec, state, reason)

    def forget(self, name: str) -> None:
        """Unload ``name`` and drop it from this host: its bundle left the plugin directories
        (``rwq plugin remove``). Its grants and stored data stay."""
        with self._ops:
            rec = self._table.get(name)
            with rec.lock:
                if rec.instance is not None:
                    self.retire(rec, graceful=True, event="removed")
            self._table.remove(name)

    # -- the steps ---------------------------------------------------------------------------

    def restart(self, rec: PluginRecord) -> None:
        """Admit ``rec`` again from its bundle reopened on disk."""
        if rec.bundle is None:
            self._table.set_state(rec, PluginState.ERROR, "no bundle to load from")
            return
        try:
            bundle = open_bundle(rec.bundle.path, extract_dir=self._extracted)
        except RwqError as exc:
            reason = f"cannot reopen {rec.bundle.path}: {exc}"
            self._table.set_state(rec, PluginState.ERROR, reason)
            return
        if bundle.name != rec.name:
            self._table.set_state(rec, PluginState.ERROR, f"{bundle.path} now holds {bundle.name}")
            return
        self.admit(rec, bundle)

    def admit(self, rec: PluginRecord, bundle: Bundle) -> None:
        """Validate, review and (when nothing is pending) load a stopped plugin."""
        rec.bundle = bundle
        self._table.set_state(rec, PluginState.VALIDATED)
        refusal = self._judge_signature(rec, bundle)
        if refusal:
            self._table.set_state(rec, PluginState.ERROR, refusal)
            return
        manifest = bundle.manifest
        if not self._instances.has_runtime(manifest.runtime):
            reason = f"this host has no {manifest.runtime} runtime"
            self._table.set_state(rec, PluginState.ERROR, reason)
            return
        problem, blocked = dependency_problem(self._table, manifest)
        rec.blocked_by = blocked
        problem = problem or dependant_problem(self._table, rec.name, bundle)
        if problem:
            self._table.set_state(rec, PluginState.ERROR, problem)
            return
        try:
            review = self.review(rec.name, bundle)
        except RwqError as exc:  # the grants file is unreadable: nothing can be checked
            reason = f"cannot review its permissions: {exc}"
            self._table.set_state(rec, PluginState.ERROR, reason)
            return
        if review.pending:
            rec.review = review
            self._table.set_state(rec, PluginState.AWAITING_APPROVAL, awaiting_reason(review))
            return
        self.load(rec, bundle, review)

    def signature(self, bundle: Bundle) -> tuple[SignatureStatus | None, str]:
        """``bundle``'s signature (None when not looked at) and why ``plugin_signatures``
        keeps it from loading ("" when it may load)."""
        if self._signatures is None:
            return None, ""
        return self._signatures.judge(bundle.root, bundle.files, bundle.name, str(bundle.version))

    def _judge_signature(self, rec: PluginRecord, bundle: Bundle) -> str:
        """Note the bundle's signature on ``rec``; why it may not load ("" when it may)."""
        status, refusal = self.signature(bundle)
        rec.signature = status
        if status is not None and not refusal and not (status.state == "signed" and status.trusted):
            log.info("plugin %s %s is %s", bundle.name, bundle.version, status)
        return refusal

    def check_update(self, rec: PluginRecord, bundle: Bundle) -> Review:
        """Validate and review ``bundle`` as the next version of running ``rec``.

        Raises:
            LifecycleError: it is another plugin's, needs a runtime or dependencies this host
                lacks, breaks a running dependant, or its permissions cannot be reviewed.
        """
        manifest = bundle.manifest
        if manifest.name != rec.name:
            raise LifecycleError(rec.name, f"the bundle is plugin {manifest.name!r}")
        if not self._instances.has_runtime(manifest.runtime):
            raise LifecycleError(rec.name, f"this host has no {manifest.runtime} runtime")
        problem, _ = dependency_problem(self._table, manifest)
        if problem:
            raise LifecycleError(rec.name, problem)
        problem = dependant_problem(self._table, rec.name, bundle)
        if problem:
            raise LifecycleError(rec.name, problem)
        _, refusal = self.signature(bundle)  # a new version is held to the setting too
        if refusal:
            raise LifecycleError(rec.name, refusal)
        try:
            return self.review(rec.name, bundle)
        except RwqError as exc:
            raise LifecycleError(rec.name, f"cannot review its permissions: {exc}") from None

    def review(self, name: str, bundle: Bundle, *, policy: bool = True) -> Review:
        """The review of ``bundle``'s requests (the policy applied to what is pending). The
        running instance's binding keeps its grants even if an update that failed to load
        was reviewed since."""
        requested, version = list(bundle.manifest.permissions), str(bundle.manifest.version)
        slot = getattr(self._table.find(name), "slot", None)
        running = [(slot.binding.version, slot.binding.bundle_hash)] if slot is not None else []
        signed = self.signer(bundle)
        reviewed = partial(
            self._grants.review, name, requested, version, bundle.sha256, keep=running,
            signer=signed.publisher, trusted=signed.trusted,
        )  # fmt: skip
        review = reviewed()
        if review.pending and name in self._as_asked:  # the review carries the asked scopes
            self._grants.approve(review, granted_by=AS_ASKED_BY)
            review = reviewed()
        if review.pending and policy and self._policy is not None:
            review = self._grants.apply_policy(
                self._policy, name, requested, version, bundle.sha256, signer=signed.publisher,
                trusted=signed.trusted,
            )  # fmt: skip
        return review

    def signer(self, bundle: Bundle) -> SignatureStatus:
        """Who signed ``bundle``, whatever ``plugin_signatures`` says: its grants are bound
        to that signer."""
        if self._signatures is None:
            return SignatureStatus("unsigned", reason="signatures are not checked here")
        version = str(bundle.version)
        return self._signatures.status(bundle.root, bundle.files, bundle.name, version)

    def declare(self, name: str, manifest: PluginManifest) -> None:
        """Take the dependencies ``manifest`` declares as those ``name`` may call."""
        with self._table.lock:
            self._declared[name] = {d.name for d in manifest.dependencies}

    def load(self, rec: PluginRecord, bundle: Bundle, review: Review) -> None:
        """Load, initialize, activate and subscribe; ACTIVE or ERROR with the reason."""
        self._table.set_state(rec, PluginState.LOADING)
        rec.bundle, rec.review = bundle, review
        self.declare(rec.name, bundle.manifest)
        started = time.monotonic()
        try:
            cand = self._instances.prepare(rec, bundle, review)
        except LoadFailed as exc:
            self._release(rec.name)
            if self._met_outage(rec, started):
                wait_for_host(self._table, rec, f"its load failed ({exc.reason[:200]})")
                return
            self._table.set_state(rec, PluginState.ERROR, exc.reason)
            return
        with rec.lock:
            with self._table.lock:
                rec.instance, rec.slot, rec.exports = cand.instance, cand.slot, cand.exports
                rec.consecutive = 0
            rec.metrics.count_load()
            self._table.set_state(rec, PluginState.READY)
            if Hook.ACTIVATE in rec.exports:
                try:
                    timed_call(rec, cand.instance, Hook.ACTIVATE, None)
                except PluginFault as fault:
                    self.retire(rec, graceful=False, event=None)
                    reason = f"activate faulted: {fault.reason}"
                    if self._met_outage(rec, started):
                        wait_for_host(self._table, rec, reason[:200])
                        return
                    self._table.set_state(rec, PluginState.ERROR, reason)
                    return
            self._subscriptions.start_receiving(rec)
            start_budget(cand.instance)
            recovered(rec)
            self._table.set_state(rec, PluginState.ACTIVE)
            self._table.mark_dirty(rec)
        publish_local(
            self._bus,
            PLUGIN_LOADED,
            {"plugin": rec.name, "version": rec.version, "runtime": bundle.manifest.runtime},
        )
        self.retry_blocked()

    def _met_outage(self, rec: PluginRecord, since: float) -> bool:
        return self._host_outage is not None and self._host_outage(rec.name, since)

    def retire(self, rec: PluginRecord, *, graceful: bool, event: str | None) -> None:
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
                        timed_call(rec, instance, hook, None)
                    except PluginFault as fault:
                        log.warning("plugin %s: %s faulted while stopping", rec.name, fault)
        slot.live = False
        with self._table.lock:
            rec.instance, rec.slot, rec.exports = None, None, frozenset()
            rec.manifest_subs, rec.receiving, rec.dirty = [], False, False
            rec.timers_pending = []
        self._release(rec.name)
        self._subscriptions.discard_inbox(rec)
        rec.metrics.retire(cpu_seconds(instance))
        close(instance)
        if event is not None:
            publish_local(
                self._bus,
                PLUGIN_UNLOADED,
                {"plugin": rec.name, "version": rec.version, "reason": event},
            )

    def retry_blocked(self) -> None:
        """Admit plugins that were waiting for dependencies now installed and running in a
        version they accept (called when a plugin starts or is replaced). A plugin started
        here may let others start: it calls this again, so each is looked at afresh; one
        that fails to start never fails the plugin it waited for."""
        for rec in self._table.records():
            bundle = rec.bundle
            if rec.state is not PluginState.ERROR or not rec.blocked_by or bundle is None:
                continue  # (an inner call may have started it since the list was taken)
            if dependency_problem(self._table, bundle.manifest)[0]:
                continue
            try:
                self.admit(rec, bundle)
            except Exception as exc:  # a bug: said on the dependant, the dependency goes on
                log.exception("plugin %s failed to start", rec.name)
                self._table.set_state(rec, PluginState.ERROR, f"failed to start: {exc}")


def awaiting_reason(review: Review) -> str:
    """The reason of a plugin (or version) waiting for the approval of ``review``."""
    return "awaits approval of " + ", ".join(sorted(review.pending))
