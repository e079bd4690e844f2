"""Scopes: where a grant applies, as fnmatch-style globs over queues, operations and resources.

A queue scope limits only queue-scoped permissions (see :mod:`rwq.plugins.contract.permissions`); a
check of a queue-scoped permission that names no queue passes only an unrestricted scope.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rwq.plugins.contract.permissions import CATALOG

QUEUE_SCOPED = frozenset(name for name, p in CATALOG.items() if p.queue_scoped)
"""The permissions a queue scope limits."""

_GLOB_CHARS = re.compile(r"[*?\[]")


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


def narrow(requested: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The requested globs cut down to what ``allowed`` permits (conservatively)."""
    out: list[str] = []
    for want in requested:
        if any(_glob_covers(g, want) for g in allowed):
            out.append(want)
        else:
            out.extend(g for g in allowed if _glob_covers(want, g))
    return tuple(dict.fromkeys(out))


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
