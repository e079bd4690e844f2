"""A plugin's event subscriptions: its manifest's, registered while it holds
``events.subscribe`` and dropped (its inbox with them) once it does not."""

from __future__ import annotations

import logging
import time

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginRecord, PluginTable
from rwq.plugins.eventbus.bus import BusError, EventBus
from rwq.plugins.host_api.service import PluginBinding
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.review import Review
from rwq.plugins.trust.scope import narrow

log = logging.getLogger(__name__)

SUBSCRIBE = "events.subscribe"


class Subscriptions:
    """Keeps each plugin's manifest subscriptions in step with its ``events.subscribe`` grant.

    Args:
        table: the plugin records.
        bus: where the subscriptions and inboxes are.
        grants: the grant store (read only: this is the host's bookkeeping, not a call).
        audit: records the subscriptions dropped for a missing grant.
    """

    def __init__(
        self, table: PluginTable, bus: EventBus, grants: GrantStore, audit: AuditLog
    ) -> None:
        self._table = table
        self._bus = bus
        self._grants = grants
        self._audit = audit

    def may_receive(self, name: str, binding: PluginBinding) -> bool:
        """Whether the binding holds an unexpired grant of ``events.subscribe`` (no audit
        record: this is the host's bookkeeping, not a plugin's call)."""
        now = time.time()
        wanted = (binding.version, binding.bundle_hash)
        return any(
            SUBSCRIBE in g.permissions and g.binding == wanted and not g.expired(now)
            for g in self._grants.grants_for(name)
        )

    def subscribe_manifest(
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
                ids.append(
                    self._bus.subscribe(name, sub.type, queues=queues, interval=sub.interval)
                )
            except BusError as exc:
                log.warning("plugin %s: subscription %s refused: %s", name, sub.type, exc)
        return ids

    def start_receiving(self, rec: PluginRecord) -> None:
        """Register the manifest's subscriptions of the live instance if it may receive."""
        slot, manifest = rec.slot, rec.manifest
        if slot is None or manifest is None or not self.may_receive(rec.name, slot.binding):
            rec.receiving = False
            return
        rec.manifest_subs = self.subscribe_manifest(rec.name, manifest, slot.binding)
        rec.receiving = True

    def sync(self, rec: PluginRecord) -> None:
        """Drop the subscriptions of a plugin no longer granted ``events.subscribe`` and
        register the manifest's once it is granted again (rec.lock held)."""
        if rec.state is not PluginState.ACTIVE or rec.slot is None:
            return
        if self.may_receive(rec.name, rec.slot.binding):
            if not rec.receiving:
                self.start_receiving(rec)
            return
        dropped = self._bus.unsubscribe_all(rec.name)
        was = rec.receiving
        rec.manifest_subs, rec.receiving = [], False
        self.discard_inbox(rec)
        if dropped or was:
            self._audit.record(
                rec.name,
                f"{SUBSCRIBE}:deliver",
                "",
                False,
                reason=f"not granted; {dropped} subscriptions dropped",
            )
            self._table.notify(rec.name)

    def discard_inbox(self, rec: PluginRecord) -> None:
        """Drop the events waiting for ``rec`` (counted as discarded)."""
        while batch := self._bus.drain(rec.name):
            rec.metrics.discard(len(batch))


def subscribe_scope(review: Review) -> tuple[str, ...]:
    """The queues the plugin's ``events.subscribe`` grant covers (its binding's scope)."""
    for item in review.items:
        if item.permission == SUBSCRIBE and item.status == "granted" and item.granted_queues:
            return item.granted_queues
    return ("*",)
