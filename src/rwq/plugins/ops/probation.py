"""Probation: a swapped-in plugin version is watched for faults for a while and, if it
faults, rolled back to a stable copy of the last version known to work."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import LifecycleError, PluginManager, UnknownPlugin
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.ops.attempts import ReloadAttempt, ReloadHistory, settle, unrecorded
from rwq.plugins.package.bundle import Bundle, open_bundle

log = logging.getLogger(__name__)


def fault_count(snap: PluginSnapshot) -> int:
    """Every fault counted on the plugin of ``snap``, all hooks."""
    return sum(snap.faults.values())


@dataclass
class Probation:
    """One version on probation and the counts it started with."""

    bundle: Bundle
    deadline: float
    faults: int
    disables: int
    snapshot: Bundle | None = None
    """A stable copy of ``bundle`` to roll back to later, once it has proven itself."""
    copied: bool = False
    """``snapshot`` was tried (by the worker: a swap may happen in any thread)."""
    suspect: bool = False
    waiters: list[Future[ReloadAttempt]] = field(default_factory=list)
    """Requests that wait for the end of the probation."""


class Probations:
    """The plugin versions on probation, the last version of each known to work, and the
    rollback to it.

    Args:
        manager: the manager whose plugins are watched and rolled back.
        cond: guards this object; notified when a probation starts or turns suspect (the
            reloader's worker waits on it, then calls :meth:`check`).
        history: where rollbacks and failed probations are recorded.
        probation_s: how long a new version may fault before it is rolled back.
        snapshots: where stable copies of directory bundles are kept.
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        cond: threading.Condition,
        history: ReloadHistory,
        probation_s: float,
        snapshots: Path,
    ) -> None:
        self._manager = manager
        self._cond = cond
        self._history = history
        self._probation_s = probation_s
        self._snapshots = snapshots
        self._probation: dict[str, Probation] = {}
        self._good: dict[str, Bundle] = {}
        """The last version known to work, from a stable copy: the rollback target."""
        self._rolling_back: set[str] = set()

    def __contains__(self, name: str) -> bool:
        with self._cond:
            return name in self._probation

    def rolling_back(self, name: str) -> bool:
        """Whether ``name`` is being rolled back now (that swap is no new version)."""
        with self._cond:
            return name in self._rolling_back

    def has_suspects(self) -> bool:
        """Whether a plugin on probation changed since the last :meth:`check`."""
        with self._cond:
            return any(p.suspect for p in self._probation.values())

    def until_deadline(self) -> float | None:
        """Seconds until the next probation ends; None when none is on."""
        with self._cond:
            deadlines = [p.deadline for p in self._probation.values()]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def learn(self, name: str, bundle: Bundle) -> None:
        """Note ``bundle``, running now, as the version of ``name`` known to work."""
        kept = self._keep(bundle)
        if kept is not None:
            with self._cond:
                self._good[name] = kept

    def start(self, name: str, bundle: Bundle) -> None:
        """Put ``bundle``, just swapped in, on probation; it supersedes one in progress."""
        snap = self._manager.status(name)
        probation = Probation(
            bundle=bundle,
            deadline=time.monotonic() + self._probation_s,
            faults=fault_count(snap),
            disables=snap.disables,
        )
        with self._cond:
            before = self._probation.get(name)
            self._probation[name] = probation
            self._cond.notify_all()
        if before is not None:
            superseded = unrecorded(
                name, str(before.bundle.version), f"replaced by {bundle.version} in probation"
            )
            settle(before.waiters, superseded, "reloaded")
            self._forget(before.snapshot)

    def suspect(self, name: str) -> None:
        """``name`` changed state: have it looked at now if it is on probation.

        Called from the plugin's own threads, often with its lock held: only takes note.
        """
        with self._cond:
            probation = self._probation.get(name)
            if probation is not None:
                probation.suspect = True
                self._cond.notify_all()

    def excuse(self, name: str, faults: int) -> None:
        """Do not count ``faults`` of a candidate that failed to load against the running
        version's probation (they are counted on the same plugin)."""
        with self._cond:
            probation = self._probation.get(name)
            if probation is not None and faults > 0:
                probation.faults += faults

    def wait_for_end(self, name: str, future: Future[ReloadAttempt]) -> bool:
        """Have ``future`` answered at the end of the probation of ``name``; False when it
        is not on probation."""
        with self._cond:
            probation = self._probation.get(name)
            if probation is None:
                return False
            probation.waiters.append(future)
            return True

    def drop_waiters(self) -> list[Future[ReloadAttempt]]:
        """Take every future waiting for the end of a probation (to answer them otherwise)."""
        with self._cond:
            waiting = [f for p in self._probation.values() for f in p.waiters]
            for probation in self._probation.values():
                probation.waiters = []
        return waiting

    def forget(self, name: str) -> None:
        """``name`` was unloaded (its bundle removed): end its probation, drop its copies."""
        with self._cond:
            probation = self._probation.pop(name, None)
            good = self._good.pop(name, None)
        if probation is not None:
            settle(probation.waiters, unrecorded(name, str(probation.bundle.version), "removed"))
            self._forget(probation.snapshot)
        self._forget(good)

    def check(self) -> None:
        """End the probations that faulted (rolled back), were stopped or passed."""
        now = time.monotonic()
        with self._cond:
            looking = list(self._probation.items())
        for name, probation in looking:
            if not probation.copied:
                probation.snapshot, probation.copied = self._keep(probation.bundle), True
            probation.suspect = False
            try:
                snap = self._manager.status(name)
            except UnknownPlugin:  # unloaded meanwhile: nothing to watch or roll back
                self.forget(name)
                continue
            counted = fault_count(snap) > probation.faults or snap.disables > probation.disables
            if not counted and snap.state in (PluginState.DISABLED, PluginState.UNLOADED):
                # stopped by the user (a fault would have been counted): no rollback
                if self._end(name, probation):
                    self._forget(probation.snapshot)
                    stopped = f"{snap.state.value} during its probation"
                    settle(
                        probation.waiters, unrecorded(name, str(probation.bundle.version), stopped)
                    )
                continue
            if counted or snap.state is not PluginState.ACTIVE:
                if self._end(name, probation):
                    attempt = self._roll_back(name, probation, snap)
                    settle(probation.waiters, attempt)
            elif now >= probation.deadline:
                if not self._end(name, probation):
                    continue
                with self._cond:
                    old = self._good.get(name)
                    if probation.snapshot is not None:
                        self._good[name] = probation.snapshot
                if (
                    old is not None
                    and probation.snapshot is not None
                    and old is not probation.snapshot
                ):
                    self._forget(old)
                passed = f"passed its {self._probation_s:g}s probation"
                settle(
                    probation.waiters,
                    unrecorded(name, str(probation.bundle.version), passed),
                    "reloaded",
                )

    def _end(self, name: str, probation: Probation) -> bool:
        """Take ``probation`` off the list unless a newer one took its place."""
        with self._cond:
            if self._probation.get(name) is not probation:
                return False
            del self._probation[name]
            return True

    def _roll_back(self, name: str, probation: Probation, snap: PluginSnapshot) -> ReloadAttempt:
        version = str(probation.bundle.version)
        hooks = ", ".join(sorted(snap.faults)) or "?"
        why = f"faulted within {self._probation_s:g}s ({hooks})"
        if snap.reason:
            why += f": {snap.reason}"
        good = self._good.get(name)
        self._forget(probation.snapshot)
        record = self._history.record
        if good is None:
            return record(name, version, "failed", f"{why}; nothing known good to roll back to")
        with self._cond:
            self._rolling_back.add(name)
        try:
            if snap.state is PluginState.ACTIVE:
                result = self._manager.replace(name, good)
                ok, reason = result.ok, result.reason
            else:
                state = self._manager.restore(name, good)
                ok, reason = state is PluginState.ACTIVE, self._manager.reason(name)
        except LifecycleError as exc:
            ok, reason = False, exc.reason
        finally:
            with self._cond:
                self._rolling_back.discard(name)
        # The reloader keeps the faulting version's hash as seen: a stray save event is no retry.
        if ok:
            return record(name, version, "rolled back", f"{why}; back to {good.version}")
        return record(name, version, "failed", f"{why}; rollback failed: {reason}")

    # -- stable copies ----------------------------------------------------------------------

    def _keep(self, bundle: Bundle) -> Bundle | None:
        """A copy of ``bundle`` that later saves do not touch (a zip's extraction already is
        one); None when the files changed again before they were copied."""
        if bundle.kind == "zip":
            return bundle
        target = self._snapshots / f"{bundle.name}-{bundle.sha256[:16]}"
        try:
            if not target.exists():
                tmp = target.with_name(target.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(bundle.root, tmp)
                tmp.rename(target)
            copy = open_bundle(target)
        except (OSError, RwqError) as exc:
            log.warning("plugin %s: cannot keep a copy to roll back to: %s", bundle.name, exc)
            return None
        if copy.sha256 != bundle.sha256:
            self._forget(copy)
            return None
        return copy

    def _forget(self, bundle: Bundle | None) -> None:
        if bundle is None or bundle.kind != "dir" or self._snapshots not in bundle.path.parents:
            return
        with self._cond:
            kept = [*self._good.values(), *(p.snapshot for p in self._probation.values())]
            in_use = any(b is not None and b.path == bundle.path for b in kept)
        if not in_use:
            shutil.rmtree(bundle.path, ignore_errors=True)
