"""Hot reload: watch the plugin directories and swap a changed plugin in while the old keeps
serving, with a probation period that rolls a faulting new version back."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path, PurePosixPath

from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import LifecycleError, PluginManager, SwapResult
from rwq.plugins.ops.attempts import Outcome, ReloadAttempt, ReloadHistory, unrecorded
from rwq.plugins.ops.probation import Probations, fault_count
from rwq.plugins.ops.watcher import BundleWatcher, is_bundle
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.manifest import MANIFEST_NAMES

__all__ = ["HotReloader", "Outcome", "ReloadAttempt"]

log = logging.getLogger(__name__)

_Waiter = tuple["Future[ReloadAttempt]", bool]
"""A reload request's answer, and whether it waits for the end of the probation."""


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
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._history = ReloadHistory()
        self._probations = Probations(
            manager,
            cond=self._cond,
            history=self._history,
            probation_s=probation_s,
            snapshots=manager.paths.extracted.parent / "rollback",
        )
        self._queued: dict[Path, bool] = {}
        """Bundle paths to look at, and whether to reload even if unchanged."""
        self._names: dict[Path, str] = {}
        self._paths: dict[str, Path] = {}
        self._seen: dict[str, str] = {}
        """The sha256 of the bundle last tried per plugin (in place, failed or rolled back):
        a stray event of a save already handled does not try it again."""
        self._code: dict[str, str | None] = {}
        """What the host reads of each WASM plugin last tried (its manifest and module,
        hashed): a save of its sources alone is not reloaded, its build's module is."""
        self._waiters: dict[Path, list[_Waiter]] = {}
        self._threads: list[threading.Thread] = []

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Note the running versions and start watching."""
        dirs = self._dirs()
        for directory in dirs:
            if is_bundle(directory):  # one plugin, given as a directory to search
                self._learn(directory)
                continue
            for entry in sorted(directory.iterdir()):
                if is_bundle(entry):
                    self._learn(entry)
        self.manager.add_change_listener(self._probations.suspect)
        self.manager.add_swap_listener(self._on_swap)
        self._threads = [threading.Thread(target=self._work, name="rwq-hot-reload", daemon=True)]
        if self.watch and dirs:
            watcher = BundleWatcher(
                dirs,
                skip=self.manager.paths.extracted,
                debounce_ms=self.debounce_ms,
                step_ms=self.step_ms,
                changed=self._enqueue,
            )
            self._threads.append(
                threading.Thread(
                    target=watcher.run, args=(self._stop,), name="rwq-plugin-watch", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.manager.remove_change_listener(self._probations.suspect)
        self.manager.remove_swap_listener(self._on_swap)
        for thread in self._threads:
            thread.join(timeout=5.0)
        with self._cond:
            waiting = [f for ws in self._waiters.values() for f, _ in ws]
            waiting += self._probations.drop_waiters()
            self._waiters = {}
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
        return self._history.of(name)

    def in_probation(self, name: str) -> bool:
        return name in self._probations

    # -- watching ----------------------------------------------------------------------------

    def _dirs(self) -> list[Path]:
        return [d for d in self.manager.paths.search if d.is_dir()]

    def _enqueue(self, bundle_path: Path) -> None:
        with self._cond:
            self._queued.setdefault(bundle_path, False)
            self._cond.notify_all()

    def _on_swap(self, result: SwapResult, bundle: Bundle) -> None:
        # In the thread that swapped, lifecycle operations on hold: note the baseline now
        # (a fault from here on counts), leave copying the bundle to the worker.
        name = result.plugin
        with self._cond:
            if self._probations.rolling_back(name):
                return
            self._note(name, bundle)
        self._probations.start(name, bundle)

    # -- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._queued and not self._probations.has_suspects():
                    self._cond.wait(self._probations.until_deadline())
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
                self._probations.check()
            except Exception:
                log.exception("checking plugins in probation failed")
                self._stop.wait(1.0)  # not again at once: a lasting failure would flood

    def _reload(self, path: Path, *, force: bool = False) -> ReloadAttempt | None:
        """Try the bundle at ``path``; the attempt, or None when there was nothing to do."""
        record = self._history.record
        known = self._names.get(path)
        if known is not None and not path.exists():
            self._names.pop(path, None)
            if self._paths.get(known) != path or known not in self.manager.plugins():
                return None  # it moved (a zip replaced by a directory, or the reverse)
            # its bundle left the plugin directories (rwq plugin remove): unload it here too
            self.manager.forget(known)
            self._paths.pop(known, None)
            self._probations.forget(known)
            with self._cond:
                self._seen.pop(known, None)
                self._code.pop(known, None)
            return record(known, "", "removed", f"{path} was removed")
        try:
            bundle = open_bundle(path, extract_dir=self.manager.paths.extracted)
        except RwqError as exc:
            if known is not None and path.exists():
                return record(known, "", "invalid", str(exc))
            return unrecorded(known or path.name, "", f"cannot open {path}: {exc}")
        name = bundle.name
        if known is not None and name != known:
            return record(known, str(bundle.version), "invalid", f"{path} now holds {name}")
        version = str(bundle.version)
        elsewhere = self._paths.get(name)
        if elsewhere is not None and elsewhere != path and elsewhere.exists():
            return unrecorded(name, version, f"{path} is ignored: {name} runs from {elsewhere}")
        if name not in self.manager.plugins():
            log.info("hot reload: %s is new (plugin %s): taking it in", path, name)
            self._names[path], self._paths[name] = name, path
            with self._cond:
                self._note(name, bundle)
            try:
                state = self.manager.add(bundle)
            except LifecycleError as exc:
                return record(name, version, "failed", exc.reason)
            if state is PluginState.AWAITING_APPROVAL:
                return record(name, version, "awaiting approval", "new plugin")
            if state is not PluginState.ACTIVE:
                return record(name, version, "failed", self.manager.reason(name))
            return record(name, version, "reloaded", "new plugin")
        self._names[path], self._paths[name] = name, path
        state = self.manager.state(name)
        code = code_of(bundle)
        with self._cond:
            if self._seen.get(name) == bundle.sha256 and not force:
                return None  # a save that changed nothing, or a burst already taken in
            runs_the_same = code is not None and self._code.get(name) == code
            if runs_the_same and not force and state is PluginState.ACTIVE:
                return None  # its sources changed: its build will write the module
            self._note(name, bundle, code)

        stopped = (PluginState.DISABLED, PluginState.UNLOADED)
        if state is PluginState.ERROR or (force and state in stopped):
            state = self.manager.restore(name, bundle)
            if state is not PluginState.ACTIVE:
                return record(name, version, "failed", self.manager.reason(name))
            self._probations.start(name, bundle)
            return record(name, version, "reloaded", "was stopped")
        faults = fault_count(self.manager.status(name))
        result = self.manager.replace(name, bundle)  # on probation through _on_swap
        if result.ok:
            return record(name, version, "reloaded")
        self._probations.excuse(name, fault_count(self.manager.status(name)) - faults)
        if any(p.plugin == name and p.update for p in self.manager.pending_approvals()):
            return record(name, version, "awaiting approval", result.reason)
        return record(name, version, "failed", result.reason)

    def _note(self, name: str, bundle: Bundle, code: str | None = None) -> None:
        """Take ``bundle`` as the version of ``name`` last tried (self._cond held, or the
        reloader not started)."""
        self._seen[name] = bundle.sha256
        self._code[name] = code if code is not None else code_of(bundle)

    def _answer(self, path: Path, waiters: list[_Waiter], attempt: ReloadAttempt | None) -> None:
        if not waiters:
            return
        if attempt is None:
            name = self._names.get(path, path.name)
            attempt = unrecorded(name, "", "nothing to reload")
        for future, settle in waiters:
            waits = settle and attempt.outcome == "reloaded"
            if waits and self._probations.wait_for_end(attempt.plugin, future):
                continue
            future.set_result(attempt)

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
        self._note(name, bundle)
        with contextlib.suppress(RwqError):
            if self.manager.state(name) is PluginState.ACTIVE:
                self._probations.learn(name, bundle)


def code_of(bundle: Bundle) -> str | None:
    """A digest of what the host reads of a WASM plugin in a directory: its manifest and its
    module, not its sources, build scripts or README (None for any other bundle)."""
    if bundle.kind != "dir" or bundle.manifest.runtime != "wasm":
        return None
    entry = PurePosixPath(bundle.manifest.entry_point).as_posix()
    digest = hashlib.sha256()
    for rel in sorted(f for f in bundle.files if f in MANIFEST_NAMES or f == entry):
        try:
            digest.update(rel.encode() + b"\0" + (bundle.root / rel).read_bytes())
        except OSError:
            return None  # changing under us: look at it as a whole
    return digest.hexdigest()
