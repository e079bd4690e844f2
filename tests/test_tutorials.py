"""The tutorials in ``docs/tutorials/`` run as written: their shell blocks in order, in an empty
directory with a home and state of their own, each block's output matched against the text block
after it, their diffs applied to the files they name, and ``rwq plugin dev`` driven in a real
terminal (tmux) as the reader drives it.

How a tutorial tells the test what to do:

- A ``sh`` block is run with ``bash -e -o pipefail``; it must exit 0 unless an HTML comment
  ``<!-- test: exit N -->`` before it says otherwise.
- A ``text`` block right after it is the output it must print (stdout and stderr together, as
  a terminal shows them, 120 columns wide). ``...`` on a line of its own stands for any lines;
  inside a line, for any text. Otherwise the lines must be there as written, in order and
  next to each other, from the first line of the output to the last.
- A ``diff`` block (``--- PATH`` / ``+++ PATH``, then lines kept `` ``, removed ``-`` and
  added ``+``) is applied to PATH: the kept and removed lines must be there exactly once.
- ``<!-- test: instead ... -->``: the lines after ``instead`` run in place of the next block
  (a step that needs the network, such as ``npm ci``).
- ``<!-- test: tmux -->``: the next block is interactive; it runs in a tmux terminal while the
  steps after it go on. ``<!-- test: screen "TEXT" ... -->`` waits until the terminal shows
  every TEXT, ``<!-- test: screen-re "REGEX" -->`` until it matches REGEX, ``<!-- test:
  press KEY ... -->`` presses keys (tmux key names), and ``<!-- test: exited 0 -->`` waits for
  the command to end with that status.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from real_terminal import EXITED, TMUX, Terminal, running

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
NODE_MODULES = ROOT / "sdk" / "assemblyscript" / "node_modules"
LANGUAGES = ("starlark", "c", "assemblyscript")
SCREEN_WAIT = 180.0
"""Longest wait for the terminal to show something: dead letters of the demo take a while."""

# Outside CI a machine without tmux skips the tutorials; in CI (`make test` installs tmux) a
# missing tmux is a failure, not a silent skip.
# -- reading a tutorial ---------------------------------------------------------------------


@dataclass
class Step:
    """One thing the reader does: a ``sh`` block to run, a ``diff`` to apply, or a directive
    about the interactive command that runs (``screen``, ``screen-re``, ``press``,
    ``exited``)."""

    kind: str
    line: int
    """Where it is in the tutorial (1-based), for the failure's message."""
    text: str = ""
    args: list[str] = field(default_factory=list)
    output: str | None = None
    exit: int = 0
    instead: str | None = None
    interactive: bool = False

    def where(self, path: Path) -> str:
        return f"{path.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!-- test: (.*?)(?: -->)?$")


def read_steps(path: Path) -> list[Step]:
    """The tutorial's steps in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    pending = Step("sh", 0)  # what directives said of the next sh block
    last_block: Step | None = None  # a sh block whose output may follow
    i = 0
    while i < len(lines):
        line = lines[i]
        if (found := DIRECTIVE.match(line)) is not None:
            body = [found.group(1)]
            while not lines[i].rstrip().endswith("-->"):
                i += 1
                body.append(lines[i].removesuffix("-->").rstrip())
            verb, *args = shlex.split(body[0])
            if verb == "exit":
                pending.exit = int(args[0])
            elif verb == "instead":
                pending.instead = "\n".join(body[1:]).strip()
            elif verb == "tmux":
                pending.interactive = True
            elif verb in ("screen", "screen-re", "press", "exited"):
                steps.append(Step(verb, i + 1, args=args))
            else:
                raise AssertionError(f"{path}:{i + 1}: unknown test directive {verb!r}")
            last_block = None
            i += 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if line.strip():
                last_block = None
            i += 1
            continue
        language, start = fence.group(1), i + 1
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        body_text = "\n".join(lines[start:i])
        i += 1
        if language == "sh":
            pending.line, pending.text = start, body_text
            steps.append(pending)
            last_block, pending = pending, Step("sh", 0)
        elif language == "diff":
            steps.append(Step("diff", start, text=body_text))
            last_block = None
        elif language == "text" and last_block is not None:
            last_block.output = body_text
            last_block = None
        else:
            last_block = None
    assert pending == Step("sh", 0), f"{path}: a test directive with no sh block after it"
    return steps


# -- matching output --------------------------------------------------------------------------


def _line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in expected.split("...")))


def output_mismatch(expected: str, actual: str) -> str | None:
    """Why ``actual`` is not the output ``expected`` shows (None when it is)."""
    want = [line.rstrip() for line in expected.strip("\n").splitlines()]
    got = [line.rstrip() for line in actual.rstrip().splitlines()]
    runs: list[list[str]] = [[]]
    for line in want:
        if line == "...":
            runs.append([])
        else:
            runs[-1].append(line)
    anchored_start, anchored_end = bool(runs[0]), bool(runs[-1])
    runs = [run for run in runs if run]
    position = 0
    for index, run in enumerate(runs):
        patterns = [_line_pattern(line) for line in run]
        last = len(got) - len(patterns)
        starts = range(position, last + 1)
        if index == 0 and anchored_start:
            starts = range(0, 1 if last >= 0 else 0)
        if index == len(runs) - 1 and anchored_end:
            starts = range(last, last + 1) if last >= position else range(0)
        for start in starts:
            if all(p.fullmatch(got[start + k]) for k, p in enumerate(patterns)):
                position = start + len(patterns)
                break
        else:
            return f"these lines are not in the output where the tutorial shows them:\n{run}"
    return None


def test_output_matching_holds_lines_order_and_ends() -> None:
    actual = "created x\nbuilt 1,234 bytes in 0.5s\nmore\nend\n"
    assert output_mismatch("created x\n...\nend", actual) is None
    assert output_mismatch("created x\nbuilt ... bytes in ...s\n...", actual) is None
    assert output_mismatch("...\nmore\nend", actual) is None
    assert output_mismatch("created x\nend", actual) is not None  # lines skipped without ...
    assert output_mismatch("built ... bytes in ...s\n...", actual) is not None  # not first
    assert output_mismatch("created x\n...\nmore", actual) is not None  # not last
    assert output_mismatch("...\nend\nmore\n...", actual) is not None  # out of order


def apply_diff(work: Path, diff: str, where: str) -> None:
    """Apply a tutorial's diff block to the file it names."""
    lines = diff.splitlines()
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ "), f"{where}: no header"
    path = work / lines[0][4:].strip()
    before: list[str] = []
    after: list[str] = []
    for line in lines[2:]:
        mark, text = line[:1], line[1:]
        if mark in (" ", ""):
            before.append(text)
            after.append(text)
        elif mark == "-":
            before.append(text)
        elif mark == "+":
            after.append(text)
        else:
            raise AssertionError(f"{where}: a diff line starts with {mark!r}")
    source = path.read_text(encoding="utf-8")
    old, new = "\n".join(before) + "\n", "\n".join(after) + "\n"
    assert source.count(old) == 1, f"{where}: the lines to change are not once in {path}:\n{old}"
    path.write_text(source.replace(old, new), encoding="utf-8")


# -- running one --------------------------------------------------------------------------------


def environment(tmp_path: Path) -> dict[str, str]:
    """A reader's shell with a home, state and cache of its own, and rwq on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RWQ_", "TMUX"))}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        COLUMNS="120",
        PYTHONUNBUFFERED="1",  # stdout and stderr in the order a terminal shows them
        NODE_MODULES=str(NODE_MODULES),
    )
    (tmp_path / "home").mkdir()
    return env


def run_tutorial(path: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = environment(tmp_path)
    terminal: Terminal | None = None
    with ExitStack() as stack:
        stack.callback(stop_servers, tmp_path, env)
        for step in read_steps(path):
            where = step.where(path)
            if step.kind == "diff":
                apply_diff(work, step.text, where)
            elif step.kind == "sh" and step.interactive:
                command = ["bash", "-c", step.text]
                extra = {k: env[k] for k in ("HOME", "XDG_CONFIG_HOME", "PATH", "NODE_MODULES")}
                terminal = stack.enter_context(running(tmp_path, command, work, **extra))
            elif step.kind == "sh":
                run_block(step, work, env, where)
            else:
                assert terminal is not None, f"{where}: no interactive command runs"
                drive(terminal, step, where)


def run_block(step: Step, work: Path, env: dict[str, str], where: str) -> None:
    script = step.instead if step.instead is not None else step.text
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == step.exit, (
        f"{where}: exit {done.returncode}, not {step.exit}:\n$ {script}\n{done.stdout}"
    )
    if step.output is not None and step.instead is None:
        why = output_mismatch(step.output, done.stdout)
        assert why is None, f"{where}: {why}\n$ {script}\n{done.stdout}"


def drive(terminal: Terminal, step: Step, where: str) -> None:
    if step.kind == "press":
        for key in step.args:
            terminal.press(key)
            time.sleep(0.3)  # Escape then q would read as alt+q
    elif step.kind == "screen":
        terminal.wait_for(
            f"{step.args} ({where})", lambda s: all(a in s for a in step.args), SCREEN_WAIT
        )
    elif step.kind == "screen-re":
        pattern = re.compile(step.args[0])
        terminal.wait_for(
            f"/{step.args[0]}/ ({where})", lambda s: bool(pattern.search(s)), SCREEN_WAIT
        )
    elif step.kind == "exited":
        screen = terminal.wait_for(f"the command's end ({where})", lambda s: EXITED in s, 60)
        assert f"{EXITED} {step.args[0]}" in screen, f"{where}: {screen}"


def stop_servers(tmp_path: Path, env: dict[str, str]) -> None:
    """Every embedded Valkey the tutorial's commands left running, whichever state dir they
    used (the reader's, and one made for a clean install)."""
    for server in valkeys_under(tmp_path):
        os.kill(server, signal.SIGTERM)


def valkeys_under(tmp_path: Path) -> Iterator[int]:
    marker = str(tmp_path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"valkey-server" in cmdline and marker in cmdline:
            yield int(entry.name)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_tutorial_runs_as_written(language: str, tmp_path: Path) -> None:
    if TMUX is None:
        pytest.fail("tmux runs rwq plugin dev in a real terminal: run `make toolchains`")
    if language == "c" and (shutil.which("clang") is None or shutil.which("wasm-ld") is None):
        pytest.fail("clang and wasm-ld build C plugins: run `make toolchains`")
    if language == "assemblyscript" and not (NODE_MODULES / "assemblyscript").is_dir():
        pytest.fail("the AssemblyScript compiler is needed: run `make toolchains`")
    run_tutorial(TUTORIALS / f"{language}.md", tmp_path)


def test_every_tutorial_is_in_the_index_and_runs_commands() -> None:
    index = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for language in LANGUAGES:
        path = TUTORIALS / f"{language}.md"
        assert f"({language}.md)" in index, language
        steps = read_steps(path)
        kinds = [s.kind for s in steps]
        assert kinds.count("sh") >= 10 and "diff" in kinds and "press" in kinds, path
        assert any(s.interactive for s in steps), path
        commands = "\n".join(s.text for s in steps)
        for command in ("rwq plugin new", "rwq plugin dev", "--snapshot", "rwq plugin keygen",
                        "rwq plugin sign", "rwq plugin verify", "rwq plugin publish",
                        "rwq plugin install", "rwq plugin search"):  # fmt: skip
            assert command in commands, (path, command)
