"""Reviews: what one binding of a plugin may do of what it asks for, and what awaits approval.

When a new binding (an update, or changed files) is signed by the trusted key that signed the
previous binding and asks for the same or fewer permissions than it was granted,
:func:`plan_rebind` carries those grants over (keeping their approved scopes). Any other
change — more permissions, unsigned code, another signer, an invalid signature, a key no
longer trusted — leaves the new binding pending, and the old one stays valid, so the running
old version keeps working until the change is approved. A :class:`Reviewer` does the review
against the stored grants and writes the carry-over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from rwq.errors import RwqError
from rwq.plugins.contract.permissions import expand
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grant_file import Binding, Denial, Grant, Signer, show_binding, show_signer
from rwq.plugins.trust.grant_state import StoredGrants, denied_index
from rwq.plugins.trust.scope import QUEUE_SCOPED, narrow

Status = Literal["granted", "pending", "denied"]

Wanted = Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
"""Requested permission name to the (queue globs, operation globs) asked for."""


class RequestedPermission(Protocol):
    """A permission a manifest asks for (``rwq.plugins.package.manifest.PermissionRequest`` is one);
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
class PreviousBinding:
    """The binding a plugin's grants were last given to, beside the one under review: what
    changed since is shown to whoever approves."""

    binding: Binding
    signer: Signer | None

    def __str__(self) -> str:
        return f"{show_binding(self.binding)}, {show_signer(self.signer)}"


@dataclass(frozen=True)
class Review:
    """What a binding of a plugin may do, what awaits approval and what was refused."""

    plugin: str
    version: str
    bundle_hash: str
    items: tuple[ReviewItem, ...]
    rebound_from: Binding | None = None
    """Set when this review carried the previous binding's grants over to this one."""
    signer: Signer | None = None
    """Whose valid signature the reviewed binding carries (None: unsigned or invalid); grants
    made from this review record it."""
    previous: PreviousBinding | None = None
    """The binding granted before, when this one holds no grants of its own yet."""

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


def expand_requests(requested: Sequence[RequestedPermission | str]) -> Wanted:
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
            queues.setdefault(perm, []).extend(globs if perm in QUEUE_SCOPED else ("*",))
            operations.setdefault(perm, []).extend(ops)
    return {
        name: (tuple(dict.fromkeys(queues[name])), tuple(dict.fromkeys(operations[name])))
        for name in queues
    }


class GrantWiderThanAsked(RwqError):
    """A grant would give a plugin more than its manifest asks for."""


def requested_grants(
    plugin: str,
    requested: Sequence[RequestedPermission | str],
    asked: Sequence[str],
    queues: Sequence[str] | None = None,
) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
    """What to grant ``plugin`` of ``asked`` (permission or level names), grouped by the
    (queues, operations) scope each permission was requested with: never a permission the
    manifest does not ask for (a level stands for those of it the manifest asks for), never
    wider than asked; ``queues`` may only narrow a queue-scoped permission's scope.

    Raises:
        GrantWiderThanAsked: a permission is not requested, a level names none that is, or a
            queue glob reaches beyond what was asked (each named).
        UnknownPermission: a name is neither a permission nor a level.
    """
    wanted = expand_requests(requested)
    names: set[str] = set()
    for name in asked:
        expanded = expand([name])
        if len(expanded) == 1 and name in expanded:  # a permission, not a level
            if name not in wanted:
                listed = ", ".join(sorted(wanted)) or "nothing"
                raise GrantWiderThanAsked(
                    f"{plugin} does not ask for {name} (its manifest asks for: {listed})"
                )
            names.add(name)
            continue
        of_level = expanded & wanted.keys()
        if not of_level:
            raise GrantWiderThanAsked(f"{plugin} asks for no permission of level {name!r}")
        names |= of_level
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for name in sorted(names):
        globs, operations = wanted[name]
        if queues and name in QUEUE_SCOPED:
            beyond = [g for g in queues if narrow([g], globs) != (g,)]
            if beyond:
                raise GrantWiderThanAsked(
                    f"--queues {', '.join(beyond)}: {plugin} asks for {name} on "
                    f"{', '.join(globs)} only (--queues may narrow that, not widen it)"
                )
            globs = tuple(dict.fromkeys(queues))
        groups.setdefault((globs, operations), []).append(name)
    return groups


def plan_rebind(
    grants: Sequence[Grant],
    denied: Mapping[str, Denial],
    plugin: str,
    wanted: Wanted,
    binding: Binding,
    now: float,
    signer: Signer | None,
) -> tuple[Binding, tuple[Grant, ...]] | None:
    """The previous binding and the grants to carry from it to ``binding``, if ``binding`` is
    signed by the trusted key that signed every grant of the previous one (``signer``: None
    when it is unsigned, invalid or its key is not trusted) and asks for no more than it was
    granted; ``None`` otherwise.

    ``grants`` are every stored grant, ``denied`` the plugin's denials by permission.
    """
    live = [g for g in grants if g.plugin == plugin and not g.expired(now)]
    if any(g.binding == binding for g in live):
        return None
    previous = _previous_binding(live, plugin, binding)
    if previous is None:
        return None
    prev_grants = [g for g in live if g.binding == previous]
    if signer is None or not all(_same_key(g.signer, signer) for g in prev_grants):
        return None
    carry = frozenset(wanted) - denied.keys()
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
            signer=signer,
        )
        for g in prev_grants
        if g.permissions & carry
    )
    return previous, carried


def build_review(
    grants: Sequence[Grant],
    denied: Mapping[str, Denial],
    plugin: str,
    wanted: Wanted,
    binding: Binding,
    now: float,
    rebound: Binding | None,
    signer: Signer | None = None,
    trusted: bool = False,
) -> Review:
    """The review of ``wanted`` for ``binding`` of ``plugin``, signed by ``signer`` (a
    ``trusted`` key or not).

    ``grants`` are every stored grant, ``denied`` the plugin's denials by permission.
    """
    live = _live((g for g in grants if g.plugin == plugin and g.binding == binding), now)
    before: PreviousBinding | None = None
    prev_names: frozenset[str] = frozenset()
    if not live:
        alive = _live(grants, now)
        previous = _previous_binding(alive, plugin, binding)
        if previous is not None:
            prev_grants = [g for g in alive if g.plugin == plugin and g.binding == previous]
            prev_names = frozenset().union(*(g.permissions for g in prev_grants))
            latest = max(prev_grants, key=lambda g: g.granted_at)
            before = PreviousBinding(previous, latest.signer)
    more = ", ".join(sorted(set(wanted) - prev_names - denied.keys()))
    changed = ""
    if before is not None:
        changed = (
            f"the update also asks for {more}"
            if more
            else rebind_refusal(before.signer, signer, trusted)
        )
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
        elif name in prev_names and before is not None:
            why = f"granted to {show_binding(before.binding)}; {changed}"
            items.append(ReviewItem(name, queues, "pending", why, operations=operations))
        else:
            why = "awaiting approval"
            items.append(ReviewItem(name, queues, "pending", why, operations=operations))
    version, bundle_hash = binding
    return Review(plugin, version, bundle_hash, tuple(items), rebound, signer, before)


def rebind_refusal(before: Signer | None, now: Signer | None, trusted: bool) -> str:
    """Why grants given to code signed by ``before`` do not pass to code signed by ``now``
    (asking for no more)."""
    if now is None:
        return "this code is unsigned (or its signature is invalid), so a change needs approval"
    if before is None:
        return f"the code granted was unsigned; this code is {show_signer(now)}"
    if before.fingerprint != now.fingerprint:
        return f"the code granted was {show_signer(before)}; this code is {show_signer(now)}"
    if not trusted:
        return f"this code is {show_signer(now)}, a key that is no longer trusted"
    return "its previous grants could not be carried over"


def _same_key(granted: Signer | None, signer: Signer) -> bool:
    return granted is not None and granted.fingerprint == signer.fingerprint


class Reviewer:
    """Reviews a binding's requests against the stored grants, carrying the previous
    binding's grants over (audited) when an update asks for no more.

    Args:
        stored: the grants file the review reads and the carry-over is written to.
        clock: the wall clock for grant times and expiry.
        audit: where a carry-over is recorded.
    """

    def __init__(
        self, stored: StoredGrants, *, clock: Callable[[], float], audit: AuditLog | None
    ) -> None:
        self._stored = stored
        self._clock = clock
        self._audit = audit

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
        """See :meth:`rwq.plugins.trust.grants.GrantStore.review`."""
        wanted = expand_requests(requested)
        binding = (version, bundle_hash)
        carrier = signer if trusted else None
        with self._stored.mutex:
            state = self._stored.fresh()
            rebound: Binding | None = None
            denied = state.denied.get(plugin, {})
            if plan_rebind(state.grants, denied, plugin, wanted, binding, self._clock(), carrier):
                rebound = self._rebind(plugin, wanted, binding, frozenset(keep), carrier)
                state = self._stored.fresh()
        denied = state.denied.get(plugin, {})
        return build_review(
            state.grants, denied, plugin, wanted, binding, self._clock(), rebound, signer, trusted
        )

    def _rebind(
        self,
        plugin: str,
        wanted: Wanted,
        binding: Binding,
        also_keep: frozenset[Binding],
        signer: Signer | None,
    ) -> Binding | None:
        done: list[tuple[Binding, tuple[Grant, ...]]] = []

        def change(grants: list[Grant], denials: list[Denial]) -> None:
            # Decided again under the file lock: another process may have just done it.
            denied = denied_index(denials).get(plugin, {})
            plan = plan_rebind(grants, denied, plugin, wanted, binding, self._clock(), signer)
            if plan is not None:
                previous, carried = plan
                keep = {binding, previous, *also_keep}
                grants[:] = [g for g in grants if g.plugin != plugin or g.binding in keep]
                grants.extend(carried)
                done.append(plan)

        self._stored.change(change)
        if not done:
            return None
        previous, carried = done[0]
        if self._audit is not None:
            names: frozenset[str] = frozenset().union(*(g.permissions for g in carried))
            self._audit.record(
                plugin,
                ",".join(sorted(names)),
                "",
                True,
                reason=f"rebound from {show_binding(previous)} to {show_binding(binding)}:"
                f" {show_signer(signer)} as before, same or fewer permissions requested",
                kind="grant",
            )
        return previous


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
