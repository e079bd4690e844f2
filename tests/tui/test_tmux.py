"""The one real-terminal test: ``rwq demo`` with the sample plugins in tmux, on the embedded
Valkey with a private state dir. The screen is read with ``tmux capture-pane`` and driven with
``tmux send-keys``, as a user would: the queues fill, the sample panels and the dead letters
show, ``q`` quits and the demo's workers are gone."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

TMUX = shutil.which("tmux")
REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
POLICY = PLUGINS / "demo-policy.yaml"
SAMPLES = ("alert-manager", "bulk-operations", "custom-metrics", "tenant-sla-monitor")
EXITED = "rwq-demo-exited"

# Outside CI a machine without tmux skips this test; in CI (`make test` installs tmux) a
# missing tmux is a failure, not a silent skip.
pytestmark = pytest.mark.skipif(
    TMUX is None and not os.environ.get("CI"),
    reason="tmux is not installed (`make toolchains` installs it)",
)


@dataclass
class Terminal:
    """A tmux session of its own tmux server (a private socket), 160x50."""

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


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    assert TMUX is not None, "tmux is not installed: `make toolchains` should have installed it"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RWQ_", "TMUX"))}
    env.update(
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        TERM="xterm-256color",
    )
    term = Terminal(tmp_path / "tmux.sock", env, tmp_path / "state" / "rwq")
    demo = [sys.executable, "-m", "rwq", "demo", "--plugins", "plugins", "--policy", str(POLICY)]
    script = f"{shlex.join(demo)}; echo {EXITED} $?; sleep 600"
    term.tmux("-f", "/dev/null", "new-session", "-d", "-s", "demo", "-x", "160", "-y", "50",
              "-c", str(REPO), script)  # fmt: skip
    try:
        yield term
    finally:
        subprocess.run([str(TMUX), "-S", str(term.socket), "kill-server"], env=env,
                       capture_output=True, timeout=30)  # fmt: skip
        subprocess.run([sys.executable, "-m", "rwq", "server", "stop"], env=env,
                       capture_output=True, timeout=60)  # fmt: skip
        for pid in term.workers():  # only if the demo failed to stop them
            os.kill(pid, 9)


def panel_titles() -> list[str]:
    titles = []
    for name in SAMPLES:
        manifest = yaml.safe_load((PLUGINS / name / "manifest.yaml").read_text(encoding="utf-8"))
        titles.append(manifest["ui"]["panel_title"])
    return titles


TENANT_ROW = re.compile(r"^\s*(tenant\.\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)", re.M)


def busy_tenants(screen: str) -> list[str]:
    """Tenant queues of the queues table with a non-zero count."""
    return [
        m.group(1) for m in TENANT_ROW.finditer(screen) if any(float(g) for g in m.groups()[1:])
    ]


def test_the_demo_in_a_real_terminal(terminal: Terminal) -> None:
    screen = terminal.wait_for("the queues table with busy tenant queues", busy_tenants, 90)
    assert "Queues [1]" in screen and "valkey.sock" in screen  # the embedded server's socket
    assert terminal.workers(), "the demo's workers run"

    terminal.press("4")
    titles = panel_titles()
    screen = terminal.wait_for(
        f"the sample panels {titles}", lambda s: all(t in s for t in titles), 60
    )
    assert "awaiting approval" not in screen  # the policy granted what they ask

    terminal.press("2")
    terminal.wait_for("the dead letters view", lambda s: "dead letters match" in s, 30)

    terminal.press("q")
    screen = terminal.wait_for("the demo's exit", lambda s: EXITED in s, 60)
    assert f"{EXITED} 0" in screen
    assert "demo ran" in screen  # its summary
    deadline = time.monotonic() + 15
    while terminal.workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.workers(), "the demo's workers were stopped"
