"""Grants: what each plugin may do, bound to its version and bundle hash, kept on disk.

A :class:`GrantStore` holds grants and remembered denials in one JSON file that every mutation
rewrites atomically under a file lock, so two processes never lose each other's changes and a
crash mid-write loses nothing. Checks read an in-memory index (reloaded when the file changes)
and are audited. The rules:

* A grant is bound to a plugin version *and* bundle hash; a check passes only for that binding.
* When a new binding asks for the same or fewer permissions than the previous binding was
  granted, :meth:`GrantStore.review` re-binds those grants (keeping their approved scopes);
  when it asks for more, the new binding is pending and the old one stays valid, so the
  running old version keeps working until the update is approved.
* A denial is remembered per plugin and permission across versions (the user is not asked
  again on each start or update) until that permission is granted explicitly.
* A queue scope limits only queue-scoped permissions (see :mod:`rwq.plugins.permissions`); a
  check of a queue-scoped permission that names no queue passes only an unrestricted scope.
* A delegated call (:meth:`GrantStore.check_chain`) passes only if every plugin in the chain
  passes on its own: the intersection of their grants.

A policy file (:func:`load_policy`) pre-grants and pre-denies for headless use.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import TypeAdapter, ValidationError

from rwq.config import Settings
from rwq.errors import ConfigError, RwqError
from rwq.plugins.audit import AuditLog, Kind
from rwq.plugins.permissions import CATALOG, Level, UnknownPermission, expand
from rwq.units import UnitError, parse_duration

FORMAT = 1
"""Version of the grants file format this module reads and writes."""

Binding = tuple[str, str]
"""A plugin's ``(version, bundle_hash)``."""

Status = Literal["granted", "pending", "denied"]

_Wanted = Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
"""Requested permission name to the (queue globs, operation globs) asked for."""

_QUEUE_SCOPED = frozenset(name for name, p in CATALOG.items() if p.queue_scoped)
_GLOB_CHARS = re.compile(r"[*?\[]")


def grants_path(settings: Settings) -> Path:
    """Where the grants of ``settings`` live: ``<state_dir>/plugins/grants.json``."""
    return settings.state_dir / "plugins" / "grants.json"


# -- errors ---------------------------------------------------------------------------------


class PermissionDenied(RwqError):
    """A plugin used a capability it was not granted (or not for this resource)."""

    def __init__(self, plugin: str, permission: str, resource: str | None, reason: str) -> None:
        self.plugin = plugin
        self.permission = permission
        self.resource = resource
        self.reason = reason
        where = f" on {resource!r}" if resource else ""
        super().__init__(f"plugin {plugin!r} may not use {permission}{where}: {reason}")


class GrantStoreError(RwqError):
    """The grants file cannot be read or written; a bad file is left as it is."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class PolicyError(ConfigError):
    """A policy file is malformed: names the file and the field at fault."""


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where a grant applies. Globs are fnmatch-style and case-sensitive; ``*`` is anything.

    ``resources`` empty means unrestricted; otherwise a check must name a matching resource.
    """

    queues: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ()
    _queue: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _operation: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _resource: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_queue", _matcher(self.queues))
        object.__setattr__(self, "_operation", _matcher(self.operations))
        object.__setattr__(self, "_resource", _matcher(self.resources or ("*",)))

    @property
    def all_queues(self) -> bool:
        """Whether the queue scope is unrestricted."""
        return "*" in self.queues

    def allows(
        self,
        queue: str | None,
        operation: str | None = None,
        resource: str | None = None,
        *,
        check_queue: bool = True,
    ) -> bool:
        """Whether a call on ``queue``/``operation``/``resource`` is inside this scope; a
        target not named passes only an unrestricted scope. ``check_queue=False`` ignores
        the queue scope (for permissions that are not queue-scoped)."""
        if check_queue and not (self._queue(queue) if queue is not None else self.all_queues):
            return False
        if not (self._operation(operation) if operation is not None else "*" in self.operations):
            return False
        if self.resources:
            return resource is not None and self._resource(resource)
        return True


def _matcher(globs: tuple[str, ...]) -> Callable[[str], bool]:
    if "*" in globs:
        return lambda _name: True
    if not globs:
        return lambda _name: False
    literals = frozenset(g for g in globs if not _GLOB_CHARS.search(g))
    patterns = [g for g in globs if g not in literals]
    if not patterns:
        return literals.__contains__
    regex = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in patterns))
    match = regex.match
    return lambda name: name in literals or match(name) is not None


def _glob_covers(glob: str, requested: str) -> bool:
    """Whether every name ``requested`` matches is matched by ``glob`` (conservative)."""
    if glob in ("*", requested):
        return True
    if not _GLOB_CHARS.search(requested):
        return fnmatch.fnmatchcase(requested, glob)
    prefix = glob[:-1]
    return glob.endswith("*") and not _GLOB_CHARS.search(prefix) and requested.startswith(prefix)


def _narrow(requested: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The requested queue globs cut down to what ``allowed`` permits (conservatively)."""
    out: list[str] = []
    for want in requested:
        if any(_glob_covers(g, want) for g in allowed):
            out.append(want)
        else:
            out.extend(g for g in allowed if _glob_covers(want, g))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Grant:
    """Permissions given to one binding (version + bundle hash) of a plugin."""

    plugin: str
    permissions: frozenset[str]
    scope: Scope
    expires_at: float | None
    granted_by: str
    granted_at: float
    """When this record was made: approved, or carried over to this binding."""
    plugin_version: str
    bundle_hash: str
    rebound_from: Binding | None = None
    """The binding these grants were carried over from by an update, if any."""

    @property
    def binding(self) -> Binding:
        return (self.plugin_version, self.bundle_hash)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Denial:
    """Permissions the user (or a policy) refused to a plugin; remembered across versions."""

    plugin: str
    permissions: frozenset[str]
    denied_by: str
    denied_at: float
    plugin_version: str
    bundle_hash: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a capability check; truthy when allowed."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class RequestedPermission(Protocol):
    """A permission a manifest asks for (``rwq.plugins.manifest.PermissionRequest`` is one);
    an ``operations`` attribute, when present, is honoured too."""

    @property
    def name(self) -> str: ...

    @property
    def queues(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class ReviewItem:
    """The state of one requested permission for one binding."""

    permission: str
    queues: tuple[str, ...]
    """The queues asked for (``("*",)`` for permissions that are not queue-scoped)."""
    status: Status
    reason: str
    granted_queues: tuple[str, ...] = ()
    """When granted: the approved queue scope, which may be narrower than asked."""
    operations: tuple[str, ...] = ("*",)
    """The operation globs asked for."""


@dataclass(frozen=True)
class Review:
    """What a binding of a plugin may do, what awaits approval and what was refused."""

    plugin: str
    version: str
    bundle_hash: str
    items: tuple[ReviewItem, ...]
    rebound_from: Binding | None = None
    """Set when this review carried the previous binding's grants over to this one."""

    def _names(self, status: Status) -> frozenset[str]:
        return frozenset(i.permission for i in self.items if i.status == status)

    @property
    def granted(self) -> frozenset[str]:
        return self._names("granted")

    @property
    def pending(self) -> frozenset[str]:
        return self._names("pending")

    @property
    def denied(self) -> frozenset[str]:
        return self._names("denied")

    @property
    def complete(self) -> bool:
        """Whether nothing awaits approval."""
        return not self.pending


# -- the store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """An immutable snapshot of the file plus the indexes checks read."""

    grants: tuple[Grant, ...] = ()
    denials: tuple[Denial, ...] = ()
    stamp: tuple[int, int, int] | None = None
    error: str | None = None
    by_binding: dict[str, dict[Binding, tuple[Grant, ...]]] = field(default_factory=dict)
    current: dict[str, Binding] = field(default_factory=dict)
    denied: dict[str, dict[str, Denial]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        grants: Iterable[Grant],
        denials: Iterable[Denial],
        stamp: tuple[int, int, int] | None,
    ) -> _State:
        grants, denials = tuple(grants), tuple(denials)
        by_binding: dict[str, dict[Binding, list[Grant]]] = {}
        latest: dict[str, Grant] = {}
        for g in grants:
            by_binding.setdefault(g.plugin, {}).setdefault(g.binding, []).append(g)
            if g.plugin not in latest or g.granted_at >= latest[g.plugin].granted_at:
                latest[g.plugin] = g
        denied: dict[str, dict[str, Denial]] = {}
        for d in denials:
            for name in d.permissions:
                denied.setdefault(d.plugin, {})[name] = d
        return cls(
            grants=grants,
            denials=denials,
            stamp=stamp,
            by_binding={p: {b: tuple(gs) for b, gs in bs.items()} for p, bs in by_binding.items()},
            current={p: g.binding for p, g in latest.items()},
            denied=denied,
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
        self._lock_path = path.with_name(path.name + ".lock")
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

    def current_binding(self, plugin: str) -> Binding | None:
        """The binding of ``plugin``'s most recent grant, used when a check names none."""
        self._maybe_reload()
        return self._state.current.get(plugin)

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
        if self.audit is not None:
            self.audit.record(
                plugin,
                permission if operation is None else f"{permission}:{operation}",
                queue if queue is not None else (resource or ""),
                decision.allowed,
                reason=decision.reason,
            )
        return decision

    def require(
        self,
        plugin: str,
        permission: str,
        *,
        queue: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
        version: str | None = None,
        bundle_hash: str | None = None,
    ) -> None:
        """Like :meth:`check`, but raise :class:`PermissionDenied` when not allowed."""
        decision = self.check(
            plugin,
            permission,
            queue=queue,
            operation=operation,
            resource=resource,
            version=version,
            bundle_hash=bundle_hash,
        )
        if not decision.allowed:
            raise PermissionDenied(plugin, permission, queue or resource, decision.reason)

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
        if self.audit is not None:
            self.audit.record(
                chain[-1] if chain else "",
                permission if operation is None else f"{permission}:{operation}",
                queue if queue is not None else (resource or ""),
                decision.allowed,
                reason=decision.reason,
                chain=tuple(chain),
            )
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
                state, plugin, permission, f"nothing granted to {_show(binding)} (pending)"
            )
        now = self._clock()
        queue_scoped = permission in _QUEUE_SCOPED
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
            f"by {granted_by} to {_show(new.binding)}"
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
        self._audit(
            "deny", plugin, names, "", False, f"by {denied_by} at {_show((version, bundle_hash))}"
        )
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

    # -- reviews and policies ---------------------------------------------------------------

    def review(
        self,
        plugin: str,
        requested: Sequence[RequestedPermission | str],
        version: str,
        bundle_hash: str,
    ) -> Review:
        """What the binding ``version``/``bundle_hash`` of ``plugin`` may do of ``requested``.

        If this binding has no grants yet and every requested permission was granted to the
        previous binding (or is denied), those grants are re-bound to this one (audited); the
        previous binding stays valid for the still-running old version, older ones are
        dropped. Otherwise the new permissions — and the carried-over ones — are pending.
        """
        wanted = _requested(requested)
        binding = (version, bundle_hash)
        with self._mutex:
            state = self._fresh()
            rebound: Binding | None = None
            if _plan_rebind(state.grants, state.denied, plugin, wanted, binding, self._clock()):
                rebound = self._rebind(plugin, wanted, binding)
                state = self._state
        return _review(state, plugin, wanted, binding, self._clock(), rebound)

    def _rebind(self, plugin: str, wanted: _Wanted, binding: Binding) -> Binding | None:
        done: list[tuple[Binding, tuple[Grant, ...]]] = []

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            # Decided again under the file lock: another process may have just done it.
            denied = _State.build((), denials, None).denied
            plan = _plan_rebind(grants, denied, plugin, wanted, binding, self._clock())
            if plan is not None:
                previous, carried = plan
                keep = {binding, previous}
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
            f"rebound from {_show(previous)} to {_show(binding)}: same or fewer permissions"
            " requested",
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
                queues = _narrow(item.queues, rule.queues) if name in _QUEUE_SCOPED else ("*",)
                operations = _narrow(item.operations, rule.operations)
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
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._state.stamp:
            self._state = self._read()

    def _fresh(self) -> _State:
        self._reload_if_changed()
        if self._state.error is not None:
            raise GrantStoreError(self.path, self._state.error)
        return self._state

    def _read(self) -> _State:
        try:
            with open(self.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            return _State.build((), (), None)
        except OSError as exc:
            return _State(error=f"cannot read: {exc}")
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            grants, denials = _parse(raw)
        except ValueError as exc:
            return _State(
                stamp=stamp, error=f"{exc}; fix or move the file away (rwq will not overwrite it)"
            )
        return _State.build(grants, denials, stamp)

    def _mutate(self, change: Callable[[list[Grant], list[Denial]], None]) -> None:
        """Apply ``change`` to the file's current content and write it back atomically."""
        with self._mutex, self._file_lock():
            state = self._fresh()  # another process may have changed it since we read it
            now = self._clock()
            grants = [g for g in state.grants if not g.expired(now)]
            denials = list(state.denials)
            change(grants, denials)
            self._write(grants, denials)
            self._stat_at = time.monotonic()
            self._state = self._read()

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise GrantStoreError(self.path, f"cannot lock: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, grants: Sequence[Grant], denials: Sequence[Denial]) -> None:
        payload = _dump(grants, denials)
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise GrantStoreError(self.path, f"cannot write: {exc}") from exc
        try:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise GrantStoreError(self.path, f"cannot write: {exc}") from exc
        # Make the rename durable. Some filesystems cannot fsync a directory; the file is
        # complete either way, so that is not worth failing a change already in place.
        try:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass

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


def _live(grants: Iterable[Grant], now: float) -> tuple[Grant, ...]:
    return tuple(g for g in grants if not g.expired(now))


def _previous_binding(grants: Iterable[Grant], plugin: str, binding: Binding) -> Binding | None:
    """The most recently granted binding of ``plugin`` other than ``binding``."""
    best: Grant | None = None
    for g in grants:
        if (
            g.plugin == plugin
            and g.binding != binding
            and (best is None or g.granted_at >= best.granted_at)
        ):
            best = g
    return None if best is None else best.binding


def _plan_rebind(
    grants: Sequence[Grant],
    denied: Mapping[str, Mapping[str, Denial]],
    plugin: str,
    wanted: _Wanted,
    binding: Binding,
    now: float,
) -> tuple[Binding, tuple[Grant, ...]] | None:
    """The previous binding and the grants to carry from it to ``binding``, if the request
    asks for no more than it was granted; ``None`` otherwise."""
    live = [g for g in grants if g.plugin == plugin and not g.expired(now)]
    if any(g.binding == binding for g in live):
        return None
    previous = _previous_binding(live, plugin, binding)
    if previous is None:
        return None
    prev_grants = [g for g in live if g.binding == previous]
    carry = frozenset(wanted) - denied.get(plugin, {}).keys()
    if not carry or not carry <= frozenset().union(*(g.permissions for g in prev_grants)):
        return None
    version, bundle_hash = binding
    carried = tuple(
        replace(
            g,
            permissions=g.permissions & carry,
            granted_at=now,
            plugin_version=version,
            bundle_hash=bundle_hash,
            rebound_from=g.binding,
        )
        for g in prev_grants
        if g.permissions & carry
    )
    return previous, carried


def _review(
    state: _State,
    plugin: str,
    wanted: _Wanted,
    binding: Binding,
    now: float,
    rebound: Binding | None,
) -> Review:
    live = _live(state.by_binding.get(plugin, {}).get(binding, ()), now)
    denied = state.denied.get(plugin, {})
    previous = None if live else _previous_binding(_live(state.grants, now), plugin, binding)
    prev_names: frozenset[str] = frozenset()
    if previous is not None:
        prev_grants = state.by_binding[plugin][previous]
        prev_names = frozenset().union(*(g.permissions for g in _live(prev_grants, now)))
    more = ", ".join(sorted(set(wanted) - prev_names - denied.keys()))
    items = []
    for name, (queues, operations) in wanted.items():
        granted = [g for g in live if name in g.permissions]
        if name in denied:
            why = f"denied by {denied[name].denied_by}"
            items.append(ReviewItem(name, queues, "denied", why, operations=operations))
        elif granted:
            scope = tuple(dict.fromkeys(q for g in granted for q in g.scope.queues))
            why = "granted by " + ", ".join(sorted({g.granted_by for g in granted}))
            items.append(ReviewItem(name, queues, "granted", why, scope, operations))
        elif name in prev_names and previous is not None:
            why = f"granted to {_show(previous)}; the update also asks for {more}"
            items.append(ReviewItem(name, queues, "pending", why, operations=operations))
        else:
            why = "awaiting approval"
            items.append(ReviewItem(name, queues, "pending", why, operations=operations))
    version, bundle_hash = binding
    return Review(plugin, version, bundle_hash, tuple(items), rebound)


def _requested(requested: Sequence[RequestedPermission | str]) -> _Wanted:
    """Requested permission names (levels expanded) to the queues and operations asked for."""
    queues: dict[str, list[str]] = {}
    operations: dict[str, list[str]] = {}
    for item in requested:
        globs: tuple[str, ...]
        ops: tuple[str, ...]
        if isinstance(item, str):
            name, globs, ops = item, ("*",), ("*",)
        else:
            name, globs = item.name, tuple(item.queues) or ("*",)
            ops = tuple(getattr(item, "operations", None) or ("*",))
        for perm in sorted(expand([name])):
            queues.setdefault(perm, []).extend(globs if perm in _QUEUE_SCOPED else ("*",))
            operations.setdefault(perm, []).extend(ops)
    return {
        name: (tuple(dict.fromkeys(queues[name])), tuple(dict.fromkeys(operations[name])))
        for name in queues
    }


def _show(binding: Binding) -> str:
    version, bundle_hash = binding
    return f"{version} ({bundle_hash[:19]})"


def _show_time(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))


# -- the file format ------------------------------------------------------------------------


@dataclass(frozen=True)
class _GrantsFile:
    format: int
    grants: tuple[Grant, ...] = ()
    denials: tuple[Denial, ...] = ()


_FILE = TypeAdapter(_GrantsFile)


def _dump(grants: Sequence[Grant], denials: Sequence[Denial]) -> bytes:
    data = _FILE.dump_python(_GrantsFile(FORMAT, tuple(grants), tuple(denials)), mode="json")
    for record in (*data["grants"], *data["denials"]):
        record["permissions"].sort()  # frozensets: a stable order keeps diffs readable
    return (json.dumps(data, indent=1) + "\n").encode()


def _parse(raw: bytes) -> tuple[tuple[Grant, ...], tuple[Denial, ...]]:
    """Grants and denials of a grants file; ``ValueError`` names the field at fault."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    fmt = data.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise ValueError(f"format {fmt} was written by a newer rwq (this one reads {FORMAT})")
    if fmt != FORMAT:
        raise ValueError(f"format: expected {FORMAT}, got {fmt!r}")
    try:
        parsed = _FILE.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None
    return parsed.grants, parsed.denials


# -- policy files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRule:
    """What a policy decides for one plugin name (or ``*``, every plugin)."""

    grant: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    queues: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    expires_in: float | None = None


@dataclass(frozen=True)
class Policy:
    """Pre-approved grants and denials for headless hosts, from a YAML file."""

    path: Path
    rules: Mapping[str, PolicyRule]

    def rules_for(self, plugin: str) -> list[PolicyRule]:
        """The plugin's own rule and the ``*`` rule; their grants add up."""
        return [self.rules[key] for key in (plugin, "*") if key in self.rules]


_RULE_FIELDS = ("grant", "deny", "queues", "operations", "expires")


def load_policy(path: Path) -> Policy:
    """Read a policy file::

        plugins:
          tenant-sla-monitor:
            grant: [events.subscribe, admin.queue.peek]
            deny: [admin.queue.purge]
            queues: ["tenant.*"]
            expires: 24h
          "*":
            grant: [observer]

    Level names grant their non-sensitive permissions. Raises :class:`PolicyError` naming the
    file and the field at fault.
    """
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(source, "-", "file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(source, "-", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"plugins"}:
        raise PolicyError(source, "-", "expected a mapping with one key, 'plugins'")
    plugins = data.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise PolicyError(source, "plugins", "expected a mapping of plugin names to rules")
    rules = {str(name): _rule(source, f"plugins.{name}", raw) for name, raw in plugins.items()}
    return Policy(path, rules)


def _rule(source: str, where: str, raw: Any) -> PolicyRule:
    if not isinstance(raw, dict):
        raise PolicyError(source, where, f"expected a mapping with {', '.join(_RULE_FIELDS)}")
    for key in raw:
        if key not in _RULE_FIELDS:
            raise PolicyError(
                source, f"{where}.{key}", f"unknown field (known: {', '.join(_RULE_FIELDS)})"
            )

    def names(key: str) -> frozenset[str]:
        values = _policy_strs(source, f"{where}.{key}", raw.get(key, []))
        for i, value in enumerate(values):
            try:
                expand([value])
            except UnknownPermission:
                levels = ", ".join(level.label for level in Level)
                raise PolicyError(
                    source,
                    f"{where}.{key}[{i}]",
                    f"unknown permission {value!r} (or level: {levels})",
                ) from None
        return expand(list(values))

    expires_in = None
    if raw.get("expires") is not None:
        try:
            expires_in = parse_duration(raw["expires"], "expires")
        except UnitError as exc:
            raise PolicyError(source, f"{where}.expires", str(exc)) from None
    return PolicyRule(
        grant=names("grant"),
        deny=names("deny"),
        queues=_policy_globs(source, f"{where}.queues", raw.get("queues", ["*"])),
        operations=_policy_globs(source, f"{where}.operations", raw.get("operations", ["*"])),
        expires_in=expires_in,
    )


def _policy_strs(source: str, where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(source, where, "expected a list of strings")
    return tuple(value)


def _policy_globs(source: str, where: str, value: Any) -> tuple[str, ...]:
    globs = _policy_strs(source, where, value)
    if not globs:
        raise PolicyError(source, where, 'expected at least one glob ("*" for all)')
    return globs
