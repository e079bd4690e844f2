"""Watching the plugin directories: a burst of saves under one bundle, debounced, becomes one
look at that bundle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

# The layer under watchfiles.watch(): created in BundleWatcher(), so a save made right after is
# already seen (watch() sets the watcher up only once its thread runs). Private to watchfiles,
# hence the <2 pin in pyproject.toml.
from watchfiles._rust_notify import RustNotify

from rwq.plugins.package.manifest import MANIFEST_NAMES

log = logging.getLogger(__name__)


def is_bundle(entry: Path) -> bool:
    """Whether ``entry`` of a plugin directory is a plugin bundle: a zip or a directory with a
    manifest, not hidden."""
    if entry.name.startswith("."):
        return False
    if entry.is_dir():
        return any((entry / name).is_file() for name in MANIFEST_NAMES)
    return entry.suffix.lower() == ".zip"


def _litter(parts: tuple[str, ...]) -> bool:
    """Whether a path inside a plugin is no part of its bundle: hidden, or installed
    packages."""
    return any(part.startswith(".") or part == "node_modules" for part in parts)


class BundleWatcher:
    """Watches plugin directories and tells which bundle a burst of saves touched.

    The watcher is set up when this object is made, so that no save made after is missed
    (``watchfiles.watch`` does that inside its generator, too late to know when).

    Args:
        dirs: the plugin directories to watch (existing ones).
        skip: where bundles are extracted; changes under it are the host's own.
        debounce_ms: longest a burst of saves is collected before it is passed on.
        step_ms: quiet time that ends a burst earlier.
        changed: called, in the thread running :meth:`run`, with each bundle path touched.
    """

    def __init__(
        self,
        dirs: Sequence[Path],
        *,
        skip: Path,
        debounce_ms: int,
        step_ms: int,
        changed: Callable[[Path], None],
    ) -> None:
        self._dirs = list(dirs)
        self._skip = skip
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._changed = changed
        self._notify = RustNotify([str(d) for d in dirs], False, False, 300, True, False)

    def run(self, stop: threading.Event) -> None:
        """Pass on bursts of saves until ``stop`` is set; a failure is logged, and ends it."""
        roots = [d.resolve() for d in self._dirs]
        # A plugin given as a directory to search: a save anywhere in it (but its hidden
        # files and node_modules) is that plugin's.
        single = {root for root in roots if is_bundle(root)}
        skip = self._skip.resolve()
        try:
            with self._notify:
                while not stop.is_set():
                    raw = self._notify.watch(self._debounce_ms, self._step_ms, 1000, stop)
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
                                parts = path.relative_to(root).parts
                                if root in single:
                                    if not _litter(parts):
                                        self._changed(root)
                                elif not parts[0].startswith("."):  # hidden: install staging
                                    self._changed(root / parts[0])
                                break
        except Exception:
            if not stop.is_set():
                log.exception("watching the plugin directories failed; hot reload is off")
