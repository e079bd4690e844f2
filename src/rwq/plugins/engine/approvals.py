"""The user's permission decisions: what waits for approval, approve, deny and revoke, and the
plugin (or new version) that loads once nothing is pending."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from rwq.plugins.engine.dependencies import dependant_problem
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.loading import Loader, awaiting_reason
from rwq.plugins.engine.records import LifecycleError, PluginRecord, PluginTable
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.engine.swap import HotSwap, SwapResult
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.manifest import PluginManifest
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.review import Review
from rwq.plugins.trust.signing import SignatureStatus

log = logging.getLogger(__name__)


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
    signature: SignatureStatus | None = None
    """The signature of the version waiting (None when not judged)."""


class Approvals:
    """Records the user's decisions in the grant store and acts on them.

    Args:
        table: the plugin records.
        ops: the lock that serialises lifecycle operations.
        grants: the grant store.
        loader: reviews anew and loads a plugin once nothing is pending.
        swap: swaps in a new version once nothing is pending.
        subscriptions: drops the subscriptions of a plugin whose ``events.subscribe`` is
            revoked.
    """

    def __init__(
        self,
        table: PluginTable,
        ops: threading.RLock,
        grants: GrantStore,
        loader: Loader,
        swap: HotSwap,
        subscriptions: Subscriptions,
    ) -> None:
        self._table = table
        self._ops = ops
        self._grants = grants
        self._loader = loader
        self._swap = swap
        self._subscriptions = subscriptions

    def pending(self) -> list[PendingApproval]:
        """Plugins, and new versions of running plugins, waiting for the user's decision."""
        out = []
        with self._table.lock:
            for rec in self._table.records():
                if rec.update is not None:
                    bundle, review = rec.update
                    out.append(
                        PendingApproval(
                            rec.name,
                            str(bundle.version),
                            review,
                            True,
                            bundle.manifest,
                            rec.update_signature,
                        )
                    )
                elif rec.state is PluginState.AWAITING_APPROVAL and rec.review is not None:
                    out.append(
                        PendingApproval(
                            rec.name, rec.version, rec.review, False, rec.manifest, rec.signature
                        )
                    )
        return out

    def approve(
        self,
        name: str,
        permissions: Iterable[str] | None,
        *,
        granted_by: str,
        expires_in: float | None,
    ) -> PluginState:
        """Grant the pending permissions of ``name`` (or only ``permissions``); once nothing
        is pending the plugin loads (or its new version takes over). Returns its state."""
        with self._ops:
            rec, bundle, review = self._awaiting(name)
            self._grants.approve(review, permissions, granted_by=granted_by, expires_in=expires_in)
            self._decided(rec, bundle)
            return rec.state

    def deny(self, name: str, permissions: Iterable[str] | None, *, denied_by: str) -> PluginState:
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
                self._grants.deny(
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
                self._table.notify(name)
            else:
                rec.review = None
                reason = f"permissions denied by {denied_by}"
                self._table.set_state(rec, PluginState.UNLOADED, reason)
            return rec.state

    def revoke(
        self, name: str, permissions: Iterable[str] | None, *, revoked_by: str
    ) -> frozenset[str]:
        """Take ``permissions`` (all when None) from ``name``. Host calls are refused from
        the next call on; without ``events.subscribe`` its subscriptions are dropped now."""
        removed = self._grants.revoke(
            name, None if permissions is None else list(permissions), revoked_by=revoked_by
        )
        rec = self._table.find(name)
        if rec is not None:
            with rec.lock:
                self._subscriptions.sync(rec)
        return removed

    def _granted_to_running(self, rec: PluginRecord) -> frozenset[str]:
        slot = rec.slot
        if slot is None:
            return frozenset()
        binding = (slot.binding.version, slot.binding.bundle_hash)
        return frozenset(
            p
            for g in self._grants.grants_for(rec.name)
            if g.binding == binding
            for p in g.permissions
        )

    def _awaiting(self, name: str) -> tuple[PluginRecord, Bundle, Review]:
        rec = self._table.get(name)
        if rec.update is not None:
            return rec, rec.update[0], rec.update[1]
        if (
            rec.state is PluginState.AWAITING_APPROVAL
            and rec.bundle is not None
            and rec.review is not None
        ):
            return rec, rec.bundle, rec.review
        raise LifecycleError(name, f"nothing awaits approval (it is {rec.state.value})")

    def _decided(self, rec: PluginRecord, bundle: Bundle) -> None:
        review = self._loader.review(rec.name, bundle, policy=False)
        if rec.update is not None:
            if review.pending:
                rec.update = (bundle, review)
                self._table.notify(rec.name)
                return
            rec.update = None
            problem = dependant_problem(self._table, rec.name, bundle)
            result = (
                SwapResult(rec.name, False, problem, rec.version, str(bundle.version))
                if problem
                else self._swap.swap_in(rec, bundle, review)
            )
            if not result.ok:
                log.warning("plugin %s: approved update failed: %s", rec.name, result.reason)
            return
        if review.pending:
            rec.review = review
            self._table.set_state(rec, PluginState.AWAITING_APPROVAL, awaiting_reason(review))
            return
        self._loader.load(rec, bundle, review)
