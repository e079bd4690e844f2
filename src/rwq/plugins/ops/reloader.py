"""Hot reload: watch the plugin directories and swap a changed plugin in while the old keeps
serving, with a probation period that rolls a faulting new version back.

The swap itself is :meth:`PluginManager.replace` (atomic, events buffered in the inbox, state
handed over); this module decides *when* to swap and what to do when it goes wrong, and keeps
the attempts so a UI can show why a version did not take over.

Every swap of the manager is put on probation, whoever made it (a save, :meth:`HotReloader.
request` from ``rwq plugin reload``, ``PluginManager.reload``, an update approved later): the
manager tells the reloader through its swap listener. A host that does not watch its plugin
directories still runs a reloader (``watch=False``) for that.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# The layer under watchfiles.watch(): created in start(), so a save made right after start()
# is already seen (watch() sets the watcher up only once its thread runs). Private to
# watchfiles, hence the <2 pin in pyproject.toml.
from watchfiles._rust_notify import RustNotify

from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import LifecycleError, PluginManager, SwapResult
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.manifest import MANIFEST_NAMES

__all__ = ["HotReloader", "Outcome", "ReloadAttempt"]

log = logging.getLogger(__name__)

Outcome = Literal["reloaded", "invalid", "failed", "awaiting approval", "rolled back", "removed"]
_HISTORY = 50
"""Attempts kept per plugin."""


@dataclass(frozen=True)
class ReloadAttempt:
    """One try at hot-reloading a plugin and how it ended."""

    plugin: str
    at: float
    """Wall-clock time (``time.time()``) the attempt ended."""
    version: str
    """The version the attempt was for (empty when the bundle could not be read)."""
    outcome: Outcome
    reason: str = ""


@dataclass
class _Probation:
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


_Waiter = tuple["Future[ReloadAttempt]", bool]
"""A reload request's answer, and whether it waits for the end of the probation."""


def _faults(snap: PluginSnapshot) -> int:
    return sum(snap.faults.values())


class HotReloader:
    """Reloads plugins whose bundle changed on disk.

    Args:
        manager: the started manager whose plugins are reloaded; its search dirs are watched.
        debounce_ms: longest a burst of saves is collected before it is acted on.
        step_ms: quiet time that ends a burst earlier.
        probation_s: how long a new version may fault before it is rolled back.
        watch: watch the search dirs; without, only requests and swaps made by others are
            acted on (still with probation and rollback).
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        debounce_ms: int = 20,
        step_ms: int = 5,
        probation_s: float = 2.0,
        watch: bool = True,
    ) -> None:
        self.manager = manager
        self.watch = watch
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.probation_s = probation_s
        self._snapshots = manager.paths.extracted.parent / "rollback"
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queued: dict[Path, bool] = {}
        """Bundle paths to look at, and whether to reload even if unchanged."""
        self._names: dict[Path, str] = {}
        self._paths: dict[str, Path] = {}
        self._seen: dict[str, str] = {}
        """The sha256 of the bundle last tried per plugin (in place, failed or rolled back):
        a stray event of a save already handled does not try it again."""
        self._good: dict[str, Bundle] = {}
        """The last version known to work, from a stable copy: the rollback target."""
        self._probation: dict[str, _Probation] = {}
        self._history: dict[str, deque[ReloadAttempt]] = {}
        self._waiters: dict[Path, list[_Waiter]] = {}
        self._rolling_back: set[str] = set()
        self._threads: list[threading.Thread] = []

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Note the running versions and start watching."""
        for directory in self._dirs():
            for entry in sorted(directory.iterdir()):
                if self._is_bundle(entry):
                    self._learn(entry)
        self.manager.add_change_listener(self._on_change)
        self.manager.add_swap_listener(self._on_swap)
        self._threads = [threading.Thread(target=self._work, name="rwq-hot-reload", daemon=True)]
        watcher = self._open_watcher() if self.watch else None
        if watcher is not None:
            self._threads.append(
                threading.Thread(
                    target=self._watch, args=(watcher,), name="rwq-plugin-watch", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.manager.remove_change_listener(self._on_change)
        self.manager.remove_swap_listener(self._on_swap)
        for thread in self._threads:
            thread.join(timeout=5.0)
        with self._cond:
            waiting = [f for ws in self._waiters.values() for f, _ in ws]
            waiting += [f for p in self._probation.values() for f in p.waiters]
            self._waiters = {}
            for probation in self._probation.values():
                probation.waiters = []
        for future in waiting:
            if not future.done():
                future.set_result(ReloadAttempt("", time.time(), "", "failed", "the host stopped"))

    def __enter__(self) -> HotReloader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reload(self, name: str) -> Future[ReloadAttempt]:
        """Reload ``name`` from its bundle on disk, as a save would (with probation)."""
        return self.request(name)

    def request(self, name: str, *, settle: bool = False) -> Future[ReloadAttempt]:
        """Reload ``name`` from its bundle on disk even if unchanged, through the same path
        as a save: validate, load beside, swap, probation, rollback on a fault. A stopped
        plugin (error, disabled, unloaded) is loaded again.

        Returns:
            The attempt once it ended: ``reloaded``, ``invalid``, ``failed`` or ``awaiting
            approval``; with ``settle``, once the probation ended too (``rolled back`` if it
            faulted). Saves of the same bundle meanwhile are the same attempt.

        Raises:
            LifecycleError: the plugin's bundle is not in a plugin directory, or the reloader
                is stopped.
        """
        path = self._paths.get(name)
        if path is None:
            raise LifecycleError(name, "its bundle is not in a plugin directory of this host")
        future: Future[ReloadAttempt] = Future()
        with self._cond:
            if self._stop.is_set():
                raise LifecycleError(name, "the hot reloader is stopped")
            self._waiters.setdefault(path, []).append((future, settle))
            self._queued[path] = True
            self._cond.notify_all()
        return future

    def history(self, name: str) -> list[ReloadAttempt]:
        """The reload attempts of ``name``, oldest first."""
        with self._cond:
            return list(self._history.get(name, ()))

    def in_probation(self, name: str) -> bool:
        with self._cond:
            return name in self._probation

    # -- watching ----------------------------------------------------------------------------

    def _dirs(self) -> list[Path]:
        return [d for d in self.manager.paths.search if d.is_dir()]

    def _is_bundle(self, entry: Path) -> bool:
        if entry.name.startswith("."):
            return False
        if entry.is_dir():
            return any((entry / name).is_file() for name in MANIFEST_NAMES)
        return entry.suffix.lower() == ".zip"

    def _open_watcher(self) -> RustNotify | None:
        """The watcher, set up before :meth:`start` returns so that no save is missed (what
        ``watchfiles.watch`` does inside its generator, too late to know when)."""
        dirs = self._dirs()
        if not dirs:
            return None
        return RustNotify([str(d) for d in dirs], False, False, 300, True, False)

    def _watch(self, watcher: RustNotify) -> None:
        roots = [d.resolve() for d in self._dirs()]
        skip = self.manager.paths.extracted.resolve()
        try:
            with watcher:
                while not self._stop.is_set():
                    raw = watcher.watch(self.debounce_ms, self.step_ms, 1000, self._stop)
                    if raw == "timeout":
                        continue
                    if isinstance(raw, str):  # "stop" or "signal"
                        return
                    for _, changed in raw:
                        path = Path(changed).resolve()
                        if path.is_relative_to(skip):
                            continue
                        for root in roots:
                            if path != root and path.is_relative_to(root):
                                self._enqueue(root / path.relative_to(root).parts[0])
                                break
        except Exception:
            if not self._stop.is_set():
                log.exception("watching the plugin directories failed; hot reload is off")

    def _enqueue(self, bundle_path: Path, *, force: bool = False) -> None:
        with self._cond:
            self._queued[bundle_path] = force or self._queued.get(bundle_path, False)
            self._cond.notify_all()

    def _on_swap(self, result: SwapResult, bundle: Bundle) -> None:
        # In the thread that swapped, lifecycle operations on hold: note the baseline now
        # (a fault from here on counts), leave copying the bundle to the worker.
        name = result.plugin
        with self._cond:
            if name in self._rolling_back:
                return
            self._seen[name] = bundle.sha256
        self._start_probation(name, bundle)

    def _on_change(self, name: str) -> None:
        # Called from the plugin's own threads, often with its lock held: only take note.
        with self._cond:
            probation = self._probation.get(name)
            if probation is not None:
                probation.suspect = True
                self._cond.notify_all()

    # -- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._queued and not any(p.suspect for p in self._probation.values()):
                    deadlines = [p.deadline for p in self._probation.values()]
                    wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                    self._cond.wait(wait)
                queued, self._queued = list(self._queued.items()), {}
                waiters, self._waiters = self._waiters, {}
            if self._stop.is_set():
                with self._cond:  # stop() answers them
                    for path, ws in waiters.items():
                        self._waiters.setdefault(path, []).extend(ws)
                return
            for path, force in queued:
                attempt: ReloadAttempt | None
                try:
                    attempt = self._reload(path, force=force)
                except Exception as exc:
                    log.exception("hot reload of %s failed", path)
                    name = self._names.get(path, path.name)
                    attempt = ReloadAttempt(name, time.time(), "", "failed", f"host bug: {exc}")
                self._answer(path, waiters.pop(path, []), attempt)
            try:
                self._check_probation()
            except Exception:
                log.exception("checking plugins in probation failed")

    def _reload(self, path: Path, *, force: bool = False) -> ReloadAttempt | None:
        """Try the bundle at ``path``; the attempt, or None when there was nothing to do."""
        known = self._names.get(path)
        if known is not None and not path.exists() and known in self.manager.plugins():
            # its bundle left the plugin directories (rwq plugin remove): unload it here too
            self.manager.forget(known)
            self._names.pop(path, None)
            self._paths.pop(known, None)
            with self._cond:
                self._seen.pop(known, None)
            return self._record(known, "", "removed", f"{path} was removed")
        try:
            bundle = open_bundle(path, extract_dir=self.manager.paths.extracted)
        except RwqError as exc:
            if known is not None and path.exists():
                return self._record(known, "", "invalid", str(exc))
            return _unrecorded(known or path.name, "", f"cannot open {path}: {exc}")
        name = bundle.name
        if known is not None and name != known:
            return self._record(known, str(bundle.version), "invalid", f"{path} now holds {name}")
        version = str(bundle.version)
        if name not in self.manager.plugins():
            log.info("hot reload: %s is new (plugin %s): taking it in", path, name)
            self._names[path], self._paths[name] = name, path
            with self._cond:
                self._seen[name] = bundle.sha256
            try:
                state = self.manager.add(bundle)
            except LifecycleError as exc:
                return self._record(name, version, "failed", exc.reason)
            if state is PluginState.AWAITING_APPROVAL:
                return self._record(name, version, "awaiting approval", "new plugin")
            if state is not PluginState.ACTIVE:
                return self._record(name, version, "failed", self.manager.reason(name))
            return self._record(name, version, "reloaded", "new plugin")
        self._names[path], self._paths[name] = name, path
        with self._cond:
            if self._seen.get(name) == bundle.sha256 and not force:
                return None  # a save that changed nothing, or a burst already taken in
            self._seen[name] = bundle.sha256
        state = self.manager.state(name)
        stopped = (PluginState.DISABLED, PluginState.UNLOADED)
        if state is PluginState.ERROR or (force and state in stopped):
            state = self.manager.restore(name, bundle)
            if state is not PluginState.ACTIVE:
                return self._record(name, version, "failed", self.manager.reason(name))
            self._start_probation(name, bundle)
            return self._record(name, version, "reloaded", "was stopped")
        faults = _faults(self.manager.status(name))
        result = self.manager.replace(name, bundle)  # on probation through _on_swap
        if result.ok:
            return self._record(name, version, "reloaded")
        self._excuse(name, _faults(self.manager.status(name)) - faults)
        if any(p.plugin == name and p.update for p in self.manager.pending_approvals()):
            return self._record(name, version, "awaiting approval", result.reason)
        return self._record(name, version, "failed", result.reason)

    def _answer(self, path: Path, waiters: list[_Waiter], attempt: ReloadAttempt | None) -> None:
        if not waiters:
            return
        if attempt is None:
            name = self._names.get(path, path.name)
            attempt = _unrecorded(name, "", "nothing to reload")
        for future, settle in waiters:
            with self._cond:
                probation = self._probation.get(attempt.plugin)
                if settle and attempt.outcome == "reloaded" and probation is not None:
                    probation.waiters.append(future)
                    continue
            future.set_result(attempt)

    # -- probation and rollback -------------------------------------------------------------

    def _start_probation(self, name: str, bundle: Bundle) -> None:
        snap = self.manager.status(name)
        probation = _Probation(
            bundle=bundle,
            deadline=time.monotonic() + self.probation_s,
            faults=_faults(snap),
            disables=snap.disables,
        )
        with self._cond:
            before = self._probation.get(name)
            self._probation[name] = probation
            self._cond.notify_all()
        if before is not None:
            superseded = _unrecorded(
                name, str(before.bundle.version), f"replaced by {bundle.version} in probation"
            )
            _settle(before.waiters, superseded, "reloaded")
            self._forget(before.snapshot)

    def _excuse(self, name: str, faults: int) -> None:
        """Do not count ``faults`` of a candidate that failed to load against the running
        version's probation (they are counted on the same plugin)."""
        with self._cond:
            probation = self._probation.get(name)
            if probation is not None and faults > 0:
                probation.faults += faults

    def _end_probation(self, name: str, probation: _Probation) -> bool:
        """Take ``probation`` off the list unless a newer one took its place."""
        with self._cond:
            if self._probation.get(name) is not probation:
                return False
            del self._probation[name]
            return True

    def _check_probation(self) -> None:
        now = time.monotonic()
        with self._cond:
            looking = list(self._probation.items())
        for name, probation in looking:
            if not probation.copied:
                probation.snapshot, probation.copied = self._keep(probation.bundle), True
            probation.suspect = False
            snap = self.manager.status(name)
            counted = _faults(snap) > probation.faults or snap.disables > probation.disables
            if not counted and snap.state in (PluginState.DISABLED, PluginState.UNLOADED):
                # stopped by the user (a fault would have been counted): no rollback
                if self._end_probation(name, probation):
                    self._forget(probation.snapshot)
                    stopped = f"{snap.state.value} during its probation"
                    _settle(
                        probation.waiters, _unrecorded(name, str(probation.bundle.version), stopped)
                    )
                continue
            if counted or snap.state is not PluginState.ACTIVE:
                if self._end_probation(name, probation):
                    attempt = self._roll_back(name, probation, snap)
                    _settle(probation.waiters, attempt)
            elif now >= probation.deadline:
                if not self._end_probation(name, probation):
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
                passed = f"passed its {self.probation_s:g}s probation"
                _settle(
                    probation.waiters,
                    _unrecorded(name, str(probation.bundle.version), passed),
                    "reloaded",
                )

    def _roll_back(self, name: str, probation: _Probation, snap: PluginSnapshot) -> ReloadAttempt:
        version = str(probation.bundle.version)
        hooks = ", ".join(sorted(snap.faults)) or "?"
        why = f"faulted within {self.probation_s:g}s ({hooks})"
        if snap.reason:
            why += f": {snap.reason}"
        good = self._good.get(name)
        self._forget(probation.snapshot)
        if good is None:
            return self._record(
                name, version, "failed", f"{why}; nothing known good to roll back to"
            )
        with self._cond:
            self._rolling_back.add(name)
        try:
            if snap.state is PluginState.ACTIVE:
                result = self.manager.replace(name, good)
                ok, reason = result.ok, result.reason
            else:
                state = self.manager.restore(name, good)
                ok, reason = state is PluginState.ACTIVE, self.manager.reason(name)
        except LifecycleError as exc:
            ok, reason = False, exc.reason
        finally:
            with self._cond:
                self._rolling_back.discard(name)
        if ok:  # _seen keeps the faulting version's hash: a stray save event is no retry
            return self._record(name, version, "rolled back", f"{why}; back to {good.version}")
        return self._record(name, version, "failed", f"{why}; rollback failed: {reason}")

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
            in_use = any(b is not None and b.path == bundle.path for b in self._kept())
        if not in_use:
            shutil.rmtree(bundle.path, ignore_errors=True)

    def _kept(self) -> list[Bundle | None]:
        return [*self._good.values(), *(p.snapshot for p in self._probation.values())]

    def _learn(self, path: Path) -> None:
        """Note the plugin at ``path`` and keep a copy of it when it runs."""
        try:
            bundle = open_bundle(path, extract_dir=self.manager.paths.extracted)
        except RwqError:
            return
        name = bundle.name
        if name not in self.manager.plugins():
            return
        self._names[path], self._paths[name] = name, path
        self._seen[name] = bundle.sha256
        with contextlib.suppress(RwqError):
            if self.manager.state(name) is PluginState.ACTIVE:
                kept = self._keep(bundle)
                if kept is not None:
                    self._good[name] = kept

    def _record(self, name: str, version: str, outcome: Outcome, reason: str = "") -> ReloadAttempt:
        attempt = ReloadAttempt(name, time.time(), version, outcome, reason)
        with self._cond:
            kept = self._history.setdefault(name, deque(maxlen=_HISTORY))
            last = kept[-1] if kept else None
            if last is not None and (last.version, last.outcome, last.reason) == (
                version,
                outcome,
                reason,
            ):
                return attempt  # the same broken save seen twice
            kept.append(attempt)
        if outcome == "reloaded":
            log.info("plugin %s: version %s reloaded %s", name, version, reason)
        else:
            log.warning("plugin %s: hot reload of %s %s: %s", name, version or "?", outcome, reason)
        return attempt


def _unrecorded(name: str, version: str, reason: str) -> ReloadAttempt:
    """An answer to a request that is not a reload attempt of its own (kept in no history)."""
    return ReloadAttempt(name, time.time(), version, "failed", reason)


def _settle(
    waiters: list[Future[ReloadAttempt]], attempt: ReloadAttempt, outcome: Outcome | None = None
) -> None:
    if outcome is not None:
        attempt = ReloadAttempt(
            attempt.plugin, attempt.at, attempt.version, outcome, attempt.reason
        )
    for future in waiters:
        if not future.done():
            future.set_result(attempt)
