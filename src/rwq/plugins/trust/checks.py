"""Capability checks: whether a plugin, or every plugin of a delegation chain, may use a
permission here, decided from the grants held in memory and audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grant_file import Binding, show_binding, show_time
from rwq.plugins.trust.grant_state import GrantState
from rwq.plugins.trust.scope import QUEUE_SCOPED


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a capability check; truthy when allowed."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class GrantChecker:
    """Checks permissions against the grants ``state`` returns, each check audited.

    Args:
        state: the grants as they are now (re-read when the file changed).
        clock: the wall clock grant expiry is measured against.
        audit: where every check is recorded.
    """

    def __init__(
        self,
        state: Callable[[], GrantState],
        *,
        clock: Callable[[], float],
        audit: AuditLog | None,
    ) -> None:
        self._state = state
        self._clock = clock
        self._audit = audit

    def check(
        self,
        plugin: str,
        permission: str,
        *,
        queue: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
        version: str | None = None,
        bundle_hash: str | None = None,
    ) -> Decision:
        """See :meth:`rwq.plugins.trust.grants.GrantStore.check`."""
        decision = self._decide(
            plugin, permission, queue, operation, resource, version, bundle_hash
        )
        self._record(plugin, permission, queue, operation, resource, decision)
        return decision

    def check_chain(
        self,
        chain: Sequence[str],
        permission: str,
        *,
        queue: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
        versions: Mapping[str, Binding] | None = None,
    ) -> Decision:
        """See :meth:`rwq.plugins.trust.grants.GrantStore.check_chain`."""
        versions = versions or {}
        decision = Decision(False, "empty delegation chain")
        for plugin in chain:
            version, bundle_hash = versions.get(plugin, (None, None))
            decision = self._decide(
                plugin, permission, queue, operation, resource, version, bundle_hash
            )
            if not decision.allowed:
                decision = Decision(False, f"{plugin}: {decision.reason}")
                break
        else:
            if chain:
                decision = Decision(True, "every plugin in the chain is allowed")
        acting = chain[-1] if chain else ""
        self._record(acting, permission, queue, operation, resource, decision, tuple(chain))
        return decision

    def _decide(
        self,
        plugin: str,
        permission: str,
        queue: str | None,
        operation: str | None,
        resource: str | None,
        version: str | None,
        bundle_hash: str | None,
    ) -> Decision:
        state = self._state()
        if state.error is not None:
            return Decision(False, f"grant store unreadable: {state.error}")
        if permission not in CATALOG:
            return Decision(False, f"unknown permission {permission!r}")
        bindings = state.by_binding.get(plugin)
        if not bindings:
            return _refusal(state, plugin, permission, "not granted")
        if version is None or bundle_hash is None:
            current = state.current[plugin]
            binding = (version or current[0], bundle_hash or current[1])
        else:
            binding = (version, bundle_hash)
        grants = bindings.get(binding)
        if not grants:
            return _refusal(
                state, plugin, permission, f"nothing granted to {show_binding(binding)} (pending)"
            )
        now = self._clock()
        queue_scoped = permission in QUEUE_SCOPED
        reason = "not granted"
        for g in grants:
            if permission not in g.permissions:
                continue
            if g.expires_at is not None and g.expires_at <= now:
                reason = f"grant expired at {show_time(g.expires_at)}"
                continue
            if g.scope.allows(queue, operation, resource, check_queue=queue_scoped):
                return Decision(True, f"granted by {g.granted_by}")
            reason = "outside the granted scope"
        return _refusal(state, plugin, permission, reason)

    def _record(
        self,
        plugin: str,
        permission: str,
        queue: str | None,
        operation: str | None,
        resource: str | None,
        decision: Decision,
        chain: tuple[str, ...] = (),
    ) -> None:
        if self._audit is not None:
            self._audit.record(
                plugin,
                permission if operation is None else f"{permission}:{operation}",
                queue if queue is not None else (resource or ""),
                decision.allowed,
                reason=decision.reason,
                chain=chain,
            )


def _refusal(state: GrantState, plugin: str, permission: str, reason: str) -> Decision:
    denial = state.denied.get(plugin, {}).get(permission)
    if denial is not None:
        return Decision(False, f"denied by {denial.denied_by}")
    return Decision(False, reason)
