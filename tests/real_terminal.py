"""A real terminal for tests: a command in a tmux session of its own tmux server, its screen
read with ``tmux capture-pane`` and driven with ``tmux send-keys``, as a user would; stopped at
the end with the embedded Valkey and any demo worker it left."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TMUX = shutil.which("tmux")
EXITED = "rwq-demo-exited"
"""Printed with the command's exit status once it ends."""


@dataclass
class Terminal:
    """A tmux session of its own tmux server (a private socket), 220x55 at first."""

    socket: Path
    env: dict[str, str]
    state_dir: Path

    def tmux(self, *args: str) -> str:
        command = [str(TMUX), "-S", str(self.socket), *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "demo")

    def settled(self, timeout: float = 10) -> str:
        """The screen once two captures in a row agree (not one taken mid-redraw)."""
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = self.screen()
            if again == screen:
                return screen
            screen = again
        return screen

    def press(self, key: str) -> None:
        self.tmux("send-keys", "-t", "demo", key)

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"the screen never showed {what}; it shows:\n{screen}")

    def workers(self) -> list[int]:
        """Pids of the demo's worker processes (found by this test's state dir)."""
        marker = f"RWQ_STATE_DIR={self.state_dir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:  # gone, or not ours
                continue
            if b"worker" in cmdline and marker in environ:
                found.append(int(entry.name))
        return found


@contextmanager
def running(tmp_path: Path, command: list[str], cwd: Path, **env: str) -> Iterator[Terminal]:
    """``command`` in a 220x55 tmux session of its own tmux server; stopped at the end, with
    the embedded Valkey and any demo worker it left."""
    assert TMUX is not None, "tmux is not installed: `make toolchains` should have installed it"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RWQ_", "TMUX"))}
    environ.update(
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        TERM="xterm-256color",
        **env,
    )
    term = Terminal(tmp_path / "tmux.sock", environ, tmp_path / "state" / "rwq")
    script = f"{shlex.join(command)}; echo {EXITED} $?; sleep 600"
    term.tmux("-f", "/dev/null", "new-session", "-d", "-s", "demo", "-x", "220", "-y", "55",
              "-c", str(cwd), script)  # fmt: skip
    try:
        yield term
    finally:
        subprocess.run([str(TMUX), "-S", str(term.socket), "kill-server"], env=environ,
                       capture_output=True, timeout=30)  # fmt: skip
        subprocess.run([sys.executable, "-m", "rwq", "server", "stop"], env=environ,
                       capture_output=True, timeout=60)  # fmt: skip
        for pid in term.workers():  # only if the demo failed to stop them
            os.kill(pid, 9)
