"""Panels drawn off the screen's thread: a :class:`PanelRenderer` calls each dirty plugin's
``render`` and draws the elements into lines, at most :data:`MAX_FPS` rounds a second."""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.segment import Segment

from rwq.host.render.elements import PanelView, SegmentLines, Target, build_panel
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PluginManager, RenderResult

log = logging.getLogger(__name__)

MAX_FPS = 30
"""Most render rounds a second: the panels are drawn at most 30 times a second, all that changed
in one round together (the screen's costliest step is per round, not per panel); a panel
changing faster shows its latest state."""
TIMINGS_KEPT = 20_000
"""Latest render times kept for ``rwq bench tui``."""
NOTICES_EVERY = 1.0
"""Seconds between looks at the panels' notices (a failed reload, dropped events: no plugin
state changes then, so nothing else would draw the panel again)."""
DROPS_RECENT = 60.0
"""Seconds after its last drop a panel still says its plugin *is* dropping events."""


@dataclass(frozen=True)
class PanelFrame:
    """A finished render of one panel, ready to paint."""

    plugin: str
    view: PanelView | None
    state: PluginState
    note: str
    """Why there are no elements (the plugin's state and reason), or that the view is stale."""
    render_ms: float
    lines: SegmentLines | None = None
    """The view drawn into lines for the panel's width (off the UI thread): what is painted."""
    seq: int = 0
    """This frame's number (per renderer)."""
    base_seq: int = -1
    """The frame ``changed`` compares with (the one delivered before this one)."""
    changed: tuple[int, ...] | None = None
    """The lines that differ from frame ``base_seq`` (same height and width); None: all."""
    elements: list[Any] | None = None
    """The validated elements the plugin returned (what a renderer that does not draw
    delivers: the web draws them into HTML)."""

    def looks_like(self, other: PanelFrame | None) -> bool:
        """Whether painting this frame would show exactly what ``other`` shows."""
        if other is None:
            return False
        if self.lines is None and other.lines is None and self.elements is not None:
            return (
                self.state is other.state
                and self.note == other.note
                and self.elements == other.elements
            )
        if self.lines is None or other.lines is None:
            return False
        return (
            self.state is other.state
            and self.note == other.note
            and self.lines.width == other.lines.width
            and self.lines.lines == other.lines.lines
            and _targets(self) == _targets(other)
        )


BUSY = PanelFrame("", None, PluginState.ACTIVE, "busy", 0.0)
"""What :meth:`PanelRenderer.frame` returns for a plugin busy in another hook."""
BUSY_PATIENCE = 0.5
"""Seconds a plugin may stay busy before the renderer waits for it (up to BUSY_WAIT)."""
BUSY_WAIT = 0.5


def _targets(frame: PanelFrame) -> tuple[Target, ...]:
    return frame.view.targets if frame.view is not None else ()


THROTTLED_NOTE = "throttled: over its CPU budget, events held back"


def about(n: int) -> str:
    """``n`` in two significant figures past a thousand: ``980``, ``24k``, ``1.2M``."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)


def drop_note(drops: tuple[int, float, float], now: float) -> str:
    """What a panel's border says of the events its plugin's full inbox dropped (``(count,
    first, last)``, :meth:`EventBus.drops`): how many, since when, and until when once it has
    stopped."""
    dropped, first, last = drops
    if not dropped:
        return ""
    since = time.strftime("%H:%M:%S", time.localtime(first))
    if now - last > DROPS_RECENT:
        until = time.strftime("%H:%M:%S", time.localtime(last))
        return f"dropped {about(dropped)} events {since}-{until}"
    return f"dropping events: {about(dropped)} lost since {since}"


def state_note(result: RenderResult) -> str:
    if result.stale:
        return "busy: showing the last render"
    if result.state is PluginState.ACTIVE:
        if result.throttled:
            note = f"throttled: {result.throttle_note}" if result.throttle_note else THROTTLED_NOTE
            return f"{note} · {result.error}" if result.error else note
        return result.error or ""
    label = result.state.value.replace("_", " ")
    return f"{label}: {result.error}" if result.error else label


class PanelRenderer:
    """Renders dirty panels off the UI thread and hands finished frames to ``deliver``."""

    def __init__(
        self,
        manager: PluginManager,
        sizes: Callable[[str], tuple[int, int, bool] | None],
        deliver: Callable[[list[PanelFrame]], None],
        cursors: Callable[[str], int | None],
        *,
        max_fps: float = MAX_FPS,
        notices: Callable[[str], str] | None = None,
        draws: bool = True,
    ) -> None:
        self.manager = manager
        self.draws = draws
        """Whether frames carry the view drawn into lines; False: only the elements (a
        screen that draws them itself, the web)."""
        self.sizes = sizes
        self.deliver = deliver
        self.cursors = cursors
        self.notices = notices
        """What else a panel's border should say (a failed reload), by plugin."""
        self.period = 1.0 / max_fps
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rwq-panels", daemon=True)
        self.render_ms: deque[float] = deque(maxlen=TIMINGS_KEPT)
        """The latest render times (plugin call + building the view), for the bench."""
        self.view_ms: deque[float] = deque(maxlen=TIMINGS_KEPT)
        """The part of each render time spent here: building the view and drawing its lines."""
        self.renders = 0
        """Frames rendered so far."""
        self.console = Console(file=io.StringIO(), width=200, legacy_windows=False)
        """Draws views into lines on this thread (never written to)."""
        self._busy_since: dict[str, float] = {}
        """Plugins found busy, since when (monotonic)."""
        self._last: dict[str, PanelFrame] = {}
        """The last frame delivered per panel: an identical one is not delivered again."""
        self._seq = 0
        self._noticed: dict[str, str] = {}
        self._notices_at = 0.0

    def start(self) -> None:
        self.manager.add_change_listener(self.mark)
        self._thread.start()

    def stop(self) -> None:
        self.manager.remove_change_listener(self.mark)
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def mark(self, plugin: str) -> None:
        """Called from any thread: the plugin changed (its state, or it asks for a render)."""
        with self._lock:
            self._dirty.add(plugin)
        self._wake.set()

    def mark_all(self, plugins: Iterable[str]) -> None:
        with self._lock:
            self._dirty.update(plugins)
        self._wake.set()

    def _run(self) -> None:
        while not self._halt.is_set():
            self._wake.wait(NOTICES_EVERY)
            self._wake.clear()
            if self._halt.is_set():
                return
            started = time.monotonic()
            if started - self._notices_at >= NOTICES_EVERY:
                self._notices_at = started
                self._check_notices()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            frames = []
            busy = []
            for name in sorted(dirty):
                frame = self.frame(name)
                if frame is BUSY:
                    busy.append(name)
                    continue
                last = self._last.get(name)
                if frame is None or frame.looks_like(last):
                    continue
                self._seq += 1
                frame = dataclasses.replace(frame, seq=self._seq, **_changes(last, frame))
                self._last[name] = frame
                frames.append(frame)
            if frames:
                try:
                    self.deliver(frames)
                except Exception:  # the app is shutting down
                    log.debug("could not deliver panel frames", exc_info=True)
                    return
            if busy:  # tried again next round; meanwhile their panels keep the last frame
                self.mark_all(busy)
            rest = self.period - (time.monotonic() - started)
            if rest > 0:
                self._halt.wait(rest)

    def frame(self, plugin: str) -> PanelFrame | None:
        """Render one panel now (on this thread); None when it has no panel on screen."""
        size = self.sizes(plugin)
        self.manager.set_view(plugin, size)  # its next changes are rendered as they happen
        if size is None:
            return None
        width, height, focused = size
        # A plugin busy in another hook is not waited for (the other panels would wait behind
        # it): it is tried again next round, and waited for only once it has been busy a while.
        since = self._busy_since.get(plugin)
        wait = BUSY_WAIT if since is not None and time.monotonic() - since > BUSY_PATIENCE else 0
        started = time.perf_counter()
        try:
            result = self.manager.render(plugin, width, height, focused, wait=wait)
        except Exception as exc:  # an unknown plugin (just unloaded), a closed runtime
            return PanelFrame(plugin, None, PluginState.ERROR, str(exc), 0.0)
        if result.stale and not wait:
            self._busy_since.setdefault(plugin, time.monotonic())
            return BUSY
        self._busy_since.pop(plugin, None)
        called = time.perf_counter()
        view = None
        lines = None
        note = state_note(result)
        notice = self.notice(plugin)
        if notice:
            note = f"{notice} · {note}" if note else notice
        if self.draws and (
            result.elements or (result.state is PluginState.ACTIVE and not result.error)
        ):
            try:
                view = build_panel(result.elements, width, cursor=self.cursors(plugin))
                lines = self.draw(view, width)
            except (ValueError, TypeError) as exc:
                view, note = None, f"cannot draw: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        self.render_ms.append(elapsed)
        self.view_ms.append((time.perf_counter() - called) * 1000)
        self.renders += 1
        return PanelFrame(
            plugin, view, result.state, note, elapsed, lines, elements=result.elements
        )

    def notice(self, plugin: str) -> str:
        """What a panel's border says besides its plugin's state: a failed reload, events
        dropped."""
        reload = self.notices(plugin) if self.notices is not None else ""
        drops = drop_note(self.manager.bus.drops(plugin), time.time())
        return " · ".join(part for part in (reload, drops) if part)

    def _check_notices(self) -> None:
        """Draw again the panels on screen whose notice changed."""
        for name in list(self._last):
            notice = self.notice(name)
            if notice != self._noticed.get(name, ""):
                self._noticed[name] = notice
                with self._lock:
                    self._dirty.add(name)

    def stats(self) -> tuple[list[float], list[float], int]:
        """The latest render times, their part spent here, and how many renders so far."""
        return list(self.render_ms), list(self.view_ms), self.renders

    def draw(self, view: PanelView, width: int) -> SegmentLines:
        """The view as lines of segments ``width`` cells wide at most."""
        return draw_view(self.console, view, width)

    def forget(self, plugin: str) -> None:
        """Deliver the next frame of ``plugin`` even if it looks like the last (its panel was
        redrawn for another reason)."""
        with self._lock:
            self._last.pop(plugin, None)


def _changes(last: PanelFrame | None, frame: PanelFrame) -> dict[str, Any]:
    """``base_seq`` and ``changed`` of ``frame`` against the frame delivered before it."""
    if last is None or last.lines is None or frame.lines is None:
        return {}
    old, new = last.lines.lines, frame.lines.lines
    if len(old) != len(new) or last.lines.width != frame.lines.width:
        return {"base_seq": last.seq}
    changed = tuple(y for y, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
    return {"base_seq": last.seq, "changed": changed}


def draw_view(console: Console, view: PanelView, width: int) -> SegmentLines:
    """``view`` as lines of segments ``width`` cells wide at most, drawn with ``console``."""
    drawn = view.renderable
    if isinstance(drawn, SegmentLines) and drawn.lengths is not None and drawn.width <= width:
        return drawn  # the builder drew it already
    options = console.options.update(width=width, highlight=False)
    lines = console.render_lines(view.renderable, options, pad=False, new_lines=False)
    lengths = [Segment.get_line_length(line) for line in lines]
    return SegmentLines(lines, max(lengths, default=0), lengths)
