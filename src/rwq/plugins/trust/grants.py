"""Grants: what each plugin may do, bound to its version and bundle hash, kept on disk (the
rules: ``docs/architecture.md``, "Trust and grants")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.contract.permissions import expand
from rwq.plugins.trust.audit import AuditLog, Kind
from rwq.plugins.trust.checks import Decision, GrantChecker
from rwq.plugins.trust.grant_file import (
    Binding,
    Denial,
    Grant,
    Signer,
    show_binding,
    show_signer,
    show_time,
)
from rwq.plugins.trust.grant_state import StoredGrants
from rwq.plugins.trust.policy import Policy
from rwq.plugins.trust.review import RequestedPermission, Review, Reviewer, requested_grants
from rwq.plugins.trust.scope import Scope


def grants_path(settings: Settings) -> Path:
    """Where the grants of ``settings`` live: ``<state_dir>/plugins/grants.json``."""
    return settings.state_dir / "plugins" / "grants.json"


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
        self._stored = StoredGrants(path, clock=clock, reload_interval=reload_interval)
        self._checker = GrantChecker(self._stored.current, clock=clock, audit=audit)
        self._reviewer = Reviewer(self._stored, clock=clock, audit=audit)

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
        self._stored.reload()

    def grants_for(self, plugin: str) -> tuple[Grant, ...]:
        """Every stored grant of ``plugin``, all bindings, oldest first."""
        return tuple(g for g in self._stored.current().grants if g.plugin == plugin)

    def denials_for(self, plugin: str) -> tuple[Denial, ...]:
        """Every remembered denial of ``plugin``."""
        return tuple(d for d in self._stored.current().denials if d.plugin == plugin)

    def plugins(self) -> list[str]:
        """Names of plugins with grants or denials."""
        state = self._stored.current()
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
        return self._checker.check(
            plugin,
            permission,
            queue=queue,
            operation=operation,
            resource=resource,
            version=version,
            bundle_hash=bundle_hash,
        )

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
        return self._checker.check_chain(
            chain,
            permission,
            queue=queue,
            operation=operation,
            resource=resource,
            versions=versions,
        )

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
        signer: Signer | None = None,
    ) -> Grant:
        """Grant ``permissions`` (names or level names) to one binding of ``plugin``, whose
        bundle ``signer`` signed (None: unsigned or not validly signed).

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
            signer=signer,
        )

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            grants.append(new)
            denials[:] = _without_denied(denials, plugin, names)

        self._stored.change(change)
        self._audit(
            "policy" if granted_by.startswith("policy:") else "grant",
            plugin,
            names,
            ",".join(new.scope.queues),
            True,
            f"by {granted_by} to {show_binding(new.binding)}, {show_signer(signer)}"
            + ("" if new.expires_at is None else f", expires {show_time(new.expires_at)}"),
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

        self._stored.change(change)
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

        self._stored.change(change)
        if removed:
            self._audit("revoke", plugin, frozenset(removed), "", True, f"by {revoked_by}")
        return frozenset(removed)

    def forget(self, plugin: str, *, by: str = "user") -> None:
        """Remove every grant and denial of ``plugin`` (it was uninstalled with its data)."""

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            grants[:] = [g for g in grants if g.plugin != plugin]
            denials[:] = [d for d in denials if d.plugin != plugin]

        self._stored.change(change)
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
        signer: Signer | None = None,
        trusted: bool = False,
    ) -> Review:
        """What the binding ``version``/``bundle_hash`` of ``plugin``, signed by ``signer``
        (None: unsigned or invalid; ``trusted``: a key in the trust store), may do of
        ``requested``.

        If this binding has no grants yet, is signed by the trusted key that signed the
        previous binding, and every requested permission was granted to that binding (or is
        denied), those grants are re-bound to this one (audited); the previous binding stays
        valid for the still-running old version, older ones are dropped except those in
        ``keep`` (the binding actually running, when an update that failed to load was
        reviewed in between). Otherwise — more permissions, unsigned code, another signer —
        every permission not granted to this binding is pending, and the review says what
        changed.
        """
        return self._reviewer.review(
            plugin, requested, version, bundle_hash, keep=keep, signer=signer, trusted=trusted
        )

    def grant_requested(
        self,
        plugin: str,
        requested: Sequence[RequestedPermission | str],
        asked: Sequence[str],
        *,
        version: str,
        bundle_hash: str,
        queues: Sequence[str] | None = None,
        expires_in: float | None = None,
        granted_by: str = "user",
        signer: Signer | None = None,
    ) -> list[Grant]:
        """Grant ``asked`` (permission or level names) to one binding of ``plugin``, each
        permission with the scope its manifest requested (``queues`` may only narrow it).

        Raises:
            GrantWiderThanAsked: the grant would be wider than the request (nothing granted).
            UnknownPermission: a name is neither a permission nor a level.
        """
        groups = requested_grants(plugin, requested, asked, queues)
        return [
            self.grant(
                plugin,
                names,
                version=version,
                bundle_hash=bundle_hash,
                queues=globs,
                operations=operations,
                expires_in=expires_in,
                granted_by=granted_by,
                signer=signer,
            )
            for (globs, operations), names in groups.items()
        ]

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
                signer=review.signer,
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
        *,
        signer: Signer | None = None,
        trusted: bool = False,
    ) -> Review:
        """Grant (and deny) what ``policy`` decides for the pending requests of ``plugin``.

        Never grants more than was requested: queue and operation globs are cut to the
        policy's. Returns the review after the policy applied.
        """
        review = self.review(
            plugin, requested, version, bundle_hash, signer=signer, trusted=trusted
        )
        pending = {
            i.permission: (i.queues, i.operations) for i in review.items if i.status == "pending"
        }
        to_deny, to_grant = policy.decide(plugin, pending)
        by = f"policy:{policy.path}"
        if to_deny:
            self.deny(plugin, to_deny, version=version, bundle_hash=bundle_hash, denied_by=by)
        for g in to_grant:
            self.grant(
                plugin,
                g.permissions,
                version=version,
                bundle_hash=bundle_hash,
                queues=g.queues,
                operations=g.operations,
                expires_in=g.expires_in,
                granted_by=by,
                signer=signer,
            )
        return self.review(plugin, requested, version, bundle_hash, signer=signer, trusted=trusted)

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
