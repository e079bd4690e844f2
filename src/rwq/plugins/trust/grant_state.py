"""The grants file held in memory: a snapshot indexed for checks, re-read when the file
changes on disk and written through under the file's lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rwq.plugins.trust import grant_file
from rwq.plugins.trust.grant_file import Binding, Denial, Grant, GrantStoreError, Stamp

Change = Callable[[list[Grant], list[Denial]], None]
"""An edit of the file's grants and denials, made in place on the lists."""


@dataclass(frozen=True)
class GrantState:
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
    ) -> GrantState:
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
            denied=denied_index(denials),
        )


class StoredGrants:
    """The grants file at ``path`` as last read, reloaded when another process changed it.

    Args:
        path: the grants file; created on the first change.
        clock: the wall clock; a change drops the grants expired by then.
        reload_interval: how often (seconds) :meth:`current` looks whether the file changed;
            changes made through this object apply immediately.

    Raises:
        GrantStoreError: the file exists but is not a valid grants file.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float], reload_interval: float) -> None:
        self.path = path
        self.mutex = threading.RLock()
        """Held to decide a change from :meth:`fresh` and make it with no change between."""
        self._clock = clock
        self._reload_interval = reload_interval
        self._state = self._read()
        if self._state.error is not None:
            raise GrantStoreError(path, self._state.error)
        self._stat_at = time.monotonic()

    def current(self) -> GrantState:
        """The state, re-read first if the file changed and the reload interval passed; its
        ``error`` is set when the file is no longer valid."""
        now = time.monotonic()
        if now - self._stat_at >= self._reload_interval:
            self._stat_at = now
            # A change in progress in this process will install a fresher state itself.
            if self.mutex.acquire(blocking=False):
                try:
                    self._reload_if_changed()
                finally:
                    self.mutex.release()
        return self._state

    def reload(self) -> None:
        """Re-read the file now if it changed on disk.

        Raises:
            GrantStoreError: the file is no longer a valid grants file.
        """
        with self.mutex:
            self._stat_at = time.monotonic()
            self._reload_if_changed()
        if self._state.error is not None:
            raise GrantStoreError(self.path, self._state.error)

    def fresh(self) -> GrantState:
        """The state of the file as it is now.

        Raises:
            GrantStoreError: the file is not a valid grants file.
        """
        self._reload_if_changed()
        if self._state.error is not None:
            raise GrantStoreError(self.path, self._state.error)
        return self._state

    def change(self, change: Change) -> None:
        """Apply ``change`` to the file's current content and write it back atomically.

        Raises:
            GrantStoreError: the file could not be read or written (nothing changed).
        """
        with self.mutex, grant_file.locked(self.path):
            state = self.fresh()  # another process may have changed it since we read it
            now = self._clock()
            grants = [g for g in state.grants if not g.expired(now)]
            denials = list(state.denials)
            change(grants, denials)
            grant_file.write(self.path, grants, denials)
            self._stat_at = time.monotonic()
            self._state = self._read()

    def _reload_if_changed(self) -> None:
        if grant_file.stamp(self.path) != self._state.stamp:
            self._state = self._read()

    def _read(self) -> GrantState:
        try:
            raw, stamp = grant_file.read(self.path)
        except FileNotFoundError:
            return GrantState.build((), (), None)
        except OSError as exc:
            return GrantState(error=f"cannot read: {exc}")
        try:
            grants, denials = grant_file.parse(raw)
        except ValueError as exc:
            return GrantState(
                stamp=stamp, error=f"{exc}; fix or move the file away (rwq will not overwrite it)"
            )
        return GrantState.build(grants, denials, stamp)


def denied_index(denials: Iterable[Denial]) -> dict[str, dict[str, Denial]]:
    """Plugin to permission to the denial that refused it (the last one, if several)."""
    denied: dict[str, dict[str, Denial]] = {}
    for d in denials:
        for name in d.permissions:
            denied.setdefault(d.plugin, {})[name] = d
    return denied
