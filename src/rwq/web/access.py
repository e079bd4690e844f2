"""What a request may do: the token it came with, checked against the permission catalog and
its queue scope exactly as a plugin's grant is, every decision written to the audit log
(actor ``token:<name>``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rwq.plugins.contract.permissions import CATALOG
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.scope import QUEUE_SCOPED, narrow
from rwq.web.errors import ApiError
from rwq.web.tokens import ApiToken

__all__ = ["Principal", "actor"]

_GLOB = re.compile(r"[*?\[]")


def actor(token_name: str) -> str:
    """The name a token's calls are audited under."""
    return f"token:{token_name}"


@dataclass(frozen=True)
class Principal:
    """The token a request is authenticated as, and how it came (``bearer`` or ``session``).

    Attributes:
        operation: the route, ``GET /api/v1/queues/{queue}``, recorded with each check.
        target: the route's path parameters (``counter`` for ``/api/v1/plugins/counter``),
            the resource of a record that names no queue (unless its permission is
            queue-scoped: no queue named there means every queue).
    """

    token: ApiToken
    via: str
    operation: str
    audit: AuditLog | None
    target: str = ""

    @property
    def actor(self) -> str:
        return actor(self.token.name)

    def holds(self, permission: str) -> bool:
        """Whether the token holds ``permission`` at all (no queue looked at, nothing
        audited)."""
        return permission in self.token.granted

    def allows_queue(self, queue: str) -> bool:
        """Whether ``queue`` is inside the token's queue scope (nothing audited)."""
        return self.token.scope.allows(queue)

    def visible(self, queues: Iterable[str]) -> list[str]:
        """The queues of ``queues`` inside the token's scope."""
        scope = self.token.scope
        return list(queues) if scope.all_queues else [q for q in queues if scope.allows(q)]

    def require(self, permission: str, queue: str | None = None, *, listing: bool = False) -> None:
        """Allow the request or raise a 403 naming ``permission`` (and ``queue``).

        ``queue`` is a name or a glob (a glob passes only when every name it matches is inside
        the scope); None on a queue-scoped permission passes only an unrestricted scope,
        unless ``listing``: the route then shows only the queues inside the scope.
        """
        reason = self._refusal(permission, queue, listing)
        self.record(permission, queue, reason is None, reason or "granted to the token")
        if reason is not None:
            where = f" on queue {queue!r}" if queue is not None else ""
            raise ApiError(
                403,
                "forbidden",
                f"token {self.token.name!r} lacks permission {permission!r}{where}: {reason}",
                permission=permission,
                queue=queue,
            )

    def _refusal(self, permission: str, queue: str | None, listing: bool) -> str | None:
        if permission not in CATALOG:  # a route naming a permission the catalog lost
            return f"unknown permission {permission!r}"
        if permission not in self.token.granted:
            return "not granted"
        if permission not in QUEUE_SCOPED or (queue is None and listing):
            return None
        if not self._covers(queue):
            globs = ", ".join(self.token.queues)
            return f"outside the token's queues ({globs})"
        return None

    def _covers(self, queue: str | None) -> bool:
        scope = self.token.scope
        if queue is None or scope.all_queues or not _GLOB.search(queue):
            return scope.allows(queue)
        # A glob is inside the scope only if every name it matches is: matched as text, the
        # glob `tenant.*` would pass a scope of `tenant.?` (a `*` is one character) and list
        # queues outside it.
        return narrow([queue], self.token.queues) == (queue,)

    def record(self, permission: str, queue: str | None, allowed: bool, reason: str) -> None:
        """One audit record of this request, as a plugin's capability check is recorded."""
        if self.audit is not None:
            self.audit.record(
                self.actor,
                f"{permission}:{self.operation}",
                queue or ("" if permission in QUEUE_SCOPED else self.target),
                allowed,
                reason=reason,
            )

    def done(self, what: str, resource: str | None = None) -> None:
        """One ``action`` record of what the request did once allowed (``purged 12 dead
        jobs``), on ``resource`` (the route's target by default)."""
        if self.audit is not None:
            self.audit.record(
                self.actor,
                self.operation,
                self.target if resource is None else resource,
                True,
                reason=what,
                kind="action",
            )
