"""``rwq bench toolkit``: a plugin author's loop timed as they live it — ``rwq plugin new`` to
the panel live in ``rwq plugin dev``, and a save of the source to the new version on the
screen — per language (what runs and what is measured: ``docs/performance.md``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwq.bench.queue import _percentile
from rwq.errors import RwqError
from rwq.valkey.embedded import EmbeddedServer

LANGUAGES = ("starlark", "c", "assemblyscript")
SOURCES = {"starlark": "main.star", "c": "main.c", "assemblyscript": "main.ts"}
"""The file of each template a save changes."""
ANCHOR = " queues, "
"""Text of the templates' first panel line that each save replaces by a new marker (the
bench says so if a template no longer has it)."""
TERMINAL = (160, 50)
"""Columns and rows of the terminal ``rwq plugin dev`` runs in: the pane beside the panel."""
START_TIMEOUT = 120.0
SAVE_TIMEOUT = 60.0
TAIL_KEPT = 1 << 16
"""Bytes of the terminal's output kept for an error message."""
SETTLE = 3.0
"""Seconds between the panel going live and the first save."""
BETWEEN_SAVES = 2.5
"""Seconds between saves: past the new version's probation, as an author edits."""
BUILT = re.compile(r"built in ([0-9.]+)s \(main\.\w+ saved\)")
"""The dev pane's line for a build after a save, with its duration."""
TARGET_NEW_TO_LIVE_S = 60.0
TARGET_SAVE_MS = {"starlark": 200.0, "c": 1000.0, "assemblyscript": 1000.0}


@dataclass
class _Terminal:
    """A command attached to a pseudo-terminal whose output is read as it comes."""

    process: subprocess.Popen[bytes]
    master: int
    seen: bytearray = field(default_factory=bytearray)
    waited: bytearray = field(default_factory=bytearray)
    """What was written during the last :meth:`wait_for`."""

    def wait_for(self, text: str, timeout: float) -> float | None:
        """Read until ``text`` is written to the terminal; when (monotonic), or None when it
        was not within ``timeout`` or the command ended."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        self.waited = bytearray()
        while time.monotonic() < deadline:
            chunk = self.read(min(0.05, max(0.0, deadline - time.monotonic())))
            if chunk:
                start = max(0, len(self.waited) - len(needle))
                self.waited += chunk
                if needle in self.waited[start:]:
                    return time.monotonic()
            elif self.process.poll() is not None:
                return None
        return None

    def read(self, timeout: float) -> bytes:
        """What the command wrote within ``timeout`` (empty: nothing, or it ended)."""
        readable, _, _ = select.select([self.master], [], [], timeout)
        if not readable:
            return b""
        try:
            chunk = os.read(self.master, 1 << 16)
        except OSError:  # EIO: the command closed the terminal
            return b""
        self.seen += chunk
        del self.seen[: max(0, len(self.seen) - TAIL_KEPT)]
        return chunk

    def tail(self) -> str:
        return self.seen[-4000:].decode("utf-8", "replace")


@contextlib.contextmanager
def _attached(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[_Terminal]:
    """``argv`` on a pty of :data:`TERMINAL` size, stopped (Ctrl-C, then a kill) at the end."""
    master, slave = os.openpty()
    columns, rows = TERMINAL
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    terminal = _Terminal(process, master)
    try:
        yield terminal
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            terminal.read(0.1)  # a full terminal would block its exit
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(master)


def _environment(root: Path) -> dict[str, str]:
    """The user's environment with rwq's settings and every directory rwq writes under
    ``root``: the user's plugins, grants and server are not touched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env.pop("TEXTUAL", None)
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        (root / name.lower()).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / name.lower())
    columns, rows = TERMINAL
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
    return env


def _rwq(*args: str) -> list[str]:
    return [sys.executable, "-m", "rwq", *args]


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    """Seconds ``argv`` took; its output in the error when it failed."""
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RwqError(f"bench toolkit: {what} failed ({done.returncode}): {done.stderr.strip()}")
    return time.monotonic() - started


def compiler_modules() -> Path | None:
    """An installed AssemblyScript compiler for the plugins to build with: the
    ``node_modules`` of rwq's SDK in a checkout of the repository, if it has one."""
    root = Path(__file__).resolve().parents[3]
    modules = root / "sdk" / "assemblyscript" / "node_modules"
    return modules if (modules / "assemblyscript").is_dir() else None


def missing_toolchain(language: str) -> str | None:
    """Why ``language``'s plugins cannot be built here, or None."""
    if language == "c" and shutil.which("clang") is None:
        return "clang is not installed (make toolchains)"
    if language == "assemblyscript":
        if shutil.which("node") is None:
            return "node is not installed (make toolchains)"
        if compiler_modules() is None:
            return "no installed AssemblyScript compiler (make toolchains in a checkout)"
    return None


def _save_ms(
    terminal: _Terminal, source: Path, saves: int
) -> tuple[list[float], list[float], list[str]]:
    """Change the panel's first line ``saves`` times; milliseconds from each write to its
    text on the terminal, the builds' own milliseconds (as the dev pane says them), and the
    saves that never showed."""
    text = source.read_text(encoding="utf-8")
    if ANCHOR not in text:
        raise RwqError(f"bench toolkit: {source.name} has no {ANCHOR!r} to change")
    shown: list[float] = []
    builds: list[float] = []
    lost: list[str] = []
    current = ANCHOR
    for i in range(saves):
        marker = f"rwqsave{i}x"
        text = text.replace(current, f" {marker}, ", 1)
        current = f" {marker}, "
        time.sleep(BETWEEN_SAVES if i else SETTLE)
        while terminal.read(0):  # what was drawn before the save
            pass
        saved = time.monotonic()

        source.write_text(text, encoding="utf-8")
        seen = terminal.wait_for(marker, SAVE_TIMEOUT)
        if seen is None:
            lost.append(marker)
        else:
            shown.append((seen - saved) * 1000)
        said = BUILT.findall(terminal.waited.decode("utf-8", "replace"))
        if said:
            builds.append(float(said[-1]) * 1000)
    return shown, builds, lost


def _figures(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(_percentile(samples, 0.5), 1),
        "max": round(max(samples), 1),
        "each": [round(s, 1) for s in samples],
    }


def bench_language(language: str, *, saves: int, rate: float) -> dict[str, Any]:
    """One author's loop in ``language``, in a temporary home."""
    with tempfile.TemporaryDirectory(prefix="rwq-bench-toolkit-") as tmp:
        root = Path(tmp)
        env = _environment(root)
        plugin = root / "panel"
        state = root / "xdg_state_home" / "rwq"
        try:
            started = time.monotonic()
            new_s = _run(_rwq("plugin", "new", "panel", "--lang", language), root, env, "new")
            modules = compiler_modules()
            if language == "assemblyscript" and modules is not None:  # npm ci's work, done
                (plugin / "node_modules").symlink_to(modules)
            argv = _rwq("plugin", "dev", str(plugin), "--rate", f"{rate:g}")
            with _attached(argv, root, env) as terminal:
                live = terminal.wait_for(ANCHOR, START_TIMEOUT)
                if live is None:
                    raise RwqError(
                        f"bench toolkit: the {language} panel never showed; the terminal:\n"
                        f"{terminal.tail()}"
                    )
                new_to_live = live - started
                shown, builds, lost = _save_ms(terminal, plugin / SOURCES[language], saves)
            build_s = check_s = None
            if language != "starlark":
                build_s = _run(_rwq("plugin", "build", str(plugin)), root, env, "build")
            check_s = _run(
                _rwq(
                    "plugin", "check", str(plugin), "--grant", "observer",
                    "--events", str(plugin / "fixtures" / "events.jsonl"),
                    "--seed", str(plugin / "fixtures" / "seed.jsonl"),
                ),
                root, env, "check",
            )  # fmt: skip
        finally:
            EmbeddedServer(state).stop()
    save = _figures(shown)
    target = TARGET_SAVE_MS[language]
    return {
        "new_s": round(new_s, 2),
        "new_to_live_s": round(new_to_live, 2),
        "new_to_live_target_s": TARGET_NEW_TO_LIVE_S,
        "build_s": None if build_s is None else round(build_s, 2),
        "check_s": round(check_s, 2),
        "save_to_visible_ms": save,
        "of_which_build_ms": _figures(builds) if language != "starlark" else None,
        "save_target_ms": target,
        "saves_never_shown": lost,
        "met": {
            "new_to_live": new_to_live < TARGET_NEW_TO_LIVE_S,
            "save_to_visible": bool(shown) and not lost and save["p50"] < target,
        },
    }


def run_toolkit_bench(
    languages: list[str] | None = None, *, saves: int = 5, rate: float = 20.0
) -> dict[str, Any]:
    """The author's loop per language (all three by default); a language whose toolchain is
    missing is skipped with the reason."""
    chosen = languages or list(LANGUAGES)
    for language in chosen:
        if language not in LANGUAGES:
            raise RwqError(f"--lang: {language!r} is not one of {', '.join(LANGUAGES)}")
    if saves < 1:
        raise RwqError(f"--saves: must be at least 1, got {saves}")
    figures: dict[str, Any] = {
        "terminal": f"{TERMINAL[0]}x{TERMINAL[1]}",
        "demo_rate_jobs_per_s": rate,
        "cores": os.cpu_count(),
    }
    for language in chosen:
        missing = missing_toolchain(language)
        if missing is not None:
            figures[language] = {"skipped": missing}
            continue
        figures[language] = bench_language(language, saves=saves, rate=rate)
    return figures
