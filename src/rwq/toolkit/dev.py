"""``rwq plugin dev``'s build loop: watch a compiled plugin's sources, build it again when they
are saved (a burst of saves is one build), and say how each build went. The plugin host's hot
reload takes the new module in; a failed build writes no module, so the last good version
keeps running."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The layer under watchfiles.watch(), as rwq.plugins.ops.watcher uses it: set up when the
# loop is made, so a save made right after is seen.
from watchfiles._rust_notify import RustNotify

from rwq.errors import RwqError
from rwq.toolkit.asc import WarmCompiler
from rwq.toolkit.build import BuildResult, Language, build_plugin, detect_language, warm_up

log = logging.getLogger(__name__)

SOURCE_SUFFIXES = frozenset({".c", ".h", ".ts"})
SOURCE_NAMES = frozenset({"build.sh", "package.json"})
DEBOUNCE_MS = 60
"""Longest a burst of saves is collected before the build starts."""
STEP_MS = 15
"""Quiet time that ends a burst earlier."""
WARM_UP_ROUNDS = 3
"""AssemblyScript: throwaway compiles after the first build, before the author saves."""


def is_source(plugin: Path, path: Path) -> bool:
    """Whether a change at ``path`` inside ``plugin`` is a change of its sources (not of
    ``node_modules``, hidden files or the build's output)."""
    try:
        parts = path.resolve().relative_to(plugin.resolve()).parts
    except ValueError:
        return False
    if not parts or any(p.startswith(".") or p == "node_modules" for p in parts):
        return False
    return parts[-1] in SOURCE_NAMES or Path(parts[-1]).suffix in SOURCE_SUFFIXES


@dataclass(frozen=True)
class DevBuild:
    """One build of the plugin under development, as the dev screen shows it."""

    ok: bool
    output: str
    """The compiler's output, or why nothing was built (a missing toolchain)."""
    duration: float
    at: float
    """Wall-clock time the build ended."""
    trigger: str
    """What started it: ``start`` or the file saved."""

    @classmethod
    def of(cls, result: BuildResult, trigger: str) -> DevBuild:
        text = result.output.rstrip("\n")
        if result.notes:
            text = "\n".join([text, *(f"note: {n}" for n in result.notes)]).strip("\n")
        return cls(result.ok, text, result.duration, time.time(), trigger)

    def summary(self) -> str:
        """One line: built or failed, in how long, after what."""
        verdict = "built" if self.ok else "build failed"
        return f"{verdict} in {self.duration:.2f}s ({self.trigger})"


class DevBuilder:
    """Builds the plugin at ``path`` when its sources change, until :meth:`stop`.

    Args:
        path: the plugin directory.
        on_build: called (in the loop's thread) with every build's outcome.
    """

    def __init__(
        self,
        path: Path,
        *,
        on_build: Callable[[DevBuild], None] | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        step_ms: int = STEP_MS,
    ) -> None:
        self.path = path
        self.language: Language = detect_language(path)[0]
        self.on_build = on_build
        self.last: DevBuild | None = None
        self.builds = 0
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify: RustNotify | None = None
        self._warm = WarmCompiler() if self.language == "assemblyscript" else None
        """AssemblyScript: the compiler kept loaded between builds."""

    @property
    def compiled(self) -> bool:
        """Whether the plugin has a module to build (Starlark runs as written)."""
        return self.language != "starlark"

    def build(self, trigger: str = "start", *, strict: bool = False) -> DevBuild:
        """Build now, in this thread; the outcome is also passed to ``on_build``.

        Raises:
            ToolchainMissing, BuildInputError: with ``strict`` only; else they are the
                outcome (a toolchain gone missing, a manifest broken by a save).
        """
        try:
            result = build_plugin(self.path, profile="dev", warm=self._warm)
            outcome = DevBuild.of(result, trigger)
        except RwqError as exc:
            if strict:
                raise
            outcome = DevBuild(False, str(exc), 0.0, time.time(), trigger)
        self.last = outcome
        self.builds += 1
        if self.on_build is not None:
            try:
                self.on_build(outcome)
            except Exception:  # the screen is gone: the next build tries again
                log.exception("showing the build of %s failed", self.path)
        return outcome

    def start(self) -> None:
        """Watch the sources (a compiled plugin's only) and build on every burst of saves."""
        if not self.compiled or self._thread is not None:
            return
        self._notify = RustNotify([str(self.path)], False, False, 300, True, False)
        self._thread = threading.Thread(target=self._run, name="rwq-dev-build", daemon=True)
        self._thread.start()
        if self._warm is not None:
            threading.Thread(
                target=warm_up, args=(self.path, self._warm, WARM_UP_ROUNDS, self._stop),
                name="rwq-dev-warm-up", daemon=True,
            ).start()  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._warm is not None:
            self._warm.close()

    def _run(self) -> None:
        notify = self._notify
        assert notify is not None
        try:
            with notify:
                while not self._stop.is_set():
                    raw = notify.watch(self._debounce_ms, self._step_ms, 500, self._stop)
                    if raw == "timeout":
                        continue
                    if isinstance(raw, str):  # "stop" or "signal"
                        return
                    saved = sorted({Path(p) for _, p in raw if is_source(self.path, Path(p))})
                    if saved:
                        self.build(", ".join(p.name for p in saved[:3]) + " saved")
        except Exception:
            if not self._stop.is_set():
                log.exception("watching the sources of %s failed; rebuilds are off", self.path)
