"""The real-terminal tests, in tmux on the embedded Valkey with a private state dir; the screen
is read with ``tmux capture-pane`` and driven with ``tmux send-keys``, as a user would.

``rwq demo`` with the sample plugins: the queues fill, the sample panels and the dead letters
show, ``q`` quits and the demo's workers are gone. ``rwq tui`` with a plugin whose every string
is hostile: the screen shows them as text, the terminal's title and screen are untouched, the
TUI stays up."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from real_terminal import EXITED, TMUX, Terminal, running
from rwq.samples import SAMPLES_DIR

REPO = Path(__file__).resolve().parents[2]
PLUGINS = SAMPLES_DIR
POLICY = PLUGINS / "demo-policy.yaml"
SAMPLES = ("alert-manager", "bulk-operations", "custom-metrics", "tenant-sla-monitor")

# Outside CI a machine without tmux skips this test; in CI (`make test` installs tmux) a
# missing tmux is a failure, not a silent skip.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        TMUX is None and not os.environ.get("CI"),
        reason="tmux is not installed (`make toolchains` installs it)",
    ),
]


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    demo = [sys.executable, "-m", "rwq", "demo", "--policy", str(POLICY)]  # the shipped samples
    with running(tmp_path, demo, REPO) as term:
        yield term


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
    assert any("╮ ╭" in line for line in screen.splitlines())  # two columns at 220x55

    # a small terminal: the panels stack in one readable column, one below the other
    terminal.tmux("resize-window", "-t", "demo", "-x", "100", "-y", "30")

    def one_column(screen: str) -> bool:
        tops = [line.rstrip() for line in screen.splitlines() if line.startswith("╭─ ")]
        return bool(tops) and all(line.endswith("╮") and len(line) > 90 for line in tops)

    screen = terminal.wait_for(
        "one column of panels as wide as the screen, the first one's title at the top",
        lambda s: one_column(s) and titles[0] in s,
        30,
    )
    assert "throttled" not in screen
    terminal.tmux("resize-window", "-t", "demo", "-x", "220", "-y", "55")

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


HOSTILE_PLUGIN = Path(__file__).parent / "fixtures" / "hostile-text"


def test_a_hostile_plugin_in_a_real_terminal(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(HOSTILE_PLUGIN, plugins / "hostile-text")
    policy = tmp_path / "policy.yaml"
    policy.write_text("plugins:\n  hostile-text:\n    grant: [ui.notifications]\n")
    tui = [sys.executable, "-m", "rwq", "tui", "--policy", str(policy)]
    with running(tmp_path, tui, tmp_path, RWQ_PLUGIN_DIRS=str(plugins)) as term:
        term.wait_for("the queues view", lambda s: "Queues [1]" in s, 60)
        title = term.tmux("display-message", "-p", "-t", "demo", "#{pane_title}")
        term.press("4")
        screen = term.wait_for("the hostile panel", lambda s: "evil" in s, 60)
        assert "[/] [@click=app.quit]x :heart:" in screen  # the title, as written
        for text in ("[bold", "\\x1b[2J\\x1b]0;pwn\\x07", "\\x9b31m", "\\u202eevil\\u202c"):
            assert text in screen, text
        shown = term.settled().count("\\u202eevil")  # the panel shows it already
        for _ in range(5):  # Tab gives the panel the keys once the app has focus to move
            term.press("Tab")
            term.press("n")  # a notification and a log line of hostile text
            try:
                term.wait_for("the notification", lambda s: s.count("\\u202eevil") > shown, 8)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the panel never took the keys (Tab, then n)")
        for _ in range(5):  # f: every render fails from now on, and three faults disable it
            term.press("f")
            try:
                screen = term.wait_for(
                    "the disabled panel in the running TUI",
                    lambda s: "faults in a row" in s and "Queues [1]" in s and EXITED not in s,
                    12,
                )
                break
            except AssertionError:
                term.press("Tab")  # the panel did not have the keys yet
        else:
            raise AssertionError("the panel never showed its faults after f")
        assert term.tmux("display-message", "-p", "-t", "demo", "#{pane_title}") == title
        term.press("Escape")  # leave the panel (keys go to its plugin while it has focus)
        time.sleep(0.5)  # else the terminal reads Escape and q as one key, alt+q
        term.press("q")
        screen = term.wait_for("the TUI's exit", lambda s: EXITED in s, 60)
        assert f"{EXITED} 0" in screen
