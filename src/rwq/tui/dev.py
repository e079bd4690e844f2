"""``rwq plugin dev``'s screen: the plugin under development's panel in front and, beside it
(below on a narrow terminal), a pane with its last build, reload attempts, faults, hook
timings and log lines. Everything a plugin or a compiler wrote is shown as plain text."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from rwq.errors import RwqError
from rwq.host.api import PluginHost
from rwq.plugins.engine.metrics import PluginSnapshot
from rwq.printable import plain_text

LOG_SHOWN = 12
"""Latest log lines of the plugin shown in the pane."""
RELOADS_SHOWN = 4
BUILD_OUTPUT_SHOWN = 30
"""Lines of a failed build's compiler output shown."""
SIDE_BY_SIDE = 120
"""Cells of width from which the pane sits beside the panel (below it under that)."""
REFRESH_S = 0.5


class BuildOutcome(Protocol):
    """One build of the plugin (:class:`rwq.toolkit.dev.DevBuild`)."""

    ok: bool
    output: str
    duration: float
    at: float

    def summary(self) -> str: ...


class Builds(Protocol):
    """The build loop of a compiled plugin (:class:`rwq.toolkit.dev.DevBuilder`), handed in
    by the command line: the TUI never imports the toolkit."""

    on_build: Callable[[Any], None] | None
    last: Any

    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class DevSession:
    """What ``rwq plugin dev`` develops: the plugin, where it lives, its build loop (None for
    Starlark) and where its events come from."""

    plugin: str
    path: Path
    builds: Builds | None = None
    feed: str = ""
    """Where the events come from, said in the pane's header."""


class DevPane(VerticalScroll):
    """The dev plugin's build, reloads, faults, hook timings and log, refreshed twice a
    second from the plugin host."""

    DEFAULT_CSS = """
    DevPane { width: 1fr; height: 1fr; border: round $accent; padding: 0 1; }
    DevPane #dev-text { width: 1fr; height: auto; }
    """

    def __init__(self, host: PluginHost, session: DevSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.session = session
        self.build: BuildOutcome | None = None
        self.border_title = f"dev: {session.plugin}"

    def compose(self) -> ComposeResult:
        yield Static("", id="dev-text")

    def on_mount(self) -> None:
        builds = self.session.builds
        if builds is not None:
            self.build = builds.last
            builds.on_build = self._built_from_thread
        self.read()
        self.set_interval(REFRESH_S, self.read)

    def on_unmount(self) -> None:
        builds = self.session.builds
        if builds is not None:
            builds.on_build = None

    # -- builds ------------------------------------------------------------------------------

    def _built_from_thread(self, outcome: BuildOutcome) -> None:
        self.app.call_from_thread(self.built, outcome)

    def built(self, outcome: BuildOutcome) -> None:
        """A build ended: say so (a failure as an error toast) and show it in the pane."""
        before, self.build = self.build, outcome
        name = self.session.plugin
        if not outcome.ok:
            first = next((line for line in outcome.output.splitlines() if line.strip()), "")
            self.app.notify(
                f"build failed; the last good version keeps running\n{first}",
                title=name, severity="error", timeout=6,
            )  # fmt: skip
        elif before is not None and not before.ok:
            self.app.notify(f"build fixed: {outcome.summary()}", title=name)
        self.read()

    # -- the pane ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="dev-pane")
    def read(self) -> None:
        """Read the plugin's figures from the host (off the UI thread) and show them."""
        try:
            text = self.describe()
        except RwqError as exc:
            text = plain_text(f"the plugin host did not answer: {exc}", "red")
        self.app.call_from_thread(self._show, text)

    def _show(self, text: Text) -> None:
        if self.is_mounted:
            self.query_one("#dev-text", Static).update(text)

    def describe(self) -> Text:
        """The pane's text, read from the host now."""
        host, name = self.host, self.session.plugin
        text = Text()
        text.append_text(plain_text(f"{self.session.path}", "bold"))
        if self.session.feed:
            text.append_text(_line(f"events: {self.session.feed}", "dim"))
        snap = next((s for s in host.snapshot() if s.name == name), None)
        text.append_text(self._state(snap))
        text.append_text(self._build())
        text.append_text(self._reloads())
        if snap is not None:
            text.append_text(self._permissions())
            text.append_text(_timings(snap))
        text.append("\n\nlog", style="bold")
        lines = host.log_text(name).splitlines()[-LOG_SHOWN:]
        text.append_text(plain_text("\n" + "\n".join(lines), multiline=True))
        return text

    def _state(self, snap: PluginSnapshot | None) -> Text:
        if snap is None:
            gone = self.host.gone
            why = gone or "not loaded: its bundle did not open (see the build and log below)"
            return _line(f"{self.session.plugin}: {why}", "bold red")
        style = "green" if snap.state.value == "active" else "bold red"
        line = f"{snap.name} {snap.version}: {snap.state.value.replace('_', ' ')}"
        text = _line(line, style)
        if snap.reason:
            text.append_text(plain_text(f" — {snap.reason}", "yellow"))
        if snap.faults:
            faults = ", ".join(f"{kind} {n}" for kind, n in sorted(snap.faults.items()))
            text.append_text(_line(f"faults: {faults}", "red"))
        return text

    def _build(self) -> Text:
        build = self.build
        if self.session.builds is None:
            return _line("build: none (Starlark runs as written)", "dim")
        if build is None:
            return _line("build: not yet", "dim")
        stamp = time.strftime("%H:%M:%S", time.localtime(build.at))
        text = _line(f"{stamp} {build.summary()}", "green" if build.ok else "bold red")
        if not build.ok:
            text.append_text(plain_text("; the last good version keeps running", "red"))
            lines = build.output.splitlines()[:BUILD_OUTPUT_SHOWN]
            text.append_text(plain_text("\n" + "\n".join(lines), "red", multiline=True))
        return text

    def _reloads(self) -> Text:
        text = Text()
        for attempt in reversed(self.host.reload_history(self.session.plugin)[-RELOADS_SHOWN:]):
            stamp = time.strftime("%H:%M:%S", time.localtime(attempt.at))
            line = f"reload {stamp} {attempt.version or '?'}: {attempt.outcome}"
            if attempt.reason:
                line += f" — {attempt.reason}"
            ok = attempt.outcome == "reloaded"
            text.append_text(_line(line, "green" if ok else "bold red"))
        return text

    def _permissions(self) -> Text:
        perms = self.host.permissions(self.session.plugin)
        text = _line(f"granted as asked: {', '.join(sorted(perms.granted)) or '-'}")
        if perms.denied:
            denied = ", ".join(sorted(perms.denied))
            text.append_text(
                _line(f"denied earlier: {denied} (rwq plugin grant to allow)", "yellow")
            )
        return text


def _line(content: str, style: str = "") -> Text:
    """``content`` on a new line, shown as one line of plain text (a line feed inside it is
    escaped like any control character; the one before it is the pane's own)."""
    text = Text("\n", end="")
    text.append_text(plain_text(content, style))
    return text


def _timings(snap: PluginSnapshot) -> Text:
    """Per hook: calls, failures, p50 and p99."""
    text = Text("\n\nhook            calls  failed   p50 ms   p99 ms", style="bold")
    for hook, calls in sorted(snap.calls.items()):
        p50, p99 = (snap.hook_latency.get(hook) or (0.0, 0.0))[:2]
        failed = snap.errors.get(hook, 0)
        line = f"{hook:<14}{calls:>7}{failed:>8}{p50 * 1000:>9.2f}{p99 * 1000:>9.2f}"
        text.append_text(_line(line, "red" if failed else ""))
    return text
