"""Plugin panels: one widget per plugin, laid out as a grid or as tabs, painting the frames the
plugin host's renderer delivers; key presses, buttons and selections go to the plugin's
``on_input`` off the UI thread."""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Vertical, VerticalScroll
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widget import Widget
from textual.widgets import Label, Tab, Tabs

from rwq.host.api import PluginHost, Renderer
from rwq.host.render.elements import Target, input_event
from rwq.host.render.renderer import TIMINGS_KEPT, PanelFrame
from rwq.plugins.engine.lifecycle import PluginState
from rwq.printable import plain_text

log = logging.getLogger(__name__)

STATE_STYLE = {
    PluginState.ERROR: "bold red",
    PluginState.DISABLED: "red",
    PluginState.AWAITING_APPROVAL: "bold yellow",
    PluginState.UNLOADED: "dim",
}
LINES_KEPT = 512
"""Finished body lines a panel keeps for reuse."""
HOST_KEYS = frozenset({"tab", "shift+tab", "escape", "question_mark", "ctrl+p", "ctrl+q"})
"""Keys the host keeps for itself; every other key goes to the focused panel's plugin."""
SCROLL_KEYS = {"pageup": -1, "pagedown": 1}
"""Scroll a panel whose content is taller than it by a page (never sent to the plugin)."""
GRID_COLUMNS = ((120, 1), (250, 2))
"""The panels grid's columns: 1 below 120 cells of width (panels stack), 2 below 250, else 3."""


@dataclass
class _Chrome:
    """What a panel's body lines are made of while its look does not change."""

    key: tuple[Size, Size]
    """The panel's size and its content's size."""
    top: int
    bottom: int
    """Rows of border and padding above and below the body."""
    left: Strip
    right: Strip
    """Border and padding left and right of a body line, as Textual drew them."""
    base: Style
    inner: Style
    background: Color
    filters: tuple[LineFilter, ...]
    edges: dict[int, Strip] = field(default_factory=dict)
    """The border rows, by row."""
    made: dict[tuple[Segment, ...], Strip] = field(default_factory=dict)
    """Finished body lines by their drawn segments: a line seen before (a table row moved
    down, a line that did not change) is not made again."""

    def line(self, drawn: tuple[Segment, ...], length: int | None, width: int) -> Strip:
        """One finished body line: ``drawn`` (``length`` cells, when known) in the panel's
        style, cut or padded to ``width``, filtered, between the border and padding. One strip
        is made (each strip costs Textual seven caches); what Textual's own steps would do."""
        if length is None or length > width:
            body = Strip(Segment.apply_style(drawn, self.base)) if drawn else Strip([])
            body = body.crop(0, width).adjust_cell_length(width, self.inner)
            segments = list(body)
        else:
            segments = list(Segment.apply_style(drawn, self.base))
            if length < width:
                segments.append(Segment(" " * (width - length), self.inner))
        for line_filter in self.filters:
            segments = line_filter.apply(segments, self.background)
        left, right = self.left, self.right
        return Strip([*left, *segments, *right], left.cell_length + width + right.cell_length)


class PluginPanel(Widget, can_focus=True):
    """The panel of one plugin."""

    DEFAULT_CSS = """
    PluginPanel { border: round $primary-darken-2; height: auto; min-height: 5; padding: 0 1; }
    PluginPanel:focus { border: round $accent; }
    PluginPanel.-problem { border: round $error; }
    PluginPanel.-throttled { border: round $warning; }
    """

    class Input(Message):
        """A key, button or selection for the plugin (handled off the UI thread)."""

        def __init__(self, plugin: str, event: dict[str, Any]) -> None:
            super().__init__()
            self.plugin = plugin
            self.event = event

    def __init__(self, plugin: str, title: str, *, min_width: int, min_height: int,
                 resizable: bool) -> None:  # fmt: skip
        super().__init__(id=f"panel-{plugin}", classes="plugin-panel")
        self.plugin = plugin
        self.panel_title = title
        """The manifest's title as written (shown as plain text, never markup)."""
        self.border_title = plain_text(title)
        self._subtitle = ""
        self.frame: PanelFrame | None = None
        self.cursor: int | None = None
        self.render_size = (max(min_width - 4, 10), max(min_height - 2, 3))
        self.shown = 0
        """Frames handed to :meth:`show`."""
        self.painted = 0
        """Times Textual drew the panel for the screen (:meth:`render_lines` calls)."""
        self.paint_ms: deque[float] = deque(maxlen=TIMINGS_KEPT)
        """The latest :meth:`render_lines` times (the body, border and styles as strips)."""
        self._strips: dict[int, Strip] = {}
        """Lines of the current frame made into strips, by line (see :meth:`render_line`)."""
        self._strips_key: tuple[int, int, int] = (-1, -1, 0)
        self._chrome: _Chrome | None = None
        self.first_line = 0
        """The first body line shown: more than 0 while a panel taller than its cell is
        scrolled (page keys, the mouse wheel)."""
        self.styles.min_width = min_width
        self.styles.min_height = min_height
        if not resizable:
            self.styles.width = min_width
            self.styles.height = min_height

    # -- painting ----------------------------------------------------------------------------

    def show(self, frame: PanelFrame) -> None:
        self.shown += 1
        previous, self.frame = self.frame, frame
        targets = self.targets
        if self.cursor is not None and self.cursor >= len(targets):
            self.cursor = len(targets) - 1 if targets else None
        scrolled = self._clamp()
        self._show_subtitle()
        self.set_class(frame.state in STATE_STYLE, "-problem")
        self.set_class(frame.note.startswith("throttled:"), "-throttled")
        # a new layout only when the panel's height may change (it is the screen's costliest step)
        auto = self.styles.height is not None and self.styles.height.is_auto
        layout = auto and _height(frame) != _height(previous)
        if (
            not layout
            and previous is not None
            and frame.changed is not None
            and previous.seq == frame.base_seq
            and previous.note == frame.note
            and previous.state is frame.state
            and not scrolled
        ):
            # only the lines that changed are drawn again, as few regions as possible (the
            # screen renders each region apart), each as wide as the panel with its border and
            # padding: a narrower one would make the screen cut every line it writes (a new
            # strip, drawn into escape codes again) instead of writing the line as made.
            # Regions are given relative to the content (Textual adds its offset).
            left = self.content_offset.x
            shown = range(self.first_line, self.first_line + max(self.size.height, 0))
            changed = tuple(y - self.first_line for y in frame.changed if y in shown)
            self.refresh(*_spans(changed, -left, self.region.width))
        else:
            self.refresh(layout=layout)

    @property
    def total_lines(self) -> int:
        frame = self.frame
        if frame is None or frame.lines is None or frame.view is None:
            return 0
        return len(frame.lines.lines)

    def _clamp(self) -> bool:
        """Keep :attr:`first_line` within the content; whether it moved."""
        last = max(0, self.total_lines - max(self.size.height, 1))
        first = min(self.first_line, last)
        moved, self.first_line = first != self.first_line, first
        return moved

    def _show_subtitle(self) -> None:
        frame = self.frame
        note = frame.note[:80] if frame is not None and frame.note else ""
        total, rows = self.total_lines, self.size.height
        if rows > 0 and total > rows:
            place = f"lines {self.first_line + 1}-{min(total, self.first_line + rows)} of {total}"
            note = f"{note} · {place}" if note else f"{place} (PgUp/PgDn)"
        if note != self._subtitle:  # setting it repaints the whole panel
            self._subtitle = note
            self.border_subtitle = plain_text(note)

    def scroll_body(self, lines: int) -> bool:
        """Scroll the body by ``lines`` (negative: up); whether it moved."""
        before = self.first_line
        self.first_line = max(0, before + lines)
        self._clamp()
        if self.first_line == before:
            return False
        self._show_subtitle()
        self.refresh()
        return True

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the body: the frame's lines as strips, made once per frame and line
        (Textual's own path would draw the whole body again for every changed line)."""
        frame = self.frame
        lines = frame.lines if frame is not None and frame.view is not None else None
        if lines is None:
            return super().render_line(y)
        width = self.size.width
        if self._strips_key != (frame.seq if frame else -1, width, self.first_line):
            self._strips = {}
            self._strips_key = (frame.seq if frame else -1, width, self.first_line)
        strip = self._strips.get(y)
        y += self.first_line
        if strip is None:
            base = self.visual_style.rich_style
            if y < len(lines.lines):
                length = lines.lengths[y] if lines.lengths else None
                strip = Strip(Segment.apply_style(lines.lines[y], base), length)
                if length is None or length > width:
                    strip = strip.crop(0, width)
            else:
                strip = Strip.blank(width, base)
            self._strips[y - self.first_line] = strip
        return strip

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        frame = self.frame
        if frame is not None and frame.lines is not None and frame.lines.width <= width:
            return len(frame.lines.lines)  # drawn already: no need to render it to measure it
        return super().get_content_height(container, viewport, width)

    @property
    def targets(self) -> tuple[Target, ...]:
        frame = self.frame
        return frame.view.targets if frame is not None and frame.view is not None else ()

    def render_lines(self, crop: Region) -> list[Strip]:
        started = time.perf_counter()
        lines = self._body_lines(crop)
        if lines is None:
            lines = super().render_lines(crop)
        self.paint_ms.append((time.perf_counter() - started) * 1000)
        self.painted += 1
        return lines

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if not regions:  # a change of style, focus, class, theme or size: draw the chrome again
            self._chrome = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _body_lines(self, crop: Region) -> list[Strip] | None:
        """``crop`` with the body lines made here: the frame's line between the border and
        padding Textual drew for this panel (taken from lines it drew, kept until the panel is
        refreshed whole: its size, focus, classes, labels or colours changed). Textual's styles
        cache would draw the border, padding and background again for every changed line, the
        costliest step of a busy panel. None when the panel has no drawn frame or uses a style
        this does not reproduce (tint, opacity, outline, hatch) or only part of a line is
        asked."""
        frame = self.frame
        if frame is None or frame.lines is None or frame.view is None:
            return None
        width, height = self.region.size
        if crop.column_span != (0, width) or not crop.height:
            return None
        chrome = self._chrome
        key = (self.region.size, self.size)
        if chrome is None or chrome.key != key:
            chrome = self._chrome = self._make_chrome(key)
            if chrome is None:
                return None
        top, bottom = chrome.top, height - chrome.bottom
        content_width, content_height = key[1]
        drawn = frame.lines.lines
        lengths = frame.lines.lengths
        made = chrome.made
        out: list[Strip] = []
        for y in crop.line_range:
            if not top <= y < bottom:  # the border rows, with their labels: Textual's own
                edge = chrome.edges.get(y)
                if edge is None:
                    edge = chrome.edges[y] = super().render_lines(Region(0, y, width, 1))[0]
                out.append(edge)
                continue
            body_y = y - top + self.first_line
            shown = body_y < len(drawn) and body_y - self.first_line < content_height
            line = tuple(drawn[body_y]) if shown else ()
            strip = made.get(line)
            if strip is None:
                length = lengths[body_y] if lengths is not None and line else None
                strip = chrome.line(line, length, content_width)
                if len(made) >= LINES_KEPT:
                    made.clear()
                made[line] = strip
            out.append(strip)
        return out

    def _make_chrome(self, key: tuple[Size, Size]) -> _Chrome | None:
        styles = self.styles
        if (
            styles.tint.a
            or self.opacity != 1.0
            or styles.text_opacity != 1.0
            or any(edge for edge, _ in styles.outline)
            or (styles.has_rule("hatch") and styles.hatch != "none")
        ):
            return None
        gutter = styles.gutter
        width, height = self.region.size
        if height - gutter.bottom <= gutter.top:
            return None
        reference = super().render_lines(Region(0, gutter.top, width, 1))[0]
        base_background, background = self.background_colors
        return _Chrome(
            key=key,
            top=gutter.top,
            bottom=gutter.bottom,
            left=reference.crop(0, gutter.left),
            right=reference.crop(width - gutter.right),
            base=self.visual_style.rich_style,
            inner=VisualStyle(background=base_background + background).rich_style,
            background=background,
            filters=tuple(self.get_line_filters()),
        )

    def render(self) -> RenderableType:
        frame = self.frame
        if frame is None:
            return Text("loading…", style="dim")
        if frame.view is None:
            return plain_text(
                frame.note or frame.state.value, STATE_STYLE.get(frame.state, ""), multiline=True
            )
        return frame.lines if frame.lines is not None else frame.view.renderable

    def on_resize(self, _: events.Resize) -> None:
        self._clamp()
        self._show_subtitle()
        size = self.size  # the content area (the event's size includes border and padding)
        render_size = (max(size.width, 10), max(size.height, 3))
        if render_size != self.render_size:
            self.render_size = render_size
            self.post_message(PanelsView.Resized(self.plugin))  # draw it again for this size

    # -- input -------------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        if event.key in HOST_KEYS:
            return
        targets = self.targets
        handled = True
        if event.key in SCROLL_KEYS:
            self.scroll_body(SCROLL_KEYS[event.key] * max(self.size.height - 1, 1))
        elif event.key in ("up", "down") and targets:
            step = -1 if event.key == "up" else 1
            start = self.cursor if self.cursor is not None else (-1 if step > 0 else len(targets))
            self.cursor = max(0, min(len(targets) - 1, start + step))
            self.post_message(PanelsView.CursorMoved(self.plugin))
        elif event.key == "enter" and targets and self.cursor is not None:
            self.press(targets[self.cursor])
        elif (button := self._shortcut(event.character)) is not None:
            self.press(button)
        else:
            self.post_message(self.Input(self.plugin, {"kind": "key", "key": event.key}))
        if handled:
            event.stop()
            event.prevent_default()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if self.scroll_body(3):
            event.stop()  # else the grid scrolls

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.scroll_body(-3):
            event.stop()

    def _shortcut(self, character: str | None) -> Target | None:
        if not character:
            return None
        return next((t for t in self.targets if t.key == character), None)

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get("rwq_target") if event.style else None
        targets = self.targets
        if isinstance(index, int) and 0 <= index < len(targets):
            self.cursor = index
            self.press(targets[index])

    def press(self, target: Target) -> None:
        self.post_message(self.Input(self.plugin, input_event(target)))


def _spans(lines: tuple[int, ...], x: int, width: int) -> list[Region]:
    """Runs of consecutive ``lines`` as regions ``width`` cells wide from column ``x``."""
    regions: list[Region] = []
    start = previous = None
    for y in lines:
        if previous is not None and y == previous + 1:
            previous = y
            continue
        if start is not None and previous is not None:
            regions.append(Region(x, start, width, previous - start + 1))
        start = previous = y
    if start is not None and previous is not None:
        regions.append(Region(x, start, width, previous - start + 1))
    return regions


def _height(frame: PanelFrame | None) -> int | None:
    if frame is None or frame.lines is None:
        return None
    return len(frame.lines.lines)


class PanelsView(Vertical):
    """Every plugin's panel, in a grid or as tabs (``g`` switches)."""

    BINDINGS = [
        Binding("tab", "next_panel(1)", "Next panel", show=False),
        Binding("shift+tab", "next_panel(-1)", "Previous panel", show=False),
    ]

    DEFAULT_CSS = """
    PanelsView #panel-grid {
        layout: grid; grid-size: 2; grid-rows: auto; grid-gutter: 0 1; height: 1fr;
    }
    PanelsView #panel-grid.-tabs { layout: vertical; }
    PanelsView #panel-grid.-tabs PluginPanel { height: 1fr; max-height: 100%; }
    PanelsView #panel-tabs { display: none; }
    PanelsView.-tabs #panel-tabs { display: block; }
    """

    class Frames(Message):
        def __init__(self, frames: list[PanelFrame]) -> None:
            super().__init__()
            self.frames = frames

    class CursorMoved(Message):
        def __init__(self, plugin: str) -> None:
            super().__init__()
            self.plugin = plugin

    class Resized(Message):
        def __init__(self, plugin: str) -> None:
            super().__init__()
            self.plugin = plugin

    def __init__(self, host: PluginHost | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        """The plugin host (in this process or its own); None when plugins are off."""
        self.panels: dict[str, PluginPanel] = {}
        self.renderer: Renderer | None = None
        self.tabs_layout = False
        self._synced = False
        self._inputs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rwq-panel-input")

    def compose(self) -> ComposeResult:
        yield Tabs(id="panel-tabs")
        if self.host is None:
            yield Label("No plugin host: plugins are off (--no-plugins).", id="panels-empty")
        else:
            yield Label("", id="panels-empty")
        yield VerticalScroll(id="panel-grid")

    def on_mount(self) -> None:
        if self.host is None:
            return
        self.renderer = self.host.renderer(self._size_of, self._deliver, self._cursor_of)
        self.sync()
        self.renderer.start()

    def on_resize(self, _: events.Resize) -> None:
        """As many columns as the width allows (:data:`GRID_COLUMNS`: a narrow terminal stacks
        the panels), and no panel taller than the screen: a longer one scrolls inside."""
        grid = self.query_one("#panel-grid", VerticalScroll)
        width = self.size.width
        grid.styles.grid_size_columns = next((n for edge, n in GRID_COLUMNS if width < edge), 3)
        for panel in self.panels.values():
            self._cap(panel)

    def _cap(self, panel: PluginPanel) -> None:
        height = self.query_one("#panel-grid", VerticalScroll).size.height or self.size.height
        panel.styles.max_height = max(height, panel.styles.min_height.value if
                                      panel.styles.min_height else 5)  # fmt: skip

    def on_unmount(self) -> None:
        if self.renderer is not None:
            self.renderer.stop()
        self._inputs.shutdown(wait=False, cancel_futures=True)

    # -- which panels exist ------------------------------------------------------------------

    def sync(self) -> None:
        """Add panels for new plugins and drop those of plugins that are gone."""
        host = self.host
        if host is None:
            return
        names = host.plugins()
        grid = self.query_one("#panel-grid", VerticalScroll)
        tabs = self.query_one("#panel-tabs", Tabs)
        added = []
        for name in names:
            if name in self.panels:
                continue
            manifest = host.manifest(name)
            ui = manifest.ui if manifest is not None else None
            panel = PluginPanel(
                name,
                (ui.panel_title if ui and ui.panel_title else name),
                min_width=ui.min_width if ui else 20,
                min_height=ui.min_height if ui else 5,
                resizable=ui.resizable if ui else True,
            )
            self.panels[name] = panel
            grid.mount(panel)
            self._cap(panel)
            tabs.add_tab(Tab(plain_text(panel.panel_title), id=f"tab-{name}"))
            added.append(name)
        removed = [n for n in self.panels if n not in names]
        for name in removed:
            self.panels.pop(name).remove()
            tabs.remove_tab(f"tab-{name}")
        gone = host.gone
        if not (added or removed) and self._synced and not gone:
            return  # called every poll: touching the widgets would cost the screen a new layout
        self._synced = True
        empty = self.query_one("#panels-empty", Label)
        if gone:
            empty.update(plain_text(f"No plugin panels: {gone}", "bold red"))
        else:
            empty.update("" if self.panels else "No plugins installed: see `rwq plugin install`.")
        empty.display = not self.panels
        if added and self.renderer is not None:
            for name in added:  # a new panel has no frame yet, even if one was drawn before
                self.renderer.forget(name)
            self.renderer.mark_all(added)
        self._show_active()

    # -- rendering ---------------------------------------------------------------------------

    def _size_of(self, plugin: str) -> tuple[int, int, bool] | None:
        panel = self.panels.get(plugin)
        if panel is None:
            return None
        width, height = panel.render_size
        return width, height, panel.has_focus

    def _cursor_of(self, plugin: str) -> int | None:
        panel = self.panels.get(plugin)
        return panel.cursor if panel is not None and panel.has_focus else None

    def _deliver(self, frames: list[PanelFrame]) -> None:
        self.post_message(self.Frames(frames))  # thread-safe

    def on_panels_view_frames(self, message: Frames) -> None:
        for frame in message.frames:
            panel = self.panels.get(frame.plugin)
            if panel is not None:
                panel.show(frame)

    def on_panels_view_cursor_moved(self, message: CursorMoved) -> None:
        if self.renderer is not None:
            self.renderer.mark(message.plugin)

    def on_panels_view_resized(self, message: Resized) -> None:
        if self.renderer is not None:
            self.renderer.mark(message.plugin)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, PluginPanel) and self.renderer is not None:
            self.renderer.mark(event.widget.plugin)  # draw the cursor / focused variant

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if isinstance(event.widget, PluginPanel) and self.renderer is not None:
            self.renderer.mark(event.widget.plugin)

    # -- input -------------------------------------------------------------------------------

    def on_plugin_panel_input(self, message: PluginPanel.Input) -> None:
        host = self.host
        if host is None:
            return

        def deliver() -> None:
            try:
                host.on_input(message.plugin, message.event)
            except Exception:
                log.exception("input for %s failed", message.plugin)

        self._inputs.submit(deliver)

    # -- layout ------------------------------------------------------------------------------

    def action_layout(self) -> None:
        self.tabs_layout = not self.tabs_layout
        self.set_class(self.tabs_layout, "-tabs")
        self.query_one("#panel-grid").set_class(self.tabs_layout, "-tabs")
        self._show_active()

    def action_next_panel(self, step: int) -> None:
        """The next (or previous) panel: its tab in the tabs layout, focus in the grid."""
        order = list(self.panels)
        if not order:
            return
        if self.tabs_layout:
            tabs = self.query_one("#panel-tabs", Tabs)
            current = (tabs.active or "").removeprefix("tab-")
            index = order.index(current) if current in order else -step
            tabs.active = f"tab-{order[(index + step) % len(order)]}"
            return
        focused = next((n for n in order if self.panels[n].has_focus), None)
        index = order.index(focused) if focused is not None else -1 if step > 0 else 0
        self.panels[order[(index + step) % len(order)]].focus()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        self._show_active()
        if self.tabs_layout and event.tab is not None and event.tab.id:
            panel = self.panels.get(event.tab.id.removeprefix("tab-"))
            if panel is not None:
                panel.focus()

    def _show_active(self) -> None:
        active = self.query_one("#panel-tabs", Tabs).active
        for name, panel in self.panels.items():
            panel.display = not self.tabs_layout or active == f"tab-{name}"
