"""Grants: what each plugin may do, bound to its version and bundle hash, kept on disk.

A :class:`GrantStore` holds grants and remembered denials in one file (see
:mod:`rwq.plugins.trust.grant_file`) that every change rewrites atomically under a file lock. Checks
read an in-memory index (reloaded when the file changes) and are audited. The rules:

* A grant is bound to a plugin version *and* bundle hash; a check passes only for that binding.
* An update that asks for no more than the previous binding was granted inherits its grants;
  one that asks for more is pending while the old binding stays valid (see
  :mod:`rwq.plugins.trust.review`).
* A denial is remembered per plugin and permission across versions (the user is not asked
  again on each start or update) until that permission is granted explicitly.
* A grant's :class:`~rwq.plugins.trust.scope.Scope` limits where it applies; a queue scope limits
  only queue-scoped permissions.
* A delegated call (:meth:`GrantStore.check_chain`) passes only if every plugin in the chain
  passes on its own: the intersection of their grants.

A policy file (:mod:`rwq.plugins.trust.policy`) pre-grants and pre-denies for headless use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.contract.permissions import CATALOG, expand
from rwq.plugins.trust import grant_file
from rwq.plugins.trust.audit import AuditLog, Kind
from rwq.plugins.trust.grant_file import (
    Binding,
    Denial,
    Grant,
    GrantStoreError,
    Stamp,
    show_binding,
)
from rwq.plugins.trust.policy import Policy
from rwq.plugins.trust.review import (
    RequestedPermission,
    Review,
    Wanted,
    build_review,
    expand_requests,
    plan_rebind,
)
from rwq.plugins.trust.scope import QUEUE_SCOPED, Scope, narrow


def grants_path(settings: Settings) -> Path:
    """Where the grants of ``settings`` live: ``<state_dir>/plugins/grants.json``."""
    return settings.state_dir / "plugins" / "grants.json"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a capability check; truthy when allowed."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


# -- the store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """An immutable snapshot of the file plus the indexes checks read."""

    grants: tuple[Grant, ...] = ()
    denials: tuple[Denial, ...] = ()
    stamp: Stamp | None = None
    error: str | None = None
    by_binding: dict[str, dict[Binding, tuple[Grant, ...]]] = field(default_factory=dict)
    current: dict[str, Binding] = field(default_factory=dict)
    denied: dict[str, dict[str, Denial]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        grants: Iterable[Grant],
        denials: Iterable[Denial],
        stamp: Stamp | None,
    ) -> _State:
        grants, denials = tuple(grants), tuple(denials)
        by_binding: dict[str, dict[Binding, list[Grant]]] = {}
        latest: dict[str, Grant] = {}
        for g in grants:
            by_binding.setdefault(g.plugin, {}).setdefault(g.binding, []).append(g)
            if g.plugin not in latest or g.granted_at >= latest[g.plugin].granted_at:
                latest[g.plugin] = g
        return cls(
            grants=grants,
            denials=denials,
            stamp=stamp,
            by_binding={p: {b: tuple(gs) for b, gs in bs.items()} for p, bs in by_binding.items()},
            current={p: g.binding for p, g in latest.items()},
            denied=_denied_index(denials),
        )


class GrantStore:
    """Grants and denials of every plugin, persisted in one JSON file.

    Args:
        path: the grants file (see :func:`grants_path`); created on the first change.
        clock: the wall clock for grant times and expiry (tests pass a fake one).
        audit: where grants, revokes, denials and every check are recorded.
        reload_interval: how often (seconds) checks look whether another process changed
            the file; changes made through this object apply immediately.

    Raises:
        GrantStoreError: the file exists but is not a valid grants file.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
        reload_interval: float = 0.2,
    ) -> None:
        self.path = path
        self.audit = audit
        self._clock = clock
        self._reload_interval = reload_interval
        self._mutex = threading.RLock()
        self._state = self._read()
        if self._state.error is not None:
            raise GrantStoreError(path, self._state.error)
        self._stat_at = time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings, *, audit: AuditLog | None = None) -> GrantStore:
        """The grant store in the state dir of ``settings``."""
        return cls(grants_path(settings), audit=audit)

    # -- reading ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the file now if it changed on disk.

        Raises:
            GrantStoreError: the file is no longer a valid grants file (checks then deny).
        """
        with self._mutex:
            self._stat_at = time.monotonic()
            self._reload_if_changed()
        if self._state.error is not None:
            raise GrantStoreError(self.path, self._state.error)

    def grants_for(self, plugin: str) -> tuple[Grant, ...]:
        """Every stored grant of ``plugin``, all bindings, oldest first."""
        self._maybe_reload()
        return tuple(g for g in self._state.grants if g.plugin == plugin)

    def denials_for(self, plugin: str) -> tuple[Denial, ...]:
        """Every remembered denial of ``plugin``."""
        self._maybe_reload()
        return tuple(d for d in self._state.denials if d.plugin == plugin)

    def plugins(self) -> list[str]:
        """Names of plugins with grants or denials."""
        self._maybe_reload()
        state = self._state
        return sorted({g.plugin for g in state.grants} | {d.plugin for d in state.denials})

    # -- checks -----------------------------------------------------------------------------

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
        """Whether ``plugin`` (this version and bundle hash) may use ``permission`` here.

        Allowed only when an unexpired grant bound to the binding holds the permission and its
        scope matches ``queue`` (queue-scoped permissions only), ``operation`` and
        ``resource``. Without ``version``/``bundle_hash`` the plugin's current binding is
        used; hosts should pass both. Never raises; the check is audited.
        """
        decision = self._decide(
            plugin, permission, queue, operation, resource, version, bundle_hash
        )
        self._audit_check(plugin, permission, queue, operation, resource, decision)
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
        """A delegated call: ``chain`` is the caller first, the plugin acting last.

        Allowed only if every plugin in the chain is allowed on its own (the intersection of
        their grants). Declaring the dependency is the plugin manager's check. One audit
        record names the whole chain.
        """
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
        self._audit_check(acting, permission, queue, operation, resource, decision, tuple(chain))
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
        self._maybe_reload()
        state = self._state
        if state.error is not None:
            return Decision(False, f"grant store unreadable: {state.error}")
        if permission not in CATALOG:
            return Decision(False, f"unknown permission {permission!r}")
        bindings = state.by_binding.get(plugin)
        if not bindings:
            return self._refusal(state, plugin, permission, "not granted")
        if version is None or bundle_hash is None:
            current = state.current[plugin]
            binding = (version or current[0], bundle_hash or current[1])
        else:
            binding = (version, bundle_hash)
        grants = bindings.get(binding)
        if not grants:
            return self._refusal(
                state, plugin, permission, f"nothing granted to {show_binding(binding)} (pending)"
            )
        now = self._clock()
        queue_scoped = permission in QUEUE_SCOPED
        reason = "not granted"
        for g in grants:
            if permission not in g.permissions:
                continue
            if g.expires_at is not None and g.expires_at <= now:
                reason = f"grant expired at {_show_time(g.expires_at)}"
                continue
            if g.scope.allows(queue, operation, resource, check_queue=queue_scoped):
                return Decision(True, f"granted by {g.granted_by}")
            reason = "outside the granted scope"
        return self._refusal(state, plugin, permission, reason)

    @staticmethod
    def _refusal(state: _State, plugin: str, permission: str, reason: str) -> Decision:
        denial = state.denied.get(plugin, {}).get(permission)
        if denial is not None:
            return Decision(False, f"denied by {denial.denied_by}")
        return Decision(False, reason)

    # -- changes ----------------------------------------------------------------------------

    def grant(
        self,
        plugin: str,
        permissions: Iterable[str],
        *,
        version: str,
        bundle_hash: str,
        queues: Sequence[str] = ("*",),
        operations: Sequence[str] = ("*",),
        resources: Sequence[str] = (),
        expires_in: float | None = None,
        granted_by: str = "user",
    ) -> Grant:
        """Grant ``permissions`` (names or level names) to one binding of ``plugin``.

        Clears remembered denials of these permissions. ``granted_by`` starting with
        ``policy:`` is audited as kind ``policy``.

        Raises:
            UnknownPermission: a name is neither a permission nor a level.
            GrantStoreError: the file could not be read or written (nothing changed).
        """
        asked = list(permissions)
        names = expand(asked)
        if not names:
            raise RwqError(f"nothing to grant to {plugin!r}: {asked!r} names no permission")
        now = self._clock()
        new = Grant(
            plugin=plugin,
            permissions=names,
            scope=Scope(tuple(queues), tuple(operations), tuple(resources)),
            expires_at=None if expires_in is None else now + expires_in,
            granted_by=granted_by,
            granted_at=now,
            plugin_version=version,
            bundle_hash=bundle_hash,
        )

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            grants.append(new)
            denials[:] = _without_denied(denials, plugin, names)

        self._mutate(change)
        self._audit(
            "policy" if granted_by.startswith("policy:") else "grant",
            plugin,
            names,
            ",".join(new.scope.queues),
            True,
            f"by {granted_by} to {show_binding(new.binding)}"
            + ("" if new.expires_at is None else f", expires {_show_time(new.expires_at)}"),
        )
        return new

    def deny(
        self,
        plugin: str,
        permissions: Iterable[str],
        *,
        version: str,
        bundle_hash: str,
        denied_by: str = "user",
    ) -> Denial:
        """Refuse ``permissions`` to ``plugin``; remembered across versions, and any grant of
        them (every binding) is revoked."""
        names = expand(list(permissions))
        denial = Denial(plugin, names, denied_by, self._clock(), version, bundle_hash)

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            grants[:] = _without_granted(grants, plugin, names)
            denials[:] = [*_without_denied(denials, plugin, names), denial]

        self._mutate(change)
        where = show_binding((version, bundle_hash))
        self._audit("deny", plugin, names, "", False, f"by {denied_by} at {where}")
        return denial

    def revoke(
        self, plugin: str, permissions: Iterable[str] | None = None, *, revoked_by: str = "user"
    ) -> frozenset[str]:
        """Take ``permissions`` (all when ``None``) from every binding of ``plugin``.

        Applies to this process at once and to others within their reload interval. Returns
        the permissions that were granted and are now revoked.
        """
        names = None if permissions is None else expand(list(permissions))
        removed: set[str] = set()

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            for g in grants:
                if g.plugin == plugin:
                    removed.update(g.permissions if names is None else g.permissions & names)
            grants[:] = _without_granted(grants, plugin, names)

        self._mutate(change)
        if removed:
            self._audit("revoke", plugin, frozenset(removed), "", True, f"by {revoked_by}")
        return frozenset(removed)

    def forget(self, plugin: str, *, by: str = "user") -> None:
        """Remove every grant and denial of ``plugin`` (it was uninstalled with its data)."""

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            grants[:] = [g for g in grants if g.plugin != plugin]
            denials[:] = [d for d in denials if d.plugin != plugin]

        self._mutate(change)
        self._audit("forget", plugin, frozenset(), "", True, f"grants and denials, by {by}")

    # -- reviews and policies ---------------------------------------------------------------

    def review(
        self,
        plugin: str,
        requested: Sequence[RequestedPermission | str],
        version: str,
        bundle_hash: str,
        *,
        keep: Iterable[Binding] = (),
    ) -> Review:
        """What the binding ``version``/``bundle_hash`` of ``plugin`` may do of ``requested``.

        If this binding has no grants yet and every requested permission was granted to the
        previous binding (or is denied), those grants are re-bound to this one (audited); the
        previous binding stays valid for the still-running old version, older ones are
        dropped except those in ``keep`` (the binding actually running, when an update that
        failed to load was reviewed in between). Otherwise the new permissions — and the
        carried-over ones — are pending.
        """
        wanted = expand_requests(requested)
        binding = (version, bundle_hash)
        with self._mutex:
            state = self._fresh()
            rebound: Binding | None = None
            denied = state.denied.get(plugin, {})
            if plan_rebind(state.grants, denied, plugin, wanted, binding, self._clock()):
                rebound = self._rebind(plugin, wanted, binding, frozenset(keep))
                state = self._state
        denied = state.denied.get(plugin, {})
        return build_review(state.grants, denied, plugin, wanted, binding, self._clock(), rebound)

    def _rebind(
        self, plugin: str, wanted: Wanted, binding: Binding, also_keep: frozenset[Binding]
    ) -> Binding | None:
        done: list[tuple[Binding, tuple[Grant, ...]]] = []

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            # Decided again under the file lock: another process may have just done it.
            denied = _denied_index(denials).get(plugin, {})
            plan = plan_rebind(grants, denied, plugin, wanted, binding, self._clock())
            if plan is not None:
                previous, carried = plan
                keep = {binding, previous, *also_keep}
                grants[:] = [g for g in grants if g.plugin != plugin or g.binding in keep]
                grants.extend(carried)
                done.append(plan)

        self._mutate(change)
        if not done:
            return None
        previous, carried = done[0]
        self._audit(
            "grant",
            plugin,
            frozenset().union(*(g.permissions for g in carried)),
            "",
            True,
            f"rebound from {show_binding(previous)} to {show_binding(binding)}:"
            " same or fewer permissions requested",
        )
        return previous

    def approve(
        self,
        review: Review,
        permissions: Iterable[str] | None = None,
        *,
        granted_by: str = "user",
        expires_in: float | None = None,
    ) -> list[Grant]:
        """Grant the pending items of ``review`` (or only ``permissions`` of them), each with
        the queues it asked for."""
        only = None if permissions is None else expand(list(permissions))
        groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        for item in review.items:
            if item.status == "pending" and (only is None or item.permission in only):
                groups.setdefault((item.queues, item.operations), []).append(item.permission)
        return [
            self.grant(
                review.plugin,
                names,
                version=review.version,
                bundle_hash=review.bundle_hash,
                queues=queues,
                operations=operations,
                expires_in=expires_in,
                granted_by=granted_by,
            )
            for (queues, operations), names in groups.items()
        ]

    def apply_policy(
        self,
        policy: Policy,
        plugin: str,
        requested: Sequence[RequestedPermission | str],
        version: str,
        bundle_hash: str,
    ) -> Review:
        """Grant (and deny) what ``policy`` decides for the pending requests of ``plugin``.

        Never grants more than was requested: queue and operation globs are cut to the
        policy's. Returns the review after the policy applied.
        """
        review = self.review(plugin, requested, version, bundle_hash)
        pending = {i.permission: i for i in review.items if i.status == "pending"}
        by = f"policy:{policy.path}"
        to_deny = sorted(n for rule in policy.rules_for(plugin) for n in rule.deny if n in pending)
        if to_deny:
            self.deny(plugin, to_deny, version=version, bundle_hash=bundle_hash, denied_by=by)
        done = set(to_deny)
        for rule in policy.rules_for(plugin):
            groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
            for name in sorted(rule.grant & (pending.keys() - done)):
                item = pending[name]
                queues = narrow(item.queues, rule.queues) if name in QUEUE_SCOPED else ("*",)
                operations = narrow(item.operations, rule.operations)
                if queues and operations:
                    groups.setdefault((queues, operations), []).append(name)
            for (queues, operations), names in groups.items():
                self.grant(
                    plugin,
                    names,
                    version=version,
                    bundle_hash=bundle_hash,
                    queues=queues,
                    operations=operations,
                    expires_in=rule.expires_in,
                    granted_by=by,
                )
                done.update(names)
        return self.review(plugin, requested, version, bundle_hash)

    # -- persistence ------------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._stat_at < self._reload_interval:
            return
        self._stat_at = now
        # A change in progress in this process will install a fresher state itself.
        if self._mutex.acquire(blocking=False):
            try:
                self._reload_if_changed()
            finally:
                self._mutex.release()

    def _reload_if_changed(self) -> None:
        if grant_file.stamp(self.path) != self._state.stamp:
            self._state = self._read()

    def _fresh(self) -> _State:
        self._reload_if_changed()
        if self._state.error is not None:
            raise GrantStoreError(self.path, self._state.error)
        return self._state

    def _read(self) -> _State:
        try:
            raw, stamp = grant_file.read(self.path)
        except FileNotFoundError:
            return _State.build((), (), None)
        except OSError as exc:
            return _State(error=f"cannot read: {exc}")
        try:
            grants, denials = grant_file.parse(raw)
        except ValueError as exc:
            return _State(
                stamp=stamp, error=f"{exc}; fix or move the file away (rwq will not overwrite it)"
            )
        return _State.build(grants, denials, stamp)

    def _mutate(self, change: Callable[[list[Grant], list[Denial]], None]) -> None:
        """Apply ``change`` to the file's current content and write it back atomically."""
        with self._mutex, grant_file.locked(self.path):
            state = self._fresh()  # another process may have changed it since we read it
            now = self._clock()
            grants = [g for g in state.grants if not g.expired(now)]
            denials = list(state.denials)
            change(grants, denials)
            grant_file.write(self.path, grants, denials)
            self._stat_at = time.monotonic()
            self._state = self._read()

    def _audit_check(
        self,
        plugin: str,
        permission: str,
        queue: str | None,
        operation: str | None,
        resource: str | None,
        decision: Decision,
        chain: tuple[str, ...] = (),
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                plugin,
                permission if operation is None else f"{permission}:{operation}",
                queue if queue is not None else (resource or ""),
                decision.allowed,
                reason=decision.reason,
                chain=chain,
            )

    def _audit(
        self, kind: Kind, plugin: str, names: frozenset[str], resource: str, allowed: bool, why: str
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                plugin, ",".join(sorted(names)), resource, allowed, reason=why, kind=kind
            )


def _without_granted(
    grants: Sequence[Grant], plugin: str, names: frozenset[str] | None
) -> list[Grant]:
    out = []
    for g in grants:
        if g.plugin != plugin:
            out.append(g)
        elif names is not None and g.permissions - names:
            out.append(replace(g, permissions=g.permissions - names))
    return out


def _without_denied(denials: Sequence[Denial], plugin: str, names: frozenset[str]) -> list[Denial]:
    out = []
    for d in denials:
        if d.plugin != plugin:
            out.append(d)
        elif d.permissions - names:
            out.append(replace(d, permissions=d.permissions - names))
    return out


def _denied_index(denials: Iterable[Denial]) -> dict[str, dict[str, Denial]]:
    """Plugin to permission to the denial that refused it (the last one, if several)."""
    denied: dict[str, dict[str, Denial]] = {}
    for d in denials:
        for name in d.permissions:
            denied.setdefault(d.plugin, {})[name] = d
    return denied


def _show_time(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))
